package models

import (
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// migration is one numbered, append-only schema step. A shipped step is never
// edited: later changes are new steps. Each step uses its own frozen struct
// snapshots (below) so that later changes to the live entities cannot change
// what an old step creates.
type migration struct {
	Version int
	Name    string
	Up      func(tx *gorm.DB) error
}

// schemaMigration records an applied step.
type schemaMigration struct {
	Version   int    `gorm:"primaryKey;autoIncrement:false"`
	Name      string `gorm:"size:128;not null"`
	AppliedAt time.Time
}

func (schemaMigration) TableName() string { return "schema_migrations" }

var migrations = []migration{
	{1, "users, sessions, audit log", migrate0001},
	{2, "merchants, channel accounts, sealed credentials", migrate0002},
	{3, "ledger: transactions, sources, imports, daily rollups", migrate0003},
	{4, "ledger browsing indexes, notification nonces, column mappings, corrections", migrate0004},
	{5, "reconciliation days and discrepancy items", migrate0005},
	{6, "flows, flow runs and leases", migrate0006},
	{7, "alert inbox", migrate0007},
	{8, "trigger rules, webhook endpoints and deliveries, notification refusals", migrate0008},
	{9, "KPI figures in the daily rollups, KPI weight sets and their versions", migrate0009},
	{10, "two-factor sign-in", migrate0010},
	{11, "API tokens and idempotency keys", migrate0011},
	{12, "a covering date-first index on the daily rollups for the dashboard", migrate0012},
	{13, "newest-first ledger walk indexes per merchant that carry the other filter columns", migrate0013},
}

// LatestVersion is the schema version this binary expects.
func LatestVersion() int { return migrations[len(migrations)-1].Version }

// Migrate applies every pending step, each in its own transaction, and records
// it in schema_migrations. On MySQL a named lock serialises concurrent
// migrators (several `payfuse serve` starting at once); on SQLite the
// immediate transaction does. MySQL commits DDL implicitly, so each step is
// also written to be re-runnable (tables are created only when missing).
func Migrate(db *gorm.DB, dialect Dialect) error {
	return db.Connection(func(conn *gorm.DB) error {
		// Connection's handle does not clone on chaining; a session does, so
		// one query's clauses cannot leak into the next.
		conn = conn.Session(&gorm.Session{})
		if dialect == MySQL {
			// The lock is named after the database: migrators of one
			// database wait for each other, other databases on the same
			// server (tests, several deployments) do not.
			var got int
			if err := conn.Raw("SELECT GET_LOCK(LEFT(CONCAT('payfuse_migrate.', DATABASE()), 64), 120)").Scan(&got).Error; err != nil || got != 1 {
				return fmt.Errorf("models: unable to take the migration lock (another process migrating?): %v", err)
			}
			defer conn.Exec("SELECT RELEASE_LOCK(LEFT(CONCAT('payfuse_migrate.', DATABASE()), 64))")
		}
		if err := conn.AutoMigrate(&schemaMigration{}); err != nil {
			// SQLite has no lock to take before this point: two processes
			// starting on an empty file can both find the table missing, and
			// the second CREATE fails. The table is there now; look again.
			if !strings.Contains(err.Error(), "already exists") {
				return fmt.Errorf("models: unable to create schema_migrations: %w", err)
			}
			if err := conn.AutoMigrate(&schemaMigration{}); err != nil {
				return fmt.Errorf("models: unable to create schema_migrations: %w", err)
			}
		}
		var newest int
		if err := conn.Model(&schemaMigration{}).Select("COALESCE(MAX(version), 0)").Scan(&newest).Error; err != nil {
			return fmt.Errorf("models: unable to read schema version: %w", err)
		}
		if newest > LatestVersion() {
			return fmt.Errorf("models: the database is at schema version %d but this binary knows only up to %d; upgrade payfuse", newest, LatestVersion())
		}
		for _, m := range migrations {
			err := conn.Transaction(func(tx *gorm.DB) error {
				var n int64
				if err := tx.Model(&schemaMigration{}).Where("version = ?", m.Version).Count(&n).Error; err != nil {
					return err
				}
				if n > 0 {
					return nil
				}
				if err := m.Up(tx); err != nil {
					return err
				}
				return tx.Create(&schemaMigration{Version: m.Version, Name: m.Name, AppliedAt: time.Now().UTC()}).Error
			})
			if err != nil {
				return fmt.Errorf("models: migration %d (%s) failed: %w", m.Version, m.Name, err)
			}
		}
		return nil
	})
}

// SchemaVersion reports the newest applied migration (0 on an empty database).
func (s *Store) SchemaVersion() (int, error) {
	if !s.DB.Migrator().HasTable(&schemaMigration{}) {
		return 0, nil
	}
	var v int
	err := s.DB.Model(&schemaMigration{}).Select("COALESCE(MAX(version), 0)").Scan(&v).Error
	return v, err
}

// createMissing creates each table that does not exist yet, with its indexes.
func createMissing(tx *gorm.DB, tables ...any) error {
	for _, t := range tables {
		if tx.Migrator().HasTable(t) {
			continue
		}
		if err := tx.Migrator().CreateTable(t); err != nil {
			return err
		}
	}
	return nil
}

// --- 0001: frozen snapshots ---

type m0001User struct {
	ID                 uint64 `gorm:"primaryKey"`
	Username           string `gorm:"size:64;not null;uniqueIndex:ux_users_username"`
	PasswordHash       string `gorm:"size:255;not null"`
	Role               string `gorm:"size:16;not null;index:ix_users_role"`
	Disabled           bool   `gorm:"not null;default:false"`
	MustChangePassword bool   `gorm:"not null;default:false"`
	Locale             string `gorm:"size:8;not null;default:''"`
	FailedLogins       int    `gorm:"not null;default:0"`
	FailedWindowStart  *time.Time
	LockedUntil        *time.Time
	PrivVersion        int `gorm:"not null;default:1"`
	PasswordChangedAt  time.Time
	LastLoginAt        *time.Time
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

func (m0001User) TableName() string { return "users" }

type m0001UserMerchant struct {
	UserID       uint64 `gorm:"primaryKey;autoIncrement:false"`
	MerchantCode string `gorm:"primaryKey;size:32;index:ix_user_merchants_code"`
}

func (m0001UserMerchant) TableName() string { return "user_merchants" }

type m0001Session struct {
	ID          uint64 `gorm:"primaryKey"`
	TokenHash   string `gorm:"size:64;not null;uniqueIndex:ux_sessions_token"`
	UserID      uint64 `gorm:"not null;index:ix_sessions_user"`
	CSRFToken   string `gorm:"column:csrf_token;size:64;not null"`
	PrivVersion int    `gorm:"not null"`
	IP          string `gorm:"size:64;not null;default:''"`
	UserAgent   string `gorm:"size:255;not null;default:''"`
	CreatedAt   time.Time
	LastSeenAt  time.Time `gorm:"not null"`
	ExpiresAt   time.Time `gorm:"not null;index:ix_sessions_expires"`
}

func (m0001Session) TableName() string { return "sessions" }

type m0001AuditLog struct {
	ID           uint64    `gorm:"primaryKey"`
	At           time.Time `gorm:"not null;index:ix_audit_at;index:ix_audit_actor_at,priority:2;index:ix_audit_action_at,priority:2"`
	ActorID      *uint64
	Actor        string `gorm:"size:64;not null;index:ix_audit_actor_at,priority:1"`
	Action       string `gorm:"size:64;not null;index:ix_audit_action_at,priority:1"`
	ObjectType   string `gorm:"size:32;not null;default:''"`
	ObjectID     string `gorm:"size:64;not null;default:''"`
	MerchantCode string `gorm:"size:32;not null;default:''"`
	IP           string `gorm:"size:64;not null;default:''"`
	RequestID    string `gorm:"size:64;not null;default:''"`
	Detail       string `gorm:"size:500;not null;default:''"`
	Before       string `gorm:"type:text"`
	After        string `gorm:"type:text"`
}

func (m0001AuditLog) TableName() string { return "audit_logs" }

func migrate0001(tx *gorm.DB) error {
	return createMissing(tx, &m0001User{}, &m0001UserMerchant{}, &m0001Session{}, &m0001AuditLog{})
}

// --- 0002: frozen snapshots ---

type m0002Merchant struct {
	ID        uint64 `gorm:"primaryKey"`
	Code      string `gorm:"size:32;not null;uniqueIndex:ux_merchants_code"`
	Name      string `gorm:"size:128;not null"`
	Contact   string `gorm:"size:255;not null;default:''"`
	Timezone  string `gorm:"size:64;not null"`
	Currency  string `gorm:"size:3;not null"`
	Status    string `gorm:"size:16;not null;index:ix_merchants_status"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (m0002Merchant) TableName() string { return "merchants" }

type m0002DataKey struct {
	ID          uint64 `gorm:"primaryKey"`
	MasterKeyID string `gorm:"size:16;not null;index:ix_data_keys_master"`
	Wrapped     []byte `gorm:"not null"`
	CreatedAt   time.Time
	RotatedAt   *time.Time
}

func (m0002DataKey) TableName() string { return "data_keys" }

type m0002ChannelAccount struct {
	ID           uint64     `gorm:"primaryKey"`
	MerchantID   uint64     `gorm:"not null;index:ix_channel_accounts_merchant"`
	MerchantCode string     `gorm:"size:32;not null;index:ix_channel_accounts_code"`
	Channel      string     `gorm:"size:16;not null"`
	DisplayName  string     `gorm:"size:128;not null"`
	Methods      string     `gorm:"size:64;not null;default:''"`
	FeeRateBP    int        `gorm:"column:fee_rate_bp;not null;default:0"`
	Enabled      bool       `gorm:"not null;default:true"`
	Settings     string     `gorm:"type:text"`
	DataKeyID    uint64     `gorm:"not null"`
	CertNotAfter *time.Time `gorm:"index:ix_channel_accounts_cert"`
	CheckOK      bool       `gorm:"column:check_ok;not null;default:false"`
	CheckSummary string     `gorm:"type:text"`
	CheckedAt    *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
	UpdatedBy    string `gorm:"size:64;not null;default:''"`
}

func (m0002ChannelAccount) TableName() string { return "channel_accounts" }

type m0002ChannelSecret struct {
	ID          uint64 `gorm:"primaryKey"`
	AccountID   uint64 `gorm:"not null;uniqueIndex:ux_channel_secrets_field,priority:1"`
	Field       string `gorm:"size:64;not null;uniqueIndex:ux_channel_secrets_field,priority:2"`
	Ciphertext  []byte `gorm:"not null"`
	DataKeyID   uint64 `gorm:"not null;index:ix_channel_secrets_key"`
	Fingerprint string `gorm:"size:100;not null;default:''"`
	Size        int    `gorm:"not null;default:0"`
	Meta        string `gorm:"size:500;not null;default:''"`
	UpdatedAt   time.Time
	UpdatedBy   string `gorm:"size:64;not null;default:''"`
}

func (m0002ChannelSecret) TableName() string { return "channel_secrets" }

func migrate0002(tx *gorm.DB) error {
	return createMissing(tx, &m0002Merchant{}, &m0002DataKey{}, &m0002ChannelAccount{}, &m0002ChannelSecret{})
}

// --- 0003: frozen snapshots ---

type m0003Transaction struct {
	ID               uint64 `gorm:"primaryKey"`
	MerchantID       uint64 `gorm:"not null"`
	MerchantCode     string `gorm:"size:32;not null;index:ix_txn_merchant_date,priority:1;index:ix_txn_merchant_id,priority:1"`
	AccountID        uint64 `gorm:"not null;index:ix_txn_account"`
	Channel          string `gorm:"size:16;not null;uniqueIndex:ux_txn_natural,priority:1"`
	Kind             string `gorm:"size:8;not null;uniqueIndex:ux_txn_natural,priority:2"`
	ChannelRef       string `gorm:"size:64;not null;uniqueIndex:ux_txn_natural,priority:3"`
	PaymentRef       string `gorm:"size:64;not null;default:'';index:ix_txn_payment_ref"`
	PaymentID        *uint64
	MerchantOrderNo  string `gorm:"size:64;not null;default:'';index:ix_txn_order_no"`
	RefundNo         string `gorm:"size:64;not null;default:'';index:ix_txn_refund_no"`
	Method           string `gorm:"size:8;not null;default:''"`
	Status           string `gorm:"size:16;not null"`
	NativeStatus     string `gorm:"size:32;not null;default:''"`
	RefundState      string `gorm:"size:8;not null;default:'none'"`
	RefundedAmount   int64  `gorm:"not null;default:0"`
	Amount           int64  `gorm:"not null"`
	Fee              int64  `gorm:"not null;default:0"`
	FeeKnown         bool   `gorm:"not null;default:false"`
	Currency         string `gorm:"size:3;not null"`
	Payer            string `gorm:"size:64;not null;default:''"`
	ChannelCreatedAt *time.Time
	PaidAt           *time.Time
	RefundedAt       *time.Time
	BizDate          string `gorm:"size:10;not null;index:ix_txn_merchant_date,priority:2;index:ix_txn_biz_date"`
	Sources          string `gorm:"size:64;not null;default:''"`
	Conflict         bool   `gorm:"not null;default:false"`
	ConflictNote     string `gorm:"type:text"`
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

func (m0003Transaction) TableName() string { return "transactions" }

type m0003TransactionSource struct {
	ID            uint64 `gorm:"primaryKey"`
	TransactionID uint64 `gorm:"not null;index:ix_txn_sources_txn"`
	Source        string `gorm:"size:16;not null"`
	ImportID      *uint64
	PayloadHash   string `gorm:"size:64;not null"`
	Amount        int64  `gorm:"not null"`
	Status        string `gorm:"size:16;not null"`
	Fee           int64  `gorm:"not null;default:0"`
	SeenAt        time.Time
	Raw           string `gorm:"type:text"`
}

func (m0003TransactionSource) TableName() string { return "transaction_sources" }

type m0003Import struct {
	ID           uint64 `gorm:"primaryKey"`
	AccountID    uint64 `gorm:"not null;index:ix_imports_account_hash,priority:1"`
	MerchantCode string `gorm:"size:32;not null;index:ix_imports_merchant"`
	Channel      string `gorm:"size:16;not null"`
	FileName     string `gorm:"size:255;not null;default:''"`
	FileHash     string `gorm:"size:64;not null;index:ix_imports_account_hash,priority:2"`
	Bytes        int64  `gorm:"not null;default:0"`
	Status       string `gorm:"size:16;not null"`
	Rows         int    `gorm:"not null;default:0"`
	Inserted     int    `gorm:"not null;default:0"`
	Merged       int    `gorm:"not null;default:0"`
	Duplicates   int    `gorm:"not null;default:0"`
	Reason       string `gorm:"type:text"`
	CreatedBy    string `gorm:"size:64;not null;default:''"`
	CreatedAt    time.Time
}

func (m0003Import) TableName() string { return "imports" }

type m0003DailyRollup struct {
	ID                uint64 `gorm:"primaryKey"`
	MerchantCode      string `gorm:"size:32;not null;uniqueIndex:ux_rollup_key,priority:1"`
	AccountID         uint64 `gorm:"not null;uniqueIndex:ux_rollup_key,priority:2"`
	Channel           string `gorm:"size:16;not null"`
	Method            string `gorm:"size:8;not null;uniqueIndex:ux_rollup_key,priority:3"`
	BizDate           string `gorm:"size:10;not null;uniqueIndex:ux_rollup_key,priority:4;index:ix_rollup_date"`
	Payments          int64  `gorm:"not null;default:0"`
	PaymentsSucceeded int64  `gorm:"not null;default:0"`
	PaymentsFailed    int64  `gorm:"not null;default:0"`
	PaymentsPending   int64  `gorm:"not null;default:0"`
	AmountSucceeded   int64  `gorm:"not null;default:0"`
	Refunds           int64  `gorm:"not null;default:0"`
	RefundAmount      int64  `gorm:"not null;default:0"`
	Fees              int64  `gorm:"not null;default:0"`
	UpdatedAt         time.Time
}

func (m0003DailyRollup) TableName() string { return "daily_rollups" }

func migrate0003(tx *gorm.DB) error {
	return createMissing(tx, &m0003Transaction{}, &m0003TransactionSource{}, &m0003Import{}, &m0003DailyRollup{})
}

// --- 0004: frozen snapshots ---

// m0004Transaction adds occurred_at (the time the ledger sorts by: paid time
// of a payment, refund time of a refund, else creation) and the indexes that
// let the ledger page walk newest-first under any one filter without sorting.
type m0004Transaction struct {
	OccurredAt *time.Time
}

func (m0004Transaction) TableName() string { return "transactions" }

type m0004NotifyNonce struct {
	ID        uint64    `gorm:"primaryKey"`
	AccountID uint64    `gorm:"not null;uniqueIndex:ux_notify_nonce,priority:1"`
	Nonce     string    `gorm:"size:64;not null;uniqueIndex:ux_notify_nonce,priority:2"`
	ExpiresAt time.Time `gorm:"not null;index:ix_notify_nonce_expiry"`
}

func (m0004NotifyNonce) TableName() string { return "notify_nonces" }

type m0004ColumnMapping struct {
	ID        uint64 `gorm:"primaryKey"`
	AccountID uint64 `gorm:"not null;uniqueIndex:ux_column_mapping_account"`
	Mapping   string `gorm:"type:text"`
	UpdatedAt time.Time
	UpdatedBy string `gorm:"size:64;not null;default:''"`
}

func (m0004ColumnMapping) TableName() string { return "column_mappings" }

type m0004Correction struct {
	ID            uint64 `gorm:"primaryKey"`
	TransactionID uint64 `gorm:"not null;index:ix_corrections_txn"`
	Field         string `gorm:"size:16;not null"`
	OldValue      string `gorm:"size:64;not null;default:''"`
	NewValue      string `gorm:"size:64;not null;default:''"`
	Reason        string `gorm:"type:text"`
	CreatedBy     string `gorm:"size:64;not null;default:''"`
	CreatedAt     time.Time
}

func (m0004Correction) TableName() string { return "transaction_corrections" }

// ledgerIndexes serve the ledger list: newest first by (occurred_at, id),
// alone or after one equality filter. Search and amount use their own.
var ledgerIndexes = []struct{ name, cols string }{
	{"ix_txn_occurred", "occurred_at, id"},
	{"ix_txn_merchant_occurred", "merchant_code, occurred_at, id"},
	{"ix_txn_channel_occurred", "channel, occurred_at, id"},
	{"ix_txn_method_occurred", "method, occurred_at, id"},
	{"ix_txn_kind_occurred", "kind, occurred_at, id"},
	{"ix_txn_status_occurred", "status, occurred_at, id"},
	{"ix_txn_amount", "amount, occurred_at"},
	{"ix_txn_channel_ref", "channel_ref"},
}

func migrate0004(tx *gorm.DB) error {
	if !tx.Migrator().HasColumn(&m0004Transaction{}, "OccurredAt") {
		if err := tx.Migrator().AddColumn(&m0004Transaction{}, "OccurredAt"); err != nil {
			return err
		}
	}
	if err := tx.Exec(`UPDATE transactions SET occurred_at = CASE
		WHEN kind = 'refund' AND refunded_at IS NOT NULL THEN refunded_at
		WHEN kind = 'payment' AND paid_at IS NOT NULL THEN paid_at
		ELSE channel_created_at END
		WHERE occurred_at IS NULL`).Error; err != nil {
		return err
	}
	for _, ix := range ledgerIndexes {
		if tx.Migrator().HasIndex("transactions", ix.name) {
			continue
		}
		if err := tx.Exec("CREATE INDEX " + ix.name + " ON transactions (" + ix.cols + ")").Error; err != nil {
			return err
		}
	}
	return createMissing(tx, &m0004NotifyNonce{}, &m0004ColumnMapping{}, &m0004Correction{})
}

// --- 0005: frozen snapshots ---

// m0005ReconDay is one reconciliation of one channel account's business
// date: how many ledger records fell in each bucket, and how many
// discrepancies are still open.
type m0005ReconDay struct {
	ID                 uint64 `gorm:"primaryKey"`
	MerchantCode       string `gorm:"size:32;not null;index:ix_recon_days_merchant_date,priority:1"`
	AccountID          uint64 `gorm:"not null;uniqueIndex:ux_recon_day,priority:1"`
	Channel            string `gorm:"size:16;not null"`
	BizDate            string `gorm:"size:10;not null;uniqueIndex:ux_recon_day,priority:2;index:ix_recon_days_merchant_date,priority:2"`
	Status             string `gorm:"size:16;not null"`
	HasStatement       bool   `gorm:"not null;default:false"`
	EmptyStatement     bool   `gorm:"not null;default:false"` // the channel said it has no bill for the day
	Matched            int    `gorm:"not null;default:0"`
	AmountMismatch     int    `gorm:"not null;default:0"`
	StatusMismatch     int    `gorm:"not null;default:0"`
	MissingInStatement int    `gorm:"not null;default:0"`
	OnlyInStatement    int    `gorm:"not null;default:0"`
	Open               int    `gorm:"not null;default:0"`
	MatchedAmount      int64  `gorm:"not null;default:0"`
	OpenAmount         int64  `gorm:"not null;default:0"`
	RunAt              time.Time
	RunBy              string `gorm:"size:64;not null;default:''"`
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

func (m0005ReconDay) TableName() string { return "recon_days" }

// m0005ReconItem is one discrepancy of a reconciliation day: both sides'
// amount and status, and how finance resolved it.
type m0005ReconItem struct {
	ID              uint64 `gorm:"primaryKey"`
	DayID           uint64 `gorm:"not null;uniqueIndex:ux_recon_item,priority:1"`
	TransactionID   uint64 `gorm:"not null;uniqueIndex:ux_recon_item,priority:2;index:ix_recon_items_txn"`
	MerchantCode    string `gorm:"size:32;not null"`
	Bucket          string `gorm:"size:24;not null"`
	Kind            string `gorm:"size:8;not null"`
	ChannelRef      string `gorm:"size:64;not null"`
	StatementAmount *int64
	StatementStatus string `gorm:"size:16;not null;default:''"`
	OtherAmount     *int64
	OtherStatus     string `gorm:"size:16;not null;default:''"`
	OtherSources    string `gorm:"size:64;not null;default:''"`
	Resolved        bool   `gorm:"not null;default:false"`
	Resolution      string `gorm:"size:32;not null;default:''"`
	Note            string `gorm:"type:text"`
	ResolvedBy      string `gorm:"size:64;not null;default:''"`
	ResolvedAt      *time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

func (m0005ReconItem) TableName() string { return "recon_items" }

func migrate0005(tx *gorm.DB) error {
	return createMissing(tx, &m0005ReconDay{}, &m0005ReconItem{})
}

// --- 0007: frozen snapshots ---

// m0007Alert is one entry of the alert inbox.
type m0007Alert struct {
	ID             uint64    `gorm:"primaryKey"`
	MerchantCode   string    `gorm:"size:32;not null;default:'';index:ix_alerts_merchant_status,priority:1"`
	Source         string    `gorm:"size:16;not null;default:''"`
	SourceID       uint64    `gorm:"not null;default:0"`
	Kind           string    `gorm:"size:32;not null"`
	Severity       string    `gorm:"size:16;not null"`
	DedupeKey      string    `gorm:"size:191;not null;index:ix_alerts_dedupe"`
	Title          string    `gorm:"type:text"`
	Body           string    `gorm:"type:text"`
	Link           string    `gorm:"size:255;not null;default:''"`
	Status         string    `gorm:"size:16;not null;index:ix_alerts_merchant_status,priority:2;index:ix_alerts_status_last,priority:1"`
	Count          int       `gorm:"not null;default:1"`
	FirstAt        time.Time `gorm:"not null"`
	LastAt         time.Time `gorm:"not null;index:ix_alerts_status_last,priority:2"`
	AcknowledgedBy string    `gorm:"size:64;not null;default:''"`
	AcknowledgedAt *time.Time
	ResolvedBy     string `gorm:"size:64;not null;default:''"`
	ResolvedAt     *time.Time
	ResolveNote    string `gorm:"type:text"`
}

func (m0007Alert) TableName() string { return "alerts" }

func migrate0007(tx *gorm.DB) error {
	return createMissing(tx, &m0007Alert{})
}
