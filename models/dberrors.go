package models

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"

	sqlitedrv "github.com/glebarez/go-sqlite"
	mysqldrv "github.com/go-sql-driver/mysql"
)

// IsUnavailable reports whether err is the database being out of reach: the
// server refused or dropped the connection, did not answer within the DSN's
// timeouts, or is shutting down. Nothing the failed statement did is kept
// (an open transaction is rolled back by the server when its connection
// goes), and the same request will work once the database is back: the pool
// opens new connections by itself.
func IsUnavailable(err error) bool {
	var ue *url.Error
	if err == nil || errors.As(err, &ue) {
		return false // an HTTP client's failure (a webhook, a bill download), not the database's
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysqldrv.ErrInvalidConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true // dial failures, i/o timeouts, resets
	}
	var me *mysqldrv.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1040, // ER_CON_COUNT_ERROR: too many connections
			1053, // ER_SERVER_SHUTDOWN
			1927: // ER_CONNECTION_KILLED (MariaDB)
			return true
		}
	}
	var se *sqlitedrv.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 10, 14: // SQLITE_IOERR, SQLITE_CANTOPEN: the file cannot be read or written
			return true
		}
	}
	return false
}

// IsFull reports whether err is the database refusing a write for lack of
// space: SQLite's "database or disk is full" (a full disk, or the
// max_page_count limit), MySQL's "table is full" or "disk full". The
// statement, and on SQLite its transaction, changed nothing; it will keep
// failing until someone frees space.
func IsFull(err error) bool {
	var se *sqlitedrv.Error
	if errors.As(err, &se) && se.Code()&0xff == 13 { // SQLITE_FULL
		return true
	}
	if errors.Is(err, syscall.ENOSPC) {
		return true
	}
	var me *mysqldrv.MySQLError
	return errors.As(err, &me) && (me.Number == 1114 || me.Number == 1021) // ER_RECORD_FILE_FULL, ER_DISK_FULL
}

// isStatementTimeout recognises a statement the server stopped at its time
// limit (readlimit.go): MariaDB's ER_STATEMENT_TIMEOUT (1969), MySQL's
// ER_QUERY_TIMEOUT (3024).
func isStatementTimeout(err error) bool {
	var me *mysqldrv.MySQLError
	return errors.As(err, &me) && (me.Number == 1969 || me.Number == 3024)
}

// importFailure says what a database failure meant for a statement import:
// nothing of the file is in the ledger, and what to do next. Other errors
// are returned as they are.
func importFailure(name string, err error) error {
	switch {
	case IsFull(err):
		return fmt.Errorf("ledger: the database is full (no disk space left, or its size limit reached); nothing of %s was imported — free space, then run the import again: %w", name, err)
	case IsUnavailable(err):
		return fmt.Errorf("ledger: the database could not be reached; nothing of %s was imported — run the import again when it is back: %w", name, err)
	}
	return err
}
