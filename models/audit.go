package models

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Actor is who made a change and from where; every audited store method takes one.
type Actor struct {
	UserID    uint64 // 0 for the system or the CLI
	Name      string // username, "system" or "cli"
	IP        string
	RequestID string
}

// SystemActor is used for changes PayFuse makes by itself (first start, demo data).
var SystemActor = Actor{Name: "system"}

// CLIActor is used for changes made through the command line.
func CLIActor() Actor { return Actor{Name: "cli", IP: "local"} }

// AuditLog is one recorded state change.
type AuditLog struct {
	ID           uint64 `gorm:"primaryKey"`
	At           time.Time
	ActorID      *uint64
	Actor        string
	Action       string
	ObjectType   string
	ObjectID     string
	MerchantCode string
	IP           string
	RequestID    string
	Detail       string
	Before       string
	After        string
}

// AuditEvent describes a change to record; Before and After are any values
// that marshal to JSON objects. Secrets in them are redacted on the way in.
type AuditEvent struct {
	Action       string
	ObjectType   string
	ObjectID     string
	MerchantCode string
	Detail       string
	Before       any
	After        any
}

// Audit actions recorded by the foundation.
const (
	ActLoginSuccess     = "login.success"
	ActLoginFailure     = "login.failure"
	ActLogout           = "logout"
	ActUserLocked       = "user.locked"
	ActUserUnlock       = "user.unlock"
	ActUserCreate       = "user.create"
	ActUserUpdate       = "user.update"
	ActUserDisable      = "user.disable"
	ActUserEnable       = "user.enable"
	ActPasswordReset    = "user.password_reset"
	ActPasswordChange   = "user.password_change"
	ActSessionRevoke    = "session.revoke"
	ActSessionRevokeAll = "session.revoke_all"
	ActLocaleChange     = "user.locale_change"

	ActMerchantCreate     = "merchant.create"
	ActMerchantUpdate     = "merchant.update"
	ActMerchantSuspend    = "merchant.suspend"
	ActMerchantReactivate = "merchant.reactivate"
	ActAccountCreate      = "channel_account.create"
	ActAccountUpdate      = "channel_account.update"
	ActAccountDelete      = "channel_account.delete"
	ActAccountCheck       = "channel_account.check"
	ActKeysRotate         = "keys.rotate"
)

// AuditActions lists the actions the audit page offers as a filter.
var AuditActions = []string{
	ActLoginSuccess, ActLoginFailure, ActLogout, ActUserLocked, ActUserUnlock, ActUserCreate, ActUserUpdate,
	ActUserDisable, ActUserEnable, ActPasswordReset, ActPasswordChange, ActSessionRevoke,
	ActSessionRevokeAll, ActLocaleChange, ActMerchantCreate, ActMerchantUpdate, ActMerchantSuspend,
	ActMerchantReactivate, ActAccountCreate, ActAccountUpdate, ActAccountDelete, ActAccountCheck,
	ActKeysRotate, ActImport, ActMapping, ActLedgerCorrect, ActReconRun, ActReconResolve, ActReconNote, ActRollupRepair, ActAlertAck, ActAlertResolve,
	ActFlowCreate, ActFlowUpdate, ActFlowEnable, ActFlowDisable, ActFlowRun,
	ActTriggerCreate, ActTriggerUpdate, ActTriggerEnable, ActTriggerDisable,
	ActWebhookCreate, ActWebhookRotate, ActWebhookEnable, ActWebhookDisable, ActWebhookDelete,
}

// writeAudit records ev inside tx, so the record commits or rolls back with the change.
func writeAudit(tx *gorm.DB, a Actor, at time.Time, ev AuditEvent) error {
	row := AuditLog{
		At: at, Actor: a.Name, Action: ev.Action, ObjectType: ev.ObjectType, ObjectID: ev.ObjectID,
		MerchantCode: ev.MerchantCode, IP: truncate(a.IP, 64), RequestID: truncate(a.RequestID, 64),
		Detail: truncate(ev.Detail, 500), Before: redactedJSON(ev.Before), After: redactedJSON(ev.After),
	}
	if row.Actor == "" {
		row.Actor = "system"
	}
	if a.UserID != 0 {
		id := a.UserID
		row.ActorID = &id
	}
	if err := tx.Create(&row).Error; err != nil {
		return fmt.Errorf("store: unable to write audit record: %w", err)
	}
	return nil
}

// Audit records an event on its own (for events that change nothing else,
// such as a failed login).
func (s *Store) Audit(a Actor, ev AuditEvent) error {
	return writeAudit(s.DB, a, s.now(), ev)
}

// Redacted is what a secret value becomes in the audit log.
const Redacted = "[redacted]"

// IsSecretField reports whether a field name denotes a secret that must never
// be recorded: passwords, keys, tokens and the like. Fingerprints and key ids
// are not secrets.
func IsSecretField(name string) bool {
	n := strings.ToLower(name)
	if strings.HasSuffix(n, "fingerprint") || strings.HasSuffix(n, "key_id") || strings.HasSuffix(n, "_set") ||
		strings.HasSuffix(n, "_at") || strings.HasPrefix(n, "must_change") {
		return false
	}
	for _, w := range []string{"password", "passwd", "secret", "token", "private", "apiv3", "pfx", "hash", "csrf", "cookie"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return n == "key" || strings.HasSuffix(n, "_key")
}

// redactedJSON marshals v with every secret field replaced, at any depth.
func redactedJSON(v any) string {
	if v == nil {
		return ""
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return ""
	}
	out, _ := json.Marshal(redact(generic))
	return string(out)
}

func redact(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			switch val.(type) {
			case bool, float64, nil:
				// A flag, a count or nothing cannot hold a secret.
			default:
				if IsSecretField(k) {
					t[k] = Redacted
					continue
				}
				t[k] = redact(val)
			}
		}
		return t
	case []any:
		for i := range t {
			t[i] = redact(t[i])
		}
		return t
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// cut on a rune boundary
	for n > 0 && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n]
}

// AuditFilter selects audit records; zero fields do not filter.
type AuditFilter struct {
	Actor  string
	Action string
	From   time.Time // inclusive, UTC
	To     time.Time // exclusive, UTC
	Before uint64    // keyset cursor: records with id < Before
	Limit  int
}

// AuditPage is one page of audit records, newest first.
type AuditPage struct {
	Rows       []AuditLog
	NextBefore uint64 // 0 when there is no older page
}

// ListAudit returns audit records newest first using keyset pagination on id.
func (s *Store) ListAudit(f AuditFilter) (AuditPage, error) {
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	q := s.DB.Model(&AuditLog{})
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if !f.From.IsZero() {
		q = q.Where("at >= ?", f.From.UTC())
	}
	if !f.To.IsZero() {
		q = q.Where("at < ?", f.To.UTC())
	}
	if f.Before > 0 {
		q = q.Where("id < ?", f.Before)
	}
	var rows []AuditLog
	if err := q.Order("id DESC").Limit(f.Limit + 1).Find(&rows).Error; err != nil {
		return AuditPage{}, fmt.Errorf("store: unable to list audit records: %w", err)
	}
	page := AuditPage{Rows: rows}
	if len(rows) > f.Limit {
		page.Rows = rows[:f.Limit]
		page.NextBefore = page.Rows[f.Limit-1].ID
	}
	return page, nil
}

func idStr(id uint64) string { return strconv.FormatUint(id, 10) }
