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
// says "10,000+".
const LedgerCountCap = 10000

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

// ledgerBase is the filtered, scoped query without order or cursor. With
// forList it adds an occurred_at bound derived from the business-date range
// (so the (…, occurred_at, id) indexes can seek); counting leaves it out and
// lets the biz_date index answer alone.
func (s *Store) ledgerBase(scope Scope, f LedgerFilter, forList bool) (*gorm.DB, error) {
	q := s.DB.Model(&Transaction{}).Scopes(scope.Filter("merchant_code"))
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
		var lo, hi time.Time
		if forList {
			var err error
			if lo, hi, err = s.occurredBounds(scope, f); err != nil {
				return nil, err
			}
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
// merchants the filter can reach (exact when they share one zone).
func (s *Store) occurredBounds(scope Scope, f LedgerFilter) (lo, hi time.Time, err error) {
	var zones []string
	q := s.DB.Model(&Merchant{}).Scopes(scope.Filter("code")).Distinct("timezone")
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
// otherwise sometimes prefers a narrower range and sorts. Search and amount
// ranges are left to the optimizer (search: index_merge over three indexes).
// One merchant with a status filter walks (merchant_code, status, occurred_at,
// id): a rare status would otherwise cost the merchant's whole index.
func ledgerIndexHint(f LedgerFilter, merchants int) string {
	if f.Query != "" || f.AmountMin != nil || f.AmountMax != nil {
		return ""
	}
	switch one := f.Merchant != "" || merchants == 1; {
	case one && f.Status != "":
		return ixTxnMerchantStatus
	case one:
		return "ix_txn_merchant_occurred"
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
func (s *Store) ListTransactions(scope Scope, f LedgerFilter, after LedgerCursor, limit int) ([]Transaction, LedgerCursor, error) {
	if limit <= 0 {
		limit = LedgerPageSize
	}
	var rows []Transaction
	if !scope.All && f.Merchant == "" && len(scope.Merchants) > 1 && f.Query == "" {
		for _, m := range scope.Merchants {
			g := f
			g.Merchant = m
			part, err := s.listPage(scope, g, after, limit+1)
			if err != nil {
				return nil, LedgerCursor{}, err
			}
			rows = append(rows, part...)
		}
		slices.SortFunc(rows, func(a, b Transaction) int {
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
	} else {
		var err error
		if rows, err = s.listPage(scope, f, after, limit+1); err != nil {
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

func (s *Store) listPage(scope Scope, f LedgerFilter, after LedgerCursor, limit int) ([]Transaction, error) {
	q, err := s.ledgerBase(scope, f, true)
	if err != nil {
		return nil, err
	}
	if s.Dialect == MySQL {
		n := 0
		if !scope.All {
			n = len(scope.Merchants)
		}
		if ix := ledgerIndexHint(f, n); ix != "" {
			q = q.Table("transactions FORCE INDEX (" + ix + ")")
		}
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

// CountTransactions counts the filtered rows up to limit: n is exact when
// more is false; when more is true there are more than limit.
func (s *Store) CountTransactions(scope Scope, f LedgerFilter, limit int) (n int, more bool, err error) {
	if limit <= 0 {
		limit = LedgerCountCap
	}
	q, err := s.ledgerBase(scope, f, false)
	if err != nil {
		return 0, false, err
	}
	sub := q.Select("1").Limit(limit + 1)
	var c int64
	if err := s.DB.Table("(?) AS capped", sub).Count(&c).Error; err != nil {
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
		rows, next, err := s.ListTransactions(scope, f, after, ledgerChunk)
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
