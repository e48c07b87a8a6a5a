package models

import (
	"time"

	"gorm.io/gorm"
)

// --- 0009: frozen snapshots ---

// m0009DailyRollup adds what two KPIs need to the daily rollups: the time
// from creation to payment of succeeded payments where both are known
// (seconds summed, payments counted), and how many records a statement saw
// and how many of those a notification saw too.
type m0009DailyRollup struct {
	PaySeconds       int64 `gorm:"not null;default:0"`
	PayTimed         int64 `gorm:"not null;default:0"`
	StatementRecords int64 `gorm:"not null;default:0"`
	NotifiedRecords  int64 `gorm:"not null;default:0"`
}

func (m0009DailyRollup) TableName() string { return "daily_rollups" }

// m0009KPIWeightSet is the weight set of one merchant ("" = the global
// default); its versions hold the weights, active_version names the one in force.
type m0009KPIWeightSet struct {
	ID            uint64 `gorm:"primaryKey"`
	MerchantCode  string `gorm:"size:32;not null;uniqueIndex:ux_kpi_weight_sets_merchant"`
	ActiveVersion int    `gorm:"not null;default:0"`
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

func (m0009KPIWeightSet) TableName() string { return "kpi_weight_sets" }

// m0009KPIWeightVersion is one saved state of a weight set: who, when, why.
type m0009KPIWeightVersion struct {
	ID        uint64    `gorm:"primaryKey"`
	SetID     uint64    `gorm:"not null;uniqueIndex:ux_kpi_weight_versions,priority:1"`
	Version   int       `gorm:"not null;uniqueIndex:ux_kpi_weight_versions,priority:2"`
	Name      string    `gorm:"size:64;not null"`
	Body      string    `gorm:"type:text"`
	Reason    string    `gorm:"type:text"`
	CreatedBy string    `gorm:"size:64;not null;default:''"`
	CreatedAt time.Time `gorm:"not null"`
}

func (m0009KPIWeightVersion) TableName() string { return "kpi_weight_versions" }

func migrate0009(tx *gorm.DB) error {
	for _, col := range []string{"PaySeconds", "PayTimed", "StatementRecords", "NotifiedRecords"} {
		if !tx.Migrator().HasColumn(&m0009DailyRollup{}, col) {
			if err := tx.Migrator().AddColumn(&m0009DailyRollup{}, col); err != nil {
				return err
			}
		}
	}
	if err := backfillRollupKPIs(tx); err != nil {
		return err
	}
	return createMissing(tx, &m0009KPIWeightSet{}, &m0009KPIWeightVersion{})
}

// backfillRollupKPIs fills the new rollup columns from the ledger, one
// aggregate query, then one UPDATE per group that has anything to add.
func backfillRollupKPIs(tx *gorm.DB) error {
	var rows []struct {
		AccountID                                               uint64
		Method, BizDate                                         string
		PaySeconds, PayTimed, StatementRecords, NotifiedRecords int64
	}
	if err := tx.Table("transactions").Select("account_id, method, biz_date, " + rollupKPISelect(dialectOf(tx))).
		Group("account_id, method, biz_date").Scan(&rows).Error; err != nil {
		return err
	}
	for _, r := range rows {
		if r.PayTimed == 0 && r.StatementRecords == 0 {
			continue
		}
		if err := tx.Table("daily_rollups").Where("account_id = ? AND method = ? AND biz_date = ?", r.AccountID, r.Method, r.BizDate).
			Updates(map[string]any{"pay_seconds": r.PaySeconds, "pay_timed": r.PayTimed,
				"statement_records": r.StatementRecords, "notified_records": r.NotifiedRecords}).Error; err != nil {
			return err
		}
	}
	return nil
}

func dialectOf(tx *gorm.DB) Dialect {
	if tx.Dialector.Name() == "mysql" {
		return MySQL
	}
	return SQLite
}
