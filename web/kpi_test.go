package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/testkeys"
	"payfuse/models"
)

// kpiWorld is the ledger world with a second SHOP_SH account (Alipay) and
// yesterday's traffic on both: WeChat sells more, Alipay never fails.
func kpiWorld(t *testing.T) (*ledgerWorld, *models.ChannelAccount) {
	t.Helper()
	w := newLedgerWorld(t)
	setup := models.Actor{Name: "setup"}
	sh, err := w.store.GetMerchantByCode(models.Scope{All: true}, "SHOP_SH")
	if err != nil {
		t.Fatal(err)
	}
	values := testkeys.Credentials("alipay", time.Now())
	ali, _, err := w.store.SaveAccount(setup, 0, models.AccountInput{MerchantID: sh.ID, Channel: "alipay", DisplayName: "SH Alipay",
		Methods: []string{"scan"}, Enabled: true, Values: values})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().In(sh.Location()).AddDate(0, 0, -1)
	var wx, ap []channels.Record
	for i := 0; i < 10; i++ {
		status := channels.StatusSucceeded
		if i < 3 {
			status = channels.StatusFailed
		}
		wx = append(wx, channels.Record{Channel: "wechat", Kind: channels.KindPayment, ChannelRef: fmt.Sprintf("WX%03d", i), MerchantOrderNo: fmt.Sprintf("OW%03d", i),
			Method: "scan", Status: status, Amount: 50000, Currency: "CNY", AccountRef: testBillMchID, CreatedAt: at, PaidAt: at})
	}
	for i := 0; i < 4; i++ {
		ap = append(ap, channels.Record{Channel: "alipay", Kind: channels.KindPayment, ChannelRef: fmt.Sprintf("AP%03d", i), MerchantOrderNo: fmt.Sprintf("OA%03d", i),
			Method: "scan", Status: channels.StatusSucceeded, Amount: 10000, Currency: "CNY", AccountRef: string(values["pid"]), CreatedAt: at, PaidAt: at})
	}
	if _, err := w.store.Ingest(setup, w.acctSH.ID, models.SourceNotification, wx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.Ingest(setup, ali.ID, models.SourceNotification, ap); err != nil {
		t.Fatal(err)
	}
	models.MustCreateUser(t, w.store, "boss", "admin boss pass", models.RoleAdmin)
	return w, ali
}

var rankRE = regexp.MustCompile(`data-account="(\d+)" data-rank="(\d+)"`)

// ranks reads the ranking table: account id → rank.
func ranks(body string) map[string]string {
	out := map[string]string{}
	for _, m := range rankRE.FindAllStringSubmatch(body, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// weightsForm is the weights form as the page fills it, with changes.
func weightsForm(w *ledgerWorld, ali *models.ChannelAccount, set map[string]string) url.Values {
	f := url.Values{"merchant": {"SHOP_SH"}, "range": {"30d"}, "name": {"Draft"}}
	for _, d := range models.KPIDefs {
		f.Set("w."+d.Key, "1")
		f.Set("n."+d.Key, models.NormMinMax)
	}
	f.Set("a."+id(w.acctSH.ID), "1")
	f.Set("a."+id(ali.ID), "1")
	for k, v := range set {
		f.Set(k, v)
	}
	return f
}

func TestKPIPageAndLivePreview(t *testing.T) {
	w, ali := kpiWorld(t)
	fin := w.english(t, "finsh", "finance sh pass")

	page := fin.get("/kpis")
	if page.StatusCode != http.StatusOK {
		t.Fatalf("/kpis: %d %s", page.StatusCode, clip(page.Body))
	}
	for _, want := range []string{"SH WeChat", "SH Alipay", "Fused score", `id="kpi-ranking"`, "built-in defaults", "only admins can save", "Σ"} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("the KPI page lacks %q", want)
		}
	}
	if strings.Contains(page.Body, `id="kpi-save"`) {
		t.Error("finance sees the save button")
	}
	// Only GMV counts: WeChat (¥3,500) beats Alipay (¥400).
	gmvOnly := map[string]string{}
	for _, d := range models.KPIDefs {
		gmvOnly["w."+d.Key] = "0"
	}
	gmvOnly["w.gmv"] = "1"
	r := fin.do("POST", "/kpis/preview", withCSRF(fin, weightsForm(w, ali, gmvOnly)), "HX-Request", "true")
	if r.StatusCode != http.StatusOK || strings.Contains(r.Body, "<html") || !strings.Contains(r.Body, `id="kpi-board"`) {
		t.Fatalf("preview: %d %s", r.StatusCode, clip(r.Body))
	}
	rk := ranks(r.Body)
	if rk[id(w.acctSH.ID)] != "1" || rk[id(ali.ID)] != "2" {
		t.Fatalf("GMV only: ranks %v", rk)
	}
	if !strings.Contains(r.Body, "(100×1) / (1) = 100") {
		t.Errorf("the formula with numbers is missing: %s", clip(r.Body))
	}
	// Only the success rate counts: Alipay (100 %) beats WeChat (70 %).
	rateOnly := map[string]string{}
	for k := range gmvOnly {
		rateOnly[k] = "0"
	}
	rateOnly["w.success_rate"] = "1"
	r = fin.do("POST", "/kpis/preview", withCSRF(fin, weightsForm(w, ali, rateOnly)), "HX-Request", "true")
	rk = ranks(r.Body)
	if rk[id(ali.ID)] != "1" || rk[id(w.acctSH.ID)] != "2" {
		t.Fatalf("success rate only: ranks %v", rk)
	}
	// All zero: refused with a message, nothing scored.
	zero := map[string]string{}
	for k := range gmvOnly {
		zero[k] = "0"
	}
	r = fin.do("POST", "/kpis/preview", withCSRF(fin, weightsForm(w, ali, zero)), "HX-Request", "true")
	if !strings.Contains(r.Body, "Every KPI weighs 0") || strings.Contains(r.Body, `id="kpi-ranking"`) {
		t.Fatalf("all-zero preview: %s", clip(r.Body))
	}
	r = fin.do("POST", "/kpis/preview", withCSRF(fin, weightsForm(w, ali, map[string]string{"w.gmv": "-2", "a." + id(ali.ID): "x"})), "HX-Request", "true")
	if !strings.Contains(r.Body, "A weight is a number from 0 to 1000") || !strings.Contains(r.Body, "Enter a number") {
		t.Fatalf("bad numbers: %s", clip(r.Body))
	}
	// Without a CSRF token nothing is computed.
	if r := fin.do("POST", "/kpis/preview", weightsForm(w, ali, nil), "HX-Request", "true"); r.StatusCode != http.StatusForbidden {
		t.Fatalf("preview without CSRF: %d", r.StatusCode)
	}
	// Finance may not save.
	if r := fin.post("/kpis/weights", withReason(weightsForm(w, ali, gmvOnly), "x")); r.StatusCode != http.StatusForbidden {
		t.Fatalf("finance saved weights: %d", r.StatusCode)
	}
}

func withCSRF(c *client, f url.Values) url.Values {
	f.Set("_csrf", c.csrf())
	return f
}

func withReason(f url.Values, reason string) url.Values {
	f.Set("reason", reason)
	return f
}

func TestKPIWeightsSaveRestoreAndScope(t *testing.T) {
	w, ali := kpiWorld(t)
	admin := w.english(t, "boss", "admin boss pass")
	gmv := map[string]string{"name": "Volume"}
	for _, d := range models.KPIDefs {
		gmv["w."+d.Key] = "0"
	}
	gmv["w.gmv"] = "3"

	// No reason: refused, nothing saved.
	r := admin.post("/kpis/weights", weightsForm(w, ali, gmv))
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "Say why") {
		t.Fatalf("save without a reason: %d %s", r.StatusCode, clip(r.Body))
	}
	if vs, _ := w.store.WeightVersions(models.Scope{All: true}, "SHOP_SH"); len(vs) != 0 {
		t.Fatalf("a refused save stored %d versions", len(vs))
	}
	r = admin.post("/kpis/weights", withReason(weightsForm(w, ali, gmv), "volume first"))
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: %d %s", r.StatusCode, clip(r.Body))
	}
	page := admin.get(r.Header.Get("Location"))
	if !strings.Contains(page.Body, "version 1, “Volume”") || !strings.Contains(page.Body, "volume first") || !strings.Contains(page.Body, `data-version="1"`) {
		t.Fatalf("after save: %s", clip(page.Body))
	}
	second := map[string]string{"name": "Reliability"}
	for k, v := range gmv {
		second[k] = v
	}
	second["w.gmv"], second["w.success_rate"], second["name"] = "0", "1", "Reliability"
	if r := admin.post("/kpis/weights", withReason(weightsForm(w, ali, second), "reliability first")); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("second save: %d", r.StatusCode)
	}
	// Compare v1 with the active v2: the ranking flips.
	cmp := admin.get("/kpis/versions/1?merchant=SHOP_SH&range=30d")
	if cmp.StatusCode != http.StatusOK || !strings.Contains(cmp.Body, "Weights version 1: Volume") || !strings.Contains(cmp.Body, "data-move=") {
		t.Fatalf("compare: %d %s", cmp.StatusCode, clip(cmp.Body))
	}
	// Restore v1 (needs a reason): it becomes v3.
	if r := admin.post("/kpis/versions/1/restore", url.Values{"merchant": {"SHOP_SH"}, "range": {"30d"}}); r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("restore without a reason: %d", r.StatusCode)
	}
	r = admin.post("/kpis/versions/1/restore", url.Values{"merchant": {"SHOP_SH"}, "range": {"30d"}, "reason": {"back to volume"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("restore: %d %s", r.StatusCode, clip(r.Body))
	}
	act, v, err := w.store.ActiveWeights(models.Scope{All: true}, "SHOP_SH")
	if err != nil || v.Version != 3 || act.Name != "Volume" || act.KPIs[models.KPIGMV].Weight != 3 {
		t.Fatalf("active after restore: %+v %+v %v", act, v, err)
	}
	var n int64
	w.store.DB.Model(&models.AuditLog{}).Where("action IN ?", []string{models.ActKPIWeightsSave, models.ActKPIWeightsRestore}).Count(&n)
	if n != 3 {
		t.Fatalf("%d audit rows, want 3", n)
	}
	// Another merchant's users never see SHOP_SH's weights or accounts.
	bj := w.english(t, "finbj", "finance bj pass")
	p := bj.get("/kpis?merchant=SHOP_SH")
	if strings.Contains(p.Body, "SH WeChat") || strings.Contains(p.Body, "Volume") {
		t.Fatalf("SHOP_BJ finance sees SHOP_SH: %s", clip(p.Body))
	}
	if r := bj.get("/kpis/versions/1?merchant=SHOP_SH"); r.StatusCode != http.StatusNotFound {
		t.Fatalf("SHOP_BJ finance opened SHOP_SH's version: %d", r.StatusCode)
	}
	// The Chinese page shows the same board.
	zh := newClient(t, w.srv)
	zh.header.Set("Accept-Language", "zh-CN")
	zh.login("finsh", "finance sh pass")
	if p := zh.get("/kpis"); !strings.Contains(p.Body, "融合得分") || !strings.Contains(p.Body, "交易总额") {
		t.Fatalf("zh-CN page: %s", clip(p.Body))
	}
}
