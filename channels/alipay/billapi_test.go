package alipay_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/alipay"
	"payfuse/channels/testkeys"
)

// billAppKey is the application's key in the bill tests; the fake Alipay
// signs with alipayKey() and otherKey() stands for a key Alipay does not know.
var billAppKey = sync.OnceValue(func() *rsa.PrivateKey { return testkeys.RSAKey(2048) })

// billDate is the day of the fixture bill (bill_test.go's billZip).
const billDate = "2026-03-01"

var beijing = time.FixedZone("CST", 8*60*60)

// at returns a fixed clock at the given Beijing time.
func at(s string) func() time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, beijing)
	if err != nil {
		panic(err)
	}
	return func() time.Time { return t }
}

// afterReady is a time the bill of billDate is surely ready.
var afterReady = at("2026-03-03 10:00")

func newFake(t *testing.T, certMode bool) *alipay.FakeGateway {
	t.Helper()
	f := alipay.NewFakeGateway(alipay.FakeOptions{CertMode: certMode, AppKey: billAppKey(), AlipayKey: alipayKey(), PID: testPID})
	t.Cleanup(f.Close)
	return f
}

func fakeClient(f *alipay.FakeGateway, now func() time.Time) *alipay.BillClient {
	c := f.Client()
	c.Now = now
	return c
}

// downloadErr asserts err is a *DownloadError with the reason and retryability.
func downloadErr(t *testing.T, err error, reason string, retryable bool) *alipay.DownloadError {
	t.Helper()
	var de *alipay.DownloadError
	if !errors.As(err, &de) {
		t.Fatalf("error = %v (%T), want a *DownloadError %s", err, err, reason)
	}
	if de.Reason != reason || de.Retryable != retryable {
		t.Fatalf("error = %v (reason %s, retryable %v), want reason %s, retryable %v", err, de.Reason, de.Retryable, reason, retryable)
	}
	if de.Message.EN == "" || de.Message.ZH == "" {
		t.Fatalf("message not in both languages: %+v", de.Message)
	}
	return de
}

func TestDownloadTradeBill(t *testing.T) {
	for _, certMode := range []bool{false, true} {
		name := "public key"
		if certMode {
			name = "certificate"
		}
		t.Run(name, func(t *testing.T) {
			f := newFake(t, certMode)
			zipData := billZip(t)
			f.AddBill(billDate, zipData)

			var buf bytes.Buffer
			info, err := fakeClient(f, afterReady).DownloadTradeBill(context.Background(), f.Credentials(), billDate, &buf)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(zipData)
			if info.Date != billDate || info.Size != int64(len(zipData)) || info.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("info = %+v, want %s, %d bytes, %x", info, billDate, len(zipData), sum)
			}
			if !bytes.Equal(buf.Bytes(), zipData) {
				t.Fatal("the file written is not the bill served")
			}
			var recs []channels.Record
			tot, err := alipay.ParseTradeBill(bytes.NewReader(buf.Bytes()), int64(buf.Len()), 0, collect(&recs))
			if err != nil {
				t.Fatal(err)
			}
			checkRecords(t, recs, tot)
			if f.Calls() != 1 || f.Downloads() != 1 {
				t.Errorf("calls %d, downloads %d; want 1 and 1", f.Calls(), f.Downloads())
			}
		})
	}
}

func TestBuildTestTradeBill(t *testing.T) {
	f := newFake(t, false)
	paid := time.Date(2026, 3, 1, 2, 3, 4, 0, time.UTC)
	f.AddBill(billDate, alipay.BuildTestTradeBill(testPID, billDate,
		alipay.TestTrade{TradeNo: "2026030122001400000000000001", OrderNo: "PF1", Amount: 1234, Fee: 7, Paid: paid},
		alipay.TestTrade{TradeNo: "2026030122001400000000000002", OrderNo: "PF2", Amount: 50000, Fee: 300, Paid: paid.Add(time.Hour)}))
	var buf bytes.Buffer
	if _, err := fakeClient(f, afterReady).DownloadTradeBill(context.Background(), f.Credentials(), billDate, &buf); err != nil {
		t.Fatal(err)
	}
	var recs []channels.Record
	tot, err := alipay.ParseTradeBill(bytes.NewReader(buf.Bytes()), int64(buf.Len()), 0, collect(&recs))
	if err != nil {
		t.Fatal(err)
	}
	want := channels.Totals{Payments: 2, PaymentAmount: 51234, Fees: 307}
	if tot != want || len(recs) != 2 {
		t.Fatalf("totals %+v (%d records), want %+v", tot, len(recs), want)
	}
	if r := recs[0]; r.ChannelRef != "2026030122001400000000000001" || r.MerchantOrderNo != "PF1" || r.Amount != 1234 ||
		r.Fee != 7 || !r.PaidAt.Equal(paid) || r.AccountRef != testPID {
		t.Errorf("first record = %+v", r)
	}
}

func TestDownloadTradeBillRefusals(t *testing.T) {
	f := newFake(t, false)
	f.AddBill(billDate, billZip(t))
	ctx := context.Background()
	cases := []struct {
		name      string
		setup     func(f *alipay.FakeGateway) func()
		creds     func(map[string][]byte)
		date      string
		now       func() time.Time
		reason    string
		retryable bool
		subCode   string
	}{
		{name: "bad client signature", creds: func(c map[string][]byte) { c["app_private_key"] = testkeys.PrivateKeyPEM(otherKey()) },
			reason: alipay.DownloadSignatureRejected, subCode: "isv.invalid-signature"},
		{name: "unknown APPID", creds: func(c map[string][]byte) { c["app_id"] = []byte("2021999999999999") },
			reason: alipay.DownloadAppRejected, subCode: "isv.invalid-app-id"},
		{name: "bad response signature", setup: func(f *alipay.FakeGateway) func() {
			f.SetBadResponseSign(true)
			return func() { f.SetBadResponseSign(false) }
		}, reason: alipay.DownloadBadResponse},
		{name: "response verified with another Alipay key", creds: func(c map[string][]byte) {
			c["alipay_public_key"] = testkeys.PublicKeyPEM(&otherKey().PublicKey)
		}, reason: alipay.DownloadBadResponse},
		{name: "no bill that day", date: "2026-02-27", reason: alipay.DownloadNoBill, subCode: "isp.bill_not_exist"},
		{name: "no bill yet, early next morning", date: "2026-03-02", now: at("2026-03-03 08:30"),
			reason: alipay.DownloadNotReady, retryable: true, subCode: "isp.bill_not_exist"},
		{name: "registered bill not made yet", now: at("2026-03-02 07:00"), setup: func(f *alipay.FakeGateway) func() {
			f.SetNotReady(billDate, true)
			return func() { f.SetNotReady(billDate, false) }
		}, reason: alipay.DownloadNotReady, retryable: true, subCode: "isp.bill_not_exist"},
		{name: "no permission", setup: func(f *alipay.FakeGateway) func() {
			f.SetNoPermission(true)
			return func() { f.SetNoPermission(false) }
		}, reason: alipay.DownloadNoPermission, subCode: "isv.insufficient-isv-permissions"},
		{name: "truncated download", setup: func(f *alipay.FakeGateway) func() {
			f.SetTruncatedDownload(true)
			return func() { f.SetTruncatedDownload(false) }
		}, reason: alipay.DownloadBadFile, retryable: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				defer tc.setup(f)()
			}
			creds := f.Credentials()
			if tc.creds != nil {
				tc.creds(creds)
			}
			date, now := billDate, afterReady
			if tc.date != "" {
				date = tc.date
			}
			if tc.now != nil {
				now = tc.now
			}
			var buf bytes.Buffer
			_, err := fakeClient(f, now).DownloadTradeBill(ctx, creds, date, &buf)
			de := downloadErr(t, err, tc.reason, tc.retryable)
			if de.SubCode != tc.subCode {
				t.Errorf("SubCode = %q, want %q", de.SubCode, tc.subCode)
			}
			if tc.reason != alipay.DownloadBadFile && buf.Len() != 0 {
				t.Errorf("%d bytes written after a refusal", buf.Len())
			}
			noSecrets(t, err, creds)
		})
	}
}

// noSecrets fails when the error quotes key material or a download token.
func noSecrets(t *testing.T, err error, creds map[string][]byte) {
	t.Helper()
	de, _ := err.(*alipay.DownloadError)
	texts := []string{err.Error()}
	if de != nil {
		texts = append(texts, de.Message.EN, de.Message.ZH)
	}
	for _, s := range texts {
		if strings.Contains(s, "token=") || strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, "CERTIFICATE") {
			t.Errorf("error quotes a secret: %s", s)
		}
		for k, v := range creds {
			body := strings.TrimSpace(string(v))
			if k != "app_id" && k != "pid" && len(body) > 60 && strings.Contains(s, body[30:60]) {
				t.Errorf("error quotes %s: %s", k, s)
			}
		}
	}
}

func TestDownloadTradeBillBusyThenSuccess(t *testing.T) {
	f := newFake(t, false)
	f.AddBill(billDate, billZip(t))
	f.SetBusy(2)
	c := fakeClient(f, afterReady)
	for i := range 2 {
		_, err := c.DownloadTradeBill(context.Background(), f.Credentials(), billDate, io.Discard)
		de := downloadErr(t, err, alipay.DownloadBusy, true)
		if de.Code != "20000" {
			t.Errorf("call %d: Code = %q, want 20000", i+1, de.Code)
		}
	}
	var buf bytes.Buffer
	if _, err := c.DownloadTradeBill(context.Background(), f.Credentials(), billDate, &buf); err != nil {
		t.Fatalf("third call: %v", err)
	}
	if f.Calls() != 3 || f.Downloads() != 1 {
		t.Errorf("calls %d, downloads %d; want 3 and 1", f.Calls(), f.Downloads())
	}
}

func TestDownloadTradeBillSizeCap(t *testing.T) {
	f := newFake(t, false)
	zipData := billZip(t)
	f.AddBill(billDate, zipData)
	c := fakeClient(f, afterReady)
	c.MaxBytes = int64(len(zipData) - 1)
	var buf bytes.Buffer
	_, err := c.DownloadTradeBill(context.Background(), f.Credentials(), billDate, &buf)
	downloadErr(t, err, alipay.DownloadTooLarge, false)

	c.MaxBytes = int64(len(zipData))
	if _, err := c.DownloadTradeBill(context.Background(), f.Credentials(), billDate, &buf); err != nil {
		t.Fatalf("a bill of exactly MaxBytes: %v", err)
	}

	// Without a Content-Length the cap is found while streaming.
	c.MaxBytes = int64(len(zipData) - 1)
	c.HTTP = &http.Client{Transport: rewriteDownloads{next: f.Client().HTTP.Transport, fn: func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, ContentLength: -1, Body: io.NopCloser(bytes.NewReader(zipData))}, nil
	}}}
	_, err = c.DownloadTradeBill(context.Background(), f.Credentials(), billDate, io.Discard)
	downloadErr(t, err, alipay.DownloadTooLarge, false)
}

func TestDownloadTradeBillTimeout(t *testing.T) {
	f := newFake(t, false)
	f.AddBill(billDate, billZip(t))
	f.SetSlow(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := fakeClient(f, afterReady).DownloadTradeBill(ctx, f.Credentials(), billDate, io.Discard)
	downloadErr(t, err, alipay.DownloadNetwork, true)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
}

// rewriteDownloads is a transport that treats the bill server's requests
// with fn and passes the rest through.
type rewriteDownloads struct {
	next http.RoundTripper
	fn   func(*http.Request) (*http.Response, error)
}

func (rt rewriteDownloads) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Path, "/downloadBillFile") {
		return rt.fn(r)
	}
	return rt.next.RoundTrip(r)
}

func TestDownloadTradeBillDownloadFailures(t *testing.T) {
	f := newFake(t, false)
	f.AddBill(billDate, billZip(t))
	base := f.Client().HTTP.Transport
	cases := []struct {
		name      string
		fn        func(*http.Request) (*http.Response, error)
		reason    string
		retryable bool
	}{
		{"connection reset", func(*http.Request) (*http.Response, error) {
			return nil, errors.New("read: connection reset by peer")
		}, alipay.DownloadNetwork, true},
		{"expired link answers a web page", func(r *http.Request) (*http.Response, error) {
			r2 := r.Clone(r.Context())
			q := r2.URL.Query()
			q.Set("token", "expired")
			r2.URL.RawQuery = q.Encode()
			return base.RoundTrip(r2)
		}, alipay.DownloadBadFile, true},
		{"server error", func(r *http.Request) (*http.Response, error) {
			rec := httptest.NewRecorder()
			rec.WriteHeader(http.StatusBadGateway)
			return rec.Result(), nil
		}, alipay.DownloadBusy, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeClient(f, afterReady)
			c.HTTP = &http.Client{Transport: rewriteDownloads{next: base, fn: tc.fn}}
			_, err := c.DownloadTradeBill(context.Background(), f.Credentials(), billDate, io.Discard)
			downloadErr(t, err, tc.reason, tc.retryable)
			noSecrets(t, err, f.Credentials())
		})
	}
}

// TestDownloadTradeBillUnverifiedAnswers: answers from a gateway that is
// not the fake Alipay (no or bad signatures, odd JSON).
func TestDownloadTradeBillUnverifiedAnswers(t *testing.T) {
	creds := newFake(t, false).Credentials()
	const node = `"alipay_data_dataservice_bill_downloadurl_query_response"`
	cases := []struct {
		name, body string
		reason     string
		retryable  bool
	}{
		{"unsigned success", `{` + node + `:{"code":"10000","msg":"Success","bill_download_url":"http://127.0.0.1:1/x"}}`, alipay.DownloadBadResponse, false},
		{"unsigned no bill", `{` + node + `:{"code":"40004","msg":"Business Failed","sub_code":"isp.bill_not_exist","sub_msg":"账单不存在"}}`, alipay.DownloadBadResponse, false},
		{"bad signature on a refusal", `{` + node + `:{"code":"40004","msg":"Business Failed","sub_code":"isv.invalid-arguments"},"sign":"AAAA"}`, alipay.DownloadBadResponse, false},
		{"unsigned busy is taken", `{` + node + `:{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}}`, alipay.DownloadBusy, true},
		{"unsigned gateway refusal is taken", `{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id","sub_msg":"无效的AppID参数"}}`, alipay.DownloadAppRejected, false},
		{"response object twice", `{` + node + `:{"code":"20000"},` + node + `:{"code":"10000"}}`, alipay.DownloadBadResponse, false},
		{"not JSON", `<html>502 Bad Gateway</html>`, alipay.DownloadBadResponse, false},
		{"data after the object", `{` + node + `:{"code":"20000"}} {}`, alipay.DownloadBadResponse, false},
		{"no response object", `{"sign":"AAAA"}`, alipay.DownloadBadResponse, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tc.body) }))
			defer srv.Close()
			c := &alipay.BillClient{Gateway: srv.URL + "/gateway.do", HTTP: srv.Client(), Now: afterReady}
			_, err := c.DownloadTradeBill(context.Background(), creds, billDate, io.Discard)
			downloadErr(t, err, tc.reason, tc.retryable)
		})
	}
}

func TestDownloadTradeBillBadInput(t *testing.T) {
	f := newFake(t, false)
	f.AddBill(billDate, billZip(t))
	good := f.Credentials()
	with := func(changes map[string][]byte) map[string][]byte {
		c := maps.Clone(good)
		for k, v := range changes {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	cases := []struct {
		name      string
		date      string
		creds     map[string][]byte
		noWriter  bool
		gateway   string
		reason    string
		retryable bool
	}{
		{name: "not a date", date: "2026-3-1", reason: alipay.DownloadBadInput},
		{name: "no such day", date: "2026-02-30", reason: alipay.DownloadBadInput},
		{name: "a month", date: "2026-02", reason: alipay.DownloadBadInput},
		{name: "empty date", date: "", reason: alipay.DownloadBadInput},
		{name: "before 2016", date: "2015-12-31", reason: alipay.DownloadBadInput},
		{name: "future", date: "2026-03-04", reason: alipay.DownloadBadInput},
		{name: "today", date: "2026-03-03", reason: alipay.DownloadNotReady, retryable: true},
		{name: "no writer", date: billDate, noWriter: true, reason: alipay.DownloadBadInput},
		{name: "gateway not http", date: billDate, gateway: "ftp://example.com/gateway.do", reason: alipay.DownloadBadInput},
		{name: "no private key", date: billDate, creds: with(map[string][]byte{"app_private_key": nil}), reason: alipay.DownloadBadCredentials},
		{name: "garbled Alipay key", date: billDate, creds: with(map[string][]byte{"alipay_public_key": []byte("MIIBIjANBgkq-not-a-key")}), reason: alipay.DownloadBadCredentials},
		{name: "no credentials", date: billDate, creds: map[string][]byte{}, reason: alipay.DownloadBadCredentials},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.Calls()
			c := fakeClient(f, afterReady)
			if tc.gateway != "" {
				c.Gateway = tc.gateway
			}
			creds := tc.creds
			if creds == nil {
				creds = good
			}
			var w io.Writer = &bytes.Buffer{}
			if tc.noWriter {
				w = nil
			}
			_, err := c.DownloadTradeBill(context.Background(), creds, tc.date, w)
			downloadErr(t, err, tc.reason, tc.retryable)
			noSecrets(t, err, good)
			if f.Calls() != before {
				t.Error("the gateway was called for a request that could not succeed")
			}
		})
	}
}

func TestRootCertSN(t *testing.T) {
	f := newFake(t, true)
	var certs []*x509.Certificate
	var want []string
	rest := f.Credentials()["alipay_root_cert"]
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
		if c.SignatureAlgorithm == x509.SHA256WithRSA {
			want = append(want, sn(t, pem.EncodeToMemory(blk)))
		}
	}
	if len(certs) != 3 || len(want) != 2 {
		t.Fatalf("the fake's root bundle has %d certificates, %d RSA-signed; want 3 and 2", len(certs), len(want))
	}
	if got := alipay.RootCertSN(certs); got != strings.Join(want, "_") {
		t.Errorf("RootCertSN = %s, want %s", got, strings.Join(want, "_"))
	}
}

func TestDownloadTradeBillCertModeRefusals(t *testing.T) {
	f := newFake(t, true)
	f.AddBill(billDate, billZip(t))
	now := time.Now()
	otherCert := testkeys.CertPEM(otherKey(), "another Alipay public key certificate", now.Add(-time.Hour), now.AddDate(1, 0, 0))
	cases := []struct {
		name    string
		field   string
		value   []byte
		reason  string
		subCode string
		says    string
	}{
		{"Alipay changed its certificate", "alipay_cert", otherCert, alipay.DownloadBadResponse, "", "changed its certificate"},
		{"outdated root certificate", "alipay_root_cert", otherCert, alipay.DownloadSignatureRejected, "isv.invalid-alipay-root-cert-sn", "refused the request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			creds := f.Credentials()
			creds[tc.field] = tc.value
			_, err := fakeClient(f, afterReady).DownloadTradeBill(context.Background(), creds, billDate, io.Discard)
			de := downloadErr(t, err, tc.reason, false)
			if de.SubCode != tc.subCode || !strings.Contains(de.Message.EN, tc.says) {
				t.Errorf("error = %v (sub_code %q), want sub_code %q and a message saying %q", err, de.SubCode, tc.subCode, tc.says)
			}
		})
	}
}
