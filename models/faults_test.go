package models

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"payfuse/channels"
	"payfuse/models/faultproxy"
)

// faultStatement is a statement of n one-yuan payments with references
// prefix+number; progress, when set, runs once, inside the import's
// transaction, after the third batch has been written.
func faultStatement(name, mch, prefix string, n int, progress func()) StatementFile {
	return StatementFile{Name: name, Hash: fmt.Sprintf("%064x", len(name)*7919+n), Bytes: int64(n) * 100,
		Parse: func(fn func(channels.Record) error) (channels.Totals, error) {
			at := time.Date(2026, 3, 6, 8, 0, 0, 0, bj)
			for i := 0; i < n; i++ {
				if i == 3*ingestBatch && progress != nil {
					progress()
				}
				if err := fn(pay(fmt.Sprintf("%s%07d", prefix, i), mch, 100, channels.StatusSucceeded, at)); err != nil {
					return channels.Totals{}, err
				}
			}
			return channels.Totals{Payments: n}, nil
		}}
}

// faultTotals is what the ledger holds: transactions, the sum of their
// amounts, their source rows, and taken imports.
type faultTotals struct{ Rows, Sum, Sources, Imports int64 }

func totalsOf(t *testing.T, s *Store) faultTotals {
	t.Helper()
	var lt faultTotals
	if err := s.DB.Model(&Transaction{}).Select("COUNT(*) AS rows_n, COALESCE(SUM(amount), 0) AS sum_n").Row().Scan(&lt.Rows, &lt.Sum); err != nil {
		t.Fatal(err)
	}
	s.DB.Model(&TransactionSource{}).Count(&lt.Sources)
	s.DB.Model(&Import{}).Where("status = ?", ImportTaken).Count(&lt.Imports)
	return lt
}

// rollupsMatch fails the test when a daily rollup differs from the ledger.
func rollupsMatch(t *testing.T, s *Store) {
	t.Helper()
	chk, err := s.CheckRollups(web, Scope{All: true}, "2026-01-01", "2026-12-31", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(chk.Diffs) > 0 {
		t.Fatalf("rollups differ from the ledger: %+v", chk.Diffs)
	}
}

// proxiedStore opens a second store on base's MySQL database through a
// fault proxy: stopping the proxy stops the database for that store alone.
func proxiedStore(t *testing.T, base *Store) (*faultproxy.Proxy, *Store) {
	t.Helper()
	raw := TestDSN(t, base)
	u, _ := url.Parse(raw)
	p, err := faultproxy.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	via, err := p.Via(raw)
	if err != nil {
		t.Fatal(err)
	}
	dsn, err := ParseDSN(via)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(db, dsn.Dialect)
	s.Vault = base.Vault
	t.Cleanup(func() { s.Close() })
	return p, s
}

// TestImportDuringDatabaseOutage stops MariaDB (for this store: a proxy
// drops every connection and refuses new ones) in the middle of a statement
// import's transaction. The import fails at once with an error that says
// nothing of the file was imported; the ledger holds none of it; while the
// database is away other queries fail fast too; once it is back the same
// store (no restart) imports the file exactly once.
func TestImportDuringDatabaseOutage(t *testing.T) {
	if os.Getenv(TestMySQLEnv) == "" {
		t.Skip("needs MariaDB (set PAYFUSE_TEST_MYSQL): an embedded SQLite database cannot stop apart from the process")
	}
	base, acct, mch := ledgerFixture(t)
	p, s := proxiedStore(t, base)
	const rows = 6000
	if _, err := s.ImportStatement(web, acct.ID, faultStatement("before.csv", mch, "A", 500, nil)); err != nil {
		t.Fatal(err)
	}
	before := totalsOf(t, base)

	var stopped time.Time
	_, err := s.ImportStatement(web, acct.ID, faultStatement("day.csv", mch, "B", rows, func() {
		p.Stop()
		stopped = time.Now()
	}))
	took := time.Since(stopped)
	t.Logf("failed %v after the database stopped: %v", took, err)
	if stopped.IsZero() || err == nil {
		t.Fatalf("the import went through a database outage: %v", err)
	}
	if !IsUnavailable(err) || !strings.Contains(err.Error(), "nothing of day.csv was imported") {
		t.Errorf("import error = %v (unavailable: %v), want a clear database-unreachable error", err, IsUnavailable(err))
	}
	if took > 2*time.Second {
		t.Errorf("the import took %v to fail after the database stopped", took)
	}
	if got := totalsOf(t, base); got != before {
		t.Fatalf("after the failed import the ledger holds %+v, want %+v as before it", got, before)
	}
	// While it is away, reads fail fast and say why.
	t0 := time.Now()
	if _, err := s.ListImports(Scope{All: true}, 0, 10); !IsUnavailable(err) || time.Since(t0) > 2*time.Second {
		t.Errorf("a read during the outage: %v after %v", err, time.Since(t0))
	}

	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	res, err := s.ImportStatement(web, acct.ID, faultStatement("day.csv", mch, "B", rows, nil))
	if err != nil || res.Inserted != rows {
		t.Fatalf("re-run after the database came back: %+v %v", res, err)
	}
	if res, err := s.ImportStatement(web, acct.ID, faultStatement("day.csv", mch, "B", rows, nil)); err != nil || !res.AlreadyImported {
		t.Fatalf("second re-run: %+v %v", res, err)
	}
	want := faultTotals{Rows: before.Rows + rows, Sum: before.Sum + rows*100, Sources: before.Sources + rows, Imports: before.Imports + 1}
	if got := totalsOf(t, base); got != want {
		t.Fatalf("ledger after the re-run = %+v, want %+v", got, want)
	}
	rollupsMatch(t, base)
}

// limitPages caps the size of s's SQLite database at pages pages on every
// pooled connection (max_page_count is per connection): a write that needs
// more fails with SQLITE_FULL, exactly as on a full disk.
func limitPages(t *testing.T, s *Store, pages int64) {
	t.Helper()
	sqlDB, err := s.DB.DB()
	if err != nil {
		t.Fatal(err)
	}
	n := sqlDB.Stats().MaxOpenConnections
	ctx := context.Background()
	for i := 0; i < n; i++ { // hold them all at once, so each one gets the pragma
		c, err := sqlDB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestImportIntoAFullDatabase: SQLite runs out of space in the middle of a
// statement import (max_page_count stands in for a full disk; it fails with
// the same SQLITE_FULL). The import fails with an error that says the
// database is full and nothing of the file was imported; the database passes
// its integrity check and holds exactly what it held before; once there is
// room again the same file imports whole.
func TestImportIntoAFullDatabase(t *testing.T) {
	if os.Getenv(TestMySQLEnv) != "" {
		t.Skip("SQLite only: its max_page_count stands in for a full disk; MariaDB's InnoDB waits for space instead")
	}
	s, acct, mch := ledgerFixture(t)
	if _, err := s.ImportStatement(web, acct.ID, faultStatement("before.csv", mch, "A", 500, nil)); err != nil {
		t.Fatal(err)
	}
	before := totalsOf(t, s)
	var pages int64
	if err := s.DB.Raw("PRAGMA page_count").Scan(&pages).Error; err != nil {
		t.Fatal(err)
	}
	limitPages(t, s, pages+16) // 64 KiB to spare; the file needs about 1.8 MiB
	_, err := s.ImportStatement(web, acct.ID, faultStatement("day.csv", mch, "B", 1000, nil))
	t.Logf("import into the full database: %v", err)
	if !IsFull(err) || !strings.Contains(err.Error(), "the database is full") || !strings.Contains(err.Error(), "nothing of day.csv was imported") {
		t.Fatalf("import into a full database: %v (full: %v), want a clear database-full error", err, IsFull(err))
	}
	if IsUnavailable(err) || IsBusy(err) {
		t.Errorf("a full database also counts as unavailable or busy: %v", err)
	}
	var check string
	if err := s.DB.Raw("PRAGMA integrity_check").Scan(&check).Error; err != nil || check != "ok" {
		t.Fatalf("integrity check after the failed import: %q %v", check, err)
	}
	if got := totalsOf(t, s); got != before {
		t.Fatalf("after the failed import the ledger holds %+v, want %+v as before it", got, before)
	}
	rollupsMatch(t, s)
	// Other writes fail the same way, and leave nothing behind either.
	err = s.Tx(func(tx *gorm.DB) error {
		for i := 0; i < 400; i++ {
			m := Merchant{Code: fmt.Sprintf("FULL%04d", i), Name: strings.Repeat("x", 200), Timezone: "Asia/Shanghai", Currency: "CNY", Status: "active"}
			if err := tx.Create(&m).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if !IsFull(err) {
		t.Errorf("another large write into the full database: %v", err)
	}

	limitPages(t, s, 1<<30) // space freed
	res, err := s.ImportStatement(web, acct.ID, faultStatement("day.csv", mch, "B", 1000, nil))
	if err != nil || res.Inserted != 1000 {
		t.Fatalf("re-run once there is room: %+v %v", res, err)
	}
	want := faultTotals{Rows: before.Rows + 1000, Sum: before.Sum + 1000*100, Sources: before.Sources + 1000, Imports: before.Imports + 1}
	if got := totalsOf(t, s); got != want {
		t.Fatalf("ledger after the re-run = %+v, want %+v", got, want)
	}
	rollupsMatch(t, s)
}

// TestDatabaseErrorKinds: what counts as the database being away, full or
// busy — and what does not.
func TestDatabaseErrorKinds(t *testing.T) {
	for _, err := range []error{nil, ErrNotFound, gorm.ErrRecordNotFound, errors.New("invalid connection"), context.Canceled,
		&url.Error{Op: "Post", URL: "https://example.com/hook", Err: &timeoutErr{}}} {
		if IsUnavailable(err) || IsFull(err) || IsBusy(err) {
			t.Errorf("%v counts as a database fault", err)
		}
	}
	if !IsUnavailable(fmt.Errorf("store: unable to read: %w", &timeoutErr{})) {
		t.Error("a network timeout from the driver is not unavailable")
	}
}

type timeoutErr struct{}

func (*timeoutErr) Error() string   { return "i/o timeout" }
func (*timeoutErr) Timeout() bool   { return true }
func (*timeoutErr) Temporary() bool { return true }

// TestParseDSNTimeouts: MySQL connections get dial, read and write timeouts
// by default; the URL may change or remove them, and a bad value is refused.
func TestParseDSNTimeouts(t *testing.T) {
	d, err := ParseDSN("mysql://root@127.0.0.1:3306/payfuse")
	if err != nil {
		t.Fatal(err)
	}
	if d.MySQL.Timeout != DefaultDialTimeout || d.MySQL.ReadTimeout != DefaultReadTimeout || d.MySQL.WriteTimeout != DefaultWriteTimeout {
		t.Errorf("default timeouts: %v %v %v", d.MySQL.Timeout, d.MySQL.ReadTimeout, d.MySQL.WriteTimeout)
	}
	d, err = ParseDSN("mysql://root@127.0.0.1:3306/payfuse?timeout=3s&readTimeout=0&writeTimeout=1m&innodb_lock_wait_timeout=20")
	if err != nil {
		t.Fatal(err)
	}
	if d.MySQL.Timeout != 3*time.Second || d.MySQL.ReadTimeout != 0 || d.MySQL.WriteTimeout != time.Minute {
		t.Errorf("timeouts from the URL: %v %v %v", d.MySQL.Timeout, d.MySQL.ReadTimeout, d.MySQL.WriteTimeout)
	}
	if _, ok := d.MySQL.Params["readTimeout"]; ok {
		t.Error("readTimeout was also sent as a session variable")
	}
	if d.MySQL.Params["innodb_lock_wait_timeout"] != "20" {
		t.Errorf("other parameters: %v", d.MySQL.Params)
	}
	for _, bad := range []string{"timeout=soon", "readTimeout=-1s", "writeTimeout=5"} {
		if _, err := ParseDSN("mysql://root@127.0.0.1:3306/payfuse?" + bad); err == nil || !strings.Contains(err.Error(), strings.Split(bad, "=")[0]) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
