package models

import (
	"errors"
	"testing"

	"gorm.io/gorm"
)

// TestWriteBehindALongImportIsBusy: on SQLite a write that waits out the
// busy timeout behind another writer (a large import's transaction) is
// recognised as "busy", which the console answers with 503 and "try again
// in a minute" instead of a bare error.
func TestWriteBehindALongImportIsBusy(t *testing.T) {
	s := OpenTest(t)
	if s.Dialect != SQLite {
		t.Skip("MySQL locks rows, not the database: an import does not block other writers")
	}
	hold := make(chan struct{})
	held := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- s.Tx(func(tx *gorm.DB) error {
			if err := tx.Create(&Merchant{Code: "HOLD", Name: "hold", Timezone: "Asia/Shanghai", Currency: "CNY", Status: "active"}).Error; err != nil {
				t.Error(err)
				close(held)
				return err
			}
			close(held)
			<-hold
			return errors.New("roll back")
		})
	}()
	<-held
	var werr error
	if err := s.DB.Connection(func(c *gorm.DB) error {
		c.Exec("PRAGMA busy_timeout = 100")
		defer c.Exec("PRAGMA busy_timeout = 10000")
		werr = c.Create(&Merchant{Code: "OTHER", Name: "other", Timezone: "Asia/Shanghai", Currency: "CNY", Status: "active"}).Error
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	close(hold)
	<-done
	if werr == nil || !IsBusy(werr) {
		t.Fatalf("a write behind another writer: %v (busy: %v)", werr, IsBusy(werr))
	}
	if IsBusy(errors.New("database is locked")) || IsBusy(gorm.ErrRecordNotFound) {
		t.Error("other errors are not busy")
	}
}
