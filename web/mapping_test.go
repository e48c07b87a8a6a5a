package web_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"payfuse/channels/generic"
	"payfuse/channels/testkeys"
	"payfuse/models"
	"payfuse/web"
)

const mappingSample = "\uFEFF商户代码：898110000000001\r\n" +
	"查询流水号,商户订单号,交易类型,交易金额,商户手续费,应答码,交易时间,原交易查询流水号\r\n" +
	"`512603010915020000001,`ORD-1,01,100.00,0.60,00,2026-03-01 09:15:02,\r\n" +
	"`512603011300000000004,`RF-1,04,-20.00,-0.12,00,2026-03-01 13:00:00,512603010915020000001\r\n" +
	"合计,2笔,,80.00,,,,\r\n"

func TestColumnMappingPage(t *testing.T) {
	srv, store := newServer(t)
	setup := models.Actor{Name: "setup"}
	sh, _ := store.CreateMerchant(setup, models.MerchantInput{Code: "SHOP_SH", Name: "Shanghai"})
	bj, _ := store.CreateMerchant(setup, models.MerchantInput{Code: "SHOP_BJ", Name: "Beijing"})
	acct, _, err := store.SaveAccount(setup, 0, models.AccountInput{MerchantID: sh.ID, Channel: "unionpay", Enabled: true, Values: testkeys.Credentials("unionpay", time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.SaveAccount(setup, 0, models.AccountInput{MerchantID: bj.ID, Channel: "unionpay", Enabled: true, Values: testkeys.Credentials("unionpay", time.Now())}); err != nil {
		t.Fatal(err)
	}
	models.MustCreateUser(t, store, "opsh", "operator sh pass", models.RoleOperator, "SHOP_SH")
	models.MustCreateUser(t, store, "opbj", "operator bj pass", models.RoleOperator, "SHOP_BJ")
	models.MustCreateUser(t, store, "finsh", "finance sh pass", models.RoleFinance, "SHOP_SH")
	op := loggedIn(t, srv, "opsh", "operator sh pass")
	page := "/channels/" + id(acct.ID) + "/mapping"

	if r := op.get("/channels/" + id(acct.ID)); !strings.Contains(r.Body, `href="`+page+`"`) {
		t.Fatal("the account page has no link to its column mapping")
	}
	if r := op.get(page); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `name="col_channel_ref"`) {
		t.Fatalf("mapping page: %d", r.StatusCode)
	}

	// Uploading a sample shows its columns, guesses the mapping from the
	// names, and previews what it reads; htmx gets the editor alone.
	op.header.Set("HX-Request", "true")
	r := op.postMultipart(page+"/preview", nil, map[string][]byte{"sample_file": []byte(mappingSample)})
	op.header.Del("HX-Request")
	if r.StatusCode != http.StatusOK || strings.Contains(r.Body, "<html") || !strings.Contains(r.Body, `id="mapping-editor"`) {
		t.Fatalf("htmx preview: %d %.300s", r.StatusCode, r.Body)
	}
	for _, want := range []string{
		`<option value="查询流水号" selected>`, `<option value="交易金额" selected>`, `<option value="应答码" selected>`,
		"512603010915020000001", "898110000000001", // the parsed record, with the merchant id from the line above the table
		`name="footer_marker" type="text" value="合计"`,
	} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("preview lacks %q", want)
		}
	}
	if !strings.Contains(r.Body, "1 payments and 1 refunds") && !strings.Contains(r.Body, "1 笔支付，1 笔退款") {
		t.Errorf("preview does not say what the sample reads")
	}

	form := url.Values{
		"col_channel_ref": {"查询流水号"}, "alt_channel_ref": {"交易流水号"}, "col_order_no": {"商户订单号"},
		"col_amount": {"交易金额"}, "col_status": {"应答码"}, "col_time": {"交易时间"}, "col_kind": {"交易类型"},
		"col_fee": {"商户手续费"}, "col_payment_ref": {"原交易查询流水号"},
		"statuses": {"00 = succeeded\n06 = failed"}, "refund_words": {"04"}, "time_layouts": {"yyyy-MM-dd HH:mm:ss"},
		"time_zone": {"Asia/Shanghai"}, "amount_unit": {"yuan"}, "encoding": {"auto"}, "delimiter": {"comma"},
		"account_labels": {"商户代码"}, "footer_marker": {"合计"}, "footer_count": {"商户订单号"}, "footer_amount": {"交易金额"},
	}

	// CSRF is enforced: without the token nothing is saved.
	if r := op.do("POST", page, form); r.StatusCode != http.StatusForbidden {
		t.Fatalf("save without CSRF token: %d", r.StatusCode)
	}
	if _, err := store.GetMapping(models.Scope{All: true}, acct.ID); err == nil {
		t.Fatal("a mapping was saved without a CSRF token")
	}

	// An incomplete mapping is shown again with what is missing.
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Del("col_amount")
	if r := op.post(page, bad); r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "amount") && !strings.Contains(r.Body, "金额") {
		t.Fatalf("incomplete mapping: %d", r.StatusCode)
	}

	r = op.post(page, form)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/channels/"+id(acct.ID) {
		t.Fatalf("save: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	saved, err := store.GetMapping(models.Scope{All: true}, acct.ID)
	if err != nil || strings.Join(saved.Mapping.Column(generic.FieldChannelRef), ",") != "查询流水号,交易流水号" ||
		saved.Mapping.Footer == nil || saved.Mapping.Statuses["06"] != "failed" || saved.UpdatedBy != "opsh" {
		t.Fatalf("saved: %+v %v", saved, err)
	}
	if r := op.get("/channels/" + id(acct.ID)); !strings.Contains(r.Body, "column mapping was saved") && !strings.Contains(r.Body, "列映射已保存") {
		t.Error("no flash after saving")
	}
	if r := op.get(page); !strings.Contains(r.Body, `value="交易流水号"`) || !strings.Contains(r.Body, "opsh") {
		t.Error("the page does not show the saved mapping")
	}

	// Finance may not open or change mappings; another merchant's operator
	// finds nothing.
	fin := loggedIn(t, srv, "finsh", "finance sh pass")
	if r := fin.get(page); r.StatusCode != http.StatusForbidden {
		t.Errorf("finance GET: %d, want 403", r.StatusCode)
	}
	if r := fin.post(page, form); r.StatusCode != http.StatusForbidden {
		t.Errorf("finance POST: %d, want 403", r.StatusCode)
	}
	other := loggedIn(t, srv, "opbj", "operator bj pass")
	if r := other.get(page); r.StatusCode != http.StatusNotFound {
		t.Errorf("other merchant's operator GET: %d, want 404", r.StatusCode)
	}
	if r := other.post(page, form); r.StatusCode != http.StatusNotFound {
		t.Errorf("other merchant's operator POST: %d, want 404", r.StatusCode)
	}
	if r := other.postMultipart(page+"/preview", nil, map[string][]byte{"sample_file": []byte(mappingSample)}); r.StatusCode != http.StatusNotFound {
		t.Errorf("other merchant's operator preview: %d, want 404", r.StatusCode)
	}
	var audits int64
	store.DB.Model(&models.AuditLog{}).Where("action = ?", models.ActMapping).Count(&audits)
	if audits != 1 {
		t.Errorf("%d audit entries, want 1", audits)
	}
}

// TestBrowserColumnMapping drives an operator through a UnionPay account's
// column mapping in Chromium: upload a sample, Preview (htmx swaps the
// editor: the guessed columns and the parsed rows appear), Save, and land on
// the account with a flash. PAYFUSE_E2E=1 only; PAYFUSE_E2E_SHOTS=<dir>
// saves screenshots.
func TestBrowserColumnMapping(t *testing.T) {
	if os.Getenv("PAYFUSE_E2E") != "1" {
		t.Skip("browser test: set PAYFUSE_E2E=1 (needs Debian's chromium at /usr/bin/chromium)")
	}
	store := models.OpenTest(t)
	m, err := store.CreateMerchant(models.SystemActor, models.MerchantInput{Code: "SHOP_UP", Name: "银联测试店"})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	srv, err := web.New(web.Config{Addr: "127.0.0.1:0", MasterKey: key, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, store)
	if err != nil {
		t.Fatal(err)
	}
	acct, _, err := store.SaveAccount(models.SystemActor, 0, models.AccountInput{MerchantID: m.ID, Channel: "unionpay", DisplayName: "UnionPay", Enabled: true, Values: testkeys.Credentials("unionpay", time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	models.MustCreateUser(t, store, "opup", "operator up pass", models.RoleOperator, "SHOP_UP")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	sample := filepath.Join(t.TempDir(), "unionpay-20260301.csv")
	os.WriteFile(sample, []byte(mappingSample), 0o600)

	b := newBrowser(t, "http://"+ln.Addr().String())
	page := "/channels/" + id(acct.ID) + "/mapping"
	b.navigate("open /", "/", 200)
	b.login("opup", "operator up pass", "/")
	b.navigate("open the account", "/channels/"+id(acct.ID), 200)
	b.wait("mapping link", `a[href="`+page+`"]`)
	b.navigate("open the mapping", page, 200)
	b.wait("mapping form", `#mapping-editor input[name="sample_file"]`)
	b.do("choose the sample", chromedp.SetUploadFiles(chromedp.CSS(`input[name="sample_file"]`), []string{sample}))
	b.do("preview", chromedp.Click(chromedp.CSS(`button[hx-post="`+page+`/preview"]`)))
	b.wait("parsed rows", `#mapping-preview td.num`)
	b.wantPath(page) // htmx: no navigation
	if got := b.value("guessed column", `select[name="col_channel_ref"]`); got != "查询流水号" {
		b.failf("guessed column", "channel reference column %q, want 查询流水号", got)
	}
	if txt := b.text("preview", "#mapping-preview"); !strings.Contains(txt, "512603010915020000001") || !strings.Contains(txt, "1 payments and 1 refunds") {
		b.failf("preview", "preview shows %q", clip(txt))
	}
	b.shot("mapping-preview")
	b.submit("save", `#mapping-editor button.btn-primary`, 200)
	b.wantPath("/channels/" + id(acct.ID))
	if f := b.flash("saved"); !strings.Contains(f, "saved") {
		b.failf("saved", "flash %q", f)
	}
	saved, err := store.GetMapping(models.Scope{All: true}, acct.ID)
	if err != nil || saved.Mapping.Footer == nil || saved.Mapping.Footer.Marker != "合计" {
		t.Fatalf("saved mapping: %+v %v", saved, err)
	}
	b.checkConsole()
}
