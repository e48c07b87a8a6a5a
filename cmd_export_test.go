package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"payfuse/channels/testkeys"
	"payfuse/models"
)

const exportHeader = "merchant,channel,kind,status,method,channel_txn_id,merchant_order_no,refund_no,amount,fee,currency,paid_at,biz_date,sources,conflict"

func TestExportCLI(t *testing.T) {
	db := testDB(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	models.CreateMasterKey(keyFile)
	g := []string{"--db", db, "--master-key-file", keyFile}
	runCLI(t, "", append(g, "merchant", "create", "--code", "SHOP_EXP", "--name", "Export shop")...)
	runCLI(t, "", append(g, "merchant", "create", "--code", "SHOP_NONE", "--name", "Empty shop")...)
	values := testkeys.Credentials("wechat", time.Now())
	values["mch_id"] = []byte("1612345678")
	if code, _, errs := runCLI(t, "", wechatConfigureArgs(t, g, dir, "SHOP_EXP", values)...); code != 0 {
		t.Fatalf("configure: %s", errs)
	}
	code, out, errs := runCLI(t, "", append(g, "import", "--merchant", "SHOP_EXP", "--channel", "wechat", "--json", "channels/wechat/testdata/all.csv")...)
	var res struct{ Inserted int }
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Inserted == 0 {
		t.Fatalf("import: %d %s %s", code, out, errs)
	}

	// To standard output: BOM, the fixed header, one line per transaction.
	code, out, errs = runCLI(t, "", append(g, "export", "transactions", "--merchant", "SHOP_EXP")...)
	if code != 0 || !strings.HasPrefix(out, "\uFEFF"+exportHeader+"\r\n") {
		t.Fatalf("export to stdout: %d %q %s", code, out[:min(len(out), 200)], errs)
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "\uFEFF"))).ReadAll()
	if err != nil || len(recs) != res.Inserted+1 {
		t.Fatalf("%d records (%v), want %d rows and the header", len(recs), err, res.Inserted)
	}
	dates := map[string]bool{}
	for _, r := range recs[1:] {
		if r[0] != "SHOP_EXP" || r[1] != "wechat" || (r[2] != "payment" && r[2] != "refund") || strings.HasPrefix(r[8], "-") || !strings.Contains(r[8], ".") || r[13] != "statement" {
			t.Errorf("row %q", r)
		}
		if r[11] != "" {
			if _, err := time.Parse(time.RFC3339, r[11]); err != nil || !strings.HasSuffix(r[11], "Z") {
				t.Errorf("paid_at %q is not RFC 3339 UTC", r[11])
			}
		}
		dates[r[12]] = true
	}

	// To a file, XLSX, with the same header and rows.
	file := filepath.Join(dir, "out.xlsx")
	if code, _, errs := runCLI(t, "", append(g, "export", "transactions", "--merchant", "SHOP_EXP", "--channel", "wechat", "--format", "xlsx", "-o", file)...); code != 0 {
		t.Fatalf("export xlsx: %s", errs)
	}
	x, err := excelize.OpenFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := x.GetRows("Sheet1")
	if len(rows) != res.Inserted+1 || strings.Join(rows[0], ",") != exportHeader {
		t.Fatalf("xlsx: %d rows, header %v", len(rows), rows[0])
	}
	x.Close()

	// A business-date range: inclusive; a date past every row gives the header only.
	var one string
	for d := range dates {
		one = d
		break
	}
	csvFile := filepath.Join(dir, "day.csv")
	if code, _, errs := runCLI(t, "", append(g, "export", "transactions", "--merchant", "SHOP_EXP", "--from", one, "--to", one, "-o", csvFile)...); code != 0 {
		t.Fatalf("export day: %s", errs)
	}
	b, _ := os.ReadFile(csvFile)
	day, _ := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(b), "\uFEFF"))).ReadAll()
	if len(day) < 2 {
		t.Fatalf("one day's export has %d lines", len(day))
	}
	for _, r := range day[1:] {
		if r[12] != one {
			t.Errorf("row of %s in the export of %s", r[12], one)
		}
	}
	if code, out, _ := runCLI(t, "", append(g, "export", "transactions", "--merchant", "SHOP_NONE")...); code != 0 || out != "\uFEFF"+exportHeader+"\r\n" {
		t.Errorf("empty merchant: %d %q", code, out)
	}

	// Refusals: one line, exit 1, no file left behind.
	for _, args := range [][]string{
		{"--merchant", "NO_SUCH"},
		{"--merchant", "SHOP_EXP", "--from", "2026-02-30"},
		{"--merchant", "SHOP_EXP", "--format", "pdf"},
		{"--channel", "wechat"},
	} {
		bad := filepath.Join(dir, "bad.csv")
		code, _, errs := runCLI(t, "", append(append(append([]string{}, g...), "export", "transactions"), append(args, "-o", bad)...)...)
		if code != 1 || strings.Count(strings.TrimSpace(errs), "\n") > 0 || errs == "" {
			t.Errorf("%v: exit %d, %q", args, code, errs)
		}
		if _, err := os.Stat(bad); err == nil {
			t.Errorf("%v left a file", args)
		}
	}
	if code, _, errs := runCLI(t, "", append(g, "export", "transactions", "--merchant", "NO_SUCH")...); code != 1 || !strings.Contains(errs, "NO_SUCH") {
		t.Errorf("unknown merchant: %d %q", code, errs)
	}
}
