package models

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"payfuse/channels"
)

// Sources a ledger record can come from.
const (
	SourceStatement    = "statement"
	SourceNotification = "notification"
	SourcePull         = "pull"
	SourceManual       = "manual"
	SourceMerchant     = "merchant"
)

// Refund states of a payment.
const (
	RefundNone    = "none"
	RefundPartial = "partial"
	RefundFull    = "full"
)

// Transaction is one payment or refund in the merged ledger, unique by
// (channel, kind, channel_ref).
type Transaction struct {
	ID               uint64 `gorm:"primaryKey"`
	MerchantID       uint64
	MerchantCode     string
	AccountID        uint64
	Channel          string
	Kind             string
	ChannelRef       string
	PaymentRef       string
	PaymentID        *uint64
	MerchantOrderNo  string
	RefundNo         string
	Method           string
	Status           string
	NativeStatus     string
	RefundState      string
	RefundedAmount   int64
	Amount           int64
	Fee              int64
	FeeKnown         bool
	Currency         string
	Payer            string
	ChannelCreatedAt *time.Time
	PaidAt           *time.Time
	RefundedAt       *time.Time
	BizDate          string
	OccurredAt       *time.Time
	Sources          string
	Conflict         bool
	ConflictNote     string
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// TransactionSource records that one source saw a transaction, with what it said.
type TransactionSource struct {
	ID            uint64 `gorm:"primaryKey"`
	TransactionID uint64
	Source        string
	ImportID      *uint64
	PayloadHash   string
	Amount        int64
	Status        string
	Fee           int64
	SeenAt        time.Time
	Raw           string
}

// DailyRollup sums a merchant × account × method × business date, kept in
// step with the transactions in the same database transaction.
type DailyRollup struct {
	ID                uint64 `gorm:"primaryKey"`
	MerchantCode      string
	AccountID         uint64
	Channel           string
	Method            string
	BizDate           string
	Payments          int64
	PaymentsSucceeded int64
	PaymentsFailed    int64
	PaymentsPending   int64
	AmountSucceeded   int64
	Refunds           int64
	RefundAmount      int64
	Fees              int64
	PaySeconds        int64 // creation → payment, summed over PayTimed succeeded payments
	PayTimed          int64
	StatementRecords  int64 // records a statement saw
	NotifiedRecords   int64 // … of which a notification saw too
	UpdatedAt         time.Time
}

// IngestStats counts what a batch of records did to the ledger.
type IngestStats struct {
	Rows       int `json:"rows"`
	Inserted   int `json:"inserted"`
	Merged     int `json:"merged"`
	Duplicates int `json:"duplicates"`
}

// ingestBatch is how many records are merged per round of reads. MySQL caps
// a statement at 65,535 placeholders; a transaction row has 30 columns.
const ingestBatch = 1000

// insertBatch is how many rows one INSERT carries. The SQLite driver binds
// parameters in time quadratic in their number per statement, so it gets
// short statements; MySQL gets them whole.
func (s *Store) insertBatch() int {
	if s.Dialect == SQLite {
		return 16
	}
	return ingestBatch
}

var finalStatus = map[string]bool{
	channels.StatusSucceeded: true, channels.StatusFailed: true, channels.StatusClosed: true, channels.StatusRevoked: true,
}

// accountRefField names the credential field holding the channel's merchant
// id, which statements and notifications must match.
var accountRefField = map[string]string{"wechat": "mch_id", "alipay": "pid", "unionpay": "mer_id"}

type naturalKey struct{ kind, ref string }

type rollupKey struct {
	method, date string
}

type rollupDelta struct {
	payments, succeeded, failed, pending, amount, refunds, refundAmount, fees int64
	paySeconds, payTimed, statement, notified                                 int64
}

func (d *rollupDelta) add(t *Transaction, sign int64) {
	if strings.Contains(t.Sources, SourceStatement) {
		d.statement += sign
		if strings.Contains(t.Sources, SourceNotification) {
			d.notified += sign
		}
	}
	if t.Kind == channels.KindPayment {
		d.payments += sign
		switch t.Status {
		case channels.StatusSucceeded:
			d.succeeded += sign
			d.amount += sign * t.Amount
			d.fees += sign * t.Fee
			if secs, ok := payDelay(t); ok {
				d.paySeconds += sign * secs
				d.payTimed += sign
			}
		case channels.StatusFailed:
			d.failed += sign
		case channels.StatusPending, channels.StatusProcessing:
			d.pending += sign
		}
		return
	}
	if t.Status == channels.StatusSucceeded {
		d.refunds += sign
		d.refundAmount += sign * t.Amount
		d.fees -= sign * t.Fee
	}
}

// ingester merges records from one source into the ledger inside one
// database transaction.
type ingester struct {
	s        *Store
	tx       *gorm.DB
	acct     *ChannelAccount
	merchant *Merchant
	loc      *time.Location
	source   string
	importID *uint64
	now      time.Time
	wantRef  string
	rollups  map[rollupKey]*rollupDelta
	stats    IngestStats
	payments map[string]bool // payment refs whose refund totals need recomputing
	bulk     *bulkWriter
}

func (s *Store) newIngester(tx *gorm.DB, accountID uint64, source string) (*ingester, error) {
	var acct ChannelAccount
	if err := s.forUpdate(tx).First(&acct, accountID).Error; err != nil {
		return nil, notFound(err)
	}
	var m Merchant
	if err := tx.First(&m, acct.MerchantID).Error; err != nil {
		return nil, notFound(err)
	}
	return &ingester{
		s: s, tx: tx, acct: &acct, merchant: &m, loc: m.Location(), source: source, now: s.now(),
		wantRef: acct.SettingsMap()[accountRefField[acct.Channel]], rollups: map[rollupKey]*rollupDelta{},
		payments: map[string]bool{}, bulk: &bulkWriter{tx: tx, reuse: true},
	}, nil
}

// RecordError says which record of a batch was refused and why.
type RecordError struct {
	Index   int // 0-based position among the records given
	Message channels.Text
}

func (e *RecordError) Error() string { return fmt.Sprintf("record %d: %s", e.Index+1, e.Message.EN) }

func refuseRecord(i int, en, zh string, args ...any) *RecordError {
	return &RecordError{Index: i, Message: channels.Text{EN: fmt.Sprintf(en, args...), ZH: fmt.Sprintf(zh, args...)}}
}

var recordStatuses = map[string][]string{
	channels.KindPayment: {channels.StatusPending, channels.StatusProcessing, channels.StatusSucceeded, channels.StatusFailed, channels.StatusClosed, channels.StatusRevoked},
	channels.KindRefund:  {channels.StatusProcessing, channels.StatusSucceeded, channels.StatusFailed, channels.StatusClosed},
}

func (g *ingester) check(i int, r *channels.Record) error {
	if r.Channel != g.acct.Channel {
		return refuseRecord(i, "it is a %s record, but the account is at %s", "这是%s的记录，但账户属于%s", r.Channel, g.acct.Channel)
	}
	if g.wantRef != "" && r.AccountRef != "" && r.AccountRef != g.wantRef {
		return refuseRecord(i, "it belongs to merchant id %s at the channel, not to this account's %s", "它属于渠道商户号 %s，而不是本账户的 %s", r.AccountRef, g.wantRef)
	}
	statuses, ok := recordStatuses[r.Kind]
	if !ok {
		return refuseRecord(i, "unknown kind %q", "未知的记录类型 %q", r.Kind)
	}
	if !slices.Contains(statuses, r.Status) {
		return refuseRecord(i, "unknown %s status %q", "未知的%s状态 %q", r.Kind, r.Status)
	}
	if r.ChannelRef == "" || len(r.ChannelRef) > 64 {
		return refuseRecord(i, "the channel reference is missing or longer than 64 characters", "渠道单号缺失或超过 64 个字符")
	}
	if r.Amount < 0 {
		// Zero happens: WeChat settles 0.00 for an order paid entirely by a merchant-funded coupon.
		return refuseRecord(i, "the amount must not be negative", "金额不能为负数")
	}
	if r.Fee < 0 {
		return refuseRecord(i, "the fee must not be negative", "手续费不能为负数")
	}
	if r.Method != "" && !slices.Contains(Methods, r.Method) {
		return refuseRecord(i, "unknown method %q", "未知的支付方式 %q", r.Method)
	}
	if r.Currency == "" {
		r.Currency = g.merchant.Currency
	}
	if len(r.MerchantOrderNo) > 64 || len(r.RefundNo) > 64 || len(r.PaymentRef) > 64 {
		return refuseRecord(i, "an order or refund number is longer than 64 characters", "订单号或退款单号超过 64 个字符")
	}
	if recordTime(r).IsZero() {
		return refuseRecord(i, "it has no time", "记录缺少时间")
	}
	return nil
}

// recordTime is the time a record's business date is counted from.
func recordTime(r *channels.Record) time.Time {
	switch {
	case r.Kind == channels.KindRefund && !r.RefundedAt.IsZero():
		return r.RefundedAt
	case r.Kind == channels.KindPayment && !r.PaidAt.IsZero():
		return r.PaidAt
	}
	return r.CreatedAt
}

func txnTime(t *Transaction) time.Time {
	switch {
	case t.Kind == channels.KindRefund && t.RefundedAt != nil:
		return *t.RefundedAt
	case t.Kind == channels.KindPayment && t.PaidAt != nil:
		return *t.PaidAt
	case t.ChannelCreatedAt != nil:
		return *t.ChannelCreatedAt
	}
	return time.Time{}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// payloadHash identifies what one source said about a record: every field
// and the source's raw fields (raw, their JSON), each length-prefixed so no
// two different records hash alike. Seeing the same hash again from the same
// source is a duplicate.
func payloadHash(r *channels.Record, raw []byte) string {
	h := sha256.New()
	var size [binary.MaxVarintLen64]byte
	var scratch [64]byte
	put := func(b []byte) {
		h.Write(binary.AppendUvarint(size[:0], uint64(len(b))))
		h.Write(b)
	}
	str := func(v string) {
		h.Write(binary.AppendUvarint(size[:0], uint64(len(v))))
		io.WriteString(h, v)
	}
	num := func(v int64) { put(strconv.AppendInt(scratch[:0], v, 10)) }
	when := func(t time.Time) {
		if t.IsZero() {
			put(nil)
			return
		}
		put(t.AppendFormat(scratch[:0], time.RFC3339Nano))
	}
	str(r.Channel)
	str(r.Kind)
	str(r.ChannelRef)
	str(r.PaymentRef)
	str(r.MerchantOrderNo)
	str(r.RefundNo)
	str(r.Method)
	str(r.Status)
	str(r.NativeStatus)
	num(r.Amount)
	num(r.Fee)
	str(strconv.FormatBool(r.FeeKnown))
	str(r.Currency)
	str(r.Payer)
	str(r.AccountRef)
	when(r.CreatedAt)
	when(r.PaidAt)
	when(r.RefundedAt)
	put(raw)
	return hex.EncodeToString(h.Sum(nil))
}

func addSource(set, src string) string {
	parts := strings.FieldsFunc(set, func(r rune) bool { return r == ',' })
	if slices.Contains(parts, src) {
		return set
	}
	parts = append(parts, src)
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (g *ingester) bizDate(t time.Time) string { return t.In(g.loc).Format(time.DateOnly) }

func (g *ingester) rollup(t *Transaction, sign int64) {
	k := rollupKey{method: t.Method, date: t.BizDate}
	d := g.rollups[k]
	if d == nil {
		d = &rollupDelta{}
		g.rollups[k] = d
	}
	d.add(t, sign)
}

func fromRecord(r *channels.Record) Transaction {
	return Transaction{
		Channel: r.Channel, Kind: r.Kind, ChannelRef: r.ChannelRef, PaymentRef: r.PaymentRef,
		MerchantOrderNo: r.MerchantOrderNo, RefundNo: r.RefundNo, Method: r.Method, Status: r.Status,
		NativeStatus: truncate(r.NativeStatus, 32), Amount: r.Amount, Fee: r.Fee, FeeKnown: r.FeeKnown,
		Currency: r.Currency, Payer: truncate(r.Payer, 64), ChannelCreatedAt: timePtr(r.CreatedAt),
		PaidAt: timePtr(r.PaidAt), RefundedAt: timePtr(r.RefundedAt),
	}
}

func money(v int64) string { return fmt.Sprintf("%d.%02d", v/100, v%100) }

// merge folds what a source says into an existing transaction: the
// statement wins for amount, fee and final status (it is what settles);
// other sources fill what is missing; a disagreement on amount or on final
// status is flagged as a conflict with both values, never silently overwritten.
func (g *ingester) merge(t *Transaction, r *channels.Record) {
	authoritative := g.source == SourceStatement
	var notes []string
	if r.Amount != t.Amount {
		notes = append(notes, fmt.Sprintf("amount: %s (%s) vs %s (%s)", money(t.Amount), t.Sources, money(r.Amount), g.source))
		if authoritative {
			t.Amount = r.Amount
		}
	}
	if r.Status != t.Status {
		switch {
		case !finalStatus[t.Status] && finalStatus[r.Status]:
			t.Status = r.Status
		case finalStatus[t.Status] && finalStatus[r.Status]:
			notes = append(notes, fmt.Sprintf("status: %s (%s) vs %s (%s)", t.Status, t.Sources, r.Status, g.source))
			if authoritative {
				t.Status = r.Status
			}
		case !finalStatus[t.Status] && !finalStatus[r.Status] && authoritative:
			t.Status = r.Status
		}
	}
	if r.FeeKnown && (authoritative || !t.FeeKnown) {
		t.Fee, t.FeeKnown = r.Fee, true
	}
	fill := func(dst *string, v string, n int) {
		if *dst == "" && v != "" {
			*dst = truncate(v, n)
		}
	}
	fill(&t.MerchantOrderNo, r.MerchantOrderNo, 64)
	fill(&t.RefundNo, r.RefundNo, 64)
	fill(&t.PaymentRef, r.PaymentRef, 64)
	fill(&t.Method, r.Method, 8)
	fill(&t.Payer, r.Payer, 64)
	if r.NativeStatus != "" && (authoritative || t.NativeStatus == "") {
		t.NativeStatus = truncate(r.NativeStatus, 32)
	}
	// The notification knows the paid time best; others fill it when missing.
	if !r.PaidAt.IsZero() && (t.PaidAt == nil || g.source == SourceNotification) {
		t.PaidAt = timePtr(r.PaidAt)
	}
	if t.RefundedAt == nil && !r.RefundedAt.IsZero() {
		t.RefundedAt = timePtr(r.RefundedAt)
	}
	if t.ChannelCreatedAt == nil && !r.CreatedAt.IsZero() {
		t.ChannelCreatedAt = timePtr(r.CreatedAt)
	}
	if len(notes) > 0 {
		t.Conflict = true
		note := strings.Join(notes, "; ")
		if !strings.Contains(t.ConflictNote, note) {
			t.ConflictNote = strings.TrimPrefix(t.ConflictNote+"\n"+note, "\n")
		}
	}
	t.Sources = addSource(t.Sources, g.source)
}

// add ingests one batch of records (at most ingestBatch).
func (g *ingester) add(records []channels.Record, offset int) error {
	for i := range records {
		if err := g.check(offset+i, &records[i]); err != nil {
			return err
		}
	}
	// Load what the ledger already holds for these keys.
	byKind := map[string][]string{}
	for _, r := range records {
		byKind[r.Kind] = append(byKind[r.Kind], r.ChannelRef)
	}
	existing := map[naturalKey]*Transaction{}
	for kind, refs := range byKind {
		var rows []Transaction
		in, args := inStrings(g.tx, "channel_ref", refs)
		if err := g.tx.Where("channel = ? AND kind = ?", g.acct.Channel, kind).Where(in, args...).Find(&rows).Error; err != nil {
			return fmt.Errorf("ledger: unable to read transactions: %w", err)
		}
		for i := range rows {
			if rows[i].AccountID != g.acct.ID {
				at := offset
				for j := range records {
					if records[j].Kind == kind && records[j].ChannelRef == rows[i].ChannelRef {
						at = offset + j
						break
					}
				}
				return refuseRecord(at, "transaction %s is already in the ledger under another channel account (%d)", "交易 %s 已在账本中，属于另一个渠道账户（%d）", rows[i].ChannelRef, rows[i].AccountID)
			}
			existing[naturalKey{kind, rows[i].ChannelRef}] = &rows[i]
		}
	}
	seen := map[uint64]map[string]bool{} // transaction id -> source|hash already recorded
	if len(existing) > 0 {
		ids := make([]uint64, 0, len(existing))
		for _, t := range existing {
			ids = append(ids, t.ID)
		}
		var srcs []TransactionSource
		if err := g.tx.Select("transaction_id", "source", "payload_hash").Where("transaction_id IN ?", ids).Find(&srcs).Error; err != nil {
			return fmt.Errorf("ledger: unable to read sources: %w", err)
		}
		for _, s := range srcs {
			if seen[s.TransactionID] == nil {
				seen[s.TransactionID] = map[string]bool{}
			}
			seen[s.TransactionID][s.Source+"|"+s.PayloadHash] = true
		}
	}
	type pendingSource struct {
		key naturalKey
		src TransactionSource
	}
	var fresh []*Transaction
	freshByKey := map[naturalKey]*Transaction{}
	dirty := map[*Transaction]Transaction{} // changed existing rows -> their state before this batch
	var sources []pendingSource
	var freshPays []string
	batchSeen := map[string]bool{}
	for i := range records {
		r := &records[i]
		k := naturalKey{r.Kind, r.ChannelRef}
		raw, _ := json.Marshal(r.Raw)
		hash := payloadHash(r, raw)
		g.stats.Rows++
		src := TransactionSource{Source: g.source, ImportID: g.importID, PayloadHash: hash, Amount: r.Amount, Status: r.Status, Fee: r.Fee, SeenAt: g.now, Raw: string(raw)}
		if t := existing[k]; t != nil {
			if seen[t.ID][g.source+"|"+hash] || batchSeen[k.kind+"|"+k.ref+"|"+hash] {
				g.stats.Duplicates++
				continue
			}
			if _, ok := dirty[t]; !ok {
				dirty[t] = *t
			}
			g.merge(t, r)
			g.stats.Merged++
		} else if t := freshByKey[k]; t != nil {
			if batchSeen[k.kind+"|"+k.ref+"|"+hash] {
				g.stats.Duplicates++
				continue
			}
			g.merge(t, r)
			g.stats.Merged++
		} else {
			t := fromRecord(r)
			t.MerchantID, t.MerchantCode, t.AccountID = g.merchant.ID, g.merchant.Code, g.acct.ID
			t.RefundState, t.Sources = RefundNone, g.source
			t.CreatedAt, t.UpdatedAt = g.now, g.now
			fresh = append(fresh, &t)
			freshByKey[k] = &t
			g.stats.Inserted++
		}
		batchSeen[k.kind+"|"+k.ref+"|"+hash] = true
		sources = append(sources, pendingSource{key: k, src: src})
		// Payments whose refund state may change: those refunded here and
		// those changed here. A new payment matters only when the ledger
		// already holds refunds of it (looked up below). The refs are copied:
		// the record's strings share the parser's whole line.
		switch {
		case r.Kind == channels.KindRefund && r.PaymentRef != "":
			g.payments[strings.Clone(r.PaymentRef)] = true
		case r.Kind == channels.KindPayment && existing[k] != nil:
			g.payments[strings.Clone(r.ChannelRef)] = true
		case r.Kind == channels.KindPayment:
			freshPays = append(freshPays, r.ChannelRef)
		}
	}
	for _, t := range fresh {
		t.OccurredAt = timePtr(txnTime(t))
		t.BizDate = g.bizDate(txnTime(t))
		g.rollup(t, +1)
	}
	if len(fresh) > 0 {
		if err := g.bulk.insert("transactions", transactionColumns, len(fresh), g.s.insertBatch(), func(i int, args []any) []any {
			return transactionValues(fresh[i], args)
		}); err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return fmt.Errorf("ledger: a concurrent writer added the same transaction; retry: %w", err)
			}
			return fmt.Errorf("ledger: unable to insert transactions: %w", err)
		}
		// Read the new ids back by natural key (multi-row inserts do not report them portably).
		for kind := range byKind {
			var refs []string
			for _, t := range fresh {
				if t.Kind == kind {
					refs = append(refs, t.ChannelRef)
				}
			}
			if len(refs) == 0 {
				continue
			}
			if err := g.readIDs(kind, refs, freshByKey); err != nil {
				return err
			}
		}
	}
	if len(freshPays) > 0 {
		// Refunds that reached the ledger before their payment.
		var early []string
		in, args := inStrings(g.tx, "payment_ref", freshPays)
		if err := g.tx.Model(&Transaction{}).Distinct("payment_ref").Where(in, args...).
			Where("channel = ? AND kind = ?", g.acct.Channel, channels.KindRefund).
			Pluck("payment_ref", &early).Error; err != nil {
			return fmt.Errorf("ledger: unable to look for early refunds: %w", err)
		}
		for _, ref := range early {
			g.payments[ref] = true
		}
	}
	for t, before := range dirty {
		g.rollup(&before, -1)
		t.OccurredAt = timePtr(txnTime(t))
		t.BizDate = g.bizDate(txnTime(t))
		t.UpdatedAt = g.now
		g.rollup(t, +1)
		if err := g.tx.Model(&Transaction{}).Where("id = ?", t.ID).Select("*").Omit("id", "created_at").Updates(t).Error; err != nil {
			return fmt.Errorf("ledger: unable to update transaction %d: %w", t.ID, err)
		}
	}
	if len(sources) > 0 {
		rows := make([]TransactionSource, len(sources))
		for i, ps := range sources {
			t := existing[ps.key]
			if t == nil {
				t = freshByKey[ps.key]
			}
			ps.src.TransactionID = t.ID
			rows[i] = ps.src
		}
		if err := g.bulk.insert("transaction_sources", sourceColumns, len(rows), g.s.insertBatch(), func(i int, args []any) []any {
			return sourceValues(&rows[i], args)
		}); err != nil {
			return fmt.Errorf("ledger: unable to record sources: %w", err)
		}
	}
	return nil
}

// readIDs sets the ids of the rows just inserted, found by natural key. It
// scans plain rows: GORM's reflection per row cost more than the query.
func (g *ingester) readIDs(kind string, refs []string, byKey map[naturalKey]*Transaction) error {
	in, args := inStrings(g.tx, "channel_ref", refs)
	rows, err := g.tx.Model(&Transaction{}).Select("id", "channel_ref").
		Where("channel = ? AND kind = ?", g.acct.Channel, kind).Where(in, args...).Rows()
	if err != nil {
		return fmt.Errorf("ledger: unable to read new ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uint64
		var ref string
		if err := rows.Scan(&id, &ref); err != nil {
			return fmt.Errorf("ledger: unable to read new ids: %w", err)
		}
		if t := byKey[naturalKey{kind, ref}]; t != nil {
			t.ID = id
		}
	}
	return rows.Err()
}

// finish links refunds to their payments, recomputes the payments' refund
// state, and applies the rollup deltas.
func (g *ingester) finish() error {
	refs := make([]string, 0, len(g.payments))
	for ref := range g.payments {
		refs = append(refs, ref)
	}
	sort.Strings(refs)
	for start := 0; start < len(refs); start += ingestBatch {
		chunk := refs[start:min(start+ingestBatch, len(refs))]
		var pays []Transaction
		if err := g.tx.Select("id", "channel_ref", "amount", "refunded_amount", "refund_state").
			Where("channel = ? AND kind = ? AND channel_ref IN ?", g.acct.Channel, channels.KindPayment, chunk).Find(&pays).Error; err != nil {
			return err
		}
		if len(pays) == 0 {
			continue
		}
		type sum struct {
			PaymentRef string
			Total      int64
		}
		// Every refund of these payments (any status), to link; and the
		// succeeded ones' totals, for the refund state.
		var sums []sum
		if err := g.tx.Model(&Transaction{}).
			Select("payment_ref, COALESCE(SUM(CASE WHEN status = ? THEN amount ELSE 0 END), 0) AS total", channels.StatusSucceeded).
			Where("channel = ? AND kind = ? AND payment_ref IN ?", g.acct.Channel, channels.KindRefund, chunk).
			Group("payment_ref").Scan(&sums).Error; err != nil {
			return err
		}
		totals := map[string]int64{}
		hasRefunds := map[string]bool{}
		for _, s := range sums {
			totals[s.PaymentRef] = s.Total
			hasRefunds[s.PaymentRef] = true
		}
		for _, p := range pays {
			if !hasRefunds[p.ChannelRef] && p.RefundedAmount == 0 && p.RefundState == RefundNone {
				continue // the common case: nothing refunded, nothing to link
			}
			state := RefundNone
			switch refunded := totals[p.ChannelRef]; {
			case refunded >= p.Amount && refunded > 0:
				state = RefundFull
			case refunded > 0:
				state = RefundPartial
			}
			if hasRefunds[p.ChannelRef] {
				if err := g.tx.Model(&Transaction{}).Where("channel = ? AND kind = ? AND payment_ref = ? AND (payment_id IS NULL OR payment_id <> ?)",
					g.acct.Channel, channels.KindRefund, p.ChannelRef, p.ID).Update("payment_id", p.ID).Error; err != nil {
					return err
				}
			}
			if totals[p.ChannelRef] != p.RefundedAmount || state != p.RefundState {
				if err := g.tx.Model(&Transaction{}).Where("id = ?", p.ID).Updates(map[string]any{
					"refunded_amount": totals[p.ChannelRef], "refund_state": state,
				}).Error; err != nil {
					return err
				}
			}
		}
	}
	return g.flushRollups()
}

func (g *ingester) flushRollups() error {
	keys := make([]rollupKey, 0, len(g.rollups))
	for k := range g.rollups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].date < keys[j].date || keys[i].date == keys[j].date && keys[i].method < keys[j].method
	})
	cols := "payments, payments_succeeded, payments_failed, payments_pending, amount_succeeded, refunds, refund_amount, fees, " +
		"pay_seconds, pay_timed, statement_records, notified_records"
	var upd string
	if g.s.Dialect == MySQL {
		upd = " ON DUPLICATE KEY UPDATE "
		for i, c := range strings.Split(cols, ", ") {
			if i > 0 {
				upd += ", "
			}
			upd += c + " = " + c + " + VALUES(" + c + ")"
		}
		upd += ", updated_at = VALUES(updated_at)"
	} else {
		upd = " ON CONFLICT (merchant_code, account_id, method, biz_date) DO UPDATE SET "
		for i, c := range strings.Split(cols, ", ") {
			if i > 0 {
				upd += ", "
			}
			upd += c + " = " + c + " + excluded." + c
		}
		upd += ", updated_at = excluded.updated_at"
	}
	sql := "INSERT INTO daily_rollups (merchant_code, account_id, channel, method, biz_date, " + cols + ", updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" + upd
	for _, k := range keys {
		d := g.rollups[k]
		if *d == (rollupDelta{}) {
			continue
		}
		if err := g.tx.Exec(sql, g.merchant.Code, g.acct.ID, g.acct.Channel, k.method, k.date,
			d.payments, d.succeeded, d.failed, d.pending, d.amount, d.refunds, d.refundAmount, d.fees,
			d.paySeconds, d.payTimed, d.statement, d.notified, g.now).Error; err != nil {
			return fmt.Errorf("ledger: unable to update the daily rollup: %w", err)
		}
	}
	return nil
}

// Ingest merges records from one source (a notification, a manual entry, a
// merchant system) into the ledger in one transaction: all of them or none.
func (s *Store) Ingest(a Actor, accountID uint64, source string, records []channels.Record) (IngestStats, error) {
	var stats IngestStats
	err := s.Tx(func(tx *gorm.DB) error {
		g, err := s.newIngester(tx, accountID, source)
		if err != nil {
			return err
		}
		for start := 0; start < len(records); start += ingestBatch {
			if err := g.add(records[start:min(start+ingestBatch, len(records))], start); err != nil {
				return err
			}
		}
		if err := g.finish(); err != nil {
			return err
		}
		stats = g.stats
		return nil
	})
	if err == nil {
		s.Metrics.Ingested(source, stats)
	}
	return stats, err
}

// payDelay is how many whole seconds a succeeded payment took from creation
// to payment, when both times are known and in order. Seconds are counted
// on the truncated timestamps, as the databases' own date arithmetic does
// when CheckRollups recomputes the sum.
func payDelay(t *Transaction) (int64, bool) {
	if t.ChannelCreatedAt == nil || t.PaidAt == nil {
		return 0, false
	}
	secs := t.PaidAt.Unix() - t.ChannelCreatedAt.Unix()
	return secs, secs >= 0
}
