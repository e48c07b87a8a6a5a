package web_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/alipay"
	"payfuse/channels/testkeys"
	"payfuse/channels/wechat"
	"payfuse/models"
	"payfuse/web"
)

// notifySigners are the channels' side of the tests: the private halves of
// the keys configured as the accounts' WeChat Pay public key and Alipay
// public key.
var notifySigners = sync.OnceValues(func() (*rsa.PrivateKey, *rsa.PrivateKey) {
	return testkeys.RSAKey(testkeys.Bits), testkeys.RSAKey(testkeys.Bits)
})

// notifyFixture is a server with one merchant holding an enabled WeChat Pay
// account and an enabled Alipay account (public-key mode), configured so the
// test can sign notifications for them.
type notifyFixture struct {
	t      testing.TB
	srv    *web.Server
	store  *models.Store
	logs   *syncBuffer
	wx     *models.ChannelAccount
	wxKey  *rsa.PrivateKey
	wxVals map[string][]byte
	ap     *models.ChannelAccount
	apKey  *rsa.PrivateKey
	apVals map[string][]byte
}

func newNotifyFixture(t testing.TB) *notifyFixture {
	t.Helper()
	logs := &syncBuffer{}
	store := models.OpenTest(t)
	key := make([]byte, 32)
	rand.Read(key)
	srv, err := web.New(web.Config{Addr: "127.0.0.1:0", MasterKey: key, Logger: slog.New(slog.NewTextHandler(logs, nil))}, store)
	if err != nil {
		t.Fatal(err)
	}
	f := &notifyFixture{t: t, srv: srv, store: store, logs: logs}
	f.wxKey, f.apKey = notifySigners()
	admin := models.Actor{Name: "setup"}
	m, err := store.CreateMerchant(admin, models.MerchantInput{Code: "SHOP_SH", Name: "Shanghai"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f.wxVals = testkeys.Credentials("wechat", now)
	f.wxVals["platform_public_key"] = testkeys.PublicKeyPEM(&f.wxKey.PublicKey)
	f.wx = f.account(m.ID, "wechat", f.wxVals)
	f.apVals = testkeys.Credentials("alipay", now)
	for _, k := range []string{"app_cert", "alipay_cert", "alipay_root_cert"} {
		delete(f.apVals, k)
	}
	f.apVals["alipay_public_key"] = testkeys.PublicKeyPEM(&f.apKey.PublicKey)
	f.ap = f.account(m.ID, "alipay", f.apVals)
	return f
}

func (f *notifyFixture) account(merchantID uint64, channel string, values map[string][]byte) *models.ChannelAccount {
	f.t.Helper()
	acct, _, err := f.store.SaveAccount(models.Actor{Name: "setup"}, 0, models.AccountInput{
		MerchantID: merchantID, Channel: channel, Methods: []string{"scan", "quick", "h5", "app"}, Enabled: true, Values: values,
	})
	if err != nil {
		f.t.Fatalf("save %s account: %v", channel, err)
	}
	return acct
}

func (f *notifyFixture) mchID() string { return string(f.wxVals["mch_id"]) }

// wxPayment is a succeeded WeChat Pay payment of the fixture's account.
func (f *notifyFixture) wxPayment(ref string, amount int64) channels.Record {
	return channels.Record{
		Channel: "wechat", Kind: channels.KindPayment, ChannelRef: ref, MerchantOrderNo: "PF" + ref, Method: "quick",
		Status: channels.StatusSucceeded, Amount: amount, Currency: "CNY", AccountRef: f.mchID(),
		PaidAt: time.Now().Add(-5 * time.Second).Truncate(time.Second),
	}
}

// wxNotification signs rec as WeChat Pay would at time at.
func (f *notifyFixture) wxNotification(rec channels.Record, at time.Time) (http.Header, []byte) {
	return wechat.BuildTestNotification(f.wxKey, string(f.wxVals["platform_public_key_id"]), f.wxVals["apiv3_key"], rec, at)
}

// post sends a notification and returns the status and body.
func (f *notifyFixture) post(path string, hdr http.Header, body []byte) (int, string) {
	f.t.Helper()
	req := httptest.NewRequest("POST", path, bytes.NewReader(body))
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	res, err := f.srv.App.Test(req, -1)
	if err != nil {
		f.t.Fatalf("POST %s: %v", path, err)
	}
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func (f *notifyFixture) postWechat(acctID uint64, hdr http.Header, body []byte) (int, string) {
	return f.post("/notify/wechat/"+id(acctID), hdr, body)
}

func (f *notifyFixture) postAlipay(acctID uint64, form url.Values) (int, string) {
	hdr := http.Header{"Content-Type": {"application/x-www-form-urlencoded; charset=utf-8"}}
	return f.post("/notify/alipay/"+id(acctID), hdr, []byte(form.Encode()))
}

// ledger returns the transaction with that natural key, or nil.
func (f *notifyFixture) ledger(kind, ref string) *models.Transaction {
	f.t.Helper()
	var rows []models.Transaction
	if err := f.store.DB.Where("kind = ? AND channel_ref = ?", kind, ref).Find(&rows).Error; err != nil {
		f.t.Fatal(err)
	}
	if len(rows) == 0 {
		return nil
	}
	return &rows[0]
}

func (f *notifyFixture) count(model any) int64 {
	f.t.Helper()
	var n int64
	if err := f.store.DB.Model(model).Count(&n).Error; err != nil {
		f.t.Fatal(err)
	}
	return n
}

// wantFail checks a WeChat Pay refusal: the status and a FAIL JSON body.
func wantFail(t *testing.T, what string, status int, body string, want int) {
	t.Helper()
	var ans struct{ Code, Message string }
	if status != want || json.Unmarshal([]byte(body), &ans) != nil || ans.Code != "FAIL" || ans.Message == "" {
		t.Errorf("%s: %d %s, want %d with {\"code\":\"FAIL\",\"message\":…}", what, status, body, want)
	}
}

func TestWechatNotificationIsTakenIntoTheLedger(t *testing.T) {
	f := newNotifyFixture(t)
	rec := f.wxPayment("4200000001202603010000000001", 12345)
	hdr, body := f.wxNotification(rec, time.Now())
	audits := f.count(&models.AuditLog{})
	if status, ans := f.postWechat(f.wx.ID, hdr, body); status != http.StatusNoContent || ans != "" {
		t.Fatalf("taken notification: %d %q, want 204 and no body", status, ans)
	}
	got := f.ledger(channels.KindPayment, rec.ChannelRef)
	if got == nil {
		t.Fatal("no ledger row after a taken notification")
	}
	if got.Sources != models.SourceNotification || got.Amount != 12345 || got.Status != channels.StatusSucceeded ||
		got.AccountID != f.wx.ID || got.MerchantOrderNo != rec.MerchantOrderNo || got.PaidAt == nil || !got.PaidAt.Equal(rec.PaidAt) {
		t.Errorf("ledger row = %+v", got)
	}
	var srcs []models.TransactionSource
	f.store.DB.Where("transaction_id = ?", got.ID).Find(&srcs)
	if len(srcs) != 1 || srcs[0].Source != models.SourceNotification || !strings.Contains(srcs[0].Raw, "TRANSACTION.SUCCESS") {
		t.Errorf("sources = %+v, want one notification source keeping the event", srcs)
	}
	if n := f.count(&models.NotifyNonce{}); n != 1 {
		t.Errorf("%d nonces recorded, want 1", n)
	}
	// Not audited per event: the ledger's sources are the record.
	if n := f.count(&models.AuditLog{}); n != audits {
		t.Error("a notification was written to the audit log")
	}

	// The same notification delivered again (same nonce): refused, nothing changes.
	before := f.count(&models.TransactionSource{})
	status, ans := f.postWechat(f.wx.ID, hdr, body)
	wantFail(t, "replayed nonce", status, ans, http.StatusUnauthorized)
	if f.count(&models.TransactionSource{}) != before || f.count(&models.Transaction{}) != 1 {
		t.Error("a replayed notification changed the ledger")
	}
	if !strings.Contains(f.logs.String(), "reason=replayed_nonce") {
		t.Errorf("replay not logged with its reason:\n%s", f.logs.String())
	}
	// WeChat Pay's retry of the same event is signed afresh (new nonce and
	// timestamp): taken, and the ledger counts it as a duplicate.
	hdr2 := wechat.SignTestNotification(f.wxKey, string(f.wxVals["platform_public_key_id"]), body, time.Now())
	if status, ans := f.postWechat(f.wx.ID, hdr2, body); status != http.StatusNoContent {
		t.Fatalf("retry with a fresh nonce: %d %s", status, ans)
	}
	if f.count(&models.Transaction{}) != 1 || f.count(&models.TransactionSource{}) != before {
		t.Error("a retried notification added to the ledger")
	}
}

func TestWechatNotificationRefusals(t *testing.T) {
	f := newNotifyFixture(t)
	secrets := []string{string(f.wxVals["apiv3_key"]), "BEGIN"}
	now := time.Now()

	t.Run("tampered body", func(t *testing.T) {
		rec := f.wxPayment("4200000001202603010000000002", 100)
		hdr, body := f.wxNotification(rec, now)
		tampered := bytes.Replace(body, []byte(`"summary":"`), []byte(`"summary":"x`), 1)
		status, ans := f.postWechat(f.wx.ID, hdr, tampered)
		wantFail(t, "tampered body", status, ans, http.StatusUnauthorized)
		if f.ledger(channels.KindPayment, rec.ChannelRef) != nil {
			t.Error("a tampered notification left a ledger row")
		}
		logs := f.logs.String()
		if !strings.Contains(logs, "reason=bad_signature") || !strings.Contains(logs, "account="+id(f.wx.ID)) ||
			!strings.Contains(logs, "request_id=") || !strings.Contains(logs, "ip=") {
			t.Errorf("refusal not logged with reason, account, address and request id:\n%s", logs)
		}
		for _, s := range append(secrets, hdr.Get(wechat.HeaderSignature), string(tampered[40:80])) {
			if strings.Contains(logs, s) {
				t.Errorf("the log quotes %q", s)
			}
		}
	})
	t.Run("stale timestamp", func(t *testing.T) {
		rec := f.wxPayment("4200000001202603010000000003", 100)
		hdr, body := f.wxNotification(rec, now.Add(-wechat.NotificationWindow-time.Second))
		status, ans := f.postWechat(f.wx.ID, hdr, body)
		wantFail(t, "stale timestamp", status, ans, http.StatusUnauthorized)
		if f.ledger(channels.KindPayment, rec.ChannelRef) != nil || !strings.Contains(f.logs.String(), "reason=stale_timestamp") {
			t.Error("a stale notification was taken, or its refusal not logged")
		}
	})
	t.Run("missing headers", func(t *testing.T) {
		rec := f.wxPayment("4200000001202603010000000004", 100)
		_, body := f.wxNotification(rec, now)
		status, ans := f.postWechat(f.wx.ID, http.Header{"Content-Type": {"application/json"}}, body)
		wantFail(t, "unsigned", status, ans, http.StatusUnauthorized)
	})
	t.Run("another merchant id", func(t *testing.T) {
		// Genuinely signed for this account's keys, but for another mchid:
		// the ledger refuses it, and its nonce stays unused.
		rec := f.wxPayment("4200000001202603010000000005", 100)
		rec.AccountRef = "1699999999"
		hdr, body := f.wxNotification(rec, now)
		nonces := f.count(&models.NotifyNonce{})
		status, ans := f.postWechat(f.wx.ID, hdr, body)
		wantFail(t, "another mchid", status, ans, http.StatusBadRequest)
		if f.ledger(channels.KindPayment, rec.ChannelRef) != nil || f.count(&models.NotifyNonce{}) != nonces {
			t.Error("a refused record left a ledger row or burned its nonce")
		}
		if !strings.Contains(f.logs.String(), "reason=record_refused") {
			t.Error("record refusal not logged")
		}
	})
	t.Run("body too big", func(t *testing.T) {
		body := bytes.Repeat([]byte(" "), wechat.MaxNotificationBody+1)
		hdr := wechat.SignTestNotification(f.wxKey, string(f.wxVals["platform_public_key_id"]), body, now)
		status, ans := f.postWechat(f.wx.ID, hdr, body)
		wantFail(t, "body too big", status, ans, http.StatusRequestEntityTooLarge)
	})
	t.Run("wrong channel, unknown or disabled account", func(t *testing.T) {
		rec := f.wxPayment("4200000001202603010000000006", 100)
		hdr, body := f.wxNotification(rec, now)
		for _, path := range []string{
			"/notify/wechat/" + id(f.ap.ID), "/notify/wechat/999999", "/notify/wechat/x", "/notify/unionpay/" + id(f.wx.ID), "/notify/paypal/1",
		} {
			status, ans := f.post(path, hdr, body)
			wantFail(t, path, status, ans, http.StatusNotFound)
		}
		if status, ans := f.post("/notify/alipay/"+id(f.wx.ID), nil, []byte("a=b")); status != http.StatusNotFound || ans != "failure" {
			t.Errorf("alipay notification to a WeChat Pay account: %d %q", status, ans)
		}
		if f.ledger(channels.KindPayment, rec.ChannelRef) != nil {
			t.Error("a notification for another account was taken")
		}
	})
	if f.count(&models.Transaction{}) != 0 || f.count(&models.NotifyNonce{}) != 0 {
		t.Error("refused notifications left rows behind")
	}

	t.Run("disabled account", func(t *testing.T) {
		vals := map[string][]byte{}
		if _, _, err := f.store.SaveAccount(models.Actor{Name: "setup"}, f.wx.ID, models.AccountInput{
			Methods: []string{"quick"}, Enabled: false, Values: vals,
		}); err != nil {
			t.Fatal(err)
		}
		defer f.store.SaveAccount(models.Actor{Name: "setup"}, f.wx.ID, models.AccountInput{Methods: []string{"quick"}, Enabled: true, Values: vals})
		rec := f.wxPayment("4200000001202603010000000007", 100)
		hdr, body := f.wxNotification(rec, time.Now())
		status, ans := f.postWechat(f.wx.ID, hdr, body)
		wantFail(t, "disabled account", status, ans, http.StatusNotFound)
	})
}

func TestWechatRefundNotification(t *testing.T) {
	f := newNotifyFixture(t)
	pay := f.wxPayment("4200000001202603010000000010", 10000)
	hdr, body := f.wxNotification(pay, time.Now())
	if status, ans := f.postWechat(f.wx.ID, hdr, body); status != http.StatusNoContent {
		t.Fatalf("payment: %d %s", status, ans)
	}
	ref := channels.Record{
		Channel: "wechat", Kind: channels.KindRefund, ChannelRef: "50300000012026030100000000010", PaymentRef: pay.ChannelRef,
		MerchantOrderNo: pay.MerchantOrderNo, RefundNo: "RF0001", Status: channels.StatusSucceeded, Amount: 2500,
		Currency: "CNY", AccountRef: f.mchID(), RefundedAt: time.Now().Add(-time.Second).Truncate(time.Second),
		Raw: map[string]string{"amount.total": "10000"},
	}
	hdr, body = f.wxNotification(ref, time.Now())
	if status, ans := f.postWechat(f.wx.ID, hdr, body); status != http.StatusNoContent {
		t.Fatalf("refund: %d %s", status, ans)
	}
	got := f.ledger(channels.KindRefund, ref.ChannelRef)
	if got == nil || got.Amount != 2500 || got.Sources != models.SourceNotification || got.RefundNo != "RF0001" {
		t.Fatalf("refund row = %+v", got)
	}
	p := f.ledger(channels.KindPayment, pay.ChannelRef)
	if got.PaymentID == nil || *got.PaymentID != p.ID || p.RefundState != models.RefundPartial || p.RefundedAmount != 2500 {
		t.Errorf("payment after refund: state %s refunded %d; refund linked to %v", p.RefundState, p.RefundedAmount, got.PaymentID)
	}
}

// TestWechatNotificationOurCredentialProblem: when the credentials cannot be
// opened (here: the master key changed), the fault is ours — 5xx, so WeChat
// Pay retries later — and nothing is taken or burned.
func TestWechatNotificationOurCredentialProblem(t *testing.T) {
	f := newNotifyFixture(t)
	other := make([]byte, 32)
	rand.Read(other)
	v, err := models.NewVault(other)
	if err != nil {
		t.Fatal(err)
	}
	f.store.Vault = v
	rec := f.wxPayment("4200000001202603010000000020", 100)
	hdr, body := f.wxNotification(rec, time.Now())
	status, ans := f.postWechat(f.wx.ID, hdr, body)
	wantFail(t, "unreadable credentials", status, ans, http.StatusInternalServerError)
	if strings.Contains(ans, "master") || strings.Contains(ans, "vault") {
		t.Errorf("the answer tells internals: %s", ans)
	}
	if f.count(&models.Transaction{}) != 0 || f.count(&models.NotifyNonce{}) != 0 {
		t.Error("rows left behind")
	}
	if !strings.Contains(f.logs.String(), "reason=internal") {
		t.Errorf("internal failure not logged:\n%s", f.logs.String())
	}
	status, ans = f.postAlipay(f.ap.ID, alipay.BuildTestNotification(f.apKey, f.alipayPayment("2026030122001400000000000020", "9.90")))
	if status != http.StatusInternalServerError || ans != "failure" {
		t.Errorf("alipay with unreadable credentials: %d %q", status, ans)
	}
}

// alipayPayment is the parameters of a TRADE_SUCCESS notification for the
// fixture's Alipay account.
func (f *notifyFixture) alipayPayment(tradeNo, amount string) map[string]string {
	app := string(f.apVals["app_id"])
	at := time.Now().In(time.FixedZone("CST", 8*3600))
	return map[string]string{
		"notify_time": at.Format(time.DateTime), "notify_type": "trade_status_sync", "notify_id": "n" + tradeNo,
		"app_id": app, "auth_app_id": app, "charset": "utf-8", "version": "1.0",
		"trade_no": tradeNo, "out_trade_no": "PF" + tradeNo,
		"buyer_id": "2088602123451234", "buyer_logon_id": "138****0001", "seller_id": string(f.apVals["pid"]),
		"trade_status": "TRADE_SUCCESS", "total_amount": amount, "receipt_amount": amount, "buyer_pay_amount": amount,
		"subject": "拿铁咖啡 & 可颂=早餐", "gmt_create": at.Add(-10 * time.Second).Format(time.DateTime),
		"gmt_payment": at.Add(-5 * time.Second).Format(time.DateTime),
	}
}

func TestAlipayNotification(t *testing.T) {
	f := newNotifyFixture(t)
	params := f.alipayPayment("2026030122001400000000000001", "32.00")
	form := alipay.BuildTestNotification(f.apKey, params)

	status, ans := f.postAlipay(f.ap.ID, form)
	if status != http.StatusOK || ans != "success" {
		t.Fatalf("taken notification: %d %q, want 200 and the bare text success", status, ans)
	}
	got := f.ledger(channels.KindPayment, params["trade_no"])
	if got == nil || got.Amount != 3200 || got.Sources != models.SourceNotification || got.Channel != "alipay" || got.AccountID != f.ap.ID {
		t.Fatalf("ledger row = %+v", got)
	}

	// Alipay sends the same notification again until it reads "success":
	// answered success again, one row, one source.
	if status, ans := f.postAlipay(f.ap.ID, form); status != http.StatusOK || ans != "success" {
		t.Fatalf("repeated notification: %d %q", status, ans)
	}
	if f.count(&models.Transaction{}) != 1 || f.count(&models.TransactionSource{}) != 1 {
		t.Errorf("a repeated notification added rows: %d transactions, %d sources", f.count(&models.Transaction{}), f.count(&models.TransactionSource{}))
	}
	if f.count(&models.NotifyNonce{}) != 0 {
		t.Error("Alipay notifications recorded nonces")
	}

	// A refund of it.
	refund := f.alipayPayment("2026030122001400000000000001", "32.00")
	refund["out_biz_no"], refund["refund_fee"] = "RF0001", "12.50"
	refund["gmt_refund"] = time.Now().In(time.FixedZone("CST", 8*3600)).Format(time.DateTime)
	if status, ans := f.postAlipay(f.ap.ID, alipay.BuildTestNotification(f.apKey, refund)); status != http.StatusOK || ans != "success" {
		t.Fatalf("refund: %d %q", status, ans)
	}
	if r := f.ledger(channels.KindRefund, params["trade_no"]+"/RF0001"); r == nil || r.Amount != 1250 {
		t.Errorf("refund row = %+v", r)
	}
	if p := f.ledger(channels.KindPayment, params["trade_no"]); p.RefundState != models.RefundPartial || p.RefundedAmount != 1250 {
		t.Errorf("payment after refund: %s %d", p.RefundState, p.RefundedAmount)
	}

	rows := f.count(&models.Transaction{})
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		reason string
	}{
		{"tampered", func() url.Values {
			v := alipay.BuildTestNotification(f.apKey, f.alipayPayment("2026030122001400000000000002", "1.00"))
			v.Set("total_amount", "1000.00")
			v.Set("receipt_amount", "1000.00")
			return v
		}(), http.StatusUnauthorized, "bad_signature"},
		{"signed by someone else", alipay.BuildTestNotification(f.wxKey, f.alipayPayment("2026030122001400000000000003", "1.00")), http.StatusUnauthorized, "bad_signature"},
		{"unsigned", func() url.Values {
			v := url.Values{}
			for k, s := range f.alipayPayment("2026030122001400000000000004", "1.00") {
				v.Set(k, s)
			}
			return v
		}(), http.StatusUnauthorized, "bad_signature"},
		{"another seller", func() url.Values {
			p := f.alipayPayment("2026030122001400000000000005", "1.00")
			p["seller_id"] = "2088000000000000"
			return alipay.BuildTestNotification(f.apKey, p)
		}(), http.StatusBadRequest, "record_refused"},
		{"sign type RSA", func() url.Values {
			p := f.alipayPayment("2026030122001400000000000006", "1.00")
			p["sign_type"] = "RSA"
			return alipay.BuildTestNotification(f.apKey, p)
		}(), http.StatusBadRequest, "unsupported_sign_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, ans := f.postAlipay(f.ap.ID, tc.form)
			if status != tc.status || ans != "failure" {
				t.Errorf("%d %q, want %d and the bare text failure", status, ans, tc.status)
			}
			if !strings.Contains(f.logs.String(), "reason="+tc.reason) {
				t.Errorf("not logged with reason %s", tc.reason)
			}
		})
	}
	if n := f.count(&models.Transaction{}); n != rows {
		t.Errorf("refused notifications changed the ledger: %d rows, want %d", n, rows)
	}
	if strings.Contains(f.logs.String(), string(f.apVals["app_private_key"][40:80])) {
		t.Error("the log quotes a key")
	}

	big := url.Values{"padding": {strings.Repeat("x", 64<<10)}}
	if status, ans := f.postAlipay(f.ap.ID, big); status != http.StatusRequestEntityTooLarge || ans != "failure" {
		t.Errorf("body too big: %d %q", status, ans)
	}
	if status, ans := f.postAlipay(f.wx.ID, form); status != http.StatusNotFound || ans != "failure" {
		t.Errorf("to a WeChat Pay account: %d %q", status, ans)
	}
}
