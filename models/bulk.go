package models

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// Bulk inserts skip GORM's per-row reflection and RETURNING: the ledger
// writes tens of thousands of rows per statement file, and the ids are read
// back by natural key afterwards anyway.

var transactionColumns = []string{
	"merchant_id", "merchant_code", "account_id", "channel", "kind", "channel_ref", "payment_ref", "payment_id",
	"merchant_order_no", "refund_no", "method", "status", "native_status", "refund_state", "refunded_amount",
	"amount", "fee", "fee_known", "currency", "payer", "channel_created_at", "paid_at", "refunded_at",
	"biz_date", "occurred_at", "sources", "conflict", "conflict_note", "created_at", "updated_at",
}

func transactionValues(t *Transaction, out []any) []any {
	return append(out, t.MerchantID, t.MerchantCode, t.AccountID, t.Channel, t.Kind, t.ChannelRef, t.PaymentRef, t.PaymentID,
		t.MerchantOrderNo, t.RefundNo, t.Method, t.Status, t.NativeStatus, t.RefundState, t.RefundedAmount,
		t.Amount, t.Fee, t.FeeKnown, t.Currency, t.Payer, nullTime(t.ChannelCreatedAt), nullTime(t.PaidAt), nullTime(t.RefundedAt),
		t.BizDate, nullTime(t.OccurredAt), t.Sources, t.Conflict, t.ConflictNote, t.CreatedAt, t.UpdatedAt)
}

var sourceColumns = []string{"transaction_id", "source", "import_id", "payload_hash", "amount", "status", "fee", "seen_at", "raw"}

func sourceValues(s *TransactionSource, out []any) []any {
	return append(out, s.TransactionID, s.Source, s.ImportID, s.PayloadHash, s.Amount, s.Status, s.Fee, s.SeenAt, s.Raw)
}

// nullTime passes a nil *time.Time as SQL NULL (a typed nil pointer is not
// a driver value).
func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return *t
}

// preparer is what a GORM transaction's connection pool offers (a *sql.Tx).
type preparer interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// insertRows writes n rows into table with multi-row INSERTs of at most
// perStmt rows; values(i, args) appends row i's values in column order.
func insertRows(tx *gorm.DB, table string, cols []string, n, perStmt int, values func(i int, args []any) []any) error {
	w := bulkWriter{tx: tx}
	return w.insert(table, cols, n, perStmt, values)
}

// bulkWriter writes rows with multi-row INSERTs in one transaction. The
// full-size statement is prepared once and re-executed: parsing a statement
// of thousands of placeholders again for every chunk costs as much as
// binding it. A writer that lives across batches (reuse) keeps its prepared
// statements for the transaction's life; they close with it.
type bulkWriter struct {
	tx    *gorm.DB
	reuse bool
	stmts map[string]*sql.Stmt
}

func (w *bulkWriter) insert(table string, cols []string, n, perStmt int, values func(i int, args []any) []any) error {
	tx := w.tx
	if n == 0 {
		return nil
	}
	if tx.Dialector.Name() == "sqlite" {
		return insertRowsInline(tx, table, cols, n, values)
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	sqlFor := func(rows int) string {
		return "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+",", rows), ",")
	}
	full := sqlFor(perStmt)
	stmt := w.stmts[full]
	if p, ok := tx.Statement.ConnPool.(preparer); ok && stmt == nil && n >= perStmt && (w.reuse || n >= 2*perStmt) {
		var err error
		if stmt, err = p.PrepareContext(tx.Statement.Context, full); err != nil {
			return fmt.Errorf("insert into %s: %w", table, translate(tx, err))
		}
		if w.reuse {
			if w.stmts == nil {
				w.stmts = map[string]*sql.Stmt{}
			}
			w.stmts[full] = stmt
		} else {
			defer stmt.Close()
		}
	}
	args := make([]any, 0, perStmt*len(cols))
	for start := 0; start < n; start += perStmt {
		end := min(start+perStmt, n)
		args = args[:0]
		for i := start; i < end; i++ {
			args = values(i, args)
		}
		var err error
		if stmt != nil && end-start == perStmt {
			_, err = stmt.ExecContext(tx.Statement.Context, args...)
			if err != nil {
				err = translate(tx, err)
			}
		} else {
			err = tx.Exec(sqlFor(end-start), args...).Error
		}
		if err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
	}
	return nil
}

// translate maps a driver error to GORM's portable errors (duplicate key…),
// as GORM does for the statements it runs itself.
func translate(tx *gorm.DB, err error) error {
	if t, ok := tx.Dialector.(gorm.ErrorTranslator); ok {
		return t.Translate(err)
	}
	return err
}

// sqliteTimeFormat is how the SQLite driver writes a time.Time parameter;
// rows inserted with literals must hold the same text, or they would sort and
// compare differently from rows written with parameters.
const sqliteTimeFormat = "2006-01-02 15:04:05.999999999-07:00"

// sqliteInlineRows is how many rows one inlined INSERT carries.
const sqliteInlineRows = 200

// insertRowsInline inserts rows into SQLite with their values written into
// the statement as literals. The driver binds parameters in time quadratic
// in their number and copies each into C memory, which cost more than
// SQLite's own work; literals cost only parsing. Every value is rendered by
// sqliteLiteral, which admits no SQL from the data (see there).
func insertRowsInline(tx *gorm.DB, table string, cols []string, n int, values func(i int, args []any) []any) error {
	head := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES "
	var buf []byte
	args := make([]any, 0, len(cols))
	for start := 0; start < n; start += sqliteInlineRows {
		end := min(start+sqliteInlineRows, n)
		buf = append(buf[:0], head...)
		for i := start; i < end; i++ {
			if i > start {
				buf = append(buf, ',')
			}
			buf = append(buf, '(')
			for j, v := range values(i, args[:0]) {
				if j > 0 {
					buf = append(buf, ',')
				}
				var err error
				if buf, err = sqliteLiteral(buf, v); err != nil {
					return fmt.Errorf("insert into %s: column %s: %w", table, cols[j], err)
				}
			}
			buf = append(buf, ')')
		}
		if err := tx.Exec(string(buf)).Error; err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
	}
	return nil
}

// sqliteLiteral appends v as an SQLite literal. Numbers are formatted by
// strconv; times as the driver would bind them; text goes in single quotes
// with quotes doubled (SQLite has no other escape in a string literal) when
// it is valid UTF-8 without NUL, and as a hex blob cast to text otherwise —
// so no byte of the data can end the literal.
func sqliteLiteral(buf []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(buf, "NULL"...), nil
	case string:
		if utf8.ValidString(x) && !strings.ContainsRune(x, 0) {
			buf = append(buf, '\'')
			for i := 0; i < len(x); i++ {
				if x[i] == '\'' {
					buf = append(buf, '\'')
				}
				buf = append(buf, x[i])
			}
			return append(buf, '\''), nil
		}
		buf = append(buf, "CAST(X'"...)
		buf = hex.AppendEncode(buf, []byte(x))
		return append(buf, "' AS TEXT)"...), nil
	case int64:
		return strconv.AppendInt(buf, x, 10), nil
	case int:
		return strconv.AppendInt(buf, int64(x), 10), nil
	case uint64:
		if x > math.MaxInt64 {
			return buf, fmt.Errorf("value %d does not fit SQLite's integers", x)
		}
		return strconv.AppendUint(buf, x, 10), nil
	case *uint64:
		if x == nil {
			return append(buf, "NULL"...), nil
		}
		return sqliteLiteral(buf, *x)
	case bool:
		if x {
			return append(buf, '1'), nil
		}
		return append(buf, '0'), nil
	case time.Time:
		return sqliteLiteral(buf, x.Format(sqliteTimeFormat))
	}
	return buf, fmt.Errorf("no SQLite literal for %T", v)
}

// inStrings is the condition "col IN (values…)" for a batch lookup. On
// SQLite the values are written as escaped literals (sqliteLiteral) for the
// same reason as insertRowsInline: the driver's binding is quadratic in the
// number of parameters; elsewhere they are parameters.
func inStrings(tx *gorm.DB, col string, values []string) (string, []any) {
	if tx.Dialector.Name() != "sqlite" {
		return col + " IN ?", []any{values}
	}
	buf := append(make([]byte, 0, len(col)+6+len(values)*32), col...)
	buf = append(buf, " IN ("...)
	for i, v := range values {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf, _ = sqliteLiteral(buf, v) // strings always have a literal
	}
	return string(append(buf, ')')), nil
}
