package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"payfuse/channels/wechat"
	"payfuse/models"
)

// TestFlowCLI lists flows and runs a bill-sync flow from the command line
// against a fake WeChat Pay server.
func TestFlowCLI(t *testing.T) {
	fake := wechat.NewFakeChannel()
	defer fake.Close()
	db := testDB(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	models.CreateMasterKey(keyFile)
	g := []string{"--db", db, "--master-key-file", keyFile}
	runCLI(t, "", append(g, "merchant", "create", "--code", "SHOP_FLOW", "--name", "Flow shop")...)
	if code, _, errs := runCLI(t, "", wechatConfigureArgs(t, g, dir, "SHOP_FLOW", fake.Credentials())...); code != 0 {
		t.Fatalf("configure: %s", errs)
	}
	bill, _ := os.ReadFile("channels/wechat/testdata/all.csv")
	fake.AddBill("2026-02-28", "ALL", []byte(strings.ReplaceAll(string(bill), "1612345678", fake.MchID)))

	dsn, _ := models.ParseDSN(db)
	conn, err := models.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	s := models.NewStore(conn, dsn.Dialect)
	defer s.Close()
	// A manual run works on the day before today; this one names its day.
	if _, err := s.CreateFlow(models.CLIActor(), models.Scope{All: true}, models.FlowInput{Name: "flow-bills", Kind: models.FlowBillSync,
		MerchantCode: "SHOP_FLOW", Schedule: "0 10 * * *", Enabled: true, Params: `{"lag_days":0}`}); err != nil {
		t.Fatal(err)
	}

	code, out, errs := runCLI(t, "", append(g, "flow", "list", "--json")...)
	var list []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0]["name"] != "flow-bills" || list[0]["next_run_at"] == nil {
		t.Fatalf("flow list: %d %s %s", code, out, errs)
	}
	if code, out, _ := runCLI(t, "", append(g, "flow", "list")...); code != 0 || !strings.Contains(out, "0 10 * * *") {
		t.Errorf("flow list (text): %s", out)
	}
	// Today's bill is not ready: the run fails cleanly, to be retried.
	code, out, errs = runCLI(t, "", append(g, "flow", "run", "flow-bills", "--json", "--wechat-api-base", fake.URL)...)
	var res map[string]any
	json.Unmarshal([]byte(out), &res)
	if code == 0 || res["status"] != models.RunRetrying || !strings.Contains(errs, "next attempt") {
		t.Errorf("not-ready run: %d %s %s", code, out, errs)
	}
	// A backfill flow for the bill's day takes it.
	if _, err := s.CreateFlow(models.CLIActor(), models.Scope{All: true}, models.FlowInput{Name: "backfill-0228", Kind: models.FlowBillSync,
		MerchantCode: "SHOP_FLOW", Enabled: true, Params: `{"date":"2026-02-28"}`}); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCLI(t, "", append(g, "flow", "run", "backfill-0228", "--json", "--wechat-api-base", fake.URL)...)
	res = nil
	json.Unmarshal([]byte(out), &res)
	if code != 0 || res["status"] != models.RunSucceeded || res["rows_new"] != 18.0 || res["discrepancies"] == 0.0 {
		t.Errorf("backfill run: %d %s %s", code, out, errs)
	}
	if code, _, errs := runCLI(t, "", append(g, "flow", "run", "no-such-flow")...); code == 0 || !strings.Contains(errs, "no flow named") {
		t.Errorf("unknown flow: %d %s", code, errs)
	}
	if code, _, errs := runCLI(t, "", append(g, "flow", "dance")...); code == 0 || !strings.Contains(errs, "unknown subcommand") {
		t.Errorf("unknown subcommand: %d %s", code, errs)
	}
}
