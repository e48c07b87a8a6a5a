package models

import (
	"bufio"
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"
	"gorm.io/gorm"

	"payfuse/channels"
)

// The ledger list: one newest-first list across channels, filtered, walked
// with a keyset cursor (never OFFSET), and exported whole.
//
// Order: occurred_at DESC, id DESC. occurred_at is the payment's paid time,
// the refund's refund time, else the channel's creation time (set on every
// ingest, never NULL for an ingested row). The cursor is the (occurred_at, id)
// of the last row shown. Migration 4's indexes (col, occurred_at, id) let
// each single equality filter walk in order without sorting; see
// ledgerIndexHint for how MySQL is held to them.

// LedgerPageSize is how many rows a ledger page shows.
const LedgerPageSize = 50

// LedgerCountCap is where the ledger stops counting: beyond it the page
// says "1,000+". Counting reads every matching row up to the cap,
// so the cap is what a filtered page costs beyond its own 50 rows; at
// 10,000 it was most of a page's time on a 10-million-row ledger.
const LedgerCountCap = 1000

// ledgerKinds and LedgerStatuses are the canonical codes a filter accepts.
var (
	ledgerKinds    = []string{channels.KindPayment, channels.KindRefund}
	LedgerStatuses = []string{channels.StatusPending, channels.StatusProcessing, channels.StatusSucceeded, channels.StatusFailed, channels.StatusClosed, channels.StatusRevoked}
)

// LedgerFilter selects ledger rows. Empty fields do not filter. DateFrom and
// DateTo bound the business date (YYYY-MM-DD, inclusive); AmountMin and
// AmountMax bound the amount in fen (inclusive); Query finds a row by exact
// merchant order no, channel transaction id or refund no.
type LedgerFilter struct {
	Merchant, Channel, Method, Kind, Status string
	DateFrom, DateTo                        string
	AmountMin, AmountMax                    *int64
	Query                                   string
}

// ParseLedgerFilter reads a filter from URL query values (the names Values
// writes). Unknown codes are errors too, so a shared link never silently
// shows more than it says. The errors are translation keys by field.
func ParseLedgerFilter(v url.Values) (LedgerFilter, FieldErrors) {
	get := func(k string) string { return strings.TrimSpace(v.Get(k)) }
	f := LedgerFilter{
		Merchant: strings.ToUpper(get("merchant")), Channel: get("channel"), Method: get("method"),
		Kind: get("kind"), Status: get("status"), DateFrom: get("from"), DateTo: get("to"), Query: get("q"),
	}
	errs := FieldErrors{}
	if f.Merchant != "" && !ValidMerchantCode(f.Merchant) {
		errs["merchant"] = "ledger.err_merchant"
	}
	check := func(field, val string, allowed []string, key string) {
		if val != "" && !slices.Contains(allowed, val) {
			errs[field] = key
		}
	}
	if _, ok := LookupChannel(f.Channel); f.Channel != "" && !ok {
		errs["channel"] = "ledger.err_channel"
	}
	check("method", f.Method, Methods, "ledger.err_method")
	check("kind", f.Kind, ledgerKinds, "ledger.err_kind")
	check("status", f.Status, LedgerStatuses, "ledger.err_status")
	for field, d := range map[string]string{"from": f.DateFrom, "to": f.DateTo} {
		if d == "" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			errs[field] = "ledger.err_date"
		}
	}
	if errs["from"] == "" && errs["to"] == "" && f.DateFrom != "" && f.DateTo != "" && f.DateFrom > f.DateTo {
		errs["to"] = "ledger.err_date_order"
	}
	for field, dst := range map[string]**int64{"min": &f.AmountMin, "max": &f.AmountMax} {
		s := get(field)
		if s == "" {
			continue
		}
		fen, err := channels.ParseYuan(s)
		if err != nil || fen < 0 {
			errs[field] = "ledger.err_amount"
			continue
		}
		*dst = &fen
	}
	if f.AmountMin != nil && f.AmountMax != nil && *f.AmountMin > *f.AmountMax {
		errs["max"] = "ledger.err_amount_order"
	}
	if len(f.Query) > 64 {
		errs["q"] = "ledger.err_query"
	}
	if len(errs) > 0 {
		return f, errs
	}
	return f, nil
}

// Values writes the filter as URL query values (only the fields set).
func (f LedgerFilter) Values() url.Values {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("merchant", f.Merchant)
	set("channel", f.Channel)
	set("method", f.Method)
	set("kind", f.Kind)
	set("status", f.Status)
	set("from", f.DateFrom)
	set("to", f.DateTo)
	if f.AmountMin != nil {
		set("min", Yuan(*f.AmountMin))
	}
	if f.AmountMax != nil {
		set("max", Yuan(*f.AmountMax))
	}
	set("q", f.Query)
	return v
}

// Empty reports whether the filter selects everything.
func (f LedgerFilter) Empty() bool { return len(f.Values()) == 0 }

// Yuan formats fen as yuan with two decimals ("12.34", "-0.05").
func Yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

// LedgerCursor is where a ledger page starts: after the row with this
// (occurred_at, id) in newest-first order.
type LedgerCursor struct {
	At time.Time
	ID uint64
}

// IsZero reports whether the cursor is the start of the list.
func (c LedgerCursor) IsZero() bool { return c.ID == 0 }

// String encodes the cursor for a URL (opaque; empty for the start).
func (c LedgerCursor) String() string {
	if c.IsZero() {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.At.UnixMicro(), 36) + "." + strconv.FormatUint(c.ID, 36)))
}

// ParseLedgerCursor decodes String's output; anything else is the start.
func ParseLedgerCursor(s string) LedgerCursor {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return LedgerCursor{}
	}
	at, id, ok := strings.Cut(string(b), ".")
	if !ok {
		return LedgerCursor{}
	}
	us, err1 := strconv.ParseInt(at, 36, 64)
	n, err2 := strconv.ParseUint(id, 36, 64)
	if err1 != nil || err2 != nil || n == 0 {
		return LedgerCursor{}
	}
	return LedgerCursor{At: time.UnixMicro(us).UTC(), ID: n}
}

func cursorOf(t *Transaction) LedgerCursor {
	c := LedgerCursor{ID: t.ID}
	if t.OccurredAt != nil {
		c.At = *t.OccurredAt
	}
	return c
}

// ledgerBase is the filtered, scoped query without order or cursor. A
// business-date range also bounds occurred_at (so the (…, occurred_at, id)
// indexes can seek).
func (s *Store) ledgerBase(db *gorm.DB, scope Scope, f LedgerFilter) (*gorm.DB, error) {
	q := db.Model(&Transaction{}).Scopes(scope.Filter("merchant_code"))
	if f.Merchant != "" {
		q = q.Where("merchant_code = ?", f.Merchant)
	}
	if f.Channel != "" {
		q = q.Where("channel = ?", f.Channel)
	}
	if f.Method != "" {
		q = q.Where("method = ?", f.Method)
	}
	if f.Kind != "" {
		q = q.Where("kind = ?", f.Kind)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.AmountMin != nil {
		q = q.Where("amount >= ?", *f.AmountMin)
	}
	if f.AmountMax != nil {
		q = q.Where("amount <= ?", *f.AmountMax)
	}
	if f.Query != "" {
		q = q.Where("(merchant_order_no = ? OR channel_ref = ? OR refund_no = ?)", f.Query, f.Query, f.Query)
	}
	if f.DateFrom != "" || f.DateTo != "" {
		lo, hi, err := s.occurredBounds(db, scope, f)
		if err != nil {
			return nil, err
		}
		if f.DateFrom != "" {
			q = q.Where("biz_date >= ?", f.DateFrom)
			if !lo.IsZero() {
				q = q.Where("occurred_at >= ?", lo)
			}
		}
		if f.DateTo != "" {
			q = q.Where("biz_date <= ?", f.DateTo)
			if !hi.IsZero() {
				q = q.Where("occurred_at < ?", hi)
			}
		}
	}
	return q, nil
}

// occurredBounds turns the business-date range into an occurred_at range
// that holds every row of it: from the earliest local midnight of DateFrom
// to the latest local midnight after DateTo, over the time zones of the
// merchants the filter can reach (exact when they share one zone). It reads
// on db, the connection the page's reads hold: asking the pool for a second
// one could wait forever once every connection is held that way.
func (s *Store) occurredBounds(db *gorm.DB, scope Scope, f LedgerFilter) (lo, hi time.Time, err error) {
	var zones []string
	q := db.Model(&Merchant{}).Scopes(scope.Filter("code")).Distinct("timezone")
	if f.Merchant != "" {
		q = q.Where("code = ?", f.Merchant)
	}
	if err := q.Pluck("timezone", &zones).Error; err != nil {
		return lo, hi, fmt.Errorf("ledger: unable to read merchant time zones: %w", err)
	}
	for _, z := range zones {
		loc := (&Merchant{Timezone: z}).Location()
		if f.DateFrom != "" {
			d, _ := time.ParseInLocation(time.DateOnly, f.DateFrom, loc)
			if lo.IsZero() || d.Before(lo) {
				lo = d
			}
		}
		if f.DateTo != "" {
			d, _ := time.ParseInLocation(time.DateOnly, f.DateTo, loc)
			d = d.AddDate(0, 0, 1)
			if hi.IsZero() || d.After(hi) {
				hi = d
			}
		}
	}
	return lo.UTC(), hi.UTC(), nil
}

// ledgerIndexHint names the index MySQL should walk for a list query. With
// one equality filter and no search the (col, occurred_at, id) index reads
// rows already in order and stops after one page; MariaDB's optimizer
// otherwise sometimes prefers a narrower range and sorts. Search is left to
// the optimizer (index_merge over three indexes). An amount range is tested
// on the rows of the walk: left to itself, MariaDB read the amount index's
// range (millions of rows for a common price band) and sorted it.
// One merchant walks its own indexes (ledger_migration.go), which carry the
// other filter columns; with a status filter, the (merchant_code, status, …)
// one: a rare status would otherwise cost the merchant's whole index.
func ledgerIndexHint(f LedgerFilter, merchants int) string {
	if f.Query != "" {
		return ""
	}
	switch one := f.Merchant != "" || merchants == 1; {
	case one && f.Status != "":
		return ixTxnMerchantStatus
	case one:
		return ixTxnMerchantWalk
	case f.Status != "":
		return "ix_txn_status_occurred"
	case f.Channel != "":
		return "ix_txn_channel_occurred"
	case f.Method != "":
		return "ix_txn_method_occurred"
	case f.Kind != "":
		return "ix_txn_kind_occurred"
	}
	return "ix_txn_occurred"
}

// ListTransactions returns up to limit rows after the cursor, newest first,
// and the cursor of the next page (zero when this is the last).
//
// A user scoped to several merchants (and not filtering one) gets one
// indexed walk per merchant, merged here: an IN list cannot read the
// (merchant_code, occurred_at, id) index in order.
//
// On MySQL the database stops the page's reads after LedgerReadLimit
// (ErrReadTooLong): a filter that matches almost nothing can otherwise walk
// millions of rows while every other page waits.
func (s *Store) ListTransactions(scope Scope, f LedgerFilter, after LedgerCursor, limit int) (rows []Transaction, next LedgerCursor, err error) {
	err = s.limitedRead(LedgerReadLimit, func(db *gorm.DB) error {
		rows, next, err = s.listTransactions(db, scope, f, after, limit)
		return err
	})
	return rows, next, err
}

// LedgerReadLimit is how long the database may spend on one ledger page's
// rows; ledgerCountLimit on counting them (past it the page says "50+").
const (
	LedgerReadLimit  = 3 * time.Second
	ledgerCountLimit = 500 * time.Millisecond
)

func (s *Store) listTransactions(db *gorm.DB, scope Scope, f LedgerFilter, after LedgerCursor, limit int) ([]Transaction, LedgerCursor, error) {
	if limit <= 0 {
		limit = LedgerPageSize
	}
	narrow, err := s.narrowAmountRange(db, f) // once: the same for every walk
	if err != nil {
		return nil, LedgerCursor{}, err
	}
	var rows []Transaction
	if !scope.All && f.Merchant == "" && len(scope.Merchants) > 1 && f.Query == "" {
		// Each walk yields only its keys (read from the index the walk is
		// on); the page's rows are read whole afterwards, by id. Reading
		// every walk's rows whole read and decoded three pages to show one.
		var keys []Transaction
		for _, m := range scope.Merchants {
			g := f
			g.Merchant = m
			part, err := s.listPage(db, scope, g, narrow, after, limit+1, "id", "occurred_at")
			if err != nil {
				return nil, LedgerCursor{}, err
			}
			keys = append(keys, part...)
		}
		slices.SortFunc(keys, func(a, b Transaction) int {
			if c := cursorOf(&b).At.Compare(cursorOf(&a).At); c != 0 {
				return c
			}
			switch {
			case a.ID > b.ID:
				return -1
			case a.ID < b.ID:
				return 1
			}
			return 0
		})
		keys = keys[:min(len(keys), limit+1)]
		if rows, err = s.transactionsByID(db, scope, keys); err != nil {
			return nil, LedgerCursor{}, err
		}
	} else {
		if rows, err = s.listPage(db, scope, f, narrow, after, limit+1); err != nil {
			return nil, LedgerCursor{}, err
		}
	}
	var next LedgerCursor
	if len(rows) > limit {
		rows = rows[:limit]
		next = cursorOf(&rows[limit-1])
	}
	return rows, next, nil
}

// transactionsByID reads the rows of keys whole, in the keys' order.
func (s *Store) transactionsByID(db *gorm.DB, scope Scope, keys []Transaction) ([]Transaction, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	ids := make([]uint64, len(keys))
	at := make(map[uint64]int, len(keys))
	for i := range keys {
		ids[i], at[keys[i].ID] = keys[i].ID, i
	}
	var found []Transaction
	if err := db.Model(&Transaction{}).Scopes(scope.Filter("merchant_code")).Where("id IN ?", ids).Find(&found).Error; err != nil {
		return nil, fmt.Errorf("ledger: unable to list transactions: %w", err)
	}
	placed := make([]Transaction, len(keys))
	for i := range found {
		placed[at[found[i].ID]] = found[i]
	}
	rows := placed[:0]
	for _, t := range placed {
		if t.ID != 0 { // read in the walk, so present; kept safe all the same
			rows = append(rows, t)
		}
	}
	return rows, nil
}

// listPage runs one walk of the ledger: the filtered rows after the cursor,
// newest first; cols, when given, are the only columns read.
func (s *Store) listPage(db *gorm.DB, scope Scope, f LedgerFilter, narrow bool, after LedgerCursor, limit int, cols ...string) ([]Transaction, error) {
	q, err := s.ledgerWalk(db, scope, f, narrow)
	if err != nil {
		return nil, err
	}
	if len(cols) > 0 {
		q = q.Select(cols)
	}
	if !after.IsZero() {
		// The redundant first bound lets every engine seek the index.
		q = q.Where("occurred_at <= ? AND (occurred_at < ? OR (occurred_at = ? AND id < ?))", after.At, after.At, after.At, after.ID)
	}
	var rows []Transaction
	if err := q.Order("occurred_at DESC, id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("ledger: unable to list transactions: %w", err)
	}
	return rows, nil
}

// ledgerWalk is the filtered query a list page and its count both run: on
// MySQL held to the index ledgerIndexHint names, so that the count stops
// after limit rows of the same walk instead of the optimizer's guess (which
// at 10 million rows chose an amount range of two million rows, or a date
// index needing a row lookup per entry). narrow says the filter's amount
// range is narrow (narrowAmountRange): the walk is then the amount index.
func (s *Store) ledgerWalk(db *gorm.DB, scope Scope, f LedgerFilter, narrow bool) (*gorm.DB, error) {
	q, err := s.ledgerBase(db, scope, f)
	if err != nil {
		return nil, err
	}
	n := 0
	if !scope.All {
		n = len(scope.Merchants)
	}
	ix := ledgerIndexHint(f, n)
	if ix != "" && narrow {
		ix = "ix_txn_amount"
	}
	return s.forceIndex(q, ix), nil
}

// forceIndex holds a query on transactions to index ix on MySQL, whose
// optimizer misjudges these walks at ten million rows; SQLite plans its own.
// An empty ix leaves the choice to the database.
func (s *Store) forceIndex(q *gorm.DB, ix string) *gorm.DB {
	if s.Dialect != MySQL || ix == "" {
		return q
	}
	return q.Table("transactions FORCE INDEX (" + ix + ")")
}

// amountIndexRows is the most rows of an amount range read through the
// amount index (and then sorted by time): up to it, that beats walking by
// time for rows that rarely fall in the range.
const amountIndexRows = 5000

// narrowAmountRange tells whether the filter's amount range holds at most
// amountIndexRows rows in the whole ledger, by reading at most one more
// entry of the amount index (index only, a millisecond or two). A narrow
// range ("under 0.05 yuan") is read through the amount index; a wide one
// ("100 to 500 yuan") is tested on the rows of the time-ordered walk, which
// finds a page of them soon. Only MySQL is told which index to walk; without
// an amount range (or with a search, which has its own indexes) nothing is read.
func (s *Store) narrowAmountRange(db *gorm.DB, f LedgerFilter) (bool, error) {
	if s.Dialect != MySQL || f.Query != "" || (f.AmountMin == nil && f.AmountMax == nil) {
		return false, nil
	}
	q := s.forceIndex(db.Model(&Transaction{}), "ix_txn_amount").Select("1")
	if f.AmountMin != nil {
		q = q.Where("amount >= ?", *f.AmountMin)
	}
	if f.AmountMax != nil {
		q = q.Where("amount <= ?", *f.AmountMax)
	}
	var n int64
	if err := db.Table("(?) AS capped", q.Limit(amountIndexRows+1)).Count(&n).Error; err != nil {
		return false, fmt.Errorf("ledger: unable to size the amount range: %w", err)
	}
	return n <= amountIndexRows, nil
}

// CountTransactions counts the filtered rows up to limit: n is exact when
// more is false; when more is true there are more than limit.
//
// On MySQL the count stops after a short time limit with ErrReadTooLong:
// the rows are on the page already, the number is a courtesy.
func (s *Store) CountTransactions(scope Scope, f LedgerFilter, limit int) (n int, more bool, err error) {
	if limit <= 0 {
		limit = LedgerCountCap
	}
	var c int64
	err = s.limitedRead(ledgerCountLimit, func(db *gorm.DB) error {
		narrow, err := s.narrowAmountRange(db, f)
		if err != nil {
			return err
		}
		q, err := s.ledgerWalk(db, scope, f, narrow)
		if err != nil {
			return err
		}
		return db.Table("(?) AS capped", q.Select("1").Limit(limit+1)).Count(&c).Error
	})
	if err != nil {
		return 0, false, fmt.Errorf("ledger: unable to count transactions: %w", err)
	}
	if int(c) > limit {
		return limit, true, nil
	}
	return int(c), false, nil
}

// ledgerChunk is how many rows EachTransaction reads per query.
var ledgerChunk = 1000

// EachTransaction calls fn for every filtered row, newest first, reading
// in keyset chunks (each its own short query, no long transaction), so an
// export of millions of rows holds one chunk in memory.
func (s *Store) EachTransaction(scope Scope, f LedgerFilter, fn func(*Transaction) error) error {
	var after LedgerCursor
	for {
		rows, next, err := s.listTransactions(s.DB, scope, f, after, ledgerChunk) // no time limit: a whole export
		if err != nil {
			return err
		}
		for i := range rows {
			if err := fn(&rows[i]); err != nil {
				return err
			}
		}
		if next.IsZero() {
			return nil
		}
		after = next
	}
}

// LedgerColumns are the export's columns, in order (a stable interface:
// scripts read them by name).
var LedgerColumns = []string{"merchant", "channel", "kind", "status", "method", "channel_txn_id", "merchant_order_no",
	"refund_no", "amount", "fee", "currency", "paid_at", "biz_date", "sources", "conflict"}

// LedgerRecord is a transaction as export columns: canonical codes, amounts
// as positive yuan with two decimals, times RFC 3339 UTC. paid_at is the
// payment's paid time, or the refund's refund time for a refund; empty
// when unknown.
func LedgerRecord(t *Transaction) []string {
	at := t.PaidAt
	if t.Kind == channels.KindRefund {
		at = t.RefundedAt
	}
	paid := ""
	if at != nil {
		paid = at.UTC().Format(time.RFC3339)
	}
	return []string{t.MerchantCode, t.Channel, t.Kind, t.Status, t.Method, t.ChannelRef, t.MerchantOrderNo,
		t.RefundNo, Yuan(t.Amount), Yuan(t.Fee), t.Currency, paid, t.BizDate, t.Sources, strconv.FormatBool(t.Conflict)}
}

// WriteLedgerCSV writes the filtered rows as CSV (UTF-8 with a BOM, so
// Excel reads Chinese correctly; CRLF line ends) and returns how many rows.
func (s *Store) WriteLedgerCSV(w io.Writer, scope Scope, f LedgerFilter) (int, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.WriteString("\uFEFF"); err != nil {
		return 0, err
	}
	cw := csv.NewWriter(bw)
	cw.UseCRLF = true
	if err := cw.Write(LedgerColumns); err != nil {
		return 0, err
	}
	n := 0
	err := s.EachTransaction(scope, f, func(t *Transaction) error {
		n++
		return cw.Write(LedgerRecord(t))
	})
	if err != nil {
		return n, err
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// WriteLedgerXLSX writes the filtered rows as one XLSX sheet through
// excelize's stream writer (rows spill to a temporary file, not memory);
// amounts are numbers formatted with two decimals.
func (s *Store) WriteLedgerXLSX(w io.Writer, scope Scope, f LedgerFilter) (int, error) {
	x := excelize.NewFile()
	defer x.Close()
	const sheet = "Sheet1"
	sw, err := x.NewStreamWriter(sheet)
	if err != nil {
		return 0, err
	}
	money, err := x.NewStyle(&excelize.Style{NumFmt: 2}) // 0.00
	if err != nil {
		return 0, err
	}
	header := make([]any, len(LedgerColumns))
	for i, c := range LedgerColumns {
		header[i] = c
	}
	if err := sw.SetRow("A1", header); err != nil {
		return 0, err
	}
	n := 0
	err = s.EachTransaction(scope, f, func(t *Transaction) error {
		n++
		rec := LedgerRecord(t)
		row := make([]any, len(rec))
		for i, v := range rec {
			row[i] = v
		}
		row[8] = excelize.Cell{StyleID: money, Value: float64(t.Amount) / 100}
		row[9] = excelize.Cell{StyleID: money, Value: float64(t.Fee) / 100}
		cell, _ := excelize.CoordinatesToCellName(1, n+1)
		return sw.SetRow(cell, row)
	})
	if err != nil {
		return n, err
	}
	if err := sw.Flush(); err != nil {
		return n, err
	}
	_, err = x.WriteTo(w)
	return n, err
}
