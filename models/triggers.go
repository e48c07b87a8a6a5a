package models

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"payfuse/channels"
)

// Trigger kinds: the conditions a rule watches.
const (
	// TriggerSuccessRate: an account's payment success rate over the last
	// window_minutes is below min_percent, judged only with at least
	// min_payments payments in the window.
	TriggerSuccessRate = "success_rate"
	// TriggerLargePayment: a succeeded payment above amount (minor units)
	// that the ledger learnt of since the rule last looked; once per payment.
	TriggerLargePayment = "large_payment"
	// TriggerNotifyRefusals: more than max_refusals notifications for an
	// account refused within window_minutes.
	TriggerNotifyRefusals = "notify_refusals"
	// TriggerBillMissing: from at (HH:MM, merchant's zone), yesterday's
	// statement is not in the ledger although the ledger has records of that day.
	TriggerBillMissing = "bill_missing"
	// TriggerReconUnbalanced: from at, yesterday's reconciliation day is not balanced.
	TriggerReconUnbalanced = "recon_unbalanced"
	// TriggerCertExpiry: an account's certificate expires within days (or has expired).
	TriggerCertExpiry = "cert_expiry"
)

// TriggerKinds lists the trigger kinds in display order.
var TriggerKinds = []string{TriggerSuccessRate, TriggerLargePayment, TriggerNotifyRefusals, TriggerBillMissing,
	TriggerReconUnbalanced, TriggerCertExpiry}

// TriggerEvents are the webhook event names (X-PayFuse-Event) of the kinds.
var TriggerEvents = map[string]string{
	TriggerSuccessRate:     "channel_account.success_rate_low",
	TriggerLargePayment:    "payment.large",
	TriggerNotifyRefusals:  "notification.refusals",
	TriggerBillMissing:     "bill.missing",
	TriggerReconUnbalanced: "reconcile.unbalanced",
	TriggerCertExpiry:      "channel_account.cert_expiring",
}

// Audit actions of trigger rules.
const (
	ActTriggerCreate  = "trigger.create"
	ActTriggerUpdate  = "trigger.update"
	ActTriggerEnable  = "trigger.enable"
	ActTriggerDisable = "trigger.disable"
)

// Limits and defaults of trigger rules.
const (
	DefaultTriggerCooldown = 60        // minutes
	MaxTriggerCooldown     = 7 * 1440  // minutes
	MaxTriggerWindow       = 1440      // minutes: notify_refusals and success_rate windows
	MaxCertExpiryDays      = 365       // days
	notifyRefusalKeep      = 25 * 60   // minutes a refusal is kept: the longest window and a margin
	triggerMarkKeep        = 35 * 1440 // minutes a mark is kept: beyond any cooldown and any late ledger update
	largePaymentOverlap    = 5 * time.Minute
	largePaymentBatch      = 1000
)

// TriggerRule is an event-trigger rule: a condition on one channel account
// (or every enabled account of its merchant), and the actions when it holds
// — an alert in the inbox, a webhook to an endpoint, or both. A rule fires
// at most once per CooldownMinutes for the same account (large_payment:
// once per payment).
type TriggerRule struct {
	ID                uint64 `gorm:"primaryKey"`
	Name              string
	MerchantCode      string
	AccountID         *uint64 // nil: every enabled account of the merchant
	Kind              string
	Params            string // canonical JSON of TriggerParams, only the kind's fields
	Severity          string
	Alert             bool
	WebhookEndpointID *uint64
	Enabled           bool
	CooldownMinutes   int
	LastFiredAt       *time.Time
	WatermarkAt       *time.Time // large_payment: ledger changes up to here were looked at
	WatermarkID       uint64     // large_payment catching up: rows changed at WatermarkAt up to this id were looked at
	CreatedAt         time.Time
	UpdatedAt         time.Time
	CreatedBy         string
	UpdatedBy         string
}

// TriggerParams are the settings of every kind; a rule keeps its kind's.
type TriggerParams struct {
	WindowMinutes int      `json:"window_minutes,omitempty"` // success_rate, notify_refusals
	MinPercent    *float64 `json:"min_percent,omitempty"`    // success_rate, 0–100
	MinPayments   int      `json:"min_payments,omitempty"`   // success_rate
	Amount        int64    `json:"amount,omitempty"`         // large_payment, minor units
	MaxRefusals   *int     `json:"max_refusals,omitempty"`   // notify_refusals
	At            string   `json:"at,omitempty"`             // bill_missing, recon_unbalanced: HH:MM in the merchant's zone
	Days          int      `json:"days,omitempty"`           // cert_expiry
}

// DecodeParams returns the rule's settings.
func (r *TriggerRule) DecodeParams() TriggerParams {
	var p TriggerParams
	json.Unmarshal([]byte(r.Params), &p)
	return p
}

// Cooldown is the least time between two firings for the same account.
func (r *TriggerRule) Cooldown() time.Duration { return time.Duration(r.CooldownMinutes) * time.Minute }

// TriggerMark remembers that a rule fired for a subject.
type TriggerMark struct {
	ID      uint64 `gorm:"primaryKey"`
	RuleID  uint64
	Subject string
	FiredAt time.Time
}

// NotifyRefusal is one refused notification of a known channel account.
type NotifyRefusal struct {
	ID        uint64 `gorm:"primaryKey"`
	AccountID uint64
	Reason    string
	At        time.Time
}

// RecordNotifyRefusal notes that a notification for account id was refused
// (for the notify_refusals trigger). Ids of no account are not recorded, so
// requests to made-up ids cannot fill the table.
func (s *Store) RecordNotifyRefusal(accountID uint64, reason string, at time.Time) error {
	if accountID == 0 {
		return nil
	}
	err := s.DB.Exec("INSERT INTO notify_refusals (account_id, reason, at) SELECT id, ?, ? FROM channel_accounts WHERE id = ?",
		truncate(reason, 32), at.UTC(), accountID).Error
	if err != nil {
		return fmt.Errorf("triggers: unable to record a notification refusal: %w", err)
	}
	return nil
}

// TriggerRuleInput is what a form gives for a rule. MerchantCode is fixed
// once the rule exists.
type TriggerRuleInput struct {
	Name              string
	MerchantCode      string
	AccountID         uint64 // 0: every enabled account of the merchant
	Kind              string
	Params            string // JSON object of the kind's settings; "" for the defaults
	Severity          string // "" for warning
	Alert             bool
	WebhookEndpointID uint64 // 0: no webhook
	Enabled           bool   // on create only; SetTriggerEnabled changes it later
	CooldownMinutes   int    // 0 for DefaultTriggerCooldown
}

// hhmm reads "15:04" as minutes after midnight.
func hhmm(s string) (int, bool) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

// normalizeParams checks raw against kind, fills the defaults and returns
// the canonical JSON (only the kind's fields). Errors are keyed by param.
func normalizeParams(kind, raw string) (string, FieldErrors) {
	errs := FieldErrors{}
	var p TriggerParams
	if strings.TrimSpace(raw) == "" {
		raw = "{}"
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if len(raw) > 4096 || dec.Decode(&p) != nil || dec.More() {
		errs["params"] = "trigger.err_params"
		return "", errs
	}
	window := func(def int) {
		if p.WindowMinutes == 0 {
			p.WindowMinutes = def
		}
		if p.WindowMinutes < 1 || p.WindowMinutes > MaxTriggerWindow {
			errs["window_minutes"] = "trigger.err_window"
		}
	}
	at := func(def string) {
		if p.At == "" {
			p.At = def
		}
		if _, ok := hhmm(p.At); !ok {
			errs["at"] = "trigger.err_at"
		}
	}
	var out TriggerParams
	switch kind {
	case TriggerSuccessRate:
		window(30)
		if p.MinPercent == nil {
			v := 90.0
			p.MinPercent = &v
		}
		if math.IsNaN(*p.MinPercent) || *p.MinPercent <= 0 || *p.MinPercent > 100 {
			errs["min_percent"] = "trigger.err_percent"
		}
		if p.MinPayments == 0 {
			p.MinPayments = 20
		}
		if p.MinPayments < 1 || p.MinPayments > 1_000_000 {
			errs["min_payments"] = "trigger.err_min_payments"
		}
		out = TriggerParams{WindowMinutes: p.WindowMinutes, MinPercent: p.MinPercent, MinPayments: p.MinPayments}
	case TriggerLargePayment:
		if p.Amount <= 0 {
			errs["amount"] = "trigger.err_amount"
		}
		out = TriggerParams{Amount: p.Amount}
	case TriggerNotifyRefusals:
		window(10)
		if p.MaxRefusals == nil {
			v := 10
			p.MaxRefusals = &v
		}
		if *p.MaxRefusals < 0 || *p.MaxRefusals > 1_000_000 {
			errs["max_refusals"] = "trigger.err_max_refusals"
		}
		out = TriggerParams{WindowMinutes: p.WindowMinutes, MaxRefusals: p.MaxRefusals}
	case TriggerBillMissing:
		at("10:00")
		out = TriggerParams{At: p.At}
	case TriggerReconUnbalanced:
		at("12:00")
		out = TriggerParams{At: p.At}
	case TriggerCertExpiry:
		if p.Days == 0 {
			p.Days = 30
		}
		if p.Days < 1 || p.Days > MaxCertExpiryDays {
			errs["days"] = "trigger.err_days"
		}
		out = TriggerParams{Days: p.Days}
	default:
		return "", errs // the kind's own error says it
	}
	if len(errs) > 0 {
		return "", errs
	}
	b, _ := json.Marshal(out)
	return string(b), nil
}

func (in *TriggerRuleInput) normalize() {
	in.Name = strings.TrimSpace(in.Name)
	in.MerchantCode = strings.ToUpper(strings.TrimSpace(in.MerchantCode))
	in.Kind = strings.TrimSpace(in.Kind)
	in.Severity = strings.TrimSpace(in.Severity)
	if in.Severity == "" {
		in.Severity = SeverityWarning
	}
	if in.CooldownMinutes == 0 {
		in.CooldownMinutes = DefaultTriggerCooldown
	}
}

// checkTrigger validates in inside tx; it returns the canonical params.
func (s *Store) checkTrigger(tx *gorm.DB, scope Scope, in *TriggerRuleInput) (string, FieldErrors, error) {
	errs := FieldErrors{}
	if in.Name == "" || utf8.RuneCountInString(in.Name) > 64 {
		errs["name"] = "trigger.err_name"
	}
	if !slices.Contains(TriggerKinds, in.Kind) {
		errs["kind"] = "trigger.err_kind"
	}
	if !scope.Allows(in.MerchantCode) {
		errs["merchant"] = "trigger.err_merchant"
	} else if n, err := countWhere(tx, &Merchant{}, "code = ?", in.MerchantCode); err != nil {
		return "", nil, err
	} else if n == 0 {
		errs["merchant"] = "trigger.err_merchant"
	}
	if in.AccountID != 0 {
		n, err := countWhere(tx, &ChannelAccount{}, "id = ? AND merchant_code = ?", in.AccountID, in.MerchantCode)
		if err != nil {
			return "", nil, err
		}
		if n == 0 {
			errs["account"] = "trigger.err_account"
		}
	}
	if !slices.Contains(AlertSeverities, in.Severity) {
		errs["severity"] = "trigger.err_severity"
	}
	if in.WebhookEndpointID != 0 {
		n, err := countWhere(tx, &WebhookEndpoint{}, "id = ? AND merchant_code = ?", in.WebhookEndpointID, in.MerchantCode)
		if err != nil {
			return "", nil, err
		}
		if n == 0 {
			errs["endpoint"] = "trigger.err_endpoint"
		}
	}
	if !in.Alert && in.WebhookEndpointID == 0 {
		errs["action"] = "trigger.err_action"
	}
	if in.CooldownMinutes < 1 || in.CooldownMinutes > MaxTriggerCooldown {
		errs["cooldown"] = "trigger.err_cooldown"
	}
	params, perrs := normalizeParams(in.Kind, in.Params)
	for k, v := range perrs {
		errs[k] = v
	}
	if len(errs) > 0 {
		return "", errs, nil
	}
	return params, nil, nil
}

func optID(id uint64) *uint64 {
	if id == 0 {
		return nil
	}
	return &id
}

func triggerView(r *TriggerRule) map[string]any {
	var params any
	if json.Unmarshal([]byte(r.Params), &params) != nil {
		params = r.Params
	}
	v := map[string]any{"name": r.Name, "merchant": r.MerchantCode, "kind": r.Kind, "params": params, "severity": r.Severity,
		"alert": r.Alert, "enabled": r.Enabled, "cooldown_minutes": r.CooldownMinutes}
	if r.AccountID != nil {
		v["account_id"] = *r.AccountID
	}
	if r.WebhookEndpointID != nil {
		v["webhook_endpoint_id"] = *r.WebhookEndpointID
	}
	return v
}

// CreateTriggerRule stores a new rule, audited. Bad input is a FieldErrors
// of translation keys (trigger.err_*) and changes nothing. A large_payment
// rule looks at payments from its creation on, not at the past.
func (s *Store) CreateTriggerRule(a Actor, scope Scope, in TriggerRuleInput) (*TriggerRule, error) {
	in.normalize()
	now := s.now()
	var out *TriggerRule
	err := s.Tx(func(tx *gorm.DB) error {
		params, errs, err := s.checkTrigger(tx, scope, &in)
		if err != nil {
			return err
		}
		if errs != nil {
			return errs
		}
		r := &TriggerRule{Name: in.Name, MerchantCode: in.MerchantCode, AccountID: optID(in.AccountID), Kind: in.Kind, Params: params,
			Severity: in.Severity, Alert: in.Alert, WebhookEndpointID: optID(in.WebhookEndpointID), Enabled: in.Enabled,
			CooldownMinutes: in.CooldownMinutes, WatermarkAt: &now, CreatedAt: now, UpdatedAt: now,
			CreatedBy: truncate(a.Name, 64), UpdatedBy: truncate(a.Name, 64)}
		if err := tx.Create(r).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return FieldErrors{"name": "trigger.err_name_taken"}
			}
			return fmt.Errorf("triggers: unable to create rule: %w", err)
		}
		out = r
		return writeAudit(tx, a, now, AuditEvent{Action: ActTriggerCreate, ObjectType: "trigger_rule", ObjectID: idStr(r.ID),
			MerchantCode: r.MerchantCode, Detail: r.Name, After: triggerView(r)})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateTriggerRule changes a rule (all but its merchant and enabled
// state), audited. A changed kind forgets when the rule last fired for each
// account, and a large_payment rule starts looking from now.
func (s *Store) UpdateTriggerRule(a Actor, scope Scope, id uint64, in TriggerRuleInput) (*TriggerRule, error) {
	now := s.now()
	var out *TriggerRule
	err := s.Tx(func(tx *gorm.DB) error {
		var r TriggerRule
		if err := s.forUpdate(tx).Scopes(scope.Filter("merchant_code")).First(&r, id).Error; err != nil {
			return notFound(err)
		}
		in.MerchantCode = r.MerchantCode
		in.normalize()
		params, errs, err := s.checkTrigger(tx, scope, &in)
		if err != nil {
			return err
		}
		if errs != nil {
			return errs
		}
		before := triggerView(&r)
		if in.Kind != r.Kind {
			r.WatermarkAt, r.WatermarkID = &now, 0
			if err := tx.Where("rule_id = ?", r.ID).Delete(&TriggerMark{}).Error; err != nil {
				return fmt.Errorf("triggers: unable to reset the rule's marks: %w", err)
			}
		}
		r.Name, r.AccountID, r.Kind, r.Params, r.Severity = in.Name, optID(in.AccountID), in.Kind, params, in.Severity
		r.Alert, r.WebhookEndpointID, r.CooldownMinutes = in.Alert, optID(in.WebhookEndpointID), in.CooldownMinutes
		r.UpdatedAt, r.UpdatedBy = now, truncate(a.Name, 64)
		if err := tx.Model(&TriggerRule{}).Where("id = ?", r.ID).Updates(map[string]any{
			"name": r.Name, "account_id": r.AccountID, "kind": r.Kind, "params": r.Params, "severity": r.Severity,
			"alert": r.Alert, "webhook_endpoint_id": r.WebhookEndpointID, "cooldown_minutes": r.CooldownMinutes,
			"watermark_at": r.WatermarkAt, "watermark_id": r.WatermarkID, "updated_at": now, "updated_by": r.UpdatedBy,
		}).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return FieldErrors{"name": "trigger.err_name_taken"}
			}
			return fmt.Errorf("triggers: unable to update rule: %w", err)
		}
		out = &r
		return writeAudit(tx, a, now, AuditEvent{Action: ActTriggerUpdate, ObjectType: "trigger_rule", ObjectID: idStr(r.ID),
			MerchantCode: r.MerchantCode, Detail: r.Name, Before: before, After: triggerView(&r)})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetTriggerEnabled enables or disables a rule, audited. A large_payment
// rule enabled again looks at payments from now on, not at those it missed.
func (s *Store) SetTriggerEnabled(a Actor, scope Scope, id uint64, enabled bool) (*TriggerRule, error) {
	now := s.now()
	var out *TriggerRule
	err := s.Tx(func(tx *gorm.DB) error {
		var r TriggerRule
		if err := s.forUpdate(tx).Scopes(scope.Filter("merchant_code")).First(&r, id).Error; err != nil {
			return notFound(err)
		}
		out = &r
		if r.Enabled == enabled {
			return nil
		}
		r.Enabled, r.UpdatedAt, r.UpdatedBy = enabled, now, truncate(a.Name, 64)
		upd := map[string]any{"enabled": enabled, "updated_at": now, "updated_by": r.UpdatedBy}
		action := ActTriggerDisable
		if enabled {
			action = ActTriggerEnable
			r.WatermarkAt, r.WatermarkID = &now, 0
			upd["watermark_at"], upd["watermark_id"] = now, 0
		}
		if err := tx.Model(&TriggerRule{}).Where("id = ?", r.ID).Updates(upd).Error; err != nil {
			return fmt.Errorf("triggers: unable to change rule: %w", err)
		}
		return writeAudit(tx, a, now, AuditEvent{Action: action, ObjectType: "trigger_rule", ObjectID: idStr(r.ID),
			MerchantCode: r.MerchantCode, Detail: r.Name, Before: map[string]any{"enabled": !enabled}, After: map[string]any{"enabled": enabled}})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetTriggerRule returns a rule in scope.
func (s *Store) GetTriggerRule(scope Scope, id uint64) (*TriggerRule, error) {
	var r TriggerRule
	if err := s.DB.Scopes(scope.Filter("merchant_code")).First(&r, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &r, nil
}

// TriggerFilter selects rules; zero fields do not filter.
type TriggerFilter struct {
	MerchantCode string
	Kind         string
	Enabled      *bool
}

// ListTriggerRules returns the rules in scope by merchant and name.
func (s *Store) ListTriggerRules(scope Scope, f TriggerFilter) ([]TriggerRule, error) {
	q := s.DB.Scopes(scope.Filter("merchant_code"))
	if f.MerchantCode != "" {
		q = q.Where("merchant_code = ?", f.MerchantCode)
	}
	if f.Kind != "" {
		q = q.Where("kind = ?", f.Kind)
	}
	if f.Enabled != nil {
		q = q.Where("enabled = ?", *f.Enabled)
	}
	var out []TriggerRule
	if err := q.Order("merchant_code, name, id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("triggers: unable to list rules: %w", err)
	}
	return out, nil
}

// --- evaluation ---

// TriggerFiring is a rule whose condition held, with what to tell: a title
// and body in both languages and the data of the webhook payload.
type TriggerFiring struct {
	RuleID            uint64
	RuleName          string
	MerchantCode      string
	AccountID         uint64 // 0 when the firing is not about one account
	Kind              string
	Event             string // the webhook event, TriggerEvents[Kind]
	Severity          string
	Alert             bool   // raise an alert
	WebhookEndpointID uint64 // 0: no webhook
	Subject           string // what it fired for: account:7, account:7:2026-03-01, payment:42
	Title, Body       channels.Text
	Link              string
	Data              map[string]any
	At                time.Time
}

// DedupeKey is the alert key of the firing: repeats for the same rule and
// subject count on one open alert.
func (f *TriggerFiring) DedupeKey() string {
	return "trigger:" + idStr(f.RuleID) + ":" + f.Subject
}

// Payload is the webhook body of the firing.
func (f *TriggerFiring) Payload() []byte {
	body := map[string]any{
		"event": f.Event, "fired_at": f.At.UTC().Format(time.RFC3339), "merchant": f.MerchantCode, "severity": f.Severity,
		"rule":  map[string]any{"id": f.RuleID, "name": f.RuleName, "kind": f.Kind},
		"title": map[string]string{"en": f.Title.EN, "zh": f.Title.ZH},
		"body":  map[string]string{"en": f.Body.EN, "zh": f.Body.ZH},
		"data":  f.Data,
	}
	if f.AccountID != 0 {
		body["account_id"] = f.AccountID
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(body)
	return bytes.TrimSpace(buf.Bytes())
}

// candidate is a firing before its mark is taken.
type candidate struct {
	f    TriggerFiring
	once bool // fire at most once for the subject, whatever the cooldown
}

// EvaluateTriggers evaluates every enabled rule (of merchants, when given)
// at now and returns what fired. A rule fires for an account at most once
// per cooldown, and a large payment once; that is recorded as it fires,
// so the caller must act on what is returned. A rule that cannot be
// evaluated does not stop the others: its error is joined to the result.
// It also drops notification refusals and marks too old to matter.
func (s *Store) EvaluateTriggers(now time.Time, merchants ...string) ([]TriggerFiring, error) {
	now = now.UTC()
	if err := s.purgeTriggerState(now); err != nil {
		return nil, err
	}
	q := s.DB.Where("enabled = ?", true)
	if len(merchants) > 0 {
		q = q.Where("merchant_code IN ?", merchants)
	}
	var rules []TriggerRule
	if err := q.Order("id").Find(&rules).Error; err != nil {
		return nil, fmt.Errorf("triggers: unable to read rules: %w", err)
	}
	ev := evaluator{s: s, now: now, zones: map[string]*time.Location{}, accounts: map[string][]ChannelAccount{}}
	var fired []TriggerFiring
	var errs []error
	for i := range rules {
		f, err := ev.rule(&rules[i])
		fired = append(fired, f...)
		if err != nil {
			errs = append(errs, fmt.Errorf("triggers: rule %d (%s): %w", rules[i].ID, rules[i].Name, err))
		}
	}
	return fired, errors.Join(errs...)
}

// purgeTriggerState drops refusals older than the longest window and marks
// older than any cooldown.
func (s *Store) purgeTriggerState(now time.Time) error {
	if err := s.DB.Where("at < ?", now.Add(-notifyRefusalKeep*time.Minute)).Delete(&NotifyRefusal{}).Error; err != nil {
		return fmt.Errorf("triggers: unable to purge notification refusals: %w", err)
	}
	if err := s.DB.Where("fired_at < ?", now.Add(-triggerMarkKeep*time.Minute)).Delete(&TriggerMark{}).Error; err != nil {
		return fmt.Errorf("triggers: unable to purge marks: %w", err)
	}
	return nil
}

type evaluator struct {
	s        *Store
	now      time.Time
	zones    map[string]*time.Location
	accounts map[string][]ChannelAccount
}

func (ev *evaluator) zone(merchant string) *time.Location {
	if loc, ok := ev.zones[merchant]; ok {
		return loc
	}
	loc, _ := merchantZone(ev.s.DB, merchant)
	ev.zones[merchant] = loc
	return loc
}

// accountsOf are the accounts rule r looks at: its own (when enabled), or
// every enabled account of its merchant.
func (ev *evaluator) accountsOf(r *TriggerRule) ([]ChannelAccount, error) {
	list, ok := ev.accounts[r.MerchantCode]
	if !ok {
		if err := ev.s.DB.Where("merchant_code = ? AND enabled = ?", r.MerchantCode, true).Order("id").Find(&list).Error; err != nil {
			return nil, fmt.Errorf("unable to read accounts: %w", err)
		}
		ev.accounts[r.MerchantCode] = list
	}
	if r.AccountID == nil {
		return list, nil
	}
	for _, a := range list {
		if a.ID == *r.AccountID {
			return []ChannelAccount{a}, nil
		}
	}
	return nil, nil
}

func (ev *evaluator) rule(r *TriggerRule) ([]TriggerFiring, error) {
	p := r.DecodeParams()
	accts, err := ev.accountsOf(r)
	if err != nil {
		return nil, err
	}
	var cands []candidate
	var wm *watermark
	switch r.Kind {
	case TriggerSuccessRate:
		cands, err = ev.successRate(r, p, accts)
	case TriggerLargePayment:
		cands, wm, err = ev.largePayments(r, p, accts)
	case TriggerNotifyRefusals:
		cands, err = ev.notifyRefusals(r, p, accts)
	case TriggerBillMissing:
		cands, err = ev.billMissing(r, p, accts)
	case TriggerReconUnbalanced:
		cands, err = ev.reconUnbalanced(r, p, accts)
	case TriggerCertExpiry:
		cands, err = ev.certExpiry(r, p, accts)
	default:
		err = fmt.Errorf("unknown kind %q", r.Kind)
	}
	if err != nil {
		return nil, err
	}
	var out []TriggerFiring
	for _, c := range cands {
		ok, err := ev.s.claimMark(r.ID, c.f.Subject, ev.now, r.Cooldown(), c.once)
		if err != nil {
			return out, err
		}
		if !ok {
			continue
		}
		f := c.f
		f.RuleID, f.RuleName, f.MerchantCode, f.Kind, f.Event = r.ID, r.Name, r.MerchantCode, r.Kind, TriggerEvents[r.Kind]
		f.Severity, f.Alert, f.At = r.Severity, r.Alert, ev.now
		if r.WebhookEndpointID != nil {
			f.WebhookEndpointID = *r.WebhookEndpointID
		}
		out = append(out, f)
	}
	upd := map[string]any{}
	if len(out) > 0 {
		upd["last_fired_at"] = ev.now
	}
	if wm != nil {
		upd["watermark_at"], upd["watermark_id"] = wm.at, wm.id
	}
	if len(upd) > 0 {
		if err := ev.s.DB.Model(&TriggerRule{}).Where("id = ?", r.ID).Updates(upd).Error; err != nil {
			return out, fmt.Errorf("unable to update the rule: %w", err)
		}
	}
	return out, nil
}

// claimMark takes the right to fire rule for subject at now: the first
// time, or (unless once) when the last firing is at least cooldown ago. The
// unique key and the conditional update decide between racing evaluators.
func (s *Store) claimMark(rule uint64, subject string, now time.Time, cooldown time.Duration, once bool) (bool, error) {
	// Not ON DUPLICATE KEY UPDATE on MySQL: the driver may count a found row as affected.
	insert := clause.Expression(clause.OnConflict{DoNothing: true})
	if s.Dialect == MySQL {
		insert = clause.Insert{Modifier: "IGNORE"}
	}
	res := s.DB.Clauses(insert).Create(&TriggerMark{RuleID: rule, Subject: subject, FiredAt: now})
	if res.Error != nil {
		return false, fmt.Errorf("unable to mark the firing: %w", res.Error)
	}
	if res.RowsAffected == 1 || once {
		return res.RowsAffected == 1, nil
	}
	res = s.DB.Model(&TriggerMark{}).Where("rule_id = ? AND subject = ? AND fired_at <= ?", rule, subject, now.Add(-cooldown)).
		Update("fired_at", now)
	if res.Error != nil {
		return false, fmt.Errorf("unable to mark the firing: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

func accountSubject(a *ChannelAccount) string { return "account:" + idStr(a.ID) }

func acctText(a *ChannelAccount) string {
	return fmt.Sprintf("%s %s (#%d)", a.Channel, a.DisplayName, a.ID)
}

func accountLink(a *ChannelAccount) string { return "/channels/" + idStr(a.ID) }

func (ev *evaluator) successRate(r *TriggerRule, p TriggerParams, accts []ChannelAccount) ([]candidate, error) {
	from := ev.now.Add(-time.Duration(p.WindowMinutes) * time.Minute)
	var out []candidate
	for i := range accts {
		a := &accts[i]
		var row struct{ Total, Succeeded int64 }
		// The window is minutes of one merchant: a short range of its walk
		// index. Left to itself, MariaDB at times read the account's whole
		// history (10 million rows examined, a minute per rule).
		err := ev.s.forceIndex(ev.s.DB.Model(&Transaction{}), ixTxnMerchantWalk).
			Select("COUNT(*) AS total, COALESCE(SUM(CASE WHEN status = ? THEN 1 ELSE 0 END), 0) AS succeeded", channels.StatusSucceeded).
			Where("merchant_code = ? AND account_id = ? AND kind = ? AND occurred_at >= ? AND occurred_at <= ?",
				a.MerchantCode, a.ID, channels.KindPayment, from, ev.now).Scan(&row).Error
		if err != nil {
			return nil, fmt.Errorf("unable to count payments: %w", err)
		}
		if row.Total < int64(p.MinPayments) || p.MinPercent == nil {
			continue // too few payments to judge
		}
		rate := float64(row.Succeeded) * 100 / float64(row.Total)
		if rate >= *p.MinPercent {
			continue
		}
		rateText := strconv.FormatFloat(rate, 'f', 1, 64)
		minText := strconv.FormatFloat(*p.MinPercent, 'f', -1, 64)
		out = append(out, candidate{f: TriggerFiring{AccountID: a.ID, Subject: accountSubject(a), Link: accountLink(a),
			Title: channels.Textf("Success rate of %s is %s%%", "%s 支付成功率为 %s%%", acctText(a), rateText),
			Body: channels.Textf("%d of %d payments in the last %d minutes succeeded (%s%%), below %s%%.",
				"最近 %[3]d 分钟内 %[2]d 笔支付中 %[1]d 笔成功（%[4]s%%），低于 %[5]s%%。",
				row.Succeeded, row.Total, p.WindowMinutes, rateText, minText),
			Data: map[string]any{"account_id": a.ID, "channel": a.Channel, "payments": row.Total, "succeeded": row.Succeeded,
				"rate_percent": math.Round(rate*10) / 10, "min_percent": *p.MinPercent, "window_minutes": p.WindowMinutes}}})
	}
	return out, nil
}

// largePayments looks at succeeded payments above the amount whose ledger
// row changed since the watermark. It looks a few minutes further back than
// the watermark, for ingests that committed late; the marks keep each
// payment to one firing. After a full batch it goes on from the last row
// next time (by time and id: one import gives its rows the same time).
func (ev *evaluator) largePayments(r *TriggerRule, p TriggerParams, accts []ChannelAccount) ([]candidate, *watermark, error) {
	from := r.CreatedAt
	if r.WatermarkAt != nil {
		from = *r.WatermarkAt
	}
	q := ev.s.DB.Where("merchant_code = ? AND kind = ? AND status = ? AND amount > ?",
		r.MerchantCode, channels.KindPayment, channels.StatusSucceeded, p.Amount)
	if r.WatermarkID != 0 {
		q = q.Where("(updated_at > ? OR (updated_at = ? AND id > ?))", from, from, r.WatermarkID)
	} else {
		// Never before the rule existed: it is about payments from then on.
		from = from.Add(-largePaymentOverlap)
		if from.Before(r.CreatedAt) {
			from = r.CreatedAt
		}
		q = q.Where("updated_at >= ?", from)
	}
	if r.AccountID != nil {
		q = q.Where("account_id = ?", *r.AccountID)
	}
	var rows []Transaction
	if err := q.Order("updated_at, id").Limit(largePaymentBatch).Find(&rows).Error; err != nil {
		return nil, nil, fmt.Errorf("unable to read payments: %w", err)
	}
	wm := &watermark{at: ev.now}
	if len(rows) == largePaymentBatch {
		last := rows[len(rows)-1]
		wm = &watermark{at: last.UpdatedAt, id: last.ID}
	}
	byID := map[uint64]*ChannelAccount{}
	for i := range accts {
		byID[accts[i].ID] = &accts[i]
	}
	var out []candidate
	for _, t := range rows {
		a := byID[t.AccountID]
		if a == nil {
			continue // a disabled account
		}
		amount := Yuan(t.Amount) + " " + t.Currency
		data := map[string]any{"account_id": a.ID, "channel": t.Channel, "transaction_id": t.ID, "channel_ref": t.ChannelRef,
			"merchant_order_no": t.MerchantOrderNo, "amount": t.Amount, "currency": t.Currency, "threshold": p.Amount, "method": t.Method}
		if t.PaidAt != nil {
			data["paid_at"] = t.PaidAt.UTC().Format(time.RFC3339)
		}
		out = append(out, candidate{once: true, f: TriggerFiring{AccountID: a.ID, Subject: "payment:" + idStr(t.ID),
			Link:  "/ledger/" + idStr(t.ID),
			Title: channels.Textf("Large payment of %s", "大额支付 %s", amount),
			Body: channels.Textf("Payment %s (order %s) of %s on %s succeeded, above %s.",
				"%[3]s 上的支付 %[1]s（订单 %[2]s）金额 %[4]s，超过 %[5]s。",
				t.ChannelRef, t.MerchantOrderNo, acctText(a), amount, Yuan(p.Amount)+" "+t.Currency),
			Data: data}})
	}
	return out, wm, nil
}

// watermark is how far large_payment has looked.
type watermark struct {
	at time.Time
	id uint64
}

func (ev *evaluator) notifyRefusals(r *TriggerRule, p TriggerParams, accts []ChannelAccount) ([]candidate, error) {
	from := ev.now.Add(-time.Duration(p.WindowMinutes) * time.Minute)
	var out []candidate
	for i := range accts {
		a := &accts[i]
		var n int64
		if err := ev.s.DB.Model(&NotifyRefusal{}).Where("account_id = ? AND at > ? AND at <= ?", a.ID, from, ev.now).
			Count(&n).Error; err != nil {
			return nil, fmt.Errorf("unable to count refusals: %w", err)
		}
		if p.MaxRefusals == nil || n <= int64(*p.MaxRefusals) {
			continue
		}
		out = append(out, candidate{f: TriggerFiring{AccountID: a.ID, Subject: accountSubject(a), Link: accountLink(a),
			Title: channels.Textf("Notifications for %s are being refused", "%s 的支付通知被拒收", acctText(a)),
			Body: channels.Textf("%d notifications were refused in the last %d minutes (more than %d): check the account's keys and certificates, or look for forged requests in the log.",
				"最近 %[2]d 分钟内有 %[1]d 条通知被拒收（超过 %[3]d 条）：请检查该账户的密钥和证书，或在日志中排查伪造请求。",
				n, p.WindowMinutes, *p.MaxRefusals),
			Data: map[string]any{"account_id": a.ID, "channel": a.Channel, "refusals": n, "max_refusals": *p.MaxRefusals,
				"window_minutes": p.WindowMinutes}}})
	}
	return out, nil
}

// yesterday is the business date before now in the merchant's zone, and
// whether the local time has reached at.
func (ev *evaluator) yesterday(r *TriggerRule, at string) (string, bool) {
	local := ev.now.In(ev.zone(r.MerchantCode))
	mins, ok := hhmm(at)
	if !ok || local.Hour()*60+local.Minute() < mins {
		return "", false
	}
	return local.AddDate(0, 0, -1).Format(time.DateOnly), true
}

func (ev *evaluator) dayRecords(a *ChannelAccount, date string) (int64, error) {
	var n int64
	err := ev.s.DB.Model(&Transaction{}).Where("merchant_code = ? AND biz_date = ? AND account_id = ?", a.MerchantCode, date, a.ID).Count(&n).Error
	if err != nil {
		return 0, fmt.Errorf("unable to count the day's records: %w", err)
	}
	return n, nil
}

// billMissing: PayFuse records no "empty day" (the bill sync only logs that
// the channel has no bill), so a day without any ledger record is not
// judged; a day with records is missing its bill when none of them has a
// statement source.
func (ev *evaluator) billMissing(r *TriggerRule, p TriggerParams, accts []ChannelAccount) ([]candidate, error) {
	date, due := ev.yesterday(r, p.At)
	if !due {
		return nil, nil
	}
	var out []candidate
	for i := range accts {
		a := &accts[i]
		n, err := ev.dayRecords(a, date)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			continue
		}
		var stmt int64
		err = ev.s.DB.Model(&TransactionSource{}).
			Joins("JOIN transactions ON transactions.id = transaction_sources.transaction_id").
			Where("transactions.merchant_code = ? AND transactions.biz_date = ? AND transactions.account_id = ? AND transaction_sources.source = ?",
				a.MerchantCode, date, a.ID, SourceStatement).Count(&stmt).Error
		if err != nil {
			return nil, fmt.Errorf("unable to look for the statement: %w", err)
		}
		if stmt > 0 {
			continue
		}
		var empty int64 // the channel said it has no bill for the day
		if err := ev.s.DB.Model(&ReconDay{}).Where("account_id = ? AND biz_date = ? AND empty_statement = ?", a.ID, date, true).Count(&empty).Error; err != nil {
			return nil, fmt.Errorf("unable to look for an empty day: %w", err)
		}
		if empty > 0 {
			continue
		}
		out = append(out, candidate{f: TriggerFiring{AccountID: a.ID, Subject: accountSubject(a) + ":" + date, Link: "/imports",
			Title: channels.Textf("The %s bill of %s is missing", "%[2]s 的 %[1]s 账单缺失", date, acctText(a)),
			Body: channels.Textf("By %s the ledger has %d records of %s for %s but no statement: download or import the bill.",
				"截至 %[1]s，账本中有 %[4]s 在 %[3]s 的 %[2]d 条记录，但没有对账单：请下载或导入账单。", p.At, n, date, acctText(a)),
			Data: map[string]any{"account_id": a.ID, "channel": a.Channel, "biz_date": date, "records": n, "at": p.At}}})
	}
	return out, nil
}

// reconUnbalanced: a day not reconciled at all counts as not balanced when
// the ledger has records of it; a day with nothing to reconcile is not judged.
func (ev *evaluator) reconUnbalanced(r *TriggerRule, p TriggerParams, accts []ChannelAccount) ([]candidate, error) {
	date, due := ev.yesterday(r, p.At)
	if !due {
		return nil, nil
	}
	var out []candidate
	for i := range accts {
		a := &accts[i]
		var day ReconDay
		err := ev.s.DB.Where("account_id = ? AND biz_date = ?", a.ID, date).First(&day).Error
		status, open, link := "", 0, "/reconcile"
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			n, err := ev.dayRecords(a, date)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				continue
			}
			status = "not_reconciled"
		case err != nil:
			return nil, fmt.Errorf("unable to read the reconciliation day: %w", err)
		case day.Status == ReconBalanced:
			continue
		case day.Status == ReconNoStatement && day.Matched+day.Discrepancies() == 0:
			continue
		default:
			status, open, link = day.Status, day.Open, "/reconcile/days/"+idStr(day.ID)
		}
		why := map[string]channels.Text{
			"not_reconciled": {EN: "it has not been reconciled", ZH: "尚未对账"},
			ReconOpen:        channels.Textf("%d discrepancies are open", "有 %d 项差异未处理", open),
			ReconNoStatement: {EN: "the channel's statement is not in the ledger", ZH: "账本中没有渠道对账单"},
		}[status]
		if why.EN == "" {
			why = channels.Text{EN: status, ZH: status}
		}
		out = append(out, candidate{f: TriggerFiring{AccountID: a.ID, Subject: accountSubject(a) + ":" + date, Link: link,
			Title: channels.Textf("%s of %s is not balanced", "%[2]s 的 %[1]s 对账未平", date, acctText(a)),
			Body: channels.Textf("By %s, the reconciliation of %s for %s is not balanced: %s.",
				"截至 %[1]s，%[3]s 在 %[2]s 的对账未平：%[4]s。", p.At, date, acctText(a), why),
			Data: map[string]any{"account_id": a.ID, "channel": a.Channel, "biz_date": date, "status": status, "open": open, "at": p.At}}})
	}
	return out, nil
}

func (ev *evaluator) certExpiry(r *TriggerRule, p TriggerParams, accts []ChannelAccount) ([]candidate, error) {
	var out []candidate
	for i := range accts {
		a := &accts[i]
		if !a.CertExpiresWithin(ev.now, time.Duration(p.Days)*24*time.Hour) {
			continue
		}
		na := a.CertNotAfter.In(ev.zone(r.MerchantCode)).Format(time.DateOnly)
		title := channels.Textf("The certificate of %s expires on %s", "%s 的证书将于 %s 到期", acctText(a), na)
		if !a.CertNotAfter.After(ev.now) {
			title = channels.Textf("The certificate of %s expired on %s", "%s 的证书已于 %s 过期", acctText(a), na)
		}
		days := int(math.Ceil(a.CertNotAfter.Sub(ev.now).Hours() / 24))
		out = append(out, candidate{f: TriggerFiring{AccountID: a.ID, Subject: accountSubject(a), Link: accountLink(a),
			Title: title,
			Body: channels.Textf("Replace it in the account's credentials before then (warning starts %d days ahead); notifications and bill downloads fail once it has expired.",
				"请在到期前于账户凭据中更换（提前 %d 天提醒）；证书过期后通知验签和账单下载都会失败。", p.Days),
			Data: map[string]any{"account_id": a.ID, "channel": a.Channel, "not_after": a.CertNotAfter.UTC().Format(time.RFC3339),
				"days_left": days, "days": p.Days}}})
	}
	return out, nil
}
