package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/channels"
	"payfuse/models"
)

// The ledger over the API: list, one record, record the merchant's own view
// of a payment, annotate or correct.

// apiTransaction is a ledger record as the API shows it: amounts in integer
// minor units with their currency, times RFC 3339 UTC, the payer masked as
// on the console.
type apiTransaction struct {
	ID               uint64     `json:"id"`
	Merchant         string     `json:"merchant"`
	AccountID        uint64     `json:"account_id"`
	Channel          string     `json:"channel"`
	Kind             string     `json:"kind"`
	ChannelRef       string     `json:"channel_ref"`
	PaymentRef       string     `json:"payment_ref"`
	PaymentID        *uint64    `json:"payment_id"`
	MerchantOrderNo  string     `json:"merchant_order_no"`
	RefundNo         string     `json:"refund_no"`
	Method           string     `json:"method"`
	Status           string     `json:"status"`
	NativeStatus     string     `json:"native_status"`
	RefundState      string     `json:"refund_state"`
	RefundedAmount   int64      `json:"refunded_amount"`
	Amount           int64      `json:"amount"`
	Fee              *int64     `json:"fee"`
	Currency         string     `json:"currency"`
	Payer            string     `json:"payer"`
	ChannelCreatedAt *time.Time `json:"channel_created_at"`
	PaidAt           *time.Time `json:"paid_at"`
	RefundedAt       *time.Time `json:"refunded_at"`
	OccurredAt       *time.Time `json:"occurred_at"`
	BizDate          string     `json:"biz_date"`
	Sources          []string   `json:"sources"`
	Conflict         bool       `json:"conflict"`
	ConflictFields   []string   `json:"conflict_fields"`
	ConflictNote     string     `json:"conflict_note"`
	Annotation       string     `json:"annotation"`
	UpdatedAt        time.Time  `json:"updated_at"`
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// conflictFieldsOf names the fields a conflict note disagrees on.
func conflictFieldsOf(note string) []string {
	out := []string{}
	for _, f := range []string{models.CorrectAmount, models.CorrectStatus} {
		if strings.Contains(note, f+": ") {
			out = append(out, f)
		}
	}
	return out
}

func toAPITransaction(t *models.Transaction, note string) apiTransaction {
	out := apiTransaction{ID: t.ID, Merchant: t.MerchantCode, AccountID: t.AccountID, Channel: t.Channel, Kind: t.Kind,
		ChannelRef: t.ChannelRef, PaymentRef: t.PaymentRef, PaymentID: t.PaymentID, MerchantOrderNo: t.MerchantOrderNo,
		RefundNo: t.RefundNo, Method: t.Method, Status: t.Status, NativeStatus: t.NativeStatus, RefundState: t.RefundState,
		RefundedAmount: t.RefundedAmount, Amount: t.Amount, Currency: t.Currency, Payer: channels.MaskPayer(t.Payer),
		ChannelCreatedAt: utcPtr(t.ChannelCreatedAt), PaidAt: utcPtr(t.PaidAt), RefundedAt: utcPtr(t.RefundedAt),
		OccurredAt: utcPtr(t.OccurredAt), BizDate: t.BizDate, Sources: []string{}, Conflict: t.Conflict,
		ConflictFields: []string{}, ConflictNote: t.ConflictNote, Annotation: note, UpdatedAt: t.UpdatedAt.UTC()}
	if t.FeeKnown {
		fee := t.Fee
		out.Fee = &fee
	}
	if t.Sources != "" {
		out.Sources = strings.Split(t.Sources, ",")
	}
	if t.Conflict {
		out.ConflictFields = conflictFieldsOf(t.ConflictNote)
	}
	return out
}

// apiListLimit bounds a page of GET /transactions.
const (
	apiListDefault = 50
	apiListMax     = 200
)

// APITransactionList is GET /api/v1/transactions: the ledger newest first
// (occurred_at, then id, both descending: a stable order), with the ledger
// page's filters — merchant, channel, method, kind, status, from, to, q, and
// min/max, which the API takes in minor units — walked with a cursor: pass
// next_cursor as after for the next page; it is null on the last.
func (h *Handlers) APITransactionList(c *fiber.Ctx) error {
	if err := apiQuery(c, append(slices.Clone(ledgerFields), "after", "limit")...); err != nil {
		return err
	}
	vals := queryValues(c)
	for _, k := range []string{"min", "max"} {
		raw := strings.TrimSpace(vals.Get(k))
		if raw == "" {
			continue
		}
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 {
			return apiFieldErr(http.StatusUnprocessableEntity, "validation_failed", k, "Give "+k+" as a whole number of minor units (fen), 0 or more.")
		}
		vals.Set(k, models.Yuan(n))
	}
	f, errs := models.ParseLedgerFilter(vals)
	if errs != nil {
		return errs
	}
	limit := apiListDefault
	if raw := vals.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > apiListMax {
			return apiFieldErr(http.StatusUnprocessableEntity, "validation_failed", "limit", fmt.Sprintf("Give limit as a whole number from 1 to %d.", apiListMax))
		}
		limit = n
	}
	var after models.LedgerCursor
	if raw := vals.Get("after"); raw != "" {
		if after = models.ParseLedgerCursor(raw); after.IsZero() {
			return apiFieldErr(http.StatusUnprocessableEntity, "validation_failed", "after", "The cursor is not one this API gave; pass next_cursor unchanged.")
		}
	}
	sc := APIAuthOf(c).Scope
	if f.Merchant != "" && !sc.Allows(f.Merchant) {
		return apiFieldErr(http.StatusNotFound, "not_found", "merchant", "No such merchant in the token's scope.")
	}
	rows, next, err := h.Store.ListTransactions(sc, f, after, limit)
	if err != nil {
		return err
	}
	ids := make([]uint64, len(rows))
	for i := range rows {
		ids[i] = rows[i].ID
	}
	notes, err := h.Store.Annotations(ids)
	if err != nil {
		return err
	}
	data := make([]apiTransaction, len(rows))
	for i := range rows {
		data[i] = toAPITransaction(&rows[i], notes[rows[i].ID])
	}
	var cursor *string
	if !next.IsZero() {
		s := next.String()
		cursor = &s
	}
	return apiJSON(c, http.StatusOK, map[string]any{"data": data, "next_cursor": cursor})
}

// apiSource is one source that saw a record, with what it said.
type apiSource struct {
	Source   string          `json:"source"`
	SeenAt   time.Time       `json:"seen_at"`
	ImportID *uint64         `json:"import_id"`
	Amount   int64           `json:"amount"`
	Status   string          `json:"status"`
	Fee      int64           `json:"fee"`
	Raw      json.RawMessage `json:"raw"`
}

// apiCorrection is one finance correction of a record.
type apiCorrection struct {
	Field     string    `json:"field"`
	OldValue  string    `json:"old_value"`
	NewValue  string    `json:"new_value"`
	Reason    string    `json:"reason"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// apiTransactionDetail is one record with its sources, corrections and the
// records linked to it (a payment's refunds, a refund's payment).
type apiTransactionDetail struct {
	apiTransaction
	SourceRecords []apiSource       `json:"source_records"`
	Corrections   []apiCorrection   `json:"corrections"`
	Linked        []apiLinkedRecord `json:"linked"`
}

type apiLinkedRecord struct {
	ID         uint64 `json:"id"`
	Kind       string `json:"kind"`
	ChannelRef string `json:"channel_ref"`
	Status     string `json:"status"`
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
}

func (h *Handlers) apiDetail(sc models.Scope, id uint64) (*apiTransactionDetail, error) {
	t, err := h.Store.GetTransaction(sc, id)
	if err != nil {
		return nil, err
	}
	notes, err := h.Store.Annotations([]uint64{t.ID})
	if err != nil {
		return nil, err
	}
	d := &apiTransactionDetail{apiTransaction: toAPITransaction(t, notes[t.ID]), SourceRecords: []apiSource{}, Corrections: []apiCorrection{}, Linked: []apiLinkedRecord{}}
	srcs, err := h.Store.TransactionSources(t.ID)
	if err != nil {
		return nil, err
	}
	for _, s := range srcs {
		raw := json.RawMessage("null")
		if p := prettyRaw(s.Raw); p != "" && json.Valid([]byte(p)) {
			raw = json.RawMessage(p)
		}
		d.SourceRecords = append(d.SourceRecords, apiSource{Source: s.Source, SeenAt: s.SeenAt.UTC(), ImportID: s.ImportID,
			Amount: s.Amount, Status: s.Status, Fee: s.Fee, Raw: raw})
	}
	corrs, err := h.Store.TransactionCorrections(t.ID)
	if err != nil {
		return nil, err
	}
	for _, k := range corrs {
		d.Corrections = append(d.Corrections, apiCorrection{Field: k.Field, OldValue: k.OldValue, NewValue: k.NewValue,
			Reason: k.Reason, CreatedBy: k.CreatedBy, CreatedAt: k.CreatedAt.UTC()})
	}
	linked, err := h.Store.LinkedTransactions(sc, t)
	if err != nil {
		return nil, err
	}
	for _, l := range linked {
		d.Linked = append(d.Linked, apiLinkedRecord{ID: l.ID, Kind: l.Kind, ChannelRef: l.ChannelRef, Status: l.Status, Amount: l.Amount, Currency: l.Currency})
	}
	return d, nil
}

// apiID reads the :id path parameter; anything but a positive number is 404.
func apiID(c *fiber.Ctx) (uint64, error) {
	id := parseID(c.Params("id"))
	if id == 0 {
		return 0, apiErr(http.StatusNotFound, "not_found", "No such object (or not in the token's merchant scope).")
	}
	return id, nil
}

// APITransactionShow is GET /api/v1/transactions/{id}: one record with the
// sources that saw it (raw fields redacted as on the console), its conflict,
// its corrections and linked records. Outside the token's scope: 404.
func (h *Handlers) APITransactionShow(c *fiber.Ctx) error {
	if err := apiQuery(c); err != nil {
		return err
	}
	id, err := apiID(c)
	if err != nil {
		return err
	}
	d, err := h.apiDetail(APIAuthOf(c).Scope, id)
	if err != nil {
		return err
	}
	return apiData(c, http.StatusOK, d)
}

// apiRecordInput is the body of POST /api/v1/transactions.
type apiRecordInput struct {
	AccountID       uint64 `json:"account_id"`
	Merchant        string `json:"merchant"`
	Channel         string `json:"channel"`
	Kind            string `json:"kind"`
	ChannelRef      string `json:"channel_ref"`
	PaymentRef      string `json:"payment_ref"`
	MerchantOrderNo string `json:"merchant_order_no"`
	RefundNo        string `json:"refund_no"`
	Method          string `json:"method"`
	Status          string `json:"status"`
	Amount          *int64 `json:"amount"`
	Fee             *int64 `json:"fee"`
	Currency        string `json:"currency"`
	CreatedAt       string `json:"created_at"`
	PaidAt          string `json:"paid_at"`
	RefundedAt      string `json:"refunded_at"`
}

// apiAccount finds the channel account a write names — account_id, or
// merchant and channel when the merchant has one account there — in scope.
func (h *Handlers) apiAccount(sc models.Scope, accountID uint64, merchant, channel string) (*models.ChannelAccount, error) {
	if accountID != 0 {
		acct, err := h.Store.GetAccount(sc, accountID)
		if errors.Is(err, models.ErrNotFound) {
			return nil, apiFieldErr(http.StatusNotFound, "not_found", "account_id", "No such channel account in the token's scope.")
		}
		return acct, err
	}
	if merchant == "" || channel == "" {
		return nil, apiFieldErr(http.StatusUnprocessableEntity, "validation_failed", "account_id", "Name the channel account: account_id, or merchant and channel.")
	}
	m, err := h.Store.GetMerchantByCode(sc, merchant)
	if errors.Is(err, models.ErrNotFound) {
		return nil, apiFieldErr(http.StatusNotFound, "not_found", "merchant", "No such merchant in the token's scope.")
	}
	if err != nil {
		return nil, err
	}
	list, err := h.Store.ListAccounts(sc, models.AccountFilter{MerchantID: m.ID, Channel: channel})
	if err != nil {
		return nil, err
	}
	switch len(list) {
	case 0:
		return nil, apiFieldErr(http.StatusUnprocessableEntity, "validation_failed", "channel", "The merchant has no "+channel+" account.")
	case 1:
		return &list[0], nil
	}
	return nil, apiFieldErr(http.StatusUnprocessableEntity, "validation_failed", "account_id", "The merchant has several "+channel+" accounts; name one with account_id.")
}

func parseAPITime(field, raw string) (time.Time, error) {
	if raw == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		return time.Time{}, apiFieldErr(http.StatusUnprocessableEntity, "validation_failed", field, "Give "+field+" as an RFC 3339 time with its zone, e.g. 2026-03-05T10:00:00+08:00.")
	}
	return t, nil
}

func bad(field, msg string) error {
	return apiFieldErr(http.StatusUnprocessableEntity, "validation_failed", field, msg)
}

// record validates the input into a canonical record for acct.
func (in *apiRecordInput) record(acct *models.ChannelAccount, currency, by string) (channels.Record, error) {
	r := channels.Record{Channel: acct.Channel, Kind: in.Kind, ChannelRef: strings.TrimSpace(in.ChannelRef), PaymentRef: strings.TrimSpace(in.PaymentRef),
		MerchantOrderNo: strings.TrimSpace(in.MerchantOrderNo), RefundNo: strings.TrimSpace(in.RefundNo), Method: in.Method, Status: in.Status,
		Currency: strings.ToUpper(strings.TrimSpace(in.Currency))}
	if in.Channel != "" && in.Channel != acct.Channel {
		return r, bad("channel", "The account is at "+acct.Channel+", not "+in.Channel+".")
	}
	if r.Kind != channels.KindPayment && r.Kind != channels.KindRefund {
		return r, bad("kind", `Give kind as "payment" or "refund".`)
	}
	if !slices.Contains(models.StatusesFor(r.Kind), r.Status) {
		return r, bad("status", "Give status as one of: "+strings.Join(models.StatusesFor(r.Kind), ", ")+".")
	}
	if r.ChannelRef == "" || len(r.ChannelRef) > 64 {
		return r, bad("channel_ref", "Give channel_ref, the channel's transaction (or refund) id, up to 64 characters.")
	}
	for field, v := range map[string]string{"payment_ref": r.PaymentRef, "merchant_order_no": r.MerchantOrderNo, "refund_no": r.RefundNo} {
		if len(v) > 64 {
			return r, bad(field, "Give "+field+" in up to 64 characters.")
		}
	}
	if r.Method != "" && !slices.Contains(models.Methods, r.Method) {
		return r, bad("method", "Give method as one of: "+strings.Join(models.Methods, ", ")+".")
	}
	if in.Amount == nil || *in.Amount < 0 {
		return r, bad("amount", "Give amount as a whole number of minor units (fen), 0 or more.")
	}
	r.Amount = *in.Amount
	if in.Fee != nil {
		if *in.Fee < 0 {
			return r, bad("fee", "Give fee as a whole number of minor units (fen), 0 or more.")
		}
		r.Fee, r.FeeKnown = *in.Fee, true
	}
	if r.Currency != "" && r.Currency != currency {
		return r, bad("currency", "The merchant settles in "+currency+".")
	}
	var err error
	if r.CreatedAt, err = parseAPITime("created_at", in.CreatedAt); err != nil {
		return r, err
	}
	if r.PaidAt, err = parseAPITime("paid_at", in.PaidAt); err != nil {
		return r, err
	}
	if r.RefundedAt, err = parseAPITime("refunded_at", in.RefundedAt); err != nil {
		return r, err
	}
	switch {
	case r.Kind == channels.KindPayment && r.PaidAt.IsZero() && r.CreatedAt.IsZero():
		return r, bad("paid_at", "Give paid_at (or created_at) for a payment.")
	case r.Kind == channels.KindRefund && r.RefundedAt.IsZero() && r.CreatedAt.IsZero():
		return r, bad("refunded_at", "Give refunded_at (or created_at) for a refund.")
	}
	r.Raw = map[string]string{"by": by}
	if raw, err := json.Marshal(in); err == nil {
		r.Raw["request"] = string(raw)
	}
	return r, nil
}

// APITransactionCreate is POST /api/v1/transactions: a merchant system
// records its own view of a payment or refund (source "merchant"). It merges
// like any other source, by the natural key (channel, kind, channel_ref): a
// new record is 201, a record the ledger already held is 200 (merged, or a
// duplicate of what this source said before); a disagreement on amount or
// final status is flagged as a conflict, never overwritten. Audited with the
// token's name.
func (h *Handlers) APITransactionCreate(c *fiber.Ctx) error {
	var in apiRecordInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	auth := APIAuthOf(c)
	acct, err := h.apiAccount(auth.Scope, in.AccountID, strings.ToUpper(strings.TrimSpace(in.Merchant)), in.Channel)
	if err != nil {
		return err
	}
	m, err := h.Store.GetMerchant(auth.Scope, acct.MerchantID)
	if err != nil {
		return err
	}
	a := apiActor(c)
	rec, err := in.record(acct, m.Currency, a.Name)
	if err != nil {
		return err
	}
	stats, err := h.Store.Ingest(a, acct.ID, models.SourceMerchant, []channels.Record{rec})
	var re *models.RecordError
	if errors.As(err, &re) {
		return apiErr(http.StatusUnprocessableEntity, "record_refused", "The ledger refused the record: "+re.Message.EN+".")
	}
	if err != nil {
		return err
	}
	t, err := h.Store.TransactionByKey(auth.Scope, rec.Channel, rec.Kind, rec.ChannelRef)
	if err != nil {
		return err
	}
	result, status := "merged", http.StatusOK
	switch {
	case stats.Inserted > 0:
		result, status = "inserted", http.StatusCreated
	case stats.Duplicates > 0:
		result = "duplicate"
	}
	if err := h.Store.Audit(a, models.AuditEvent{Action: models.ActAPIRecord, ObjectType: "transaction", ObjectID: strconv.FormatUint(t.ID, 10),
		MerchantCode: t.MerchantCode, Detail: fmt.Sprintf("%s %s %s (%s %s): %s", rec.Channel, rec.Kind, rec.ChannelRef, models.Yuan(rec.Amount), rec.Status, result)}); err != nil {
		return err
	}
	d, err := h.apiDetail(auth.Scope, t.ID)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderLocation, fmt.Sprintf("%s/transactions/%d", APIPrefix, t.ID))
	return apiJSON(c, status, map[string]any{"data": d, "result": result})
}

// apiPatchInput is the body of PATCH /api/v1/transactions/{id}: one change.
type apiPatchInput struct {
	Annotation *string             `json:"annotation"`
	Correction *apiCorrectionInput `json:"correction"`
}

type apiCorrectionInput struct {
	Field  string          `json:"field"`
	Value  json.RawMessage `json:"value"`
	Reason string          `json:"reason"`
}

// correctionFields maps the console's correction form fields to the API's
// (raw strings: the i18n key scanner reads double-quoted "correction.…" as keys).
var correctionFields = map[string]string{"field": `correction.field`, "new_value": `correction.value`, "reason": `correction.reason`}

// APITransactionUpdate is PATCH /api/v1/transactions/{id}: one limited
// change per request — the annotation (a note up to 500 characters; "" clears
// it), or a finance correction of status, amount, fee or method with a reason
// (amount and fee in minor units), which needs a token made by finance or an
// admin. Both are audited with the token's name. Outside scope: 404.
func (h *Handlers) APITransactionUpdate(c *fiber.Ctx) error {
	id, err := apiID(c)
	if err != nil {
		return err
	}
	var in apiPatchInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	auth := APIAuthOf(c)
	if _, err := h.Store.GetTransaction(auth.Scope, id); err != nil {
		return err
	}
	a := apiActor(c)
	switch {
	case in.Annotation != nil && in.Correction != nil:
		return bad("correction", "Send the annotation and the correction in separate requests.")
	case in.Annotation != nil:
		if err := h.Store.AnnotateTransaction(a, auth.Scope, id, *in.Annotation); err != nil {
			return err
		}
	case in.Correction != nil:
		if !auth.CanCorrect {
			return apiErr(http.StatusForbidden, "insufficient_permission", "Corrections need a token made by finance or an admin.")
		}
		ci := models.CorrectionInput{Field: in.Correction.Field, Reason: in.Correction.Reason}
		switch ci.Field {
		case models.CorrectAmount, models.CorrectFee:
			var n int64
			if err := json.Unmarshal(in.Correction.Value, &n); err != nil || n < 0 {
				return bad(`correction.value`, "Give the corrected "+ci.Field+" as a whole number of minor units (fen), 0 or more.")
			}
			ci.NewValue = models.Yuan(n)
		default:
			if err := json.Unmarshal(in.Correction.Value, &ci.NewValue); err != nil {
				return bad(`correction.value`, "Give the corrected value as a string.")
			}
		}
		_, err := h.Store.CorrectTransaction(a, auth.Scope, id, ci)
		var fe models.FieldErrors
		if errors.As(err, &fe) {
			for _, k := range []string{"field", "new_value", "reason"} {
				if fe[k] != "" {
					return bad(correctionFields[k], apiMessage(fe[k]))
				}
			}
		}
		if err != nil {
			return err
		}
	default:
		return bad("annotation", "Send an annotation or a correction.")
	}
	d, err := h.apiDetail(auth.Scope, id)
	if err != nil {
		return err
	}
	return apiData(c, http.StatusOK, d)
}
