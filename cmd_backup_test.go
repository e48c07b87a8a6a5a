package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"payfuse/models"
)

// openSQLite opens a migrated store on the SQLite file at path, as another
// process would.
func openSQLite(t *testing.T, path string) *models.Store {
	t.Helper()
	dsn := models.DSN{Dialect: models.SQLite, Path: path}
	db, err := models.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := models.Migrate(db, dsn.Dialect); err != nil {
		t.Fatal(err)
	}
	return models.NewStore(db, dsn.Dialect)
}

// tableCounts counts the rows of every table of a SQLite database.
func tableCounts(t *testing.T, s *models.Store) map[string]int64 {
	t.Helper()
	var tables []string
	if err := s.DB.Raw("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").Scan(&tables).Error; err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, tb := range tables {
		var n int64
		if err := s.DB.Table(tb).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		out[tb] = n
	}
	return out
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBackupLiveSQLite backs up a database while another process-like store
// keeps writing to it, restores the copy the way docs/OPERATIONS.md says
// (server stopped, the database and its -wal/-shm files replaced), and finds
// a database that opens, needs no migration and holds exactly the
// transactions committed before one instant: a gap-free prefix of the
// writer's merchants, each with its audit row (written in the same
// transaction). A second backup taken at rest has every table's row count
// equal to the live database's.
func TestBackupLiveSQLite(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.db")
	g := []string{"--db", "sqlite:" + live}
	if code, _, errs := runCLI(t, "", append(g, "migrate")...); code != 0 {
		t.Fatalf("migrate: %s", errs)
	}
	writer := openSQLite(t, live)
	defer writer.Close()

	// Bulk so the copy takes a while: 2,000 audit rows of 500 characters.
	const seeded = 2000
	if err := writer.DB.Exec(`INSERT INTO audit_logs (at, actor, action, detail)
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		SELECT '2026-01-01 00:00:00', 'seed', 'seed', printf('%0500d', i) FROM n`, seeded).Error; err != nil {
		t.Fatal(err)
	}

	// The writer: one merchant after another, each its own transaction
	// (the merchant row and its audit row), numbered in commit order.
	var committed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var writeErr error
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := writer.CreateMerchant(models.SystemActor, models.MerchantInput{Code: fmt.Sprintf("W%06d", i), Name: "writer"}); err != nil {
				writeErr = err
				return
			}
			committed.Add(1)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); committed.Load() < 5; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the writer did not get going")
		}
	}

	backup := filepath.Join(dir, "backups", "b1.db")
	os.MkdirAll(filepath.Dir(backup), 0o700)
	before := committed.Load()
	bt := time.Now()
	code, out, errs := runCLI(t, "", append(g, "backup", "--out", backup)...)
	after := committed.Load()
	took := time.Since(bt)
	close(stop)
	wg.Wait()
	if writeErr != nil {
		t.Fatalf("the writer failed during the backup: %v", writeErr)
	}
	if code != 0 || !strings.Contains(out, fmt.Sprintf("schema version %d, quick_check ok", models.LatestVersion())) {
		t.Fatalf("backup: %d %q %s", code, out, errs)
	}
	if !strings.Contains(errs, "master key is not in the backup") {
		t.Errorf("no reminder about the master key: %q", errs)
	}
	if after <= before {
		t.Fatalf("no write committed while the backup ran (%d before, %d after): the test proves nothing", before, after)
	}
	t.Logf("the backup took %s; the writer committed %d merchants before it and %d while it ran", took.Round(time.Millisecond), before, after-before)
	st, err := os.Stat(backup)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, mode %v (want 0600)", err, st.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(backup), ".*partial*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}

	// Restore in place, as documented: stop every process, move the database
	// and its -wal and -shm files away, put the backup in their place.
	final := tableCounts(t, writer)
	writer.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(live + suffix)
	}
	copyFile(t, backup, live)
	code, out, errs = runCLI(t, "", append(g, "migrate")...)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("schema version %d", models.LatestVersion())) {
		t.Fatalf("migrate on the restored database: %d %q %s", code, out, errs)
	}
	restored := openSQLite(t, live)
	defer restored.Close()
	var codes []string
	if err := restored.DB.Model(&models.Merchant{}).Where("name = ?", "writer").Order("code").Pluck("code", &codes).Error; err != nil {
		t.Fatal(err)
	}
	k := int64(len(codes))
	if k < before || k > after {
		t.Fatalf("the backup holds %d merchants; %d were committed when it started and %d when it ended", k, before, after)
	}
	for i, c := range codes {
		if c != fmt.Sprintf("W%06d", i) {
			t.Fatalf("merchant %d of the backup is %s: the copy is not one instant of the database", i, c)
		}
	}
	var audited, seededRows int64
	restored.DB.Model(&models.AuditLog{}).Where("action = ?", models.ActMerchantCreate).Count(&audited)
	restored.DB.Model(&models.AuditLog{}).Where("action = ?", "seed").Count(&seededRows)
	if audited != k || seededRows != seeded {
		t.Fatalf("restored: %d merchants but %d merchant audit rows, %d of %d seeded rows", k, audited, seededRows, seeded)
	}
	if final["merchants"] <= k {
		t.Fatalf("the live database ended with %d merchants, the backup has %d: the backup was not taken mid-write", final["merchants"], k)
	}

	// A backup at rest: every table has the same row count as the database.
	quiet := filepath.Join(dir, "backups", "b2.db")
	if code, out, errs := runCLI(t, "", append(g, "backup", "--out", quiet)...); code != 0 {
		t.Fatalf("second backup: %d %q %s", code, out, errs)
	}
	copyOf := openSQLite(t, quiet)
	defer copyOf.Close()
	want, got := tableCounts(t, restored), tableCounts(t, copyOf)
	if len(want) < 20 || fmt.Sprint(want) != fmt.Sprint(got) {
		t.Fatalf("row counts differ:\n database %v\n backup   %v", want, got)
	}
}

func TestBackupRefusals(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.db")
	g := []string{"--db", "sqlite:" + live}
	if code, _, errs := runCLI(t, "", append(g, "migrate")...); code != 0 {
		t.Fatalf("migrate: %s", errs)
	}
	existing := filepath.Join(dir, "taken.db")
	os.WriteFile(existing, []byte("an earlier backup"), 0o600)
	missing := filepath.Join(dir, "nowhere", "none.db")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no --out", append(g, "backup"), "--out FILE is required"},
		{"existing file", append(g, "backup", "--out", existing), "exists; choose a new name"},
		{"onto the database", append(g, "backup", "--out", live), "exists"},
		{"no database", []string{"--db", "sqlite:" + missing, "backup", "--out", filepath.Join(dir, "x.db")}, "no database at"},
		{"MySQL", []string{"--db", "mysql://root@127.0.0.1:3306/payfuse", "backup", "--out", filepath.Join(dir, "y.db")}, "mariadb-dump --single-transaction"},
	} {
		code, _, errs := runCLI(t, "", c.args...)
		if code != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("%s: exit %d, %q; want 1 and %q", c.name, code, errs, c.want)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "an earlier backup" {
		t.Errorf("an existing file was overwritten")
	}
	if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
		t.Errorf("backing up a missing database created %s", filepath.Dir(missing))
	}
	if code, _, errs := runCLI(t, "", "backup", "--help"); code != 0 || !strings.Contains(errs, "payfuse backup --out FILE") {
		t.Errorf("backup --help: %d %s", code, errs)
	}
}
