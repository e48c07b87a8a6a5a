package models

import (
	"os"
	"strings"
	"testing"
)

// TestMySQLServer says plainly whether this run covers MySQL/MariaDB: the
// whole suite runs there too when PAYFUSE_TEST_MYSQL is set.
func TestMySQLServer(t *testing.T) {
	if os.Getenv(TestMySQLEnv) == "" {
		t.Skip("MySQL/MariaDB not tested: set PAYFUSE_TEST_MYSQL=mysql://root@127.0.0.1:3306/payfuse_test to run the whole suite against a server as well")
	}
	s := OpenTest(t)
	if s.Dialect != MySQL {
		t.Fatalf("dialect %s with %s set", s.Dialect, TestMySQLEnv)
	}
	var version string
	if err := s.DB.Raw("SELECT VERSION()").Scan(&version).Error; err != nil {
		t.Fatal(err)
	}
	var tz string
	s.DB.Raw("SELECT @@session.time_zone").Scan(&tz)
	if tz != "+00:00" {
		t.Errorf("session time zone %q, want +00:00 (times are stored in UTC)", tz)
	}
	var charset string
	s.DB.Raw("SELECT @@character_set_database").Scan(&charset)
	if !strings.HasPrefix(charset, "utf8mb4") {
		t.Errorf("database charset %q, want utf8mb4", charset)
	}
	t.Logf("suite runs against %s", version)
}
