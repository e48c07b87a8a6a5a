package models

import (
	"testing"
	"time"

	"gorm.io/gorm"
)

// Text that could end a literal or break an encoding must come back byte for
// byte, and inlined times must compare with bound ones.
func TestBulkInsertKeepsEveryByte(t *testing.T) {
	s := OpenTest(t)
	nasty := []string{"plain", "it's", "''; DROP TABLE transactions; --", "nul\x00byte", "bad\xffutf8", "中文`\t", ""}
	if s.Dialect == MySQL {
		nasty = append(nasty[:4], nasty[5:]...) // MySQL refuses invalid UTF-8 itself
	}
	at := time.Date(2026, 3, 1, 8, 0, 0, 123000000, time.UTC) // MySQL keeps milliseconds
	err := s.Tx(func(tx *gorm.DB) error {
		return insertRows(tx, "transaction_sources", sourceColumns, len(nasty), s.insertBatch(), func(i int, args []any) []any {
			return sourceValues(&TransactionSource{TransactionID: uint64(i + 1), Source: "manual", PayloadHash: "h", Amount: int64(i), Status: "succeeded", SeenAt: at, Raw: nasty[i]}, args)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []TransactionSource
	if err := s.DB.Where("seen_at = ?", at).Order("transaction_id").Find(&got).Error; err != nil {
		t.Fatal(err)
	}
	if len(got) != len(nasty) {
		t.Fatalf("found %d rows by their bound time, want %d", len(got), len(nasty))
	}
	for i, g := range got {
		if g.Raw != nasty[i] || !g.SeenAt.Equal(at) || g.ImportID != nil {
			t.Errorf("row %d: raw %q seen %v import %v", i, g.Raw, g.SeenAt, g.ImportID)
		}
	}
}
