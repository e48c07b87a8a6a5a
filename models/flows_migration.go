package models

import (
	"time"

	"gorm.io/gorm"
)

// --- 0006: frozen snapshots ---

// m0006Flow is a configured business process: what it does (kind, params),
// for whom (merchant, optionally one channel account), and when (a cron
// schedule in the merchant's time zone). next_run_at is the scheduled
// occurrence the engine takes next; ix_flows_due serves its poll.
type m0006Flow struct {
	ID               uint64     `gorm:"primaryKey"`
	Name             string     `gorm:"size:64;not null;uniqueIndex:ux_flows_name"`
	Kind             string     `gorm:"size:32;not null"`
	MerchantCode     string     `gorm:"size:32;not null;index:ix_flows_merchant"`
	AccountID        *uint64    `gorm:"index:ix_flows_account"`
	Params           string     `gorm:"type:text"`
	Schedule         string     `gorm:"size:64;not null;default:''"`
	Timezone         string     `gorm:"size:64;not null;default:''"`
	Enabled          bool       `gorm:"not null;default:false;index:ix_flows_due,priority:1"`
	NextRunAt        *time.Time `gorm:"index:ix_flows_due,priority:2"`
	MaxAttempts      int        `gorm:"not null;default:3"`
	RetryBaseSeconds int        `gorm:"not null;default:60"`
	FailureStreak    int        `gorm:"not null;default:0"`
	LastRunID        *uint64
	LastStatus       string `gorm:"size:16;not null;default:''"`
	LastRunAt        *time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
	CreatedBy        string `gorm:"size:64;not null;default:''"`
	UpdatedBy        string `gorm:"size:64;not null;default:''"`
}

func (m0006Flow) TableName() string { return "flows" }

// m0006FlowRun is one attempt of one flow. A scheduled occurrence and its
// retries share occurrence and differ in attempt; ux_flow_runs_occurrence
// makes a second run of the same attempt of the same occurrence impossible
// whatever the engines do (manual and event runs leave occurrence NULL,
// which the index does not compare). ix_flow_runs_status serves the engine's
// look for due retries and running runs. The trigger column is run_trigger:
// TRIGGER is a reserved word in MySQL.
type m0006FlowRun struct {
	ID            uint64     `gorm:"primaryKey"`
	FlowID        uint64     `gorm:"not null;uniqueIndex:ux_flow_runs_occurrence,priority:1;index:ix_flow_runs_flow;index:ix_flow_runs_flow_status,priority:1"`
	MerchantCode  string     `gorm:"size:32;not null;index:ix_flow_runs_merchant"`
	Trigger       string     `gorm:"column:run_trigger;size:16;not null"`
	TriggeredBy   string     `gorm:"size:64;not null;default:''"`
	Occurrence    *time.Time `gorm:"uniqueIndex:ux_flow_runs_occurrence,priority:2"`
	Attempt       int        `gorm:"not null;default:1;uniqueIndex:ux_flow_runs_occurrence,priority:3"`
	PrevRunID     *uint64
	Status        string     `gorm:"size:16;not null;index:ix_flow_runs_flow_status,priority:2;index:ix_flow_runs_status,priority:1"`
	RetryAt       *time.Time `gorm:"index:ix_flow_runs_status,priority:2"`
	StartedAt     time.Time  `gorm:"not null"`
	EndedAt       *time.Time
	RowsRead      int    `gorm:"not null;default:0"`
	RowsNew       int    `gorm:"not null;default:0"`
	RowsMerged    int    `gorm:"not null;default:0"`
	Discrepancies int    `gorm:"not null;default:0"`
	Error         string `gorm:"type:text"`
	Log           string `gorm:"type:text"`
	Checkpoint    string `gorm:"type:text"`
	Owner         string `gorm:"size:64;not null;default:''"`
}

func (m0006FlowRun) TableName() string { return "flow_runs" }

// m0006FlowLease is a named lock with an expiry, held by one engine while it
// runs a flow. fence grows on every take, renewal and release, so each
// change is visible to the conditional UPDATE (MySQL counts changed rows only).
type m0006FlowLease struct {
	Name      string    `gorm:"primaryKey;size:64"`
	Owner     string    `gorm:"size:64;not null"`
	ExpiresAt time.Time `gorm:"not null"`
	Fence     uint64    `gorm:"not null;default:0"`
	TakenAt   time.Time `gorm:"not null"`
}

func (m0006FlowLease) TableName() string { return "flow_leases" }

func migrate0006(tx *gorm.DB) error {
	return createMissing(tx, &m0006Flow{}, &m0006FlowRun{}, &m0006FlowLease{})
}
