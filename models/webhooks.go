package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	mysqldriver "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"payfuse/channels"
	"payfuse/flows/webhook"
)

// Webhook delivery statuses: pending until a 2xx answer (delivered) or
// until retrying cannot help or webhook.GiveUpAfter has passed (failed).
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// DeliveryStatuses lists the delivery statuses in display order.
var DeliveryStatuses = []string{DeliveryPending, DeliveryDelivered, DeliveryFailed}

// Audit actions of webhook endpoints. Deliveries are recorded in their own
// log, not in the audit log.
const (
	ActWebhookCreate  = "webhook.create"
	ActWebhookRotate  = "webhook.rotate_secret"
	ActWebhookEnable  = "webhook.enable"
	ActWebhookDisable = "webhook.disable"
	ActWebhookDelete  = "webhook.delete"
)

// Reasons a delivery fails without an attempt (WebhookDelivery.LastReason).
const (
	DeliveryReasonDisabled = "endpoint_disabled"
	DeliveryReasonDeleted  = "endpoint_deleted"
)

// WebhookEndpoint is where a merchant's webhooks go. Its signing secret is
// sealed (SecretSealed, under the endpoint's own data key) and shown to the
// user once, when it is generated; lists never load it.
type WebhookEndpoint struct {
	ID              uint64 `gorm:"primaryKey"`
	MerchantCode    string
	Name            string
	URL             string `gorm:"column:url"`
	SecretSealed    []byte `json:"-"`
	DataKeyID       uint64
	Enabled         bool
	SecretRotatedAt *time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
	CreatedBy       string
	UpdatedBy       string
}

// SafeURL is the URL without its query and fragment, which may carry a
// token: what the audit log and logs show.
func (e *WebhookEndpoint) SafeURL() string { return safeURL(e.URL) }

func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// WebhookDelivery is one webhook to send: the event and its JSON payload,
// and how its attempts went. DeliveryID is the X-PayFuse-Delivery header,
// the same on every retry so receivers can drop repeats.
type WebhookDelivery struct {
	ID             uint64 `gorm:"primaryKey"`
	MerchantCode   string
	EndpointID     uint64
	RuleID         *uint64
	DeliveryID     string
	Event          string
	Payload        string
	Status         string
	Attempts       int
	FirstAttemptAt *time.Time
	NextAttemptAt  *time.Time // when it is due; nil once delivered or failed
	LastAttemptAt  *time.Time
	LastStatusCode int
	LastReason     string // webhook reason of the last failed attempt ("" when delivered)
	LastError      string // JSON channels.Text
	LastResponse   string // the start of the receiver's last answer
	CreatedAt      time.Time
	DeliveredAt    *time.Time
}

// LastErrorText is why the last attempt did not deliver, in both languages.
func (d *WebhookDelivery) LastErrorText() channels.Text {
	if d.LastError == "" {
		return channels.Text{}
	}
	return decodeText(d.LastError)
}

// WebhookInput is what a form gives for a new endpoint.
type WebhookInput struct {
	MerchantCode string
	Name         string
	URL          string
	Enabled      bool
}

func webhookSecretAAD(id uint64, merchant string) string {
	return "payfuse webhook secret v1|" + idStr(id) + "|" + merchant
}

func webhookView(e *WebhookEndpoint) map[string]any {
	return map[string]any{"merchant": e.MerchantCode, "name": e.Name, "url": e.SafeURL(), "enabled": e.Enabled}
}

// endpointColumns are the columns lists read: never the sealed secret.
var endpointColumns = []string{"id", "merchant_code", "name", "url", "data_key_id", "enabled", "secret_rotated_at",
	"created_at", "updated_at", "created_by", "updated_by"}

// CreateWebhookEndpoint stores a new endpoint with a fresh signing secret,
// audited, and returns the secret in plain text: the only time it is shown,
// for the user to copy into the receiver. The URL must pass webhook.Validate
// against allow (the platform allow-list); a refused URL is the field error
// "webhook.err_url" — webhook.Validate gives the reason in both languages.
func (s *Store) CreateWebhookEndpoint(a Actor, scope Scope, in WebhookInput, allow webhook.AllowList) (*WebhookEndpoint, string, error) {
	if s.Vault == nil {
		return nil, "", ErrNoMasterKey
	}
	in.MerchantCode = strings.ToUpper(strings.TrimSpace(in.MerchantCode))
	in.Name = strings.TrimSpace(in.Name)
	in.URL = strings.TrimSpace(in.URL)
	now := s.now()
	var out *WebhookEndpoint
	secret := webhook.NewSecret()
	err := s.Tx(func(tx *gorm.DB) error {
		errs := FieldErrors{}
		if in.Name == "" || utf8.RuneCountInString(in.Name) > 64 {
			errs["name"] = "webhook.err_name"
		}
		if !scope.Allows(in.MerchantCode) {
			errs["merchant"] = "webhook.err_merchant"
		} else if n, err := countWhere(tx, &Merchant{}, "code = ?", in.MerchantCode); err != nil {
			return err
		} else if n == 0 {
			errs["merchant"] = "webhook.err_merchant"
		}
		if err := webhook.Validate(in.URL, allow); err != nil {
			errs["url"] = "webhook.err_url"
		}
		if len(errs) > 0 {
			return errs
		}
		dkID, dk, err := s.Vault.newDataKey(tx, now)
		if err != nil {
			return err
		}
		defer clear(dk)
		e := &WebhookEndpoint{MerchantCode: in.MerchantCode, Name: in.Name, URL: in.URL, SecretSealed: []byte{0}, DataKeyID: dkID,
			Enabled: in.Enabled, CreatedAt: now, UpdatedAt: now, CreatedBy: truncate(a.Name, 64), UpdatedBy: truncate(a.Name, 64)}
		if err := tx.Create(e).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return FieldErrors{"name": "webhook.err_name_taken"}
			}
			return fmt.Errorf("webhooks: unable to create endpoint: %w", err)
		}
		sealed, err := seal(dk, webhookSecretAAD(e.ID, e.MerchantCode), []byte(secret))
		if err != nil {
			return err
		}
		if err := tx.Model(&WebhookEndpoint{}).Where("id = ?", e.ID).Update("secret_sealed", sealed).Error; err != nil {
			return fmt.Errorf("webhooks: unable to store the secret: %w", err)
		}
		e.SecretSealed = nil
		out = e
		return writeAudit(tx, a, now, AuditEvent{Action: ActWebhookCreate, ObjectType: "webhook_endpoint", ObjectID: idStr(e.ID),
			MerchantCode: e.MerchantCode, Detail: e.Name + " → " + e.SafeURL(), After: webhookView(e)})
	})
	if err != nil {
		return nil, "", err
	}
	return out, secret, nil
}

func countWhere(tx *gorm.DB, model any, where string, args ...any) (int64, error) {
	var n int64
	if err := tx.Model(model).Where(where, args...).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("store: unable to count: %w", err)
	}
	return n, nil
}

// ListWebhookEndpoints returns the endpoints in scope (merchant "" for all of
// it), by merchant and name, without their secrets.
func (s *Store) ListWebhookEndpoints(scope Scope, merchant string) ([]WebhookEndpoint, error) {
	q := s.DB.Select(endpointColumns).Scopes(scope.Filter("merchant_code"))
	if merchant != "" {
		q = q.Where("merchant_code = ?", merchant)
	}
	var out []WebhookEndpoint
	if err := q.Order("merchant_code, name, id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("webhooks: unable to list endpoints: %w", err)
	}
	return out, nil
}

// GetWebhookEndpoint returns an endpoint in scope, without its secret.
func (s *Store) GetWebhookEndpoint(scope Scope, id uint64) (*WebhookEndpoint, error) {
	var e WebhookEndpoint
	if err := s.DB.Select(endpointColumns).Scopes(scope.Filter("merchant_code")).First(&e, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &e, nil
}

// changeEndpoint loads endpoint id in scope for update and runs change
// inside the same transaction.
func (s *Store) changeEndpoint(scope Scope, id uint64, change func(tx *gorm.DB, e *WebhookEndpoint, now time.Time) error) (*WebhookEndpoint, error) {
	var out WebhookEndpoint
	err := s.Tx(func(tx *gorm.DB) error {
		var e WebhookEndpoint
		if err := s.forUpdate(tx).Scopes(scope.Filter("merchant_code")).First(&e, id).Error; err != nil {
			return notFound(err)
		}
		if err := change(tx, &e, s.now()); err != nil {
			return err
		}
		e.SecretSealed = nil
		out = e
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateWebhookSecret replaces an endpoint's signing secret, audited, and
// returns the new one in plain text (shown once). Deliveries still pending
// are signed with the new secret from their next attempt on.
func (s *Store) RotateWebhookSecret(a Actor, scope Scope, id uint64) (string, error) {
	if s.Vault == nil {
		return "", ErrNoMasterKey
	}
	secret := webhook.NewSecret()
	_, err := s.changeEndpoint(scope, id, func(tx *gorm.DB, e *WebhookEndpoint, now time.Time) error {
		dk, err := s.Vault.dataKey(tx, e.DataKeyID)
		if err != nil {
			return err
		}
		defer clear(dk)
		sealed, err := seal(dk, webhookSecretAAD(e.ID, e.MerchantCode), []byte(secret))
		if err != nil {
			return err
		}
		if err := tx.Model(&WebhookEndpoint{}).Where("id = ?", e.ID).Updates(map[string]any{
			"secret_sealed": sealed, "secret_rotated_at": now, "updated_at": now, "updated_by": truncate(a.Name, 64),
		}).Error; err != nil {
			return fmt.Errorf("webhooks: unable to store the secret: %w", err)
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActWebhookRotate, ObjectType: "webhook_endpoint", ObjectID: idStr(e.ID),
			MerchantCode: e.MerchantCode, Detail: e.Name + ": signing secret replaced"})
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// failPending ends an endpoint's pending deliveries with reason: they would
// otherwise wait unseen.
func failPending(tx *gorm.DB, endpointID uint64, reason string, msg channels.Text) error {
	if err := tx.Model(&WebhookDelivery{}).Where("endpoint_id = ? AND status = ?", endpointID, DeliveryPending).Updates(map[string]any{
		"status": DeliveryFailed, "next_attempt_at": nil, "last_reason": reason, "last_error": encodeText(msg),
	}).Error; err != nil {
		return fmt.Errorf("webhooks: unable to end pending deliveries: %w", err)
	}
	return nil
}

// SetWebhookEnabled enables or disables an endpoint, audited. Disabling
// fails its pending deliveries (visibly, in the delivery log); while it is
// disabled, no deliveries are queued for it.
func (s *Store) SetWebhookEnabled(a Actor, scope Scope, id uint64, enabled bool) (*WebhookEndpoint, error) {
	return s.changeEndpoint(scope, id, func(tx *gorm.DB, e *WebhookEndpoint, now time.Time) error {
		if e.Enabled == enabled {
			return nil
		}
		e.Enabled, e.UpdatedAt, e.UpdatedBy = enabled, now, truncate(a.Name, 64)
		if err := tx.Model(&WebhookEndpoint{}).Where("id = ?", e.ID).Updates(map[string]any{
			"enabled": enabled, "updated_at": now, "updated_by": e.UpdatedBy,
		}).Error; err != nil {
			return fmt.Errorf("webhooks: unable to change endpoint: %w", err)
		}
		action := ActWebhookEnable
		if !enabled {
			action = ActWebhookDisable
			if err := failPending(tx, e.ID, DeliveryReasonDisabled, channels.Text{
				EN: "Not sent: the endpoint was disabled.", ZH: "未发送：该端点已停用。"}); err != nil {
				return err
			}
		}
		return writeAudit(tx, a, now, AuditEvent{Action: action, ObjectType: "webhook_endpoint", ObjectID: idStr(e.ID),
			MerchantCode: e.MerchantCode, Detail: e.Name, Before: map[string]any{"enabled": !enabled}, After: map[string]any{"enabled": enabled}})
	})
}

// DeleteWebhookEndpoint removes an endpoint and its sealed secret, audited.
// A rule that still names it keeps it: the field error "webhook.err_in_use"
// asks for the rules to be changed first. Its delivery log stays; pending
// deliveries fail.
func (s *Store) DeleteWebhookEndpoint(a Actor, scope Scope, id uint64) error {
	_, err := s.changeEndpoint(scope, id, func(tx *gorm.DB, e *WebhookEndpoint, now time.Time) error {
		n, err := countWhere(tx, &TriggerRule{}, "webhook_endpoint_id = ?", e.ID)
		if err != nil {
			return err
		}
		if n > 0 {
			return FieldErrors{"endpoint": "webhook.err_in_use"}
		}
		if err := failPending(tx, e.ID, DeliveryReasonDeleted, channels.Text{
			EN: "Not sent: the endpoint was deleted.", ZH: "未发送：该端点已删除。"}); err != nil {
			return err
		}
		if err := tx.Delete(&WebhookEndpoint{}, e.ID).Error; err != nil {
			return fmt.Errorf("webhooks: unable to delete endpoint: %w", err)
		}
		if err := tx.Delete(&DataKey{}, e.DataKeyID).Error; err != nil {
			return fmt.Errorf("webhooks: unable to delete the endpoint's data key: %w", err)
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActWebhookDelete, ObjectType: "webhook_endpoint", ObjectID: idStr(e.ID),
			MerchantCode: e.MerchantCode, Detail: e.Name, Before: webhookView(e)})
	})
	return err
}

// WebhookTarget is what the sender needs for a delivery: the endpoint's URL
// and unsealed secret. It must never reach a page, a log or the audit log.
type WebhookTarget struct {
	URL     string
	Secret  []byte
	Enabled bool
}

// WebhookTargetOf unseals endpoint id's secret for sending.
func (s *Store) WebhookTargetOf(id uint64) (*WebhookTarget, error) {
	if s.Vault == nil {
		return nil, ErrNoMasterKey
	}
	var e WebhookEndpoint
	if err := s.DB.First(&e, id).Error; err != nil {
		return nil, notFound(err)
	}
	dk, err := s.Vault.dataKey(s.DB, e.DataKeyID)
	if err != nil {
		return nil, err
	}
	defer clear(dk)
	secret, err := unseal(dk, webhookSecretAAD(e.ID, e.MerchantCode), e.SecretSealed)
	if err != nil {
		return nil, err
	}
	return &WebhookTarget{URL: e.URL, Secret: secret, Enabled: e.Enabled}, nil
}

// DeliveryInput is a webhook to queue.
type DeliveryInput struct {
	EndpointID uint64
	RuleID     uint64 // 0 when no rule sent it
	Event      string // e.g. payment.large
	Payload    []byte // a JSON value, at most webhook.MaxPayload bytes
}

// ErrEndpointDisabled is returned when queueing a delivery for a disabled endpoint.
var ErrEndpointDisabled = errors.New("webhook.err_disabled")

// EnqueueDelivery queues a delivery to an enabled endpoint, due now, with a
// fresh delivery id that every retry keeps.
func (s *Store) EnqueueDelivery(in DeliveryInput) (*WebhookDelivery, error) {
	if !json.Valid(in.Payload) || len(in.Payload) > webhook.MaxPayload {
		return nil, errors.New("webhooks: the payload is not JSON or is too large")
	}
	if in.Event == "" || len(in.Event) > 64 {
		return nil, errors.New("webhooks: a delivery needs an event name of at most 64 bytes")
	}
	var e WebhookEndpoint
	if err := s.DB.Select("id", "merchant_code", "enabled").First(&e, in.EndpointID).Error; err != nil {
		return nil, fmt.Errorf("webhooks: endpoint %d: %w", in.EndpointID, notFound(err))
	}
	if !e.Enabled {
		return nil, ErrEndpointDisabled
	}
	now := s.now()
	d := &WebhookDelivery{MerchantCode: e.MerchantCode, EndpointID: e.ID, DeliveryID: webhook.NewDeliveryID(), Event: in.Event,
		Payload: string(in.Payload), Status: DeliveryPending, NextAttemptAt: &now, CreatedAt: now}
	if in.RuleID != 0 {
		id := in.RuleID
		d.RuleID = &id
	}
	if err := s.DB.Create(d).Error; err != nil {
		return nil, fmt.Errorf("webhooks: unable to queue delivery: %w", err)
	}
	return d, nil
}

// DueDeliveries returns up to limit pending deliveries due at now, the
// longest waiting first; merchants, when given, restrict them.
func (s *Store) DueDeliveries(now time.Time, limit int, merchants ...string) ([]WebhookDelivery, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q := s.DB.Where("status = ? AND next_attempt_at <= ?", DeliveryPending, now.UTC())
	if len(merchants) > 0 {
		q = q.Where("merchant_code IN ?", merchants)
	}
	var out []WebhookDelivery
	if err := q.Order("next_attempt_at, id").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("webhooks: unable to read due deliveries: %w", err)
	}
	return out, nil
}

// ClaimDelivery takes a due delivery for one attempt: it moves its due time
// to now+hold, so no other sender picks it up meanwhile (and, should this
// one die, it becomes due again then). false: someone else took it.
func (s *Store) ClaimDelivery(id uint64, now time.Time, hold time.Duration) (bool, error) {
	now = now.UTC()
	var claimed bool
	err := retryDeadlock(func() error {
		res := s.DB.Model(&WebhookDelivery{}).Where("id = ? AND status = ? AND next_attempt_at <= ?", id, DeliveryPending, now).
			Update("next_attempt_at", now.Add(hold))
		claimed = res.RowsAffected == 1
		return res.Error
	})
	if err != nil {
		return false, fmt.Errorf("webhooks: unable to claim delivery %d: %w", id, err)
	}
	return claimed, nil
}

// retryDeadlock runs fn again when MySQL chose it as a deadlock victim
// (senders claiming and recording different deliveries at once can meet
// on the due index); the statement was rolled back, so running it again is safe.
func retryDeadlock(fn func() error) error {
	var err error
	for try := 0; try < 4; try++ {
		if err = fn(); err == nil {
			return nil
		}
		var me *mysqldriver.MySQLError
		if !errors.As(err, &me) || (me.Number != 1213 && me.Number != 1205) {
			return err
		}
		time.Sleep(time.Duration(try+1) * 10 * time.Millisecond)
	}
	return err
}

// RecordAttempt records attempt at of delivery id and moves it on: a 2xx
// delivers it; a failure worth retrying schedules the next attempt (backoff
// with jitter, rnd may be nil) unless webhook.GiveUpAfter has passed since
// the first attempt; anything else fails it for good.
func (s *Store) RecordAttempt(id uint64, at webhook.Attempt, rnd *rand.Rand) (*WebhookDelivery, error) {
	var out WebhookDelivery
	err := retryDeadlock(func() error {
		return s.Tx(func(tx *gorm.DB) error {
			var d WebhookDelivery
			if err := s.forUpdate(tx).First(&d, id).Error; err != nil {
				return notFound(err)
			}
			if d.Status != DeliveryPending {
				out = d
				return nil
			}
			start := at.Start.UTC()
			if start.IsZero() {
				start = s.now()
			}
			end := start.Add(at.Duration)
			d.Attempts++
			if d.FirstAttemptAt == nil {
				d.FirstAttemptAt = &start
			}
			d.LastAttemptAt, d.LastStatusCode, d.LastResponse = &start, at.StatusCode, at.Response
			d.LastReason, d.LastError = "", ""
			d.NextAttemptAt = nil
			switch at.Outcome {
			case webhook.Delivered:
				d.Status, d.DeliveredAt = DeliveryDelivered, &end
			default:
				d.LastReason, d.LastError = truncate(at.Reason, 32), encodeText(at.Error)
				if next, ok := at.NextAt(d.Attempts, *d.FirstAttemptAt, rnd); ok {
					d.Status, d.NextAttemptAt = DeliveryPending, &next
				} else {
					d.Status = DeliveryFailed
					if at.Outcome == webhook.Retry {
						d.LastError = encodeText(channels.Text{
							EN: at.Error.EN + fmt.Sprintf(" Given up: not delivered within %s of the first attempt.", webhook.GiveUpAfter),
							ZH: at.Error.ZH + fmt.Sprintf("已放弃：首次尝试后 %s 内未能送达。", webhook.GiveUpAfter)})
					}
				}
			}
			out = d
			return tx.Model(&WebhookDelivery{}).Where("id = ?", d.ID).Updates(map[string]any{
				"status": d.Status, "attempts": d.Attempts, "first_attempt_at": d.FirstAttemptAt, "next_attempt_at": d.NextAttemptAt,
				"last_attempt_at": d.LastAttemptAt, "last_status_code": d.LastStatusCode, "last_reason": d.LastReason,
				"last_error": d.LastError, "last_response": d.LastResponse, "delivered_at": d.DeliveredAt,
			}).Error
		})
	})
	if err != nil {
		return nil, fmt.Errorf("webhooks: unable to record the attempt of delivery %d: %w", id, err)
	}
	return &out, nil
}

// DeliveryFilter selects deliveries for the delivery log; zero fields do not filter.
type DeliveryFilter struct {
	EndpointID uint64
	Status     string
	BeforeID   uint64 // for paging: deliveries older than this one
	Limit      int
}

// ListDeliveries returns deliveries in scope, newest first.
func (s *Store) ListDeliveries(scope Scope, f DeliveryFilter) ([]WebhookDelivery, error) {
	q := s.DB.Scopes(scope.Filter("merchant_code"))
	if f.EndpointID != 0 {
		q = q.Where("endpoint_id = ?", f.EndpointID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.BeforeID != 0 {
		q = q.Where("id < ?", f.BeforeID)
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	var out []WebhookDelivery
	if err := q.Order("id DESC").Limit(f.Limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("webhooks: unable to list deliveries: %w", err)
	}
	return out, nil
}

// GetDelivery returns a delivery in scope.
func (s *Store) GetDelivery(scope Scope, id uint64) (*WebhookDelivery, error) {
	var d WebhookDelivery
	if err := s.DB.Scopes(scope.Filter("merchant_code")).First(&d, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &d, nil
}
