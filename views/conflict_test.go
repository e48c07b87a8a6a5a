package views

import (
	"context"
	"slices"
	"testing"
)

// TestConflictLinesInBothLanguages: the ledger stores a disagreement in a
// fixed form; the detail page shows it in the reader's language.
func TestConflictLinesInBothLanguages(t *testing.T) {
	note := "amount: 12.00 (notification) vs 13.00 (statement); status: succeeded (notification,statement) vs failed (statement)\n" +
		"resolved by alice: status set to failed\nsomething else"
	zh := conflictLines(WithFrame(context.Background(), &Frame{Lang: LangZH}), note)
	wantZH := []string{
		"金额：12.00（异步通知）与 13.00（对账单）不一致",
		"状态：成功（异步通知、对账单）与 失败（对账单）不一致",
		"已由 alice 解决：状态 改为 失败",
		"something else",
	}
	en := conflictLines(WithFrame(context.Background(), &Frame{Lang: LangEN}), note)
	wantEN := []string{
		"Amount: 12.00 (Notification) vs 13.00 (Statement)",
		"Status: Succeeded (Notification, Statement) vs Failed (Statement)",
		"Resolved by alice: Status set to Failed",
		"something else",
	}
	if !slices.Equal(zh, wantZH) {
		t.Errorf("zh:\n%q\nwant\n%q", zh, wantZH)
	}
	if !slices.Equal(en, wantEN) {
		t.Errorf("en:\n%q\nwant\n%q", en, wantEN)
	}
}
