package web_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/alipay"
	"payfuse/channels/testkeys"
	"payfuse/channels/wechat"
	"payfuse/models"
)

// TestSweepNotificationAttacks adds to notify_test.go what an attacker
// would try beyond a tampered, stale or unsigned notification: a signature
// by a key of their own, a serial that names no key, a timestamp in the
// future or not a number, the same delivery many times at once, a genuine
// notification of one merchant sent to the account of another that shares
// the channel's keys (a service provider's set-up), an old Alipay
// notification replayed, bodies over the cap (also without a length), the
// wrong method. Whatever is refused records nothing; whatever is repeated
// is recorded once.
func TestSweepNotificationAttacks(t *testing.T) {
	f := newNotifyFixture(t)
	setup := models.Actor{Name: "setup"}
	bj, err := f.store.CreateMerchant(setup, models.MerchantInput{Code: "SHOP_BJ", Name: "Beijing"})
	if err != nil {
		t.Fatal(err)
	}
	// SHOP_BJ's accounts use the very same channel keys, under their own
	// merchant ids: only the ids tell the notifications apart.
	bjWx := map[string][]byte{}
	for k, v := range f.wxVals {
		bjWx[k] = v
	}
	bjWx["mch_id"] = []byte("1698765432")
	wxBJ := f.account(bj.ID, "wechat", bjWx)
	bjAp := map[string][]byte{}
	for k, v := range f.apVals {
		bjAp[k] = v
	}
	bjAp["pid"], bjAp["app_id"] = []byte("2088999999999999"), []byte("2021009999999999")
	apBJ := f.account(bj.ID, "alipay", bjAp)
	serial := string(f.wxVals["platform_public_key_id"])
	attacker := testkeys.RSAKey(testkeys.Bits)
	now := time.Now()
	nothingFor := func(t *testing.T, what, ref string) {
		t.Helper()
		var n int64
		f.store.DB.Model(&models.Transaction{}).Where("channel_ref = ?", ref).Count(&n)
		if n != 0 {
			t.Errorf("%s: recorded (%d rows)", what, n)
		}
	}

	t.Run("forged", func(t *testing.T) {
		rec := f.wxPayment("4200000001202603019999000001", 100)
		hdr, body := wechat.BuildTestNotification(attacker, serial, f.wxVals["apiv3_key"], rec, now)
		status, ans := f.postWechat(f.wx.ID, hdr, body)
		wantFail(t, "signed by another key", status, ans, http.StatusUnauthorized)
		hdr, body = wechat.BuildTestNotification(attacker, "PUB_KEY_ID_0000000000000000000000000000", f.wxVals["apiv3_key"], rec, now)
		status, ans = f.postWechat(f.wx.ID, hdr, body)
		wantFail(t, "a serial that names no key", status, ans, http.StatusUnauthorized)
		hdr, body = f.wxNotification(rec, now)
		hdr.Set(wechat.HeaderSignature, "not base64 !!")
		status, ans = f.postWechat(f.wx.ID, hdr, body)
		wantFail(t, "a signature that is not base64", status, ans, http.StatusUnauthorized)
		nothingFor(t, "forged WeChat Pay notifications", rec.ChannelRef)
		p := f.alipayPayment("2026030122001499990000000001", "1.00")
		form := alipay.BuildTestNotification(attacker, p)
		if status, ans := f.postAlipay(f.ap.ID, form); status != http.StatusUnauthorized || ans != "failure" {
			t.Errorf("Alipay signed by another key: %d %q", status, ans)
		}
		nothingFor(t, "a forged Alipay notification", p["trade_no"])
	})

	t.Run("timestamps", func(t *testing.T) {
		rec := f.wxPayment("4200000001202603019999000002", 100)
		_, body := f.wxNotification(rec, now)
		for _, ts := range []string{
			itoa64(now.Add(wechat.NotificationWindow + time.Minute).Unix()), // the future
			itoa64(now.Add(-24 * time.Hour).Unix()),                         // yesterday
			"abc", "-1", "99999999999999999999", "1e9", "",
		} {
			hdr := signWechatAt(t, f.wxKey, serial, ts, body)
			status, ans := f.postWechat(f.wx.ID, hdr, body)
			want := http.StatusUnauthorized
			if status != want || !strings.Contains(ans, `"FAIL"`) {
				t.Errorf("timestamp %q: %d %s, want %d", ts, status, ans, want)
			}
		}
		nothingFor(t, "notifications with bad timestamps", rec.ChannelRef)
	})

	t.Run("the same delivery many times at once", func(t *testing.T) {
		rec := f.wxPayment("4200000001202603019999000003", 300)
		hdr, body := f.wxNotification(rec, time.Now())
		statuses := concurrently(8, func(int) int { s, _ := f.postWechat(f.wx.ID, hdr, body); return s })
		if countOf(statuses, http.StatusNoContent) != 1 || countOf(statuses, http.StatusUnauthorized) != 7 {
			t.Errorf("8 copies of one delivery answered %v, want one 204 and seven 401 (replayed nonce)", statuses)
		}
		// WeChat Pay's own retries of one event are signed afresh: all taken, recorded once.
		statuses = concurrently(8, func(int) int {
			s, _ := f.postWechat(f.wx.ID, wechat.SignTestNotification(f.wxKey, serial, body, time.Now()), body)
			return s
		})
		if countOf(statuses, http.StatusNoContent) != 8 {
			t.Errorf("8 retries of one event answered %v, want 204 each", statuses)
		}
		var rows, sources int64
		f.store.DB.Model(&models.Transaction{}).Where("channel_ref = ?", rec.ChannelRef).Count(&rows)
		f.store.DB.Model(&models.TransactionSource{}).Joins("JOIN transactions ON transactions.id = transaction_sources.transaction_id").
			Where("transactions.channel_ref = ?", rec.ChannelRef).Count(&sources)
		if rows != 1 || sources != 1 {
			t.Errorf("16 deliveries of one payment left %d rows with %d sources, want 1 and 1", rows, sources)
		}
		// Alipay repeats the same form until it reads success.
		form := alipay.BuildTestNotification(f.apKey, f.alipayPayment("2026030122001499990000000003", "3.00"))
		statuses = concurrently(8, func(int) int { s, _ := f.postAlipay(f.ap.ID, form); return s })
		if countOf(statuses, http.StatusOK) != 8 {
			t.Errorf("8 copies of an Alipay notification answered %v, want 200 each", statuses)
		}
		f.store.DB.Model(&models.Transaction{}).Where("channel_ref = ?", "2026030122001499990000000003").Count(&rows)
		if rows != 1 {
			t.Errorf("8 copies of an Alipay notification left %d rows", rows)
		}
	})

	t.Run("another merchant's account", func(t *testing.T) {
		rec := f.wxPayment("4200000001202603019999000004", 400) // SHOP_SH's mch_id
		hdr, body := f.wxNotification(rec, time.Now())
		status, ans := f.postWechat(wxBJ.ID, hdr, body)
		wantFail(t, "SHOP_SH's notification to SHOP_BJ's account", status, ans, http.StatusBadRequest)
		nothingFor(t, "a notification for another merchant's account", rec.ChannelRef)
		// Its nonce was not burned by the refusal: the right account takes it.
		if status, ans := f.postWechat(f.wx.ID, hdr, body); status != http.StatusNoContent {
			t.Fatalf("the same notification to its own account: %d %s", status, ans)
		}
		if got := f.ledger(channels.KindPayment, rec.ChannelRef); got == nil || got.MerchantCode != "SHOP_SH" || got.AccountID != f.wx.ID {
			t.Errorf("taken as %+v, want SHOP_SH's account %d", got, f.wx.ID)
		}
		p := f.alipayPayment("2026030122001499990000000004", "4.00") // SHOP_SH's app_id and seller
		form := alipay.BuildTestNotification(f.apKey, p)
		if status, ans := f.postAlipay(apBJ.ID, form); status != http.StatusBadRequest || ans != "failure" {
			t.Errorf("SHOP_SH's Alipay notification to SHOP_BJ's account: %d %q", status, ans)
		}
		nothingFor(t, "an Alipay notification for another merchant's account", p["trade_no"])
		var bjRows int64
		f.store.DB.Model(&models.Transaction{}).Where("merchant_code = ?", "SHOP_BJ").Count(&bjRows)
		if bjRows != 0 {
			t.Errorf("SHOP_BJ's ledger has %d rows from SHOP_SH's notifications", bjRows)
		}
	})

	t.Run("Alipay notification repeated later", func(t *testing.T) {
		// Alipay repeats a notification for about a day until it reads
		// success, so its notifications carry no time window; each repeat
		// is sent afresh, with its own notify_time. Neither a copy of the
		// same form (a replay) nor a repeat three days on is recorded twice.
		p := f.alipayPayment("2026030122001499990000000005", "5.00")
		form := alipay.BuildTestNotification(f.apKey, p)
		for i := 0; i < 2; i++ {
			if status, ans := f.postAlipay(f.ap.ID, form); status != http.StatusOK || ans != "success" {
				t.Fatalf("delivery %d: %d %q", i+1, status, ans)
			}
		}
		sources := func() (rows, sources int64) {
			f.store.DB.Model(&models.Transaction{}).Where("channel_ref = ?", p["trade_no"]).Count(&rows)
			f.store.DB.Model(&models.TransactionSource{}).Joins("JOIN transactions ON transactions.id = transaction_sources.transaction_id").
				Where("transactions.channel_ref = ?", p["trade_no"]).Count(&sources)
			return
		}
		if rows, srcs := sources(); rows != 1 || srcs != 1 {
			t.Errorf("a replayed Alipay form left %d rows, %d sources; want 1 and 1", rows, srcs)
		}
		// The same notification, only notify_time new (gmt_payment and the
		// rest as first sent: building it again would move them on the clock).
		later := maps.Clone(p)
		later["notify_time"] = time.Now().Add(72 * time.Hour).In(time.FixedZone("CST", 8*3600)).Format(time.DateTime)
		if status, ans := f.postAlipay(f.ap.ID, alipay.BuildTestNotification(f.apKey, later)); status != http.StatusOK || ans != "success" {
			t.Errorf("the repeat three days on: %d %q, want success", status, ans)
		}
		if rows, srcs := sources(); rows != 1 || srcs != 1 {
			t.Errorf("Alipay's repeat of a notification (same notify_id, only notify_time differs) left %d rows, %d sources; "+
				"want 1 and 1: the ledger takes the repeat as another source, because the raw parameters it hashes include notify_time", rows, srcs)
		}
	})

	t.Run("oversized and malformed", func(t *testing.T) {
		before := f.count(&models.Transaction{})
		big := bytes.Repeat([]byte("x"), wechat.MaxNotificationBody+1)
		hdr := wechat.SignTestNotification(f.wxKey, serial, big, time.Now())
		// Sent without a length (chunked, over a real connection): the cap
		// holds on what arrives.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go f.srv.App.Listener(ln)
		defer f.srv.App.ShutdownWithTimeout(5 * time.Second)
		req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/notify/wechat/"+id(f.wx.ID), io.MultiReader(bytes.NewReader(big)))
		for k, vs := range hdr {
			req.Header[k] = vs
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		ans, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if len(res.TransferEncoding) > 0 || req.ContentLength != 0 {
			t.Fatalf("the request was not sent chunked")
		}
		wantFail(t, "a chunked body over the cap", res.StatusCode, string(ans), http.StatusRequestEntityTooLarge)
		// Announcing more than the server's own limit: refused before any of it is read.
		if status, _ := rawHead(t, ln.Addr().String(), "/notify/wechat/"+id(f.wx.ID), 5<<20, "Content-Type", "application/json"); status != http.StatusRequestEntityTooLarge {
			t.Errorf("a 5 MiB body: %d, want 413", status)
		}
		// Signed, but not a notification: the request's fault.
		for _, body := range [][]byte{[]byte("not json"), []byte(`{"resource":{"ciphertext":"AAAA","nonce":"x","associated_data":""}}`), []byte(`[]`)} {
			status, ans := f.postWechat(f.wx.ID, wechat.SignTestNotification(f.wxKey, serial, body, time.Now()), body)
			if status < 400 || !strings.Contains(ans, `"FAIL"`) {
				t.Errorf("signed %q: %d %s, want a refusal", body, status, ans)
			}
		}
		if status, ans := f.post("/notify/alipay/"+id(f.ap.ID), http.Header{"Content-Type": {"application/json"}}, []byte(`{"sign":"x"}`)); status != http.StatusBadRequest && status != http.StatusUnauthorized || ans != "failure" {
			t.Errorf("Alipay JSON body: %d %q", status, ans)
		}
		if status, ans := f.post("/notify/alipay/"+id(f.ap.ID), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, []byte("%zz=%%&sign=")); status >= 500 || ans != "failure" {
			t.Errorf("Alipay broken form: %d %q", status, ans)
		}
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			req := httptest.NewRequest(m, "/notify/wechat/"+id(f.wx.ID), nil)
			res, err := f.srv.App.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s of a notification URL: %d", m, res.StatusCode)
			}
		}
		if after := f.count(&models.Transaction{}); after != before {
			t.Errorf("refused notifications left %d rows", after-before)
		}
	})

	// Refusals are counted for the trigger rules only against accounts that
	// exist: made-up ids fill nothing.
	var ghosts int64
	f.store.DB.Raw("SELECT COUNT(*) FROM notify_refusals WHERE account_id NOT IN (SELECT id FROM channel_accounts)").Scan(&ghosts)
	if ghosts != 0 {
		t.Errorf("%d refusals recorded for accounts that do not exist", ghosts)
	}
}

// signWechatAt signs body as WeChat Pay would, with timestamp text ts as given.
func signWechatAt(t *testing.T, key *rsa.PrivateKey, serial, ts string, body []byte) http.Header {
	t.Helper()
	nonce := randomHex(16)
	sum := sha256.Sum256([]byte(ts + "\n" + nonce + "\n" + string(body) + "\n"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(wechat.HeaderSerial, serial)
	h.Set(wechat.HeaderTimestamp, ts)
	h.Set(wechat.HeaderNonce, nonce)
	h.Set(wechat.HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	return h
}

// concurrently runs fn n times at once and returns what each returned.
func concurrently(n int, fn func(i int) int) []int {
	out := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return out
}

func countOf(xs []int, x int) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
