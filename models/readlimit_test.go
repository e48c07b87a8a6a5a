package models

import (
	"errors"
	"testing"
	"time"

	"gorm.io/gorm"
)

// A read over its limit is stopped by the server and reported as
// ErrReadTooLong; the connection goes back to the pool without the limit.
func TestLimitedReadStopsALongRead(t *testing.T) {
	s, _ := testStore(t)
	if s.Dialect != MySQL {
		t.Skip("statement time limits are MySQL's and MariaDB's (SQLite reads run unlimited); set " + TestMySQLEnv + " to test them")
	}
	sqlDB, err := s.DB.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1) // the next query gets the same connection
	var n int64
	err = s.limitedRead(5*time.Millisecond, func(db *gorm.DB) error {
		// A cross join of the catalogue: far more than 5 ms of work.
		return db.Raw("SELECT COUNT(*) FROM information_schema.columns a, information_schema.columns b, information_schema.columns c").Scan(&n).Error
	})
	if !errors.Is(err, ErrReadTooLong) {
		t.Fatalf("a read over its limit: err %v, want ErrReadTooLong", err)
	}
	var left float64
	v := "@@max_execution_time"
	if s.limit.mariadb {
		v = "@@max_statement_time"
	}
	if err := s.DB.Raw("SELECT " + v).Scan(&left).Error; err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("the pooled connection kept a statement limit of %v", left)
	}
	// Within its limit a read answers as usual.
	if err := s.limitedRead(5*time.Second, func(db *gorm.DB) error { return db.Raw("SELECT 1").Scan(&n).Error }); err != nil || n != 1 {
		t.Fatalf("a short read: %d, %v", n, err)
	}
}

// A ledger page holds one connection for its reads; everything it asks runs
// on that connection, so a pool of one still answers (a second request for a
// connection would wait forever once every connection is held by a page).
func TestLedgerReadsNeedOneConnection(t *testing.T) {
	s, _, _ := ledgerQueryFixture(t)
	if s.Dialect != MySQL {
		t.Skip("only MySQL pins a connection for the ledger's reads; set " + TestMySQLEnv + " to test it")
	}
	sqlDB, err := s.DB.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	done := make(chan error, 1)
	go func() {
		both := Scope{Merchants: []string{"SHOP_SH", "SHOP_BJ"}}
		min := int64(1)
		f := LedgerFilter{DateFrom: "2026-03-01", DateTo: "2026-03-03", AmountMin: &min}
		rows, _, err := s.ListTransactions(both, f, LedgerCursor{}, 10)
		if err == nil && len(rows) == 0 {
			err = errors.New("no rows")
		}
		if err == nil {
			_, _, err = s.CountTransactions(both, f, 100)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a ledger page with a pool of one connection did not answer in 20 s")
	}
}
