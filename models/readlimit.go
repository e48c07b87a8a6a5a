package models

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
)

// ErrReadTooLong is returned when the database stopped a read at its time
// limit: the question reads too much of the table to answer interactively.
var ErrReadTooLong = errors.New("the database stopped a read that would take too long")

// statementLimit is how a MySQL-family server limits one session's
// statements: MariaDB's max_statement_time (seconds), MySQL's and TiDB's
// max_execution_time (milliseconds, SELECTs only).
type statementLimit struct {
	once    sync.Once
	mariadb bool
}

// limitedRead runs fn on one connection whose statements the server stops
// after d. A page must not hold a database thread for minutes because its
// filter matches almost nothing in ten million rows: without a limit such a
// walk ran until the client gave up, and every other page queued behind it.
// SQLite (one embedded file, small by design) runs fn unlimited.
func (s *Store) limitedRead(d time.Duration, fn func(db *gorm.DB) error) error {
	if s.Dialect != MySQL || d <= 0 {
		return fn(s.DB)
	}
	s.limit.once.Do(func() {
		var v string
		if s.DB.Raw("SELECT VERSION()").Scan(&v).Error == nil {
			s.limit.mariadb = strings.Contains(strings.ToLower(v), "mariadb")
		}
	})
	set, reset := fmt.Sprintf("SET SESSION max_execution_time = %d", d.Milliseconds()), "SET SESSION max_execution_time = 0"
	if s.limit.mariadb {
		set, reset = fmt.Sprintf("SET SESSION max_statement_time = %.3f", d.Seconds()), "SET SESSION max_statement_time = 0"
	}
	err := s.DB.Connection(func(conn *gorm.DB) error {
		// A fresh builder on the pinned connection: conditions fn chains
		// must not collect on the connection's own statement.
		db := conn.Session(&gorm.Session{NewDB: true})
		if err := db.Exec(set).Error; err != nil {
			return err
		}
		err := fn(db)
		// The connection goes back to the pool: it must not keep the limit
		// (imports on it would be stopped too).
		if rerr := db.Exec(reset).Error; rerr != nil && err == nil {
			err = rerr
		}
		return err
	})
	if isStatementTimeout(err) {
		return fmt.Errorf("%w: %w", ErrReadTooLong, err)
	}
	return err
}
