package models

import "gorm.io/gorm"

// --- 0012: frozen snapshot ---

// ixRollupDashboard covers every column the dashboard, the KPI page and the
// reports read from daily_rollups, ordered by business date and then by
// channel account: a date range is one contiguous, index-only scan, and
// grouping by date and account follows the index order (no temporary table).
// It replaces ix_rollup_date, which it begins with.
const ixRollupDashboard = "ix_rollup_dashboard"

const ixRollupDashboardCols = "biz_date, account_id, channel, method, merchant_code, " +
	"payments, payments_succeeded, amount_succeeded, refunds, refund_amount, fees, " +
	"pay_seconds, pay_timed, statement_records, notified_records"

func migrate0012(tx *gorm.DB) error {
	if !tx.Migrator().HasIndex("daily_rollups", ixRollupDashboard) {
		if err := tx.Exec("CREATE INDEX " + ixRollupDashboard + " ON daily_rollups (" + ixRollupDashboardCols + ")").Error; err != nil {
			return err
		}
	}
	if tx.Migrator().HasIndex("daily_rollups", "ix_rollup_date") {
		return tx.Migrator().DropIndex("daily_rollups", "ix_rollup_date")
	}
	return nil
}
