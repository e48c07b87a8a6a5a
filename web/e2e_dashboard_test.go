package web_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"payfuse/channels/testkeys"
	"payfuse/models"
)

// TestBrowserDashboard opens the dashboard over 30 days of demo traffic in
// both languages: the charts draw (ECharts loads under the console's
// Content-Security-Policy), the figures read as money, and nothing on the
// page logs an error.
func TestBrowserDashboard(t *testing.T) {
	if os.Getenv("PAYFUSE_E2E") != "1" {
		t.Skip("browser test: set PAYFUSE_E2E=1 (needs Debian's chromium at /usr/bin/chromium)")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("PAYFUSE_E2E=1 but Chromium is not usable at %s: %v", chromiumPath, err)
	}
	base := startServer(t, func(store *models.Store) {
		setup := models.Actor{Name: "setup"}
		m, err := store.CreateMerchant(setup, models.MerchantInput{Code: "SHOP_SH", Name: "上海旗舰店"})
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range []string{"wechat", "alipay", "unionpay"} {
			spec, _ := models.LookupChannel(ch)
			if _, _, err := store.SaveAccount(setup, 0, models.AccountInput{MerchantID: m.ID, Channel: ch, Methods: spec.Methods, FeeRateBP: 60,
				Enabled: true, Values: testkeys.Credentials(ch, time.Now())}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := store.GenerateDemoHistory(setup, models.DemoOptions{Transactions: 3000, Days: 30, Merchants: []string{"SHOP_SH"}}); err != nil {
			t.Fatal(err)
		}
	})
	b := newBrowser(t, base)
	b.navigate("open /", "/", 200)
	b.login("admin", "correct horse battery", "/")
	b.navigate("dashboard, 30 days", "/?range=30d", 200)
	waitCharts := func(step string) {
		deadline := time.Now().Add(15 * time.Second)
		for evaluate[int](b, step, `document.querySelectorAll('canvas').length`) < 3 {
			if time.Now().After(deadline) {
				b.failf(step, "the charts did not draw")
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(700 * time.Millisecond) // the charts' entry animation
	}
	waitCharts("charts")
	body := b.text("dashboard text", "main")
	if !strings.Contains(body, "¥") {
		b.failf("dashboard text", "no amount in yuan on the dashboard")
	}
	b.shot("dashboard")
	// Choosing a language submits its form (data-autosubmit): the page reloads in Chinese.
	b.do("switch to Chinese", chromedp.SetValue(chromedp.CSS(`select#lang-select`), "zh-CN"))
	deadline := time.Now().Add(10 * time.Second)
	lang := func() string { // tolerates the page being replaced under it
		ctx, cancel := b.step()
		defer cancel()
		v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement ? document.documentElement.lang : ""`))
		return v
	}
	for lang() != "zh-CN" {
		if time.Now().After(deadline) {
			b.failf("page language", "the page did not switch to Chinese")
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitCharts("charts in Chinese")
	b.shot("dashboard-zh")
	b.checkConsole()
}
