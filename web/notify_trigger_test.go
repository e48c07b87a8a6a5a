package web_test

import (
	"net/http"
	"testing"
	"time"

	"payfuse/models"
)

// TestNotificationStartsTriggerEvaluation: a large payment notified to the
// merchant reaches its trigger rules as it arrives — the merchant's
// trigger_eval flow runs on the event, not at its next minute — and the
// rule's alert is in the inbox seconds later.
func TestNotificationStartsTriggerEvaluation(t *testing.T) {
	f := newNotifyFixture(t)
	all := models.Scope{All: true}
	setup := models.Actor{Name: "setup"}
	flow, err := f.store.CreateFlow(setup, all, models.FlowInput{Name: "sh-triggers", Kind: models.FlowTriggerEval, MerchantCode: "SHOP_SH",
		Schedule: "0 3 * * *", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.CreateTriggerRule(setup, all, models.TriggerRuleInput{Name: "big payment", MerchantCode: "SHOP_SH",
		Kind: models.TriggerLargePayment, Params: `{"amount":100000}`, Alert: true, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	rec := f.wxPayment("4200000001202603010000000777", 250000)
	hdr, body := f.wxNotification(rec, time.Now())
	if status, ans := f.postWechat(f.wx.ID, hdr, body); status != http.StatusNoContent {
		t.Fatalf("notification: %d %q", status, ans)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		alerts, err := f.store.ListAlerts(all, models.AlertFilter{})
		if err != nil {
			t.Fatal(err)
		}
		page, _ := f.store.ListRuns(all, models.RunFilter{FlowID: flow.ID})
		if len(alerts) == 1 && len(page.Rows) > 0 && page.Rows[0].Status != models.RunRunning {
			break
		}
		if time.Now().After(deadline) {
			page, _ := f.store.ListRuns(all, models.RunFilter{FlowID: flow.ID})
			t.Fatalf("no alert 15 s after the notification; alerts %+v, runs %+v", alerts, page.Rows)
		}
		time.Sleep(100 * time.Millisecond)
	}
	page, _ := f.store.ListRuns(all, models.RunFilter{FlowID: flow.ID})
	if len(page.Rows) == 0 || page.Rows[len(page.Rows)-1].Trigger != models.TriggerEvent {
		t.Errorf("runs %+v, want one started by the event", page.Rows)
	}
	// Runs started by events are not a person's change: not audited.
	var n int64
	f.store.DB.Model(&models.AuditLog{}).Where("action = ?", models.ActFlowRun).Count(&n)
	if n != 0 {
		t.Errorf("%d flow.run audit entries for an event", n)
	}
}
