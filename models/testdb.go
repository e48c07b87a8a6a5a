package models

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"gorm.io/driver/mysql"
	"gorm.io/gorm"
)

// TestMySQLEnv names the variable that points the test suite at a MySQL or
// MariaDB server, as a --db style URL (mysql://root@127.0.0.1:3306/payfuse_test).
const TestMySQLEnv = "PAYFUSE_TEST_MYSQL"

// OpenTest returns a migrated Store on a database of the test's own: a SQLite
// file in a temporary folder, or, when PAYFUSE_TEST_MYSQL is set, a fresh
// database on that server (named after the one in the URL plus a random
// suffix) that is dropped when the test ends.
func OpenTest(t testing.TB) *Store {
	t.Helper()
	raw := os.Getenv(TestMySQLEnv)
	var dsn DSN
	if raw == "" {
		dsn = DSN{Dialect: SQLite, Path: filepath.Join(t.TempDir(), "test.db")}
	} else {
		var err error
		dsn, err = ParseDSN(raw)
		if err != nil || dsn.Dialect != MySQL {
			t.Fatalf("%s=%q: want a mysql:// URL (%v)", TestMySQLEnv, raw, err)
		}
		cfg := dsn.MySQL.Clone()
		name := fmt.Sprintf("%s_%s", cfg.DBName, RandomPassword(8))
		server := cfg.Clone()
		server.DBName = ""
		admin, err := gorm.Open(mysql.New(mysql.Config{DSNConfig: server}), &gorm.Config{})
		if err != nil {
			t.Fatalf("connect to %s: %v", dsn, err)
		}
		if err := admin.Exec("CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci").Error; err != nil {
			t.Fatalf("create test database: %v", err)
		}
		t.Cleanup(func() {
			admin.Exec("DROP DATABASE IF EXISTS `" + name + "`")
			if db, err := admin.DB(); err == nil {
				db.Close()
			}
		})
		cfg.DBName = name
		dsn.MySQL = cfg
	}
	db, err := Open(dsn)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	if err := Migrate(db, dsn.Dialect); err != nil {
		t.Fatalf("migrate test database: %v", err)
	}
	s := NewStore(db, dsn.Dialect)
	t.Cleanup(func() { s.Close() })
	return s
}

// MustCreateUser creates a user for a test or fails it.
func MustCreateUser(t testing.TB, s *Store, username, password string, role Role, merchants ...string) *User {
	t.Helper()
	u, err := s.CreateUser(SystemActor, NewUser{Username: username, Password: password, Role: string(role), Merchants: merchants})
	if err != nil {
		t.Fatalf("create user %s: %v", username, err)
	}
	return u
}

// TestDSN is the DSN another process (a test's child) opens to reach the
// database of s, a store OpenTest made.
func TestDSN(t testing.TB, s *Store) string {
	t.Helper()
	if s.Dialect == SQLite {
		var path string
		if err := s.DB.Raw("SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&path).Error; err != nil {
			t.Fatal(err)
		}
		return "sqlite:" + path
	}
	var name string
	if err := s.DB.Raw("SELECT DATABASE()").Scan(&name).Error; err != nil {
		t.Fatal(err)
	}
	d, _ := ParseDSN(os.Getenv(TestMySQLEnv))
	return "mysql://" + d.MySQL.User + "@" + d.MySQL.Addr + "/" + name
}
