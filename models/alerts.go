package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"payfuse/channels"
)

// Alert statuses: raised alerts wait in the inbox until someone
// acknowledges them (seen, being handled) and then resolves them.
const (
	AlertOpen         = "open"
	AlertAcknowledged = "acknowledged"
	AlertResolved     = "resolved"
)

// Alert severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// AlertStatuses and AlertSeverities list the values, in display order.
var (
	AlertStatuses   = []string{AlertOpen, AlertAcknowledged, AlertResolved}
	AlertSeverities = []string{SeverityCritical, SeverityWarning, SeverityInfo}
)

// Audit actions of the alert inbox.
const (
	ActAlertAck     = "alert.acknowledge"
	ActAlertResolve = "alert.resolve"
)

// Alert is one thing that needs a person: a flow that keeps failing, a
// trigger rule that fired. Title and Body hold channels.Text JSON (both
// languages), written when the alert is raised.
type Alert struct {
	ID             uint64 `gorm:"primaryKey"`
	MerchantCode   string // "" for alerts about PayFuse itself (admins see them)
	Source         string // flow, trigger, system
	SourceID       uint64
	Kind           string // what raised it, e.g. flow_failed, success_rate, cert_expiry
	Severity       string
	DedupeKey      string // one open alert per key: a repeat bumps Count
	Title          string
	Body           string
	Link           string // where in the console to look
	Status         string
	Count          int // times raised while not resolved
	FirstAt        time.Time
	LastAt         time.Time
	AcknowledgedBy string
	AcknowledgedAt *time.Time
	ResolvedBy     string
	ResolvedAt     *time.Time
	ResolveNote    string
}

// TitleText and BodyText decode the stored texts.
func (a *Alert) TitleText() channels.Text { return decodeText(a.Title) }
func (a *Alert) BodyText() channels.Text  { return decodeText(a.Body) }

func decodeText(s string) channels.Text {
	var t channels.Text
	if json.Unmarshal([]byte(s), &t) != nil {
		t = channels.Text{EN: s, ZH: s}
	}
	return t
}

func encodeText(t channels.Text) string {
	b, _ := json.Marshal(t)
	return string(b)
}

// RaiseInput is an alert to raise.
type RaiseInput struct {
	MerchantCode string
	Source       string
	SourceID     uint64
	Kind         string
	Severity     string
	DedupeKey    string // required: the same key while unresolved is the same alert
	Title, Body  channels.Text
	Link         string
}

// RaiseAlert opens an alert, or — when one with the same dedupe key is not
// resolved yet — counts the repeat on it and refreshes its text, so a
// condition that persists does not flood the inbox. It reports whether a
// new alert was opened (for actions that should run once, like a webhook).
func (s *Store) RaiseAlert(in RaiseInput) (*Alert, bool, error) {
	if in.DedupeKey == "" || in.Kind == "" {
		return nil, false, errors.New("alerts: an alert needs a kind and a dedupe key")
	}
	if in.Severity == "" {
		in.Severity = SeverityWarning
	}
	var out Alert
	created := false
	err := s.Tx(func(tx *gorm.DB) error {
		now := s.now()
		var cur Alert
		err := tx.Clauses(lockingFor(s)...).Where("dedupe_key = ? AND status <> ?", truncate(in.DedupeKey, 191), AlertResolved).
			Order("id DESC").First(&cur).Error
		switch {
		case err == nil:
			cur.Count++
			cur.LastAt = now
			cur.Title, cur.Body, cur.Severity = encodeText(in.Title), encodeText(in.Body), in.Severity
			if err := tx.Model(&Alert{}).Where("id = ?", cur.ID).Updates(map[string]any{
				"count": cur.Count, "last_at": now, "title": cur.Title, "body": cur.Body, "severity": cur.Severity,
			}).Error; err != nil {
				return err
			}
			out = cur
			return nil
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return err
		}
		out = Alert{MerchantCode: in.MerchantCode, Source: in.Source, SourceID: in.SourceID, Kind: truncate(in.Kind, 32),
			Severity: in.Severity, DedupeKey: truncate(in.DedupeKey, 191), Title: encodeText(in.Title), Body: encodeText(in.Body),
			Link: truncate(in.Link, 255), Status: AlertOpen, Count: 1, FirstAt: now, LastAt: now}
		created = true
		return tx.Create(&out).Error
	})
	if err != nil {
		return nil, false, fmt.Errorf("alerts: unable to raise %s: %w", in.Kind, err)
	}
	return &out, created, nil
}

func lockingFor(s *Store) []clause.Expression {
	if s.Dialect == MySQL {
		return []clause.Expression{clause.Locking{Strength: "UPDATE"}}
	}
	return nil
}

// alertScope is who sees an alert: merchant alerts by merchant scope,
// PayFuse's own (no merchant) only by admins.
func alertScope(scope Scope) func(*gorm.DB) *gorm.DB {
	return func(db *gorm.DB) *gorm.DB {
		if scope.All {
			return db
		}
		return db.Scopes(scope.Filter("merchant_code"))
	}
}

// AlertFilter selects alerts.
type AlertFilter struct {
	Status   string // "" for open and acknowledged
	Severity string
	Limit    int
}

// ListAlerts returns alerts in scope, most recent first.
func (s *Store) ListAlerts(scope Scope, f AlertFilter) ([]Alert, error) {
	q := s.DB.Scopes(alertScope(scope))
	if f.Status == "" {
		q = q.Where("status <> ?", AlertResolved)
	} else {
		q = q.Where("status = ?", f.Status)
	}
	if f.Severity != "" {
		q = q.Where("severity = ?", f.Severity)
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 200
	}
	var out []Alert
	if err := q.Order("last_at DESC, id DESC").Limit(f.Limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("alerts: unable to list: %w", err)
	}
	return out, nil
}

// CountOpenAlerts counts the open (not yet acknowledged) alerts in scope, for
// the navigation badge.
func (s *Store) CountOpenAlerts(scope Scope) (int64, error) {
	var n int64
	err := s.DB.Model(&Alert{}).Scopes(alertScope(scope)).Where("status = ?", AlertOpen).Count(&n).Error
	return n, err
}

// GetAlert returns an alert in scope.
func (s *Store) GetAlert(scope Scope, id uint64) (*Alert, error) {
	var a Alert
	if err := s.DB.Scopes(alertScope(scope)).First(&a, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &a, nil
}

// ErrAlertResolved is returned when acknowledging a resolved alert.
var ErrAlertResolved = errors.New("err.alert_resolved")

// AcknowledgeAlert marks an open alert as seen by a (audited). It is a
// no-op on an acknowledged one.
func (s *Store) AcknowledgeAlert(a Actor, scope Scope, id uint64) (*Alert, error) {
	return s.changeAlert(a, scope, id, func(al *Alert, now time.Time) (map[string]any, string, error) {
		switch al.Status {
		case AlertResolved:
			return nil, "", ErrAlertResolved
		case AlertAcknowledged:
			return nil, "", nil
		}
		al.Status, al.AcknowledgedBy, al.AcknowledgedAt = AlertAcknowledged, truncate(a.Name, 64), &now
		return map[string]any{"status": al.Status, "acknowledged_by": al.AcknowledgedBy, "acknowledged_at": now}, ActAlertAck, nil
	})
}

// ResolveAlert closes an alert with an optional note (audited). A later
// occurrence of the same condition opens a new alert.
func (s *Store) ResolveAlert(a Actor, scope Scope, id uint64, note string) (*Alert, error) {
	note = strings.TrimSpace(note)
	if len(note) > 1000 {
		return nil, FieldErrors{"note": "err.alert_note_long"}
	}
	return s.changeAlert(a, scope, id, func(al *Alert, now time.Time) (map[string]any, string, error) {
		if al.Status == AlertResolved {
			return nil, "", nil
		}
		al.Status, al.ResolvedBy, al.ResolvedAt, al.ResolveNote = AlertResolved, truncate(a.Name, 64), &now, note
		return map[string]any{"status": al.Status, "resolved_by": al.ResolvedBy, "resolved_at": now, "resolve_note": note}, ActAlertResolve, nil
	})
}

func (s *Store) changeAlert(a Actor, scope Scope, id uint64, change func(*Alert, time.Time) (map[string]any, string, error)) (*Alert, error) {
	var out Alert
	err := s.Tx(func(tx *gorm.DB) error {
		var al Alert
		if err := tx.Clauses(lockingFor(s)...).Scopes(alertScope(scope)).First(&al, id).Error; err != nil {
			return notFound(err)
		}
		before := al.Status
		now := s.now()
		upd, action, err := change(&al, now)
		if err != nil {
			return err
		}
		out = al
		if upd == nil {
			return nil
		}
		if err := tx.Model(&Alert{}).Where("id = ?", al.ID).Updates(upd).Error; err != nil {
			return err
		}
		return writeAudit(tx, a, now, AuditEvent{Action: action, ObjectType: "alert", ObjectID: idStr(al.ID), MerchantCode: al.MerchantCode,
			Detail: truncate(al.Kind+": "+al.TitleText().EN, 500), Before: map[string]any{"status": before}, After: map[string]any{"status": al.Status}})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}
