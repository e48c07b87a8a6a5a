package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"payfuse/channels"
	"payfuse/models"
)

func TestAlertInboxInTheBrowser(t *testing.T) {
	w := newLedgerWorld(t)
	raise := func(merchant, key, title string) *models.Alert {
		a, _, err := w.store.RaiseAlert(models.RaiseInput{MerchantCode: merchant, Source: "flow", Kind: "flow_failed", Severity: models.SeverityCritical,
			DedupeKey: key, Title: channels.Text{EN: title, ZH: "中文" + title}, Body: channels.Text{EN: "3 attempts failed", ZH: "3 次尝试均失败"}, Link: "/ledger"})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	sh := raise("SHOP_SH", "k1", "SH bill sync failed")
	raise("SHOP_BJ", "k2", "BJ bill sync failed")
	raise("", "k3", "PayFuse itself")

	op := w.english(t, "opsh", "operator sh pass")
	home := op.get("/")
	if !strings.Contains(home.Body, `data-nav-badge="/alerts"`) {
		t.Errorf("no open-alert badge in the navigation")
	}
	page := op.get("/alerts")
	if page.StatusCode != http.StatusOK || !strings.Contains(page.Body, "SH bill sync failed") || !strings.Contains(page.Body, "3 attempts failed") {
		t.Fatalf("inbox: %d %s", page.StatusCode, clip(page.Body))
	}
	if strings.Contains(page.Body, "BJ bill sync failed") || strings.Contains(page.Body, "PayFuse itself") {
		t.Error("the inbox shows alerts outside the user's merchants")
	}
	// Another merchant's user cannot touch it.
	bj := w.english(t, "opbj", "operator bj pass")
	if r := bj.post("/alerts/"+id(sh.ID)+"/acknowledge", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("acknowledge another merchant's alert: %d", r.StatusCode)
	}
	if r := op.post("/alerts/"+id(sh.ID)+"/acknowledge", nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("acknowledge: %d", r.StatusCode)
	}
	if home := op.get("/"); strings.Contains(home.Body, `data-nav-badge="/alerts"`) {
		t.Error("the badge still counts an acknowledged alert")
	}
	if r := op.post("/alerts/"+id(sh.ID)+"/resolve", url.Values{"note": {"re-entered the key"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("resolve: %d", r.StatusCode)
	}
	resolved := op.get("/alerts?status=resolved")
	if !strings.Contains(resolved.Body, "re-entered the key") || !strings.Contains(resolved.Body, "resolved by opsh") {
		t.Errorf("resolved tab: %s", clip(resolved.Body))
	}
	// Chinese.
	zh := newClient(t, w.srv)
	zh.header.Set("Accept-Language", "zh-CN")
	zh.login("opbj", "operator bj pass")
	if p := zh.get("/alerts"); !strings.Contains(p.Body, "中文BJ bill sync failed") || !strings.Contains(p.Body, "严重") {
		t.Errorf("Chinese inbox: %s", clip(p.Body))
	}
}
