package main

import (
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/testkeys"
	"payfuse/models"
)

// cliLedgerSums sums an `export transactions` CSV the way the report
// counts: succeeded payments and refunds apart, refund fees returned.
func cliLedgerSums(t *testing.T, out string) (payments, amount, refunds, refundAmount, fees int64) {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "\uFEFF"))).ReadAll()
	if err != nil || len(recs) < 2 {
		t.Fatalf("export: %v %q", err, out)
	}
	col := map[string]int{}
	for i, c := range recs[0] {
		col[c] = i
	}
	for _, r := range recs[1:] {
		if r[col["status"]] != channels.StatusSucceeded {
			continue
		}
		a, _ := channels.ParseYuan(r[col["amount"]])
		f, _ := channels.ParseYuan(r[col["fee"]])
		if r[col["kind"]] == channels.KindPayment {
			payments, amount, fees = payments+1, amount+a, fees+f
		} else {
			refunds, refundAmount, fees = refunds+1, refundAmount+a, fees-f
		}
	}
	return
}

// TestReportCLI imports a real-format WeChat bill (business date
// 2026-02-28) and prints its reports: the daily CSV's totals equal the
// ledger export's for the same merchant and date; JSON and by-method agree;
// bad input fails with a clear message.
func TestReportCLI(t *testing.T) {
	db := testDB(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	models.CreateMasterKey(keyFile)
	g := []string{"--db", db, "--master-key-file", keyFile}
	runCLI(t, "", append(g, "merchant", "create", "--code", "SHOP_REP", "--name", "Report shop")...)
	values := testkeys.Credentials("wechat", time.Now())
	values["mch_id"] = []byte("1612345678")
	if code, _, errs := runCLI(t, "", wechatConfigureArgs(t, g, dir, "SHOP_REP", values, "--name", "Main WeChat")...); code != 0 {
		t.Fatalf("configure: %s", errs)
	}
	if code, _, errs := runCLI(t, "", append(g, "import", "--merchant", "SHOP_REP", "--channel", "wechat", "channels/wechat/testdata/all.csv")...); code != 0 {
		t.Fatalf("import: %s", errs)
	}

	code, out, errs := runCLI(t, "", append(g, "report", "daily", "--merchant", "shop_rep", "--date", "2026-02-28")...)
	if code != 0 || !strings.HasPrefix(out, "\uFEFF") {
		t.Fatalf("report daily: %d %s %q", code, errs, out)
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "\uFEFF"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != "merchant,channel,account,date,payments,payment_amount,refunds,refund_amount,fees,net,reconciliation" || len(recs) != 3 {
		t.Fatalf("daily csv %q", recs)
	}
	row, total := recs[1], recs[2]
	if row[0] != "SHOP_REP" || row[1] != "wechat" || row[2] != "Main WeChat" || row[3] != "2026-02-28" || row[10] != models.ReportNotRun || total[0] != models.ReportTotal {
		t.Errorf("daily rows %q", recs)
	}
	_, exp, _ := runCLI(t, "", append(g, "export", "transactions", "--merchant", "SHOP_REP", "--from", "2026-02-28", "--to", "2026-02-28")...)
	p, a, r, ra, f := cliLedgerSums(t, exp)
	if p == 0 || r == 0 {
		t.Fatalf("the bill has no succeeded payments or refunds: %q", exp)
	}
	want := []string{itoa64(p), models.Yuan(a), itoa64(r), models.Yuan(ra), models.Yuan(f), models.Yuan(a - ra - f)}
	if got := strings.Join(total[4:10], ","); got != strings.Join(want, ",") {
		t.Errorf("report totals %s, ledger export %s", got, strings.Join(want, ","))
	}

	// JSON: the same figures as numbers; by method: rows per method, same totals.
	code, out, errs = runCLI(t, "", append(g, "report", "daily", "--merchant", "SHOP_REP", "--date", "2026-02-28", "--format", "json", "--by-method")...)
	var js struct {
		Period string `json:"period"`
		Rows   []struct {
			Method        *string     `json:"method"`
			PaymentAmount json.Number `json:"payment_amount"`
		} `json:"rows"`
		Total struct {
			Payments      int64       `json:"payments"`
			PaymentAmount json.Number `json:"payment_amount"`
			Net           json.Number `json:"net"`
		} `json:"total"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &js) != nil {
		t.Fatalf("json: %d %s %q", code, errs, out)
	}
	if js.Period != "daily" || len(js.Rows) < 2 || js.Rows[0].Method == nil || js.Total.Payments != p ||
		string(js.Total.PaymentAmount) != models.Yuan(a) || string(js.Total.Net) != models.Yuan(a-ra-f) {
		t.Errorf("json %s", out)
	}

	// The month holds the same day.
	code, out, errs = runCLI(t, "", append(g, "report", "monthly", "--merchant", "SHOP_REP", "--month", "2026-02")...)
	if code != 0 || !strings.Contains(out, "SHOP_REP,wechat,Main WeChat,2026-02,"+strings.Join(want, ",")+",not_run\r\n") {
		t.Errorf("monthly: %d %s %q", code, errs, out)
	}

	// Bad input: a clear message on stderr and a failing exit status.
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"report", "daily", "--merchant", "SHOP_REP", "--date", "2026-02-30"}, "YYYY-MM-DD"},
		{[]string{"report", "monthly", "--merchant", "SHOP_REP", "--month", "2026-2"}, "YYYY-MM"},
		{[]string{"report", "daily", "--merchant", "NOPE", "--date", "2026-02-28"}, `no merchant "NOPE"`},
		{[]string{"report", "daily", "--date", "2026-02-28"}, "--merchant"},
		{[]string{"report", "daily", "--merchant", "SHOP_REP", "--date", "2026-02-28", "--format", "xml"}, "csv or json"},
		{[]string{"report", "weekly"}, "daily or monthly"},
		{[]string{"report"}, "daily or monthly"},
	} {
		code, out, errs := runCLI(t, "", append(g, c.args...)...)
		if code == 0 || !strings.Contains(errs, c.msg) || out != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q", c.args, code, errs, out)
		}
	}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
