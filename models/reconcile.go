package models

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"payfuse/channels"
)

// Reconciliation buckets: where each ledger record of a business date falls
// when the channel's statement is set against what PayFuse learnt otherwise
// (notifications, pulls, corrections).
const (
	// BucketMatched: both agree — or, for a record no statement lists, the
	// other sources say it never succeeded, so its absence is right.
	BucketMatched = "matched"
	// BucketAmountMismatch: both list it, with different amounts.
	BucketAmountMismatch = "amount_mismatch"
	// BucketStatusMismatch: both list it, and the other sources' final
	// status differs from the statement's.
	BucketStatusMismatch = "status_mismatch"
	// BucketMissingInStatement: we saw it succeed; the statement does not
	// have it — the money may not have been received.
	BucketMissingInStatement = "missing_in_statement"
	// BucketOnlyInStatement: the statement has it; no other source told us
	// (a lost notification, a payment taken outside PayFuse's integration).
	BucketOnlyInStatement = "only_in_statement"
)

// ReconBuckets lists the buckets in the order pages and reports show them.
var ReconBuckets = []string{BucketMatched, BucketAmountMismatch, BucketStatusMismatch, BucketMissingInStatement, BucketOnlyInStatement}

// DiscrepancyBuckets are the buckets whose records become items to resolve.
var DiscrepancyBuckets = ReconBuckets[1:]

// Reconciliation day statuses.
const (
	ReconBalanced    = "balanced"     // every discrepancy resolved (or none)
	ReconOpen        = "open"         // discrepancies wait for finance
	ReconNoStatement = "no_statement" // no statement of the day is in the ledger yet
)

// ReconResolutions are the reasons finance may give when resolving a
// discrepancy.
var ReconResolutions = []string{
	"settled_other_day", // the channel settled it on another business date
	"channel_corrected", // the channel corrected its statement or paid the difference
	"ledger_corrected",  // our record was wrong and has been corrected
	"refunded",          // refunded to the payer; nothing is owed
	"written_off",       // accepted as a loss or gain
	"other",             // explained in the note
}

// Audit actions of reconciliation.
const (
	ActReconRun     = "reconcile.run"
	ActReconResolve = "reconcile.resolve"
)

// ReconDay is one reconciliation of one channel account's business date.
type ReconDay struct {
	ID                 uint64 `gorm:"primaryKey"`
	MerchantCode       string
	AccountID          uint64
	Channel            string
	BizDate            string
	Status             string
	HasStatement       bool // a statement of the day is in the ledger, or the channel said it has none
	EmptyStatement     bool // the channel said it has no bill for the day: no trades
	Matched            int
	AmountMismatch     int
	StatusMismatch     int
	MissingInStatement int
	OnlyInStatement    int
	Open               int   // discrepancies not resolved yet
	MatchedAmount      int64 // minor units, sum of matched records' amounts
	OpenAmount         int64 // minor units, sum of the open discrepancies' larger side
	RunAt              time.Time
	RunBy              string
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// Count returns the number of records in bucket b.
func (d *ReconDay) Count(b string) int {
	switch b {
	case BucketMatched:
		return d.Matched
	case BucketAmountMismatch:
		return d.AmountMismatch
	case BucketStatusMismatch:
		return d.StatusMismatch
	case BucketMissingInStatement:
		return d.MissingInStatement
	case BucketOnlyInStatement:
		return d.OnlyInStatement
	}
	return 0
}

// Discrepancies is the number of records outside the matched bucket.
func (d *ReconDay) Discrepancies() int {
	return d.AmountMismatch + d.StatusMismatch + d.MissingInStatement + d.OnlyInStatement
}

// ReconItem is one discrepancy: a ledger record, what the statement said of
// it and what the other sources said, and how finance resolved it.
type ReconItem struct {
	ID              uint64 `gorm:"primaryKey"`
	DayID           uint64
	TransactionID   uint64
	MerchantCode    string
	Bucket          string
	Kind            string
	ChannelRef      string
	StatementAmount *int64 // nil: the statement does not list it
	StatementStatus string
	OtherAmount     *int64 // nil: only the statement lists it
	OtherStatus     string
	OtherSources    string // which sources (notification, pull, manual…) said it
	Resolved        bool
	Resolution      string
	Note            string
	ResolvedBy      string
	ResolvedAt      *time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// side is what one kind of source last said about a record.
type side struct {
	seen    bool
	amount  int64
	status  string
	sources []string
}

// classify puts a record in its bucket from the statement's side and the
// other sources' side.
func classify(stmt, other side) string {
	switch {
	case stmt.seen && other.seen:
		if stmt.amount != other.amount {
			return BucketAmountMismatch
		}
		// A non-final status from a notification (NOTPAY, USERPAYING) is
		// only earlier news than the statement's; final against final must agree.
		if finalStatus[other.status] && other.status != stmt.status {
			return BucketStatusMismatch
		}
		return BucketMatched
	case stmt.seen:
		return BucketOnlyInStatement
	case other.status == channels.StatusSucceeded:
		return BucketMissingInStatement
	}
	// Never succeeded (pending, closed, failed…): statements list what
	// succeeded, so its absence from one is right.
	return BucketMatched
}

func validBizDate(date string) bool {
	t, err := time.Parse(time.DateOnly, date)
	return err == nil && t.Format(time.DateOnly) == date
}

// Reconcile sets the channel's statement against the other sources for
// every ledger record of one channel account's business date, records the
// day's buckets and its discrepancies (keeping finance's resolutions of
// discrepancies that have not changed, reopening those whose facts did), and
// audits the run. Running it again is safe: it recomputes the day.
//
// Until a statement of the day is in the ledger the day is "no_statement":
// its counts are computed, but no discrepancy items are opened (everything
// would be "missing" only because the bill has not arrived).
func (s *Store) Reconcile(a Actor, scope Scope, accountID uint64, date string) (*ReconDay, error) {
	if !validBizDate(date) {
		return nil, FieldErrors{"date": "err.recon_date"}
	}
	var out ReconDay
	err := s.Tx(func(tx *gorm.DB) error {
		var acct ChannelAccount
		if err := tx.Scopes(scope.Filter("merchant_code")).First(&acct, accountID).Error; err != nil {
			return notFound(err)
		}
		now := s.now()
		day, err := s.reconcileDay(tx, &acct, date, now, a.Name)
		if err != nil {
			return err
		}
		out = *day
		return writeAudit(tx, a, now, AuditEvent{Action: ActReconRun, ObjectType: "recon_day", ObjectID: idStr(day.ID),
			MerchantCode: acct.MerchantCode, Detail: reconSummary(&acct, day)})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RecordEmptyStatement records that the channel has no statement for the
// account's business date (it says so when there were no trades), then
// reconciles the day: anything another source saw succeed that day is then
// "missing in statement", since the channel's answer is its statement.
func (s *Store) RecordEmptyStatement(a Actor, accountID uint64, date string) (*ReconDay, error) {
	if !validBizDate(date) {
		return nil, FieldErrors{"date": "err.recon_date"}
	}
	var acct ChannelAccount
	if err := s.DB.First(&acct, accountID).Error; err != nil {
		return nil, notFound(err)
	}
	now := s.now()
	err := s.Tx(func(tx *gorm.DB) error {
		res := tx.Model(&ReconDay{}).Where("account_id = ? AND biz_date = ?", accountID, date).
			Updates(map[string]any{"empty_statement": true, "updated_at": now})
		if res.Error != nil || res.RowsAffected > 0 {
			return res.Error
		}
		return tx.Create(&ReconDay{MerchantCode: acct.MerchantCode, AccountID: acct.ID, Channel: acct.Channel, BizDate: date,
			Status: ReconNoStatement, EmptyStatement: true, RunAt: now, RunBy: truncate(a.Name, 64), CreatedAt: now, UpdatedAt: now}).Error
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile: unable to record the empty day: %w", err)
	}
	return s.Reconcile(a, Scope{All: true}, accountID, date)
}

func reconSummary(acct *ChannelAccount, d *ReconDay) string {
	return fmt.Sprintf("%s %s (account %d) %s: %d matched, %d amount mismatch, %d status mismatch, %d missing in statement, %d only in statement, %d open",
		acct.Channel, d.BizDate, acct.ID, d.Status, d.Matched, d.AmountMismatch, d.StatusMismatch, d.MissingInStatement, d.OnlyInStatement, d.Open)
}

// reconChunk is how many records' sources are read per query.
const reconChunk = 500

func (s *Store) reconcileDay(tx *gorm.DB, acct *ChannelAccount, date string, now time.Time, by string) (*ReconDay, error) {
	type rec struct {
		ID         uint64
		Kind       string
		ChannelRef string
		Amount     int64
	}
	var recs []rec
	if err := tx.Model(&Transaction{}).Select("id", "kind", "channel_ref", "amount").
		Where("merchant_code = ? AND biz_date = ? AND account_id = ?", acct.MerchantCode, date, acct.ID).
		Order("id").Scan(&recs).Error; err != nil {
		return nil, fmt.Errorf("reconcile: unable to read the ledger: %w", err)
	}
	day := ReconDay{MerchantCode: acct.MerchantCode, AccountID: acct.ID, Channel: acct.Channel, BizDate: date, RunAt: now, RunBy: truncate(by, 64)}
	var found []ReconItem
	for start := 0; start < len(recs); start += reconChunk {
		chunk := recs[start:min(start+reconChunk, len(recs))]
		ids := make([]uint64, len(chunk))
		for i, r := range chunk {
			ids[i] = r.ID
		}
		var srcs []TransactionSource
		if err := tx.Select("transaction_id", "source", "amount", "status").Where("transaction_id IN ?", ids).
			Order("id").Find(&srcs).Error; err != nil {
			return nil, fmt.Errorf("reconcile: unable to read sources: %w", err)
		}
		stmts := map[uint64]*side{}
		others := map[uint64]*side{}
		for _, src := range srcs {
			m := others
			if src.Source == SourceStatement {
				m = stmts
			}
			sd := m[src.TransactionID]
			if sd == nil {
				sd = &side{}
				m[src.TransactionID] = sd
			}
			// Sources in the order they were seen: the latest word counts.
			sd.seen, sd.amount, sd.status = true, src.Amount, src.Status
			if !slices.Contains(sd.sources, src.Source) {
				sd.sources = append(sd.sources, src.Source)
			}
		}
		for _, r := range chunk {
			var st, ot side
			if p := stmts[r.ID]; p != nil {
				st = *p
				day.HasStatement = true
			}
			if p := others[r.ID]; p != nil {
				ot = *p
			}
			if !st.seen && !ot.seen {
				continue // no source row: nothing to compare (cannot happen through ingest)
			}
			b := classify(st, ot)
			switch b {
			case BucketMatched:
				day.Matched++
				day.MatchedAmount += r.Amount
				continue
			case BucketAmountMismatch:
				day.AmountMismatch++
			case BucketStatusMismatch:
				day.StatusMismatch++
			case BucketMissingInStatement:
				day.MissingInStatement++
			case BucketOnlyInStatement:
				day.OnlyInStatement++
			}
			it := ReconItem{TransactionID: r.ID, MerchantCode: acct.MerchantCode, Bucket: b, Kind: r.Kind, ChannelRef: r.ChannelRef}
			if st.seen {
				it.StatementAmount, it.StatementStatus = &st.amount, st.status
			}
			if ot.seen {
				it.OtherAmount, it.OtherStatus, it.OtherSources = &ot.amount, ot.status, strings.Join(ot.sources, ",")
			}
			found = append(found, it)
		}
	}
	day.Status = ReconNoStatement
	found0 := found
	if !day.HasStatement {
		found = nil
	}

	var prev ReconDay
	err := s.forUpdate(tx).Where("account_id = ? AND biz_date = ?", acct.ID, date).First(&prev).Error
	if err == nil && prev.EmptyStatement {
		// The channel has no bill for the day: whatever we saw succeed is
		// missing from it, and the discrepancies open.
		day.EmptyStatement, day.HasStatement = true, true
		found = found0
	}
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		day.CreatedAt, day.UpdatedAt = now, now
		if err := tx.Create(&day).Error; err != nil {
			return nil, fmt.Errorf("reconcile: unable to record the day: %w", err)
		}
	case err != nil:
		return nil, err
	default:
		day.ID, day.CreatedAt, day.UpdatedAt = prev.ID, prev.CreatedAt, now
	}

	// Keep finance's resolution of a discrepancy whose facts are unchanged.
	var old []ReconItem
	if err := tx.Where("day_id = ?", day.ID).Find(&old).Error; err != nil {
		return nil, err
	}
	byTxn := make(map[uint64]*ReconItem, len(old))
	for i := range old {
		byTxn[old[i].TransactionID] = &old[i]
	}
	var fresh []ReconItem
	for i := range found {
		it := &found[i]
		it.DayID = day.ID
		o := byTxn[it.TransactionID]
		delete(byTxn, it.TransactionID)
		if o == nil {
			it.CreatedAt, it.UpdatedAt = now, now
			fresh = append(fresh, *it)
			continue
		}
		if sameFacts(o, it) {
			it.ID, it.Resolved, it.Resolution, it.Note, it.ResolvedBy, it.ResolvedAt = o.ID, o.Resolved, o.Resolution, o.Note, o.ResolvedBy, o.ResolvedAt
			continue
		}
		// The facts changed: the item is open again, its old resolution kept
		// in the note for the record.
		it.ID, it.CreatedAt, it.UpdatedAt = o.ID, o.CreatedAt, now
		if o.Resolved {
			it.Note = strings.TrimSpace(o.Note + fmt.Sprintf("\n[%s] reopened: the sources changed after %s resolved it (%s)", now.Format(time.DateTime), o.ResolvedBy, o.Resolution))
		}
		if err := tx.Model(&ReconItem{}).Where("id = ?", o.ID).Select("*").Omit("id", "created_at").Updates(it).Error; err != nil {
			return nil, err
		}
	}
	if len(fresh) > 0 {
		if err := tx.CreateInBatches(fresh, 200).Error; err != nil {
			return nil, fmt.Errorf("reconcile: unable to record discrepancies: %w", err)
		}
	}
	if len(byTxn) > 0 {
		gone := make([]uint64, 0, len(byTxn))
		for _, o := range byTxn {
			gone = append(gone, o.ID)
		}
		// Now matched (a late statement or notification), or no longer this day's.
		if err := tx.Where("id IN ?", gone).Delete(&ReconItem{}).Error; err != nil {
			return nil, err
		}
	}
	for _, it := range found {
		if !it.Resolved {
			day.Open++
			day.OpenAmount += max(deref(it.StatementAmount), deref(it.OtherAmount))
		}
	}
	day.Status = dayStatus(&day)
	if err := tx.Model(&ReconDay{}).Where("id = ?", day.ID).Select("*").Omit("id", "created_at").Updates(&day).Error; err != nil {
		return nil, fmt.Errorf("reconcile: unable to record the day: %w", err)
	}
	return &day, nil
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func sameFacts(a, b *ReconItem) bool {
	return a.Bucket == b.Bucket && deref(a.StatementAmount) == deref(b.StatementAmount) && (a.StatementAmount == nil) == (b.StatementAmount == nil) &&
		deref(a.OtherAmount) == deref(b.OtherAmount) && (a.OtherAmount == nil) == (b.OtherAmount == nil) &&
		a.StatementStatus == b.StatementStatus && a.OtherStatus == b.OtherStatus
}

func dayStatus(d *ReconDay) string {
	switch {
	case !d.HasStatement:
		return ReconNoStatement
	case d.Open > 0:
		return ReconOpen
	}
	return ReconBalanced
}

// ReconcileInput is finance's resolution of one discrepancy.
type ReconcileInput struct {
	Resolution string // one of ReconResolutions
	Note       string
}

// ResolveReconItem records finance's resolution of a discrepancy in scope,
// updates its day (balanced once nothing is open) and audits it. A reason
// from ReconResolutions is required; "other" needs a note.
func (s *Store) ResolveReconItem(a Actor, scope Scope, itemID uint64, in ReconcileInput) (*ReconItem, error) {
	in.Note = strings.TrimSpace(in.Note)
	errs := FieldErrors{}
	if !slices.Contains(ReconResolutions, in.Resolution) {
		errs["resolution"] = "err.recon_resolution"
	}
	if in.Resolution == "other" && in.Note == "" {
		errs["note"] = "err.recon_note"
	}
	if len(in.Note) > 2000 {
		errs["note"] = "err.recon_note_long"
	}
	if len(errs) > 0 {
		return nil, errs
	}
	var out ReconItem
	err := s.Tx(func(tx *gorm.DB) error {
		var it ReconItem
		if err := tx.Scopes(scope.Filter("merchant_code")).First(&it, itemID).Error; err != nil {
			return notFound(err)
		}
		var day ReconDay
		if err := s.forUpdate(tx).First(&day, it.DayID).Error; err != nil {
			return notFound(err)
		}
		if err := s.forUpdate(tx).First(&it, itemID).Error; err != nil {
			return notFound(err)
		}
		before := it
		now := s.now()
		wasOpen := !it.Resolved
		it.Resolved, it.Resolution, it.ResolvedBy, it.ResolvedAt, it.UpdatedAt = true, in.Resolution, truncate(a.Name, 64), &now, now
		if in.Note != "" {
			it.Note = strings.TrimSpace(it.Note + "\n" + in.Note)
		}
		if err := tx.Model(&ReconItem{}).Where("id = ?", it.ID).
			Updates(map[string]any{"resolved": true, "resolution": it.Resolution, "resolved_by": it.ResolvedBy,
				"resolved_at": now, "note": it.Note, "updated_at": now}).Error; err != nil {
			return err
		}
		if wasOpen {
			day.Open--
			day.OpenAmount -= max(deref(it.StatementAmount), deref(it.OtherAmount))
			day.Status = dayStatus(&day)
			if err := tx.Model(&ReconDay{}).Where("id = ?", day.ID).
				Updates(map[string]any{"open": day.Open, "open_amount": day.OpenAmount, "status": day.Status, "updated_at": now}).Error; err != nil {
				return err
			}
		}
		out = it
		return writeAudit(tx, a, now, AuditEvent{Action: ActReconResolve, ObjectType: "recon_item", ObjectID: idStr(it.ID),
			MerchantCode: it.MerchantCode, Detail: fmt.Sprintf("%s %s %s on %s: %s", it.Bucket, it.Kind, it.ChannelRef, day.BizDate, it.Resolution),
			Before: reconAudit(&before), After: reconAudit(&it)})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ActReconNote is the audit action of a note added to a discrepancy.
const ActReconNote = "reconcile.note"

// AnnotateReconItem adds finance's note to a discrepancy without resolving
// it (what was asked of whom, say), audited. The note is appended, stamped
// with who wrote it and when.
func (s *Store) AnnotateReconItem(a Actor, scope Scope, itemID uint64, note string) (*ReconItem, error) {
	note = strings.TrimSpace(note)
	switch {
	case note == "":
		return nil, FieldErrors{"note": "err.recon_note_empty"}
	case len(note) > 2000:
		return nil, FieldErrors{"note": "err.recon_note_long"}
	}
	var out ReconItem
	err := s.Tx(func(tx *gorm.DB) error {
		var it ReconItem
		if err := s.forUpdate(tx).Scopes(scope.Filter("merchant_code")).First(&it, itemID).Error; err != nil {
			return notFound(err)
		}
		now := s.now()
		before := it.Note
		it.Note = strings.TrimSpace(it.Note + fmt.Sprintf("\n[%s %s] %s", now.Format(time.DateTime), truncate(a.Name, 64), note))
		it.UpdatedAt = now
		if err := tx.Model(&ReconItem{}).Where("id = ?", it.ID).Updates(map[string]any{"note": it.Note, "updated_at": now}).Error; err != nil {
			return err
		}
		out = it
		return writeAudit(tx, a, now, AuditEvent{Action: ActReconNote, ObjectType: "recon_item", ObjectID: idStr(it.ID),
			MerchantCode: it.MerchantCode, Detail: truncate(it.ChannelRef+": "+note, 500),
			Before: map[string]any{"note": before}, After: map[string]any{"note": it.Note}})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// BucketAmounts sums a day's discrepancies by bucket (the larger of the two
// sides of each), for the day page; the matched amount is on the day.
func (s *Store) BucketAmounts(scope Scope, dayID uint64) (map[string]int64, error) {
	var rows []struct {
		Bucket string
		Amount int64
	}
	if err := s.DB.Model(&ReconItem{}).Scopes(scope.Filter("merchant_code")).Where("day_id = ?", dayID).
		Select(`bucket, SUM(CASE WHEN COALESCE(statement_amount, 0) > COALESCE(other_amount, 0)
			THEN COALESCE(statement_amount, 0) ELSE COALESCE(other_amount, 0) END) AS amount`).
		Group("bucket").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("reconcile: unable to sum discrepancies: %w", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.Bucket] = r.Amount
	}
	return out, nil
}

func reconAudit(it *ReconItem) map[string]any {
	return map[string]any{"bucket": it.Bucket, "resolved": it.Resolved, "resolution": it.Resolution, "note": it.Note}
}

// ReconDayFilter selects reconciliation days.
type ReconDayFilter struct {
	AccountID uint64
	From, To  string // business dates, inclusive; empty for open-ended
	Status    string
}

// ListReconDays returns the days in scope, newest first (at most 400).
func (s *Store) ListReconDays(scope Scope, f ReconDayFilter) ([]ReconDay, error) {
	q := s.DB.Scopes(scope.Filter("merchant_code"))
	if f.AccountID != 0 {
		q = q.Where("account_id = ?", f.AccountID)
	}
	if f.From != "" {
		q = q.Where("biz_date >= ?", f.From)
	}
	if f.To != "" {
		q = q.Where("biz_date <= ?", f.To)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	var out []ReconDay
	if err := q.Order("biz_date DESC, account_id").Limit(400).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("reconcile: unable to list days: %w", err)
	}
	return out, nil
}

// GetReconDay returns a day in scope.
func (s *Store) GetReconDay(scope Scope, id uint64) (*ReconDay, error) {
	var d ReconDay
	if err := s.DB.Scopes(scope.Filter("merchant_code")).First(&d, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &d, nil
}

// FindReconDay returns the day of an account and date in scope, or ErrNotFound.
func (s *Store) FindReconDay(scope Scope, accountID uint64, date string) (*ReconDay, error) {
	var d ReconDay
	if err := s.DB.Scopes(scope.Filter("merchant_code")).Where("account_id = ? AND biz_date = ?", accountID, date).First(&d).Error; err != nil {
		return nil, notFound(err)
	}
	return &d, nil
}

// ReconItemFilter selects a day's discrepancies.
type ReconItemFilter struct {
	Bucket string
	State  string // "open", "resolved" or "" for both
}

// ListReconItems returns a day's discrepancies in scope (at most 1,000).
func (s *Store) ListReconItems(scope Scope, dayID uint64, f ReconItemFilter) ([]ReconItem, error) {
	q := s.DB.Scopes(scope.Filter("merchant_code")).Where("day_id = ?", dayID)
	if f.Bucket != "" {
		q = q.Where("bucket = ?", f.Bucket)
	}
	switch f.State {
	case "open":
		q = q.Where("resolved = ?", false)
	case "resolved":
		q = q.Where("resolved = ?", true)
	}
	var out []ReconItem
	if err := q.Order("resolved, bucket, id").Limit(1000).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("reconcile: unable to list discrepancies: %w", err)
	}
	return out, nil
}

// GetReconItem returns a discrepancy in scope.
func (s *Store) GetReconItem(scope Scope, id uint64) (*ReconItem, error) {
	var it ReconItem
	if err := s.DB.Scopes(scope.Filter("merchant_code")).First(&it, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &it, nil
}
