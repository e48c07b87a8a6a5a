package models

import (
	"time"

	"gorm.io/gorm"
)

// --- 0008: frozen snapshots ---

// m0008TriggerRule is an event-trigger rule: a condition (kind, params) on
// one channel account or all of a merchant's, and what to do when it holds
// (an alert, a webhook). watermark_at is how far large_payment has looked.
type m0008TriggerRule struct {
	ID                uint64 `gorm:"primaryKey"`
	Name              string `gorm:"size:64;not null;uniqueIndex:ux_trigger_rules_name,priority:2"`
	MerchantCode      string `gorm:"size:32;not null;uniqueIndex:ux_trigger_rules_name,priority:1"`
	AccountID         *uint64
	Kind              string  `gorm:"size:32;not null"`
	Params            string  `gorm:"type:text"`
	Severity          string  `gorm:"size:16;not null"`
	Alert             bool    `gorm:"not null;default:true"`
	WebhookEndpointID *uint64 `gorm:"index:ix_trigger_rules_endpoint"`
	Enabled           bool    `gorm:"not null;default:false;index:ix_trigger_rules_enabled"`
	CooldownMinutes   int     `gorm:"not null;default:60"`
	LastFiredAt       *time.Time
	WatermarkAt       *time.Time
	WatermarkID       uint64 `gorm:"not null;default:0"`
	CreatedAt         time.Time
	UpdatedAt         time.Time
	CreatedBy         string `gorm:"size:64;not null;default:''"`
	UpdatedBy         string `gorm:"size:64;not null;default:''"`
}

func (m0008TriggerRule) TableName() string { return "trigger_rules" }

// m0008TriggerMark remembers that a rule fired for a subject (an account, an
// account's day, a payment): the cooldown is read from it, and the unique
// key makes "once per payment" hold whatever evaluators race.
type m0008TriggerMark struct {
	ID      uint64    `gorm:"primaryKey"`
	RuleID  uint64    `gorm:"not null;uniqueIndex:ux_trigger_marks,priority:1"`
	Subject string    `gorm:"size:64;not null;uniqueIndex:ux_trigger_marks,priority:2"`
	FiredAt time.Time `gorm:"not null;index:ix_trigger_marks_fired"`
}

func (m0008TriggerMark) TableName() string { return "trigger_marks" }

// m0008WebhookEndpoint is where a merchant's webhooks go. The signing secret
// is sealed under the endpoint's own data key.
type m0008WebhookEndpoint struct {
	ID              uint64 `gorm:"primaryKey"`
	MerchantCode    string `gorm:"size:32;not null;uniqueIndex:ux_webhook_endpoints_name,priority:1"`
	Name            string `gorm:"size:64;not null;uniqueIndex:ux_webhook_endpoints_name,priority:2"`
	URL             string `gorm:"column:url;size:2048;not null"`
	SecretSealed    []byte `gorm:"not null"`
	DataKeyID       uint64 `gorm:"not null"`
	Enabled         bool   `gorm:"not null;default:true"`
	SecretRotatedAt *time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
	CreatedBy       string `gorm:"size:64;not null;default:''"`
	UpdatedBy       string `gorm:"size:64;not null;default:''"`
}

func (m0008WebhookEndpoint) TableName() string { return "webhook_endpoints" }

// m0008WebhookDelivery is one webhook to send and how its attempts went.
// ix_webhook_deliveries_due serves the sender's poll for due deliveries.
type m0008WebhookDelivery struct {
	ID             uint64  `gorm:"primaryKey"`
	MerchantCode   string  `gorm:"size:32;not null;index:ix_webhook_deliveries_merchant,priority:1"`
	EndpointID     uint64  `gorm:"not null;index:ix_webhook_deliveries_endpoint,priority:1"`
	RuleID         *uint64 `gorm:"index:ix_webhook_deliveries_rule"`
	DeliveryID     string  `gorm:"size:36;not null;uniqueIndex:ux_webhook_deliveries_uuid"`
	Event          string  `gorm:"size:64;not null"`
	Payload        string  `gorm:"type:mediumtext"`
	Status         string  `gorm:"size:16;not null;index:ix_webhook_deliveries_due,priority:1"`
	Attempts       int     `gorm:"not null;default:0"`
	FirstAttemptAt *time.Time
	NextAttemptAt  *time.Time `gorm:"index:ix_webhook_deliveries_due,priority:2"`
	LastAttemptAt  *time.Time
	LastStatusCode int       `gorm:"not null;default:0"`
	LastReason     string    `gorm:"size:32;not null;default:''"`
	LastError      string    `gorm:"type:text"`
	LastResponse   string    `gorm:"type:text"`
	CreatedAt      time.Time `gorm:"index:ix_webhook_deliveries_endpoint,priority:2;index:ix_webhook_deliveries_merchant,priority:2"`
	DeliveredAt    *time.Time
}

func (m0008WebhookDelivery) TableName() string { return "webhook_deliveries" }

// m0008NotifyRefusal is one refused notification of a known channel account,
// kept for a day for the notify_refusals trigger.
type m0008NotifyRefusal struct {
	ID        uint64    `gorm:"primaryKey"`
	AccountID uint64    `gorm:"not null;index:ix_notify_refusals_account_at,priority:1"`
	Reason    string    `gorm:"size:32;not null"`
	At        time.Time `gorm:"not null;index:ix_notify_refusals_account_at,priority:2;index:ix_notify_refusals_at"`
}

func (m0008NotifyRefusal) TableName() string { return "notify_refusals" }

func migrate0008(tx *gorm.DB) error {
	return createMissing(tx, &m0008TriggerRule{}, &m0008TriggerMark{}, &m0008WebhookEndpoint{}, &m0008WebhookDelivery{}, &m0008NotifyRefusal{})
}
