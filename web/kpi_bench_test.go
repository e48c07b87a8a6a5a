package web_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"payfuse/channels/testkeys"
	"payfuse/models"
)

// BenchmarkKPIPreview times the weights page's live preview on the server:
// POST /kpis/preview as htmx sends it (parse the draft, read 90 days of
// rollups, score under the draft and the active weights, render the
// scoreboard), for a merchant with three channel accounts, every method and
// 90 days of demo traffic. The preview reads only the daily rollups, whose
// size depends on accounts × methods × days, not on the ledger's rows. It
// reports p50 and p99 in milliseconds (the issue: the board updates within
// 100 ms of a slider move).
//
//	go test ./web -run '^$' -bench KPIPreview -benchtime 300x
func BenchmarkKPIPreview(b *testing.B) {
	srv, store := newServer(&testing.T{})
	setup := models.Actor{Name: "setup"}
	m, err := store.CreateMerchant(setup, models.MerchantInput{Code: "SHOP_SH", Name: "Shanghai"})
	if err != nil {
		b.Fatal(err)
	}
	for _, ch := range []string{"wechat", "alipay", "unionpay"} {
		spec, _ := models.LookupChannel(ch)
		if _, _, err := store.SaveAccount(setup, 0, models.AccountInput{MerchantID: m.ID, Channel: ch, Methods: spec.Methods, FeeRateBP: 60,
			Enabled: true, Values: testkeys.Credentials(ch, time.Now())}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := store.GenerateDemoHistory(setup, models.DemoOptions{Transactions: 20000, Days: 90, Merchants: []string{"SHOP_SH"}}); err != nil {
		b.Fatal(err)
	}
	var groups int64
	store.DB.Model(&models.DailyRollup{}).Count(&groups)
	models.MustCreateUser(&testing.T{}, store, "finsh", "finance sh pass", models.RoleFinance, "SHOP_SH")
	c := newClient(&testing.T{}, srv)
	c.login("finsh", "finance sh pass")
	form := url.Values{"merchant": {"SHOP_SH"}, "range": {"90d"}, "name": {"Draft"}, "_csrf": {c.csrf()}}
	for i, d := range models.KPIDefs {
		form.Set("w."+d.Key, []string{"1", "2.5", "0", "4"}[i%4])
		form.Set("n."+d.Key, models.NormMinMax)
	}
	form.Set("n.success_rate", models.NormTarget)
	form.Set("t.success_rate", "99")
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		r := c.do("POST", "/kpis/preview", form, "HX-Request", "true")
		lat = append(lat, time.Since(t0))
		if r.StatusCode != http.StatusOK {
			b.Fatalf("preview: %d %s", r.StatusCode, clip(r.Body))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(groups), "rollup-rows")
}
