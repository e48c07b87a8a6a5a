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

// TestReconcileCLI imports a real-format WeChat bill and reconciles its day:
// nothing else told PayFuse of those payments, so every record is "only in
// statement"; the JSON keys are the stable ones the issue names.
func TestReconcileCLI(t *testing.T) {
	db := testDB(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	models.CreateMasterKey(keyFile)
	g := []string{"--db", db, "--master-key-file", keyFile}
	runCLI(t, "", append(g, "merchant", "create", "--code", "SHOP_REC", "--name", "Reconcile shop")...)
	values := testkeys.Credentials("wechat", time.Now())
	values["mch_id"] = []byte("1612345678")
	if code, _, errs := runCLI(t, "", wechatConfigureArgs(t, g, dir, "SHOP_REC", values)...); code != 0 {
		t.Fatalf("configure: %s", errs)
	}
	reconcile := func(date string) (int, map[string]any, string) {
		code, out, errs := runCLI(t, "", append(g, "reconcile", "--merchant", "SHOP_REC", "--channel", "wechat", "--date", date, "--json")...)
		var res map[string]any
		if code == 0 {
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("reconcile --json printed %q", out)
			}
		}
		return code, res, errs
	}
	code, before, errs := reconcile("2026-02-28")
	if code != 0 || before["status"] != models.ReconNoStatement || before["only_in_statement"] != 0.0 {
		t.Fatalf("before the import: %d %v %s", code, before, errs)
	}
	var imp struct{ Rows int }
	_, out, _ := runCLI(t, "", append(g, "import", "--merchant", "SHOP_REC", "--channel", "wechat", "--json", "channels/wechat/testdata/all.csv")...)
	json.Unmarshal([]byte(out), &imp)
	code, res, errs := reconcile("2026-02-28")
	if code != 0 {
		t.Fatalf("reconcile: %d %s", code, errs)
	}
	for _, k := range []string{"matched", "amount_mismatch", "status_mismatch", "missing_in_statement", "only_in_statement"} {
		if _, ok := res[k].(float64); !ok {
			t.Errorf("--json lacks %q: %v", k, res)
		}
	}
	if res["only_in_statement"].(float64) == 0 || res["status"] != models.ReconOpen || res["matched"].(float64) != 0 {
		t.Errorf("a bill nothing else confirmed: %v", res)
	}
	total := 0.0
	for _, b := range models.ReconBuckets {
		total += res[b].(float64)
	}
	if int(total) > imp.Rows || total == 0 {
		t.Errorf("%v records counted for a %d-row bill", total, imp.Rows)
	}

	// The human form names every bucket.
	code, out, _ = runCLI(t, "", append(g, "reconcile", "--merchant", "SHOP_REC", "--channel", "wechat", "--date", "2026-02-28")...)
	if code != 0 || !strings.Contains(out, "only_in_statement") || !strings.Contains(out, "open") {
		t.Errorf("plain output: %d %s", code, out)
	}
	// Bad input: a clear message, a failing exit status, nothing recorded.
	if code, _, errs := reconcile("2026-02-30"); code == 0 || !strings.Contains(errs, "YYYY-MM-DD") {
		t.Errorf("bad date: %d %s", code, errs)
	}
	if code, _, errs := runCLI(t, "", append(g, "reconcile", "--merchant", "NOPE", "--channel", "wechat", "--date", "2026-02-28")...); code == 0 || !strings.Contains(errs, "NOPE") {
		t.Errorf("unknown merchant: %d %s", code, errs)
	}
	if code, _, errs := runCLI(t, "", append(g, "reconcile", "--merchant", "SHOP_REC", "--channel", "alipay", "--date", "2026-02-28")...); code == 0 || !strings.Contains(errs, "no alipay account") {
		t.Errorf("no such account: %d %s", code, errs)
	}
}
