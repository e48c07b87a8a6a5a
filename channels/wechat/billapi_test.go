package wechat_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/testkeys"
	"payfuse/channels/wechat"
)

// billDate is the day of the bills in testdata.
const billDate = "2026-02-28"

// billNow is the PayFuse (and fake WeChat Pay) clock of these tests: the
// morning after billDate, Beijing time.
var billNow = time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)

// newFake starts a fake with the ALL and REFUND bills of testdata, on the
// tests' clock, and a client for it.
func newFake(t *testing.T) (*wechat.FakeChannel, *wechat.BillClient) {
	t.Helper()
	f := wechat.NewFakeChannel()
	t.Cleanup(f.Close)
	f.SetNow(func() time.Time { return billNow })
	f.AddBill(billDate, "ALL", readBill(t, "all.csv"))
	f.AddBill(billDate, "REFUND", readBill(t, "refund.csv"))
	c := f.BillClient()
	c.Now = func() time.Time { return billNow }
	return f, c
}

// download runs one download with a 5 s deadline and returns the bill.
func download(t *testing.T, c *wechat.BillClient, creds map[string][]byte, date, billType string) (wechat.BillInfo, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var buf bytes.Buffer
	info, err := c.DownloadTradeBill(ctx, creds, date, billType, &buf)
	return info, buf.Bytes(), err
}

// wantReason checks that err is a DownloadError with the reason and
// retryability given, and bilingual, secret-free messages.
func wantReason(t *testing.T, err error, reason string, retryable bool) *wechat.DownloadError {
	t.Helper()
	var de *wechat.DownloadError
	if !errors.As(err, &de) {
		t.Fatalf("error = %v (%T), want a *DownloadError with reason %s", err, err, reason)
	}
	if de.Reason != reason {
		t.Fatalf("reason = %s, want %s (%v)", de.Reason, reason, err)
	}
	if de.Retryable() != retryable || wechat.IsRetryable(err) != retryable {
		t.Errorf("%s: retryable = %v, want %v", reason, de.Retryable(), retryable)
	}
	if de.Message.EN == "" || de.Message.ZH == "" {
		t.Errorf("%s: message not in both languages: %+v", reason, de.Message)
	}
	for _, s := range []string{err.Error(), de.Message.EN, de.Message.ZH} {
		for _, secret := range []string{"PRIVATE KEY", "signature=", "nonce_str=", "token=", "WECHATPAY2-SHA256-RSA2048 mchid"} {
			if strings.Contains(s, secret) {
				t.Errorf("%s: message shows %q: %s", reason, secret, s)
			}
		}
	}
	return de
}

func TestDownloadTradeBill(t *testing.T) {
	f, c := newFake(t)
	creds := f.Credentials()
	if problems := wechat.Spec.Validate(creds); problems != nil {
		t.Fatalf("the fake's credentials do not validate: %+v", problems)
	}
	want := readBill(t, "all.csv")

	info, got, err := download(t, c, creds, billDate, "ALL")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the bill written is not the bill served (%d bytes, want %d)", len(got), len(want))
	}
	if !info.Compressed || info.Bytes != int64(len(want)) || info.Received <= 0 || info.Received >= info.Bytes {
		t.Errorf("info = %+v: want a gzip download of %d bytes, smaller on the wire", info, len(want))
	}
	if info.Date != billDate || info.Type != "ALL" || info.HashType != "SHA1" || len(info.HashValue) != 40 || info.RequestID == "" {
		t.Errorf("info = %+v", info)
	}

	// The bill parses: the client hands over exactly what ParseTradeBill reads.
	_, totals, err := parseBill(got)
	if err != nil {
		t.Fatal(err)
	}
	if totals.Payments != 12 || totals.Refunds != 6 {
		t.Errorf("totals = %+v", totals)
	}

	// What was asked, and that the download link was signed too (the fake
	// refuses unsigned requests).
	reqs := f.Requests()
	if len(reqs) != 2 || reqs[0].Status != 200 || reqs[1].Status != 200 {
		t.Fatalf("requests = %+v", reqs)
	}
	if reqs[0].URI != "/v3/bill/tradebill?bill_date="+billDate+"&bill_type=ALL&tar_type=GZIP" {
		t.Errorf("bill request = %s", reqs[0].URI)
	}
	if !strings.HasPrefix(reqs[1].URI, "/v3/billdownload/file?token=") {
		t.Errorf("download request = %s", reqs[1].URI)
	}

	// Lower-case type, REFUND bill.
	info, got, err = download(t, c, creds, billDate, "refund")
	if err != nil || info.Type != "REFUND" || !bytes.Equal(got, readBill(t, "refund.csv")) {
		t.Fatalf("REFUND: info %+v, err %v", info, err)
	}
}

func TestDownloadTradeBillVerifiesWithCertificate(t *testing.T) {
	f, c := newFake(t)
	f.SetBehavior(wechat.FakeBehavior{SignWithCertificate: true})
	creds := f.Credentials()
	delete(creds, "platform_public_key")
	delete(creds, "platform_public_key_id")
	if _, _, err := download(t, c, creds, billDate, "ALL"); err != nil {
		t.Fatal(err)
	}
}

func TestDownloadTradeBillRefusedByWeChatPay(t *testing.T) {
	other := testkeys.PrivateKeyPEM(testkeys.RSAKey(testkeys.Bits))
	for _, tc := range []struct {
		name  string
		creds func(map[string][]byte)
	}{
		{"another private key", func(c map[string][]byte) { c["merchant_private_key"] = other }},
		{"another certificate serial", func(c map[string][]byte) {
			c["merchant_serial_no"] = []byte("5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
		}},
		{"another merchant id", func(c map[string][]byte) { c["mch_id"] = []byte("1900000001") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c := newFake(t)
			creds := f.Credentials()
			tc.creds(creds)
			_, got, err := download(t, c, creds, billDate, "ALL")
			de := wantReason(t, err, wechat.ReasonUnauthorized, false)
			if de.Status != http.StatusUnauthorized || de.Code != "SIGN_ERROR" || len(got) != 0 {
				t.Errorf("status %d code %q, %d bytes written", de.Status, de.Code, len(got))
			}
			if !strings.Contains(de.Message.EN, "merchant API private key") {
				t.Errorf("message does not say what to check: %s", de.Message.EN)
			}
		})
	}

	t.Run("clock too far off", func(t *testing.T) {
		f, c := newFake(t)
		c.Now = func() time.Time { return billNow.Add(6 * time.Minute) }
		_, _, err := download(t, c, f.Credentials(), billDate, "ALL")
		wantReason(t, err, wechat.ReasonUnauthorized, false)
	})
}

func TestDownloadTradeBillDistrustsAnswers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		behavior wechat.FakeBehavior
		creds    func(map[string][]byte)
		reason   string
	}{
		{"bad signature", wechat.FakeBehavior{BadSignature: true}, nil, wechat.ReasonBadSignature},
		{"unsigned", wechat.FakeBehavior{Unsigned: true}, nil, wechat.ReasonBadSignature},
		{"stale timestamp", wechat.FakeBehavior{ClockSkew: -5 * time.Minute}, nil, wechat.ReasonStaleTimestamp},
		{"future timestamp", wechat.FakeBehavior{ClockSkew: 6 * time.Minute}, nil, wechat.ReasonStaleTimestamp},
		{"unknown key", wechat.FakeBehavior{}, func(c map[string][]byte) {
			c["platform_public_key_id"] = []byte("PUB_KEY_ID_0100000000000000000000000000000000")
			delete(c, "platform_certificate")
		}, wechat.ReasonUnknownSerial},
		{"link elsewhere", wechat.FakeBehavior{DownloadBase: "https://bills.example.com"}, nil, wechat.ReasonBadResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c := newFake(t)
			f.SetBehavior(tc.behavior)
			creds := f.Credentials()
			if tc.creds != nil {
				tc.creds(creds)
			}
			_, got, err := download(t, c, creds, billDate, "ALL")
			wantReason(t, err, tc.reason, false)
			if len(got) != 0 {
				t.Errorf("%d bytes written from an answer not trusted", len(got))
			}
			if reqs := f.Requests(); len(reqs) != 1 {
				t.Errorf("the download link was followed: %+v", reqs)
			}
		})
	}
}

func TestDownloadTradeBillAnswers(t *testing.T) {
	t.Run("not ready", func(t *testing.T) {
		f, c := newFake(t)
		f.SetBehavior(wechat.FakeBehavior{NotReady: true})
		_, _, err := download(t, c, f.Credentials(), billDate, "ALL")
		de := wantReason(t, err, wechat.ReasonBillNotReady, true)
		if !errors.Is(err, wechat.ErrBillNotReady) || errors.Is(err, wechat.ErrNoBill) {
			t.Error("errors.Is does not tell not-ready apart")
		}
		if de.Code != "STATEMENT_CREATING" || !de.Verified {
			t.Errorf("code %q verified %v", de.Code, de.Verified)
		}
	})

	t.Run("today", func(t *testing.T) {
		f, c := newFake(t)
		_, _, err := download(t, c, f.Credentials(), "2026-03-01", "ALL")
		wantReason(t, err, wechat.ReasonBillNotReady, true)
		if n := len(f.Requests()); n != 0 {
			t.Errorf("%d requests sent for a bill that cannot exist yet", n)
		}
	})

	t.Run("no bill", func(t *testing.T) {
		f, c := newFake(t)
		_, _, err := download(t, c, f.Credentials(), "2026-02-27", "ALL")
		de := wantReason(t, err, wechat.ReasonNoBill, false)
		if !errors.Is(err, wechat.ErrNoBill) || de.Code != "NO_STATEMENT_EXIST" || !de.Verified || de.Status != 400 {
			t.Errorf("%+v", de)
		}
		// SUCCESS was never registered for billDate either.
		_, _, err = download(t, c, f.Credentials(), billDate, "SUCCESS")
		wantReason(t, err, wechat.ReasonNoBill, false)
	})

	t.Run("server error twice then OK", func(t *testing.T) {
		f, c := newFake(t)
		f.FailNext(2, 500, "SYSTEM_ERROR", "系统错误")
		for i := range 2 {
			_, _, err := download(t, c, f.Credentials(), billDate, "ALL")
			de := wantReason(t, err, wechat.ReasonServerError, true)
			if de.Status != 500 || de.Code != "SYSTEM_ERROR" || !strings.Contains(de.Message.ZH, "系统错误") {
				t.Errorf("try %d: %+v", i+1, de)
			}
		}
		if _, _, err := download(t, c, f.Credentials(), billDate, "ALL"); err != nil {
			t.Fatalf("third try: %v", err)
		}
	})

	for _, tc := range []struct {
		status    int
		code      string
		reason    string
		retryable bool
	}{
		{429, "RATELIMIT_EXCEEDED", wechat.ReasonRateLimited, true},
		{503, "SERVICE_UNAVAILABLE", wechat.ReasonServerError, true},
		{403, "NO_AUTH", wechat.ReasonForbidden, false},
		{400, "PARAM_ERROR", wechat.ReasonBadRequest, false},
		{400, "INVALID_REQUEST", wechat.ReasonBadRequest, false},
	} {
		t.Run(tc.code, func(t *testing.T) {
			f, c := newFake(t)
			f.FailNext(1, tc.status, tc.code, "…")
			_, _, err := download(t, c, f.Credentials(), billDate, "ALL")
			if de := wantReason(t, err, tc.reason, tc.retryable); de.Status != tc.status || de.Code != tc.code {
				t.Errorf("%+v", de)
			}
		})
	}

	t.Run("signed error that does not verify", func(t *testing.T) {
		f, c := newFake(t)
		f.SetBehavior(wechat.FakeBehavior{BadSignature: true})
		_, _, err := download(t, c, f.Credentials(), "2026-02-27", "ALL")
		wantReason(t, err, wechat.ReasonBadSignature, false)
	})

	t.Run("unsigned error", func(t *testing.T) {
		f, c := newFake(t)
		f.SetBehavior(wechat.FakeBehavior{Unsigned: true})
		_, _, err := download(t, c, f.Credentials(), "2026-02-27", "ALL")
		if de := wantReason(t, err, wechat.ReasonNoBill, false); de.Verified {
			t.Error("an unsigned answer is reported verified")
		}
	})
}

func TestDownloadTradeBillChecksTheFile(t *testing.T) {
	t.Run("hash mismatch", func(t *testing.T) {
		f, c := newFake(t)
		f.SetBehavior(wechat.FakeBehavior{WrongHash: true})
		_, _, err := download(t, c, f.Credentials(), billDate, "ALL")
		wantReason(t, err, wechat.ReasonHashMismatch, true)
	})

	size := int64(len(readBill(t, "all.csv")))
	t.Run("bill over the cap", func(t *testing.T) {
		f, c := newFake(t)
		c.MaxBillBytes = size - 1
		_, got, err := download(t, c, f.Credentials(), billDate, "ALL")
		de := wantReason(t, err, wechat.ReasonTooLarge, false)
		if int64(len(got)) >= size || !strings.Contains(de.Message.EN, "once decompressed") {
			t.Errorf("%d bytes written; %s", len(got), de.Message.EN)
		}
	})
	t.Run("bill at the cap", func(t *testing.T) {
		f, c := newFake(t)
		c.MaxBillBytes = size
		if _, _, err := download(t, c, f.Credentials(), billDate, "ALL"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("download over the cap", func(t *testing.T) {
		f, c := newFake(t)
		c.MaxDownloadBytes = 100
		_, _, err := download(t, c, f.Credentials(), billDate, "ALL")
		de := wantReason(t, err, wechat.ReasonTooLarge, false)
		if !strings.Contains(de.Message.EN, "100 bytes") {
			t.Errorf("message does not give the limit: %s", de.Message.EN)
		}
	})
	t.Run("download over the cap, no Content-Length", func(t *testing.T) {
		f, c := newFake(t)
		f.SetBehavior(wechat.FakeBehavior{Chunked: true})
		c.MaxDownloadBytes = 300
		_, got, err := download(t, c, f.Credentials(), billDate, "ALL")
		wantReason(t, err, wechat.ReasonTooLarge, false)
		if int64(len(got)) >= size {
			t.Errorf("the whole bill was written: %d bytes", len(got))
		}
	})
	t.Run("chunked", func(t *testing.T) {
		f, c := newFake(t)
		f.SetBehavior(wechat.FakeBehavior{Chunked: true})
		if _, got, err := download(t, c, f.Credentials(), billDate, "ALL"); err != nil || int64(len(got)) != size {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
	})
	t.Run("damaged on the way", func(t *testing.T) {
		for _, b := range []wechat.FakeBehavior{{CorruptFile: true}, {CorruptFile: true, Uncompressed: true}} {
			f, c := newFake(t)
			f.SetBehavior(b)
			_, _, err := download(t, c, f.Credentials(), billDate, "ALL")
			wantReason(t, err, wechat.ReasonHashMismatch, true)
		}
	})
	t.Run("served uncompressed", func(t *testing.T) {
		f, c := newFake(t)
		f.SetBehavior(wechat.FakeBehavior{Uncompressed: true})
		info, got, err := download(t, c, f.Credentials(), billDate, "ALL")
		if err != nil || info.Compressed || info.Received != size || int64(len(got)) != size {
			t.Fatalf("info %+v, %d bytes, %v", info, len(got), err)
		}
	})
	t.Run("write fails", func(t *testing.T) {
		f, c := newFake(t)
		_, err := c.DownloadTradeBill(context.Background(), f.Credentials(), billDate, "ALL", failingWriter{})
		wantReason(t, err, wechat.ReasonWriteFailed, false)
	})
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

func TestDownloadTradeBillTimeout(t *testing.T) {
	f, c := newFake(t)
	f.SetBehavior(wechat.FakeBehavior{Delay: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.DownloadTradeBill(ctx, f.Credentials(), billDate, "ALL", io.Discard)
	wantReason(t, err, wechat.ReasonTimeout, true)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the context's error is not kept: %v", err)
	}

	// The caller stopping is not a timeout.
	ctx, cancel = context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err = c.DownloadTradeBill(ctx, f.Credentials(), billDate, "ALL", io.Discard)
	})
	time.Sleep(20 * time.Millisecond)
	cancel()
	wg.Wait()
	wantReason(t, err, wechat.ReasonCanceled, true)
}

func TestDownloadTradeBillTransport(t *testing.T) {
	f, c := newFake(t)
	creds := f.Credentials()
	f.Close() // nobody listens there any more
	_, _, err := download(t, c, creds, billDate, "ALL")
	wantReason(t, err, wechat.ReasonTransport, true)
}

func TestDownloadTradeBillRefusesBadInput(t *testing.T) {
	f, c := newFake(t)
	good := f.Credentials()
	without := func(field string) map[string][]byte {
		m := f.Credentials()
		delete(m, field)
		return m
	}
	noPlatform := without("platform_public_key")
	delete(noPlatform, "platform_certificate")
	badKey := f.Credentials()
	badKey["merchant_private_key"] = []byte("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")

	for _, tc := range []struct {
		name, date, billType string
		creds                map[string][]byte
		reason               string
		says                 string
	}{
		{"short date", "2026-2-28", "ALL", good, wechat.ReasonBadInput, "YYYY-MM-DD"},
		{"no such day", "2026-02-30", "ALL", good, wechat.ReasonBadInput, "YYYY-MM-DD"},
		{"not a date", "yesterday", "ALL", good, wechat.ReasonBadInput, "YYYY-MM-DD"},
		{"future", "2026-03-02", "ALL", good, wechat.ReasonBadInput, "future"},
		{"bill type", billDate, "FUND", good, wechat.ReasonBadInput, "ALL, SUCCESS or REFUND"},
		{"special bill type", billDate, "ALL_SPECIAL", good, wechat.ReasonBadInput, "ALL, SUCCESS or REFUND"},
		{"no merchant id", billDate, "ALL", without("mch_id"), wechat.ReasonBadCredentials, "Merchant ID"},
		{"no serial", billDate, "ALL", without("merchant_serial_no"), wechat.ReasonBadCredentials, "serial number"},
		{"no private key", billDate, "ALL", without("merchant_private_key"), wechat.ReasonBadCredentials, "private key"},
		{"unreadable private key", billDate, "ALL", badKey, wechat.ReasonBadCredentials, "private key"},
		{"nothing to verify with", billDate, "ALL", noPlatform, wechat.ReasonBadCredentials, "public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got, err := download(t, c, tc.creds, tc.date, tc.billType)
			de := wantReason(t, err, tc.reason, false)
			if !strings.Contains(de.Message.EN, tc.says) {
				t.Errorf("message %q does not say %q", de.Message.EN, tc.says)
			}
			if len(got) != 0 {
				t.Errorf("%d bytes written", len(got))
			}
		})
	}
	if n := len(f.Requests()); n != 0 {
		t.Errorf("%d requests sent for bad input", n)
	}

	c.BaseURL = "ftp://api.mch.weixin.qq.com"
	_, _, err := download(t, c, good, billDate, "ALL")
	wantReason(t, err, wechat.ReasonBadInput, false)
}

// TestFakeChannelRefusesUnsigned checks the fake itself: a plain request is
// refused as WeChat Pay refuses it, unsigned.
func TestFakeChannelRefusesUnsigned(t *testing.T) {
	f, _ := newFake(t)
	resp, err := http.Get(f.URL + "/v3/bill/tradebill?bill_date=" + billDate)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(body), `"SIGN_ERROR"`) || resp.Header.Get(wechat.HeaderSignature) != "" {
		t.Errorf("status %d, body %s", resp.StatusCode, body)
	}
}

// TestFakeChannelNotification checks that the fake's notifications verify
// with its credentials, so that a test can feed one account both.
func TestFakeChannelNotification(t *testing.T) {
	f, _ := newFake(t)
	rec := channels.Record{
		Kind: channels.KindPayment, ChannelRef: "4200002851202602280000000001", MerchantOrderNo: "PF20260228000001",
		Status: channels.StatusSucceeded, Method: channels.MethodScan, Amount: 10000, Currency: "CNY", AccountRef: f.MchID,
	}
	h, body := f.Notification(rec, billNow)
	n, err := wechat.VerifyNotification(h, body, f.Credentials(), billNow)
	if err != nil {
		t.Fatal(err)
	}
	if n.Record.ChannelRef != rec.ChannelRef || n.Record.Amount != rec.Amount {
		t.Errorf("record = %+v", n.Record)
	}
}
