package kinds_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels/alipay"
	"payfuse/channels/wechat"
	"payfuse/flows"
	"payfuse/flows/kinds"
	"payfuse/models"
)

var (
	all   = models.Scope{All: true}
	alice = models.Actor{Name: "alice", IP: "192.0.2.1"}
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// world is a store with merchant SHOP_SH, a clock at 10:00 Beijing time on
// 2026-03-01, and an engine running the PayFuse kinds against cfg.
type world struct {
	s   *models.Store
	e   *flows.Engine
	clk *clock
	m   *models.Merchant
}

func newWorld(t *testing.T, cfg kinds.Config) *world {
	t.Helper()
	s := models.OpenTest(t)
	c := &clock{t: time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)}
	s.Now = c.Now
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i + 1)
	}
	v, err := models.NewVault(key)
	if err != nil {
		t.Fatal(err)
	}
	s.Vault = v
	m, err := s.CreateMerchant(models.SystemActor, models.MerchantInput{Code: "SHOP_SH", Name: "上海店"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
	}
	e := flows.New(s)
	e.Now = c.Now
	e.Alerter = kinds.StoreAlerter{Store: s}
	kinds.Register(e, s, cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	return &world{s: s, e: e, clk: c, m: m}
}

func (w *world) account(t *testing.T, channel string, values map[string][]byte) *models.ChannelAccount {
	t.Helper()
	a, rep, err := w.s.SaveAccount(models.SystemActor, 0, models.AccountInput{MerchantID: w.m.ID, Channel: channel, DisplayName: "SH " + channel,
		Methods: []string{"scan"}, Enabled: true, Values: values})
	if err != nil {
		t.Fatalf("account: %v %+v", err, rep)
	}
	return a
}

func (w *world) flow(t *testing.T, name, kind string, acct *models.ChannelAccount, params string) *models.Flow {
	t.Helper()
	in := models.FlowInput{Name: name, Kind: kind, MerchantCode: "SHOP_SH", Params: params, Schedule: "0 10 * * *", Enabled: true, MaxAttempts: 2}
	if acct != nil {
		in.AccountID = acct.ID
	}
	f, err := w.s.CreateFlow(alice, all, in)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (w *world) run(t *testing.T, f *models.Flow) *models.FlowRun {
	t.Helper()
	r, err := w.e.RunNow(all, f.ID, alice)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done, err := w.e.WaitRun(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	return done
}

// wechatBill is the WeChat test bill of 2026-02-28 for merchant id mch.
func wechatBill(t *testing.T, mch string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../channels/wechat/testdata/all.csv")
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.ReplaceAll(string(b), "1612345678", mch))
}

func TestBillSyncDownloadsImportsAndReconciles(t *testing.T) {
	fake := wechat.NewFakeChannel()
	defer fake.Close()
	w := newWorld(t, kinds.Config{WeChatBaseURL: fake.URL})
	fake.SetNow(w.clk.Now)
	acct := w.account(t, "wechat", fake.Credentials())
	fake.AddBill("2026-02-28", "ALL", wechatBill(t, fake.MchID))
	f := w.flow(t, "sh-wechat-bills", models.FlowBillSync, acct, "")

	run := w.run(t, f)
	if run.Status != models.RunSucceeded || run.RowsNew != 18 || run.RowsRead != 18 {
		t.Fatalf("first sync: %s %+v %s\n%s", run.Status, run.RunCounts, run.ErrorText().EN, run.Log)
	}
	if !strings.Contains(run.Log, "2026-02-28 reconciled") {
		t.Errorf("the log does not show the reconciliation:\n%s", run.Log)
	}
	day, err := w.s.FindReconDay(all, acct.ID, "2026-02-28")
	if err != nil || !day.HasStatement || day.OnlyInStatement == 0 || run.Discrepancies != day.Discrepancies() {
		t.Errorf("reconciliation after the sync: %+v %v (run counted %d)", day, err, run.Discrepancies)
	}
	// Again: the same file is already imported; nothing is added.
	run = w.run(t, f)
	if run.Status != models.RunSucceeded || run.RowsNew != 0 || !strings.Contains(run.Log, "already imported") {
		t.Errorf("second sync: %s %+v\n%s", run.Status, run.RunCounts, run.Log)
	}
	var n int64
	w.s.DB.Model(&models.Transaction{}).Count(&n)
	if n != 18 {
		t.Errorf("%d transactions after two syncs", n)
	}
}

func TestBillSyncNotReadyRetriesAndNoBillIsAnEmptyDay(t *testing.T) {
	fake := wechat.NewFakeChannel()
	defer fake.Close()
	w := newWorld(t, kinds.Config{WeChatBaseURL: fake.URL})
	fake.SetNow(w.clk.Now)
	acct := w.account(t, "wechat", fake.Credentials())
	f := w.flow(t, "sh-wechat-bills", models.FlowBillSync, acct, "")

	fake.SetBehavior(wechat.FakeBehavior{NotReady: true})
	run := w.run(t, f)
	if run.Status != models.RunRetrying || run.RetryAt == nil {
		t.Fatalf("not ready: %s %s", run.Status, run.ErrorText().EN)
	}
	// No bill for the day: the run succeeds, saying so.
	fake.SetBehavior(wechat.FakeBehavior{})
	w.s.SetFlowEnabled(alice, all, f.ID, false)
	w.s.SetFlowEnabled(alice, all, f.ID, true)
	run = w.run(t, f)
	if run.Status != models.RunSucceeded || !strings.Contains(run.Log, "no bill") {
		t.Errorf("no bill: %s %s\n%s", run.Status, run.ErrorText().EN, run.Log)
	}
}

func TestBillSyncWithBadCredentialsAlertsAtOnce(t *testing.T) {
	fake := wechat.NewFakeChannel()
	defer fake.Close()
	w := newWorld(t, kinds.Config{WeChatBaseURL: fake.URL})
	fake.SetNow(w.clk.Now)
	// Credentials of another WeChat Pay merchant: the channel refuses the signature.
	other := wechat.NewFakeChannel()
	defer other.Close()
	acct := w.account(t, "wechat", other.Credentials())
	f := w.flow(t, "sh-wechat-bills", models.FlowBillSync, acct, "")
	run := w.run(t, f)
	if run.Status != models.RunFailed {
		t.Fatalf("refused signature: %s %s", run.Status, run.ErrorText().EN)
	}
	alerts, _ := w.s.ListAlerts(all, models.AlertFilter{})
	if len(alerts) != 1 || alerts[0].Kind != "flow_failed" || !strings.Contains(alerts[0].TitleText().EN, "sh-wechat-bills") {
		t.Fatalf("alerts: %+v", alerts)
	}
}

func TestBillSyncAlipay(t *testing.T) {
	gw := alipay.NewFakeGateway(alipay.FakeOptions{})
	defer gw.Close()
	w := newWorld(t, kinds.Config{AlipayGateway: gw.URL})
	acct := w.account(t, "alipay", gw.Credentials())
	paid := time.Date(2026, 2, 28, 12, 0, 0, 0, time.FixedZone("CST", 8*3600))
	gw.AddBill("2026-02-28", alipay.BuildTestTradeBill(gw.PID, "2026-02-28",
		alipay.TestTrade{TradeNo: "2026022822001400000000000001", OrderNo: "PF1", Amount: 1200, Fee: 7, Paid: paid},
		alipay.TestTrade{TradeNo: "2026022822001400000000000002", OrderNo: "PF2", Amount: 3400, Fee: 20, Paid: paid}))
	f := w.flow(t, "sh-alipay-bills", models.FlowBillSync, acct, "")
	run := w.run(t, f)
	if run.Status != models.RunSucceeded || run.RowsNew != 2 {
		t.Fatalf("alipay sync: %s %+v %s\n%s", run.Status, run.RunCounts, run.ErrorText().EN, run.Log)
	}
}

func TestFolderImport(t *testing.T) {
	root := t.TempDir()
	w := newWorld(t, kinds.Config{DropRoot: root})
	values := map[string][]byte{}
	fake := wechat.NewFakeChannel()
	defer fake.Close()
	for k, v := range fake.Credentials() {
		values[k] = v
	}
	acct := w.account(t, "wechat", values)
	dir := filepath.Join(root, "sh-wechat")
	os.MkdirAll(dir, 0o750)
	old := w.clk.Now().Add(-time.Minute)
	write := func(name string, data []byte) {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o640)
		os.Chtimes(p, old, old)
	}
	write("0228.csv", wechatBill(t, fake.MchID))
	write("broken.csv", []byte("not a bill\n"))
	f := w.flow(t, "sh-drop", models.FlowFolderImport, acct, `{"folder":"sh-wechat"}`)
	run := w.run(t, f)
	if run.Status != models.RunSucceeded || run.RowsNew != 18 {
		t.Fatalf("folder import: %s %+v %s\n%s", run.Status, run.RunCounts, run.ErrorText().EN, run.Log)
	}
	for _, p := range []string{"done/0228.csv", "refused/broken.csv", "refused/broken.csv.reason.txt"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if reason, _ := os.ReadFile(filepath.Join(dir, "refused/broken.csv.reason.txt")); !strings.Contains(string(reason), "nothing of it was imported") {
		t.Errorf("reason file: %s", reason)
	}
	// The same file dropped again is already imported, and moves to done/.
	write("0228-again.csv", wechatBill(t, fake.MchID))
	run = w.run(t, f)
	if run.Status != models.RunSucceeded || run.RowsNew != 0 || !strings.Contains(run.Log, "already imported") {
		t.Errorf("second drop: %s %+v\n%s", run.Status, run.RunCounts, run.Log)
	}
	// A folder outside the drop root is refused for good.
	g := w.flow(t, "escape", models.FlowFolderImport, acct, `{"folder":"../.."}`)
	if run := w.run(t, g); run.Status != models.RunFailed || !strings.Contains(run.ErrorText().EN, "inside the drop root") {
		t.Errorf("escape: %s %s", run.Status, run.ErrorText().EN)
	}
	for _, bad := range []string{"/etc", "../x", "", "a/../../b"} {
		if _, err := kinds.DropFolder(root, bad); err == nil {
			t.Errorf("DropFolder(%q) accepted", bad)
		}
	}
	os.Symlink("/etc", filepath.Join(root, "link"))
	if _, err := kinds.DropFolder(root, "link"); err == nil {
		t.Error("a symlink out of the drop root was accepted")
	}
}

func TestRollupCheckFlow(t *testing.T) {
	fake := wechat.NewFakeChannel()
	defer fake.Close()
	w := newWorld(t, kinds.Config{WeChatBaseURL: fake.URL})
	fake.SetNow(w.clk.Now)
	acct := w.account(t, "wechat", fake.Credentials())
	fake.AddBill("2026-02-28", "ALL", wechatBill(t, fake.MchID))
	if run := w.run(t, w.flow(t, "sync", models.FlowBillSync, acct, "")); run.Status != models.RunSucceeded {
		t.Fatal(run.ErrorText().EN)
	}
	w.s.DB.Exec("UPDATE daily_rollups SET payments = payments + 1")
	check := w.flow(t, "check", models.FlowRollupCheck, nil, `{"days":3}`)
	run := w.run(t, check)
	if run.Status != models.RunFailed || run.Discrepancies == 0 {
		t.Fatalf("drift unreported: %s %+v", run.Status, run.RunCounts)
	}
	repair := w.flow(t, "repair", models.FlowRollupCheck, nil, `{"days":3,"repair":true}`)
	if run := w.run(t, repair); run.Status != models.RunSucceeded || !strings.Contains(run.Log, "repaired") {
		t.Fatalf("repair: %s %s", run.Status, run.Log)
	}
	w.s.SetFlowEnabled(alice, all, check.ID, false)
	w.s.SetFlowEnabled(alice, all, check.ID, true)
	if run := w.run(t, check); run.Status != models.RunSucceeded || run.Discrepancies != 0 {
		t.Errorf("after repair: %s %+v", run.Status, run.RunCounts)
	}
}
