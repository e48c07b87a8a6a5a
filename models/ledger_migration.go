package models

import "gorm.io/gorm"

// --- 0013: frozen snapshot ---

// ixTxnMerchantStatus serves the ledger of one merchant filtered by status,
// newest first. Without it such a page walks the merchant's whole
// (merchant_code, occurred_at, id) index when the status is rare (processing,
// failed, closed): at 10 million rows that is millions of index entries for
// an empty page. Operators and finance users, whose pages are always walked
// merchant by merchant, hit it with every status filter.
const ixTxnMerchantStatus = "ix_txn_merchant_status_occurred"

func migrate0013(tx *gorm.DB) error {
	if tx.Migrator().HasIndex("transactions", ixTxnMerchantStatus) {
		return nil
	}
	return tx.Exec("CREATE INDEX " + ixTxnMerchantStatus + " ON transactions (merchant_code, status, occurred_at, id)").Error
}
