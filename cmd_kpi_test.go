package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"payfuse/channels/testkeys"
	"payfuse/models"
)

// TestKPICLI imports a real-format WeChat bill and prints the KPIs of its
// day: text with the formula, and JSON with the stable keys; bad input is
// refused with a one-line reason.
func TestKPICLI(t *testing.T) {
	db := testDB(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	models.CreateMasterKey(keyFile)
	g := []string{"--db", db, "--master-key-file", keyFile}
	runCLI(t, "", append(g, "merchant", "create", "--code", "SHOP_KPI", "--name", "KPI shop")...)
	values := testkeys.Credentials("wechat", time.Now())
	values["mch_id"] = []byte("1612345678")
	if code, _, errs := runCLI(t, "", wechatConfigureArgs(t, g, dir, "SHOP_KPI", values)...); code != 0 {
		t.Fatalf("configure: %s", errs)
	}
	if code, _, errs := runCLI(t, "", append(g, "import", "--merchant", "SHOP_KPI", "--channel", "wechat", "channels/wechat/testdata/all.csv")...); code != 0 {
		t.Fatalf("import: %s", errs)
	}
	code, out, errs := runCLI(t, "", append(g, "kpi", "--merchant", "SHOP_KPI", "--from", "2026-02-01", "--to", "2026-02-28", "--json")...)
	if code != 0 {
		t.Fatalf("kpi --json: %d %s", code, errs)
	}
	var res struct {
		Merchant    string   `json:"merchant"`
		WeightsFrom string   `json:"weights_from"`
		Fused       *float64 `json:"fused"`
		Accounts    []struct {
			Rank  int      `json:"rank"`
			Score *float64 `json:"score"`
			KPIs  []struct {
				Key        string   `json:"key"`
				Value      *float64 `json:"value"`
				Normalised *float64 `json:"normalised"`
				Weight     float64  `json:"weight"`
			} `json:"kpis"`
		} `json:"accounts"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("kpi --json printed %q", out)
	}
	if res.Merchant != "SHOP_KPI" || res.WeightsFrom != "default" || len(res.Accounts) != 1 || res.Accounts[0].Rank != 1 || res.Fused == nil {
		t.Fatalf("kpi --json: %s", out)
	}
	if *res.Fused != 100 { // one account is the best in view on every min–max KPI
		t.Errorf("fused %v, want 100 for a single account", *res.Fused)
	}
	var gmv float64
	for _, k := range res.Accounts[0].KPIs {
		if k.Key == models.KPIGMV && k.Value != nil {
			gmv = *k.Value
		}
	}
	if gmv <= 0 {
		t.Errorf("no GMV in %s", out)
	}
	code, out, _ = runCLI(t, "", append(g, "kpi", "--merchant", "SHOP_KPI", "--from", "2026-02-01", "--to", "2026-02-28")...)
	if code != 0 || !strings.Contains(out, "score = (") || !strings.Contains(out, "fused score 100.00") || !strings.Contains(out, "gmv") {
		t.Fatalf("kpi text: %d %s", code, out)
	}
	for _, bad := range [][]string{
		{"kpi", "--merchant", "NOPE", "--from", "2026-02-01", "--to", "2026-02-28"},
		{"kpi", "--merchant", "SHOP_KPI", "--from", "2026-02-30", "--to", "2026-02-28"},
		{"kpi", "--merchant", "SHOP_KPI", "--from", "2026-02-01"},
		{"kpi", "--merchant", "SHOP_KPI", "--from", "2026-02-01", "--to", "2026-02-28", "--method", "cash"},
	} {
		code, out, errs := runCLI(t, "", append(g, bad...)...)
		if code == 0 || out != "" || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%v: code %d, out %q, err %q", bad, code, out, errs)
		}
	}
}
