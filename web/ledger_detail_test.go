package web_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/models"
)

const (
	conflictRef = "4200002851202602280000000001" // 100.00 in all.csv
	refundedRef = "4200002851202602280000000003" // refunded in all.csv
	openID      = "oX7k2Qm9Lr4Tz8Vb1Nc6Hd3Jf5Gs" // the payer of conflictRef
)

// ledgerWithConflict notifies conflictRef at 90.00, then imports all.csv
// (100.00): one record in conflict, seen by both sources.
func ledgerWithConflict(t *testing.T) (*ledgerWorld, uint64) {
	t.Helper()
	w := newLedgerWorld(t)
	paid := time.Date(2026, 2, 28, 1, 15, 2, 0, time.UTC)
	n := channels.Record{Channel: "wechat", Kind: channels.KindPayment, ChannelRef: conflictRef, MerchantOrderNo: "PF20260228000001",
		Method: "scan", Status: channels.StatusSucceeded, Amount: 9000, Currency: "CNY", AccountRef: testBillMchID, PaidAt: paid, CreatedAt: paid,
		Payer: channels.MaskPayer(openID), Raw: map[string]string{"payer.openid": openID, "trade_state": "SUCCESS", "amount.total": "9000"}}
	if _, err := w.store.Ingest(models.Actor{Name: "notify"}, w.acctSH.ID, models.SourceNotification, []channels.Record{n}); err != nil {
		t.Fatal(err)
	}
	bill := readTestBill(t, "all.csv")
	sf, err := w.store.OpenStatement(w.acctSH, "all.csv", bytes.NewReader(bill), int64(len(bill)))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := w.store.ImportStatement(models.Actor{Name: "setup"}, w.acctSH.ID, sf); err != nil || res.Refused {
		t.Fatal(res, err)
	}
	return w, w.txnID(t, channels.KindPayment, conflictRef)
}

func (w *ledgerWorld) txnID(t *testing.T, kind, ref string) uint64 {
	t.Helper()
	var tr models.Transaction
	if err := w.store.DB.Where("kind = ? AND channel_ref = ?", kind, ref).First(&tr).Error; err != nil {
		t.Fatal(err)
	}
	return tr.ID
}

func (w *ledgerWorld) txn(t *testing.T, id uint64) models.Transaction {
	t.Helper()
	var tr models.Transaction
	if err := w.store.DB.First(&tr, id).Error; err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestLedgerDetailShowsSourcesConflictAndLinks(t *testing.T) {
	w, tid := ledgerWithConflict(t)
	op := w.english(t, "opsh", "operator sh pass")
	page := op.get("/ledger/" + id(tid))
	if page.StatusCode != http.StatusOK {
		t.Fatalf("detail: %d %s", page.StatusCode, clip(page.Body))
	}
	for _, want := range []string{
		conflictRef, "PF20260228000001", "SHOP_SH", "SH WeChat",
		"The sources disagree", "Amount: 90.00 (Notification) vs 100.00 (Statement)", // both values, in the reader's language
		"Notification", "Statement", `href="/imports/`, // the sources, with the import
		"¥100.00", "¥90.00", "¥0.60", // what the record and each source said
		"2026-02-28 09:15:02", "Asia/Shanghai", // the merchant's time zone, UTC on hover
		"2026-02-28T01:15:02Z",
		"Raw payloads", "&#34;trade_state&#34;: &#34;SUCCESS&#34;", // pretty-printed
	} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("the detail page lacks %q", want)
		}
	}
	if strings.Contains(page.Body, openID) {
		t.Error("the raw payload shows the payer's full openid")
	}
	// Operators see no correction form.
	if strings.Contains(page.Body, "/corrections") {
		t.Error("an operator is offered the correction form")
	}
	// A payment links its refunds; the refund links back.
	pay := op.get("/ledger/" + id(w.txnID(t, channels.KindPayment, refundedRef)))
	refundID := w.txnID(t, channels.KindRefund, "50300908172026022800000000006")
	if !strings.Contains(pay.Body, `href="/ledger/`+id(refundID)+`"`) {
		t.Errorf("the payment does not link its refund: %s", clip(pay.Body))
	}
	refund := op.get("/ledger/" + id(refundID))
	if !strings.Contains(refund.Body, `href="/ledger/`+id(w.txnID(t, channels.KindPayment, refundedRef))+`"`) || !strings.Contains(refund.Body, "RF20260228000006") {
		t.Errorf("the refund does not link its payment: %s", clip(refund.Body))
	}
	// In Chinese too.
	zh := loggedIn(t, w.srv, "finsh", "finance sh pass")
	if r := zh.get("/ledger/" + id(tid)); !strings.Contains(r.Body, "各来源不一致") || !strings.Contains(r.Body, "更正此记录") {
		t.Errorf("Chinese detail page: %s", clip(r.Body))
	}

	// Out of scope, or unknown: not found.
	bj := w.english(t, "opbj", "operator bj pass")
	for _, p := range []string{"/ledger/" + id(tid), "/ledger/999999", "/ledger/abc"} {
		if r := bj.get(p); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s as another merchant's operator: %d", p, r.StatusCode)
		}
	}
}

func TestLedgerCorrections(t *testing.T) {
	w, tid := ledgerWithConflict(t)
	before := w.txn(t, tid)
	path := "/ledger/" + id(tid) + "/corrections"
	form := url.Values{"field": {"amount"}, "new_value": {"95.50"}, "reason": {"Bank statement shows 95.50"}}

	// Operators may not correct; another merchant's finance finds nothing.
	op := w.english(t, "opsh", "operator sh pass")
	if r := op.post(path, form); r.StatusCode != http.StatusForbidden {
		t.Errorf("operator correction: %d, want 403", r.StatusCode)
	}
	finBJ := w.english(t, "finbj", "finance bj pass")
	if r := finBJ.post(path, form); r.StatusCode != http.StatusNotFound {
		t.Errorf("foreign finance correction: %d, want 404", r.StatusCode)
	}

	fin := w.english(t, "finsh", "finance sh pass")
	// Without a reason: refused with the message, nothing changed.
	bad := fin.post(path, url.Values{"field": {"amount"}, "new_value": {"95.50"}, "reason": {""}})
	if bad.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(bad.Body, "Say why, in 4 to 500 characters.") || !strings.Contains(bad.Body, `value="95.50"`) {
		t.Errorf("no reason: %d %s", bad.StatusCode, clip(bad.Body))
	}
	if r := fin.post(path, url.Values{"field": {"amount"}, "new_value": {"ninety"}, "reason": {"typo in the bill"}}); r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "Enter an amount in yuan") {
		t.Errorf("bad amount: %d", r.StatusCode)
	}
	if after := w.txn(t, tid); after.Amount != before.Amount || after.Sources != before.Sources {
		t.Fatalf("a refused correction changed the record: %+v", after)
	}

	// A correction: the amount changes, "manual" joins the sources, the trail and the audit log say why.
	r := fin.post(path, form)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/ledger/"+id(tid) {
		t.Fatalf("correction: %d to %q %s", r.StatusCode, r.Header.Get("Location"), clip(r.Body))
	}
	after := w.txn(t, tid)
	if after.Amount != 9550 || after.Sources != "manual,notification,statement" || after.Conflict {
		t.Errorf("after the correction: amount %d sources %q conflict %v", after.Amount, after.Sources, after.Conflict)
	}
	page := fin.get("/ledger/" + id(tid))
	for _, want := range []string{"Correction saved.", "Conflict resolved", "¥100.00", "¥95.50", "Bank statement shows 95.50", "finsh", "Manual correction"} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("after the correction the page lacks %q", want)
		}
	}
	audit, err := w.store.ListAudit(models.AuditFilter{Action: models.ActLedgerCorrect, Limit: 10})
	if err != nil || len(audit.Rows) != 1 || audit.Rows[0].Actor != "finsh" || audit.Rows[0].ObjectID != id(tid) ||
		audit.Rows[0].Detail != "amount: 100.00 → 95.50 (Bank statement shows 95.50)" {
		t.Errorf("audit: %+v %v", audit.Rows, err)
	}
	// The daily rollup follows the ledger.
	var direct, rolled int64
	w.store.DB.Raw("SELECT COALESCE(SUM(amount), 0) FROM transactions WHERE kind = 'payment' AND status = 'succeeded'").Scan(&direct)
	w.store.DB.Raw("SELECT COALESCE(SUM(amount_succeeded), 0) FROM daily_rollups").Scan(&rolled)
	if direct != rolled {
		t.Errorf("rollup %d, ledger %d", rolled, direct)
	}
}
