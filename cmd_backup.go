package main

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"payfuse/models"
)

const backupSynopsis = "payfuse backup --out FILE   (SQLite; for MySQL/MariaDB see docs/OPERATIONS.md)"

// cmdBackup copies a live SQLite database to FILE with VACUUM INTO: one read
// transaction, so the copy is the database as it was at one instant, while
// the console goes on reading and writing (WAL mode: the read blocks no
// writer). The copy is written beside FILE and renamed when it is complete
// and checked (PRAGMA quick_check, schema version), readable by its owner
// only. It never overwrites a file, and it does not migrate the database.
// MySQL and MariaDB are backed up with their own tools (mariadb-dump
// --single-transaction), which docs/OPERATIONS.md describes.
func cmdBackup(g *globals, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backup", backupSynopsis, g, stderr)
	out := fs.String("out", "", "the backup file to write (must not exist yet)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("backup: unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return errors.New("backup: --out FILE is required")
	}
	dsn, err := models.ParseDSN(g.db)
	if err != nil {
		return err
	}
	if dsn.Dialect != models.SQLite {
		return errors.New("backup: this command copies SQLite databases; back up MySQL/MariaDB with `mariadb-dump --single-transaction` (or mysqldump), as docs/OPERATIONS.md shows")
	}
	if _, err := os.Stat(dsn.Path); err != nil {
		return fmt.Errorf("backup: no database at %s: %w", dsn.Path, err)
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("backup: %s exists; choose a new name (a backup never overwrites a file)", *out)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("backup: %w", err)
	}
	db, err := models.Open(dsn)
	if err != nil {
		return err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	defer sqlDB.Close()

	// VACUUM INTO refuses an existing file: the temporary name is new.
	tmp := filepath.Join(filepath.Dir(*out), "."+filepath.Base(*out)+".partial-"+models.RandomToken(6))
	defer os.Remove(tmp)
	if err := db.Exec("VACUUM INTO ?", tmp).Error; err != nil {
		return fmt.Errorf("backup: copying %s: %w", dsn, err)
	}
	version, err := checkBackup(tmp)
	if err != nil {
		return fmt.Errorf("backup: the copy failed its check, nothing written: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, *out); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if d, err := os.Open(filepath.Dir(*out)); err == nil { // make the rename itself durable
		d.Sync()
		d.Close()
	}
	st, err := os.Stat(*out)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "backed up %s to %s: %.1f MiB, schema version %d, quick_check ok\n", dsn, *out, float64(st.Size())/(1<<20), version)
	fmt.Fprintln(stderr, "payfuse: the master key is not in the backup; keep a copy of it (--master-key-file, or the .key file beside the database) apart from the backups")
	return nil
}

// checkBackup opens the copy read-only, runs PRAGMA quick_check and reads
// its schema version.
func checkBackup(path string) (int, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	rows, err := db.Query("PRAGMA quick_check")
	if err != nil {
		return 0, err
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return 0, err
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(problems) > 0 {
		return 0, fmt.Errorf("quick_check: %s", strings.Join(problems, "; "))
	}
	var version int
	if err := db.QueryRow("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&version); err != nil {
		return 0, fmt.Errorf("reading the schema version: %w", err)
	}
	return version, nil
}

// syncFile makes the copy private and flushes it to disk.
func syncFile(path string) error {
	if err := os.Chmod(path, 0o600); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
