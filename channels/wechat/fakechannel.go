package wechat

// This file is for tests and demo data only: FakeChannel plays WeChat Pay's
// API v3 bill endpoints in-process, so that the bill client, the flow engine
// and browser tests can download bills without the network. It checks
// requests and signs answers as WeChat Pay does, with keys made here (see
// payfuse/channels/testkeys); nothing it signs is accepted by anyone but
// PayFuse configured with its Credentials.

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"payfuse/channels"
	"payfuse/channels/testkeys"
)

// FakeBehavior switches how a FakeChannel answers. The zero value answers as
// WeChat Pay does when all is well.
type FakeBehavior struct {
	// NotReady answers every bill request 400 STATEMENT_CREATING (账单生成中).
	NotReady bool
	// BadSignature signs answers with a signature that does not verify.
	BadSignature bool
	// Unsigned leaves the Wechatpay-* signature headers off the answers.
	Unsigned bool
	// SignWithCertificate signs under the platform certificate's serial
	// rather than the WeChat Pay public-key id (same key either way).
	SignWithCertificate bool
	// WrongHash announces a hash_value that is not the bill's.
	WrongHash bool
	// Delay holds every answer this long (or until the caller gives up).
	Delay time.Duration
	// ClockSkew shifts the timestamps the fake signs its answers with.
	ClockSkew time.Duration
	// CorruptFile damages the file served (one byte of it changed).
	CorruptFile bool
	// Uncompressed serves the file as plain CSV even when GZIP was asked.
	Uncompressed bool
	// Chunked sends the file without Content-Length, in chunks.
	Chunked bool
	// DownloadBase, when set, replaces the fake's own URL in download_url
	// (to offer a link elsewhere).
	DownloadBase string
}

// FakeRequest is one request a FakeChannel answered.
type FakeRequest struct {
	Method string
	URI    string // path and query, as sent
	Status int    // the status answered; 0 when the caller gave up first
}

// FakeChannel is an in-process WeChat Pay API v3 server for the trade bill:
// GET /v3/bill/tradebill and the download link it hands out. It refuses
// (401 SIGN_ERROR) a request whose Authorization is not signed by its
// merchant's private key under its merchant id and certificate serial with a
// timestamp within 5 minutes; it signs its answers with its platform key as
// WeChat Pay does; it serves each registered bill, gzip-compressed when
// tar_type=GZIP is asked, announcing the SHA1 of the uncompressed bill. A day
// and type with no bill answers 400 NO_STATEMENT_EXIST.
//
// Its keys are made once per process and shared by every FakeChannel (2048-bit
// key generation is slow); ids and serials are fresh for each. It is safe for
// concurrent use. Close it when done.
type FakeChannel struct {
	URL                string // base URL: give it to BillClient.BaseURL
	MchID              string // the merchant id it expects
	MerchantSerial     string // the merchant API certificate serial it expects
	PlatformKeyID      string // PUB_KEY_ID_… it signs under
	PlatformCertSerial string // the platform certificate serial it signs under with SignWithCertificate

	srv       *httptest.Server
	keys      fakeKeys
	appID     string
	apiv3Key  string
	certPEM   []byte
	closing   chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	now      func() time.Time
	behavior FakeBehavior
	bills    map[fakeBillKey][]byte
	failures []fakeFailure
	tokens   map[string]fakeToken
	requests []FakeRequest
}

type fakeKeys struct{ merchant, platform *rsa.PrivateKey }

var theFakeKeys = sync.OnceValue(func() fakeKeys {
	return fakeKeys{merchant: testkeys.RSAKey(testkeys.Bits), platform: testkeys.RSAKey(testkeys.Bits)}
})

type fakeBillKey struct{ date, billType string }

type fakeFailure struct {
	status        int
	code, message string
}

type fakeToken struct {
	bill    fakeBillKey
	gzip    bool
	expires time.Time
}

// fakeLinkLifetime is how long a download link lives (WeChat Pay: 5 minutes).
const fakeLinkLifetime = 5 * time.Minute

// NewFakeChannel starts a FakeChannel with no bills.
func NewFakeChannel() *FakeChannel {
	now := time.Now()
	f := &FakeChannel{
		MchID:          "16" + randomDigits(8),
		MerchantSerial: strings.ToUpper(hex.EncodeToString(randomBytes(20))),
		PlatformKeyID:  "PUB_KEY_ID_01" + randomDigits(32),
		keys:           theFakeKeys(),
		appID:          "wx" + hex.EncodeToString(randomBytes(8)),
		apiv3Key:       randomText(APIv3KeySize),
		closing:        make(chan struct{}),
		now:            time.Now,
		bills:          make(map[fakeBillKey][]byte),
		tokens:         make(map[string]fakeToken),
	}
	// Valid five years either way, so that tests with their own clock (SetNow) find it valid.
	f.certPEM = testkeys.CertPEM(f.keys.platform, "PayFuse fake WeChat Pay platform certificate", now.AddDate(-5, 0, 0), now.AddDate(5, 0, 0))
	blk, _ := pem.Decode(f.certPEM)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		panic(fmt.Sprintf("wechat: fake channel: %v", err))
	}
	f.PlatformCertSerial = strings.ToUpper(cert.SerialNumber.Text(16))
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	return f
}

// Close stops the server, ending answers held by Delay at once.
func (f *FakeChannel) Close() {
	f.closeOnce.Do(func() { close(f.closing) })
	f.srv.Close()
}

// Credentials returns a complete, valid credential set for a PayFuse WeChat
// Pay channel account that this fake accepts and whose answers it verifies:
// the fake's merchant id, serial and private key, and both its WeChat Pay
// public key (with id) and its platform certificate. Each call returns a
// fresh map.
func (f *FakeChannel) Credentials() map[string][]byte {
	return map[string][]byte{
		"app_id":                 []byte(f.appID),
		"mch_id":                 []byte(f.MchID),
		"apiv3_key":              []byte(f.apiv3Key),
		"merchant_serial_no":     []byte(f.MerchantSerial),
		"merchant_private_key":   testkeys.PrivateKeyPEM(f.keys.merchant),
		"platform_public_key_id": []byte(f.PlatformKeyID),
		"platform_public_key":    testkeys.PublicKeyPEM(&f.keys.platform.PublicKey),
		"platform_certificate":   bytes.Clone(f.certPEM),
	}
}

// Notification returns a payment or refund notification for rec signed and
// encrypted as this fake's WeChat Pay would send it to the account of
// Credentials (see BuildTestNotification).
func (f *FakeChannel) Notification(rec channels.Record, now time.Time) (http.Header, []byte) {
	return BuildTestNotification(f.keys.platform, f.PlatformKeyID, []byte(f.apiv3Key), rec, now)
}

// AddBill registers (or replaces) the bill of a Beijing date ("2006-01-02")
// and type (ALL, SUCCESS or REFUND): the CSV bytes exactly as WeChat Pay
// would make them.
func (f *FakeChannel) AddBill(date, billType string, csv []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bills[fakeBillKey{date, strings.ToUpper(billType)}] = bytes.Clone(csv)
}

// SetBehavior replaces the switches.
func (f *FakeChannel) SetBehavior(b FakeBehavior) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.behavior = b
}

// SetNow sets the fake's clock (time.Now by default), for tests whose PayFuse
// clock is not the real one: it checks request timestamps and signs answers
// with it, and download links expire by it.
func (f *FakeChannel) SetNow(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

// FailNext makes the next n bill requests (GET /v3/bill/tradebill) that pass
// the signature check answer status with {"code":code,"message":message},
// signed: FailNext(2, 500, "SYSTEM_ERROR", "系统错误") is a server error twice,
// then the normal answer.
func (f *FakeChannel) FailNext(n, status int, code, message string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.failures = append(f.failures, fakeFailure{status, code, message})
	}
}

// Requests returns the requests answered so far, oldest first.
func (f *FakeChannel) Requests() []FakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FakeRequest(nil), f.requests...)
}

func (f *FakeChannel) state() (FakeBehavior, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.behavior, f.now()
}

func (f *FakeChannel) record(r *http.Request, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, FakeRequest{Method: r.Method, URI: r.RequestURI, Status: status})
}

func (f *FakeChannel) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := f.state()
	if b.Delay > 0 {
		t := time.NewTimer(b.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			f.record(r, 0)
			return
		case <-f.closing:
			f.record(r, 0)
			return
		}
	}
	b, now := f.state()
	if problem := f.checkAuthorization(r, now); problem != "" {
		// WeChat Pay cannot sign for a caller it did not recognise.
		f.answer(w, r, http.StatusUnauthorized, apiErrorBody{Code: "SIGN_ERROR", Message: problem}, b, now, false)
		return
	}
	switch {
	case r.Method != http.MethodGet:
		f.answer(w, r, http.StatusMethodNotAllowed, apiErrorBody{Code: "INVALID_REQUEST", Message: "请求方法错误"}, b, now, true)
	case r.URL.Path == "/v3/bill/tradebill":
		f.applyForBill(w, r, b, now)
	case r.URL.Path == "/v3/billdownload/file":
		f.download(w, r, b, now)
	default:
		f.answer(w, r, http.StatusNotFound, apiErrorBody{Code: "NOT_FOUND", Message: "请求的资源不存在"}, b, now, true)
	}
}

// checkAuthorization checks the Authorization header as WeChat Pay does,
// returning what is wrong ("" when nothing is).
func (f *FakeChannel) checkAuthorization(r *http.Request, now time.Time) string {
	auth := r.Header.Get("Authorization")
	scheme, params, ok := strings.Cut(auth, " ")
	if !ok || scheme != signatureType {
		return "Http头Authorization缺失或认证类型不是" + signatureType
	}
	fields := map[string]string{}
	for _, part := range strings.Split(params, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return "Http头Authorization格式错误"
		}
		fields[k] = v[1 : len(v)-1]
	}
	for _, k := range []string{"mchid", "nonce_str", "signature", "timestamp", "serial_no"} {
		if fields[k] == "" {
			return "Http头Authorization缺少" + k
		}
	}
	if fields["mchid"] != f.MchID {
		return "Http头Authorization中的mchid与商户不符"
	}
	if !strings.EqualFold(fields["serial_no"], f.MerchantSerial) {
		return "商户证书序列号有误"
	}
	secs, err := strconv.ParseInt(fields["timestamp"], 10, 64)
	if err != nil {
		return "Http头Authorization中的timestamp格式错误"
	}
	if d := now.Sub(time.Unix(secs, 0)); d >= 5*time.Minute || d <= -5*time.Minute {
		return "Http头Authorization中的timestamp与发起请求的时间不得超过5分钟"
	}
	sig, err := base64.StdEncoding.DecodeString(fields["signature"])
	if err != nil {
		return "签名不是base64编码"
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxAPIAnswer))
	digest := sha256.New()
	digest.Write([]byte(r.Method + "\n" + r.RequestURI + "\n" + fields["timestamp"] + "\n" + fields["nonce_str"] + "\n"))
	digest.Write(body)
	digest.Write([]byte("\n"))
	if rsa.VerifyPKCS1v15(&f.keys.merchant.PublicKey, crypto.SHA256, digest.Sum(nil), sig) != nil {
		return "签名错误"
	}
	return ""
}

// applyForBill answers GET /v3/bill/tradebill.
func (f *FakeChannel) applyForBill(w http.ResponseWriter, r *http.Request, b FakeBehavior, now time.Time) {
	q := r.URL.Query()
	date, billType, tarType := q.Get("bill_date"), q.Get("bill_type"), q.Get("tar_type")
	if billType == "" {
		billType = BillTypeAll
	}
	if d, err := time.Parse(time.DateOnly, date); err != nil || d.Format(time.DateOnly) != date {
		f.answer(w, r, http.StatusBadRequest, apiErrorBody{Code: "PARAM_ERROR", Message: "bill_date格式错误"}, b, now, true)
		return
	}
	if billType != BillTypeAll && billType != BillTypeSuccess && billType != BillTypeRefund {
		f.answer(w, r, http.StatusBadRequest, apiErrorBody{Code: "PARAM_ERROR", Message: "bill_type取值错误"}, b, now, true)
		return
	}
	if tarType != "" && tarType != "GZIP" {
		f.answer(w, r, http.StatusBadRequest, apiErrorBody{Code: "PARAM_ERROR", Message: "tar_type取值错误"}, b, now, true)
		return
	}
	f.mu.Lock()
	var fail *fakeFailure
	if len(f.failures) > 0 {
		fail = &f.failures[0]
		f.failures = f.failures[1:]
	}
	key := fakeBillKey{date, billType}
	bill, ok := f.bills[key]
	f.mu.Unlock()
	switch {
	case fail != nil:
		f.answer(w, r, fail.status, apiErrorBody{Code: fail.code, Message: fail.message}, b, now, true)
		return
	case b.NotReady:
		f.answer(w, r, http.StatusBadRequest, apiErrorBody{Code: "STATEMENT_CREATING", Message: "账单生成中"}, b, now, true)
		return
	case !ok:
		f.answer(w, r, http.StatusBadRequest, apiErrorBody{Code: "NO_STATEMENT_EXIST", Message: "请求的账单文件不存在"}, b, now, true)
		return
	}

	token := base64.RawURLEncoding.EncodeToString(randomBytes(24))
	f.mu.Lock()
	f.tokens[token] = fakeToken{bill: key, gzip: tarType == "GZIP", expires: now.Add(fakeLinkLifetime)}
	f.mu.Unlock()
	base := f.URL
	if b.DownloadBase != "" {
		base = b.DownloadBase
	}
	link := base + "/v3/billdownload/file?token=" + token
	if tarType == "GZIP" {
		link += "&tartype=gzip"
	}
	sum := sha1.Sum(bill)
	if b.WrongHash {
		sum = sha1.Sum(append(bytes.Clone(bill), '\n'))
	}
	f.answer(w, r, http.StatusOK, map[string]string{
		"hash_type":    "SHA1",
		"hash_value":   hex.EncodeToString(sum[:]),
		"download_url": link,
	}, b, now, true)
}

// download answers a download link with the file (unsigned, as WeChat Pay's).
func (f *FakeChannel) download(w http.ResponseWriter, r *http.Request, b FakeBehavior, now time.Time) {
	f.mu.Lock()
	tok, ok := f.tokens[r.URL.Query().Get("token")]
	bill, has := f.bills[tok.bill]
	f.mu.Unlock()
	if !ok || !has || !now.Before(tok.expires) {
		f.answer(w, r, http.StatusBadRequest, apiErrorBody{Code: "INVALID_REQUEST", Message: "下载地址无效或已过期，请重新申请账单"}, b, now, false)
		return
	}
	body := bill
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if tok.gzip && !b.Uncompressed {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(bill)
		zw.Close()
		body = buf.Bytes()
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	if b.CorruptFile && len(body) > 0 {
		body = bytes.Clone(body)
		body[len(body)*2/3] ^= 0x20
	}
	if !b.Chunked {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.Header().Set("Request-ID", randomUUID())
	f.record(r, http.StatusOK)
	w.WriteHeader(http.StatusOK)
	if !b.Chunked {
		w.Write(body)
		return
	}
	rc := http.NewResponseController(w)
	for len(body) > 0 {
		n := min(len(body), 1024)
		if _, err := w.Write(body[:n]); err != nil {
			return
		}
		rc.Flush()
		body = body[n:]
	}
}

// answer writes a JSON answer, signed with the platform key when sign is set
// (and the behaviour does not say otherwise).
func (f *FakeChannel) answer(w http.ResponseWriter, r *http.Request, status int, v any, b FakeBehavior, now time.Time, sign bool) {
	body, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("wechat: fake channel: %v", err))
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Request-ID", randomUUID())
	if sign && !b.Unsigned {
		serial := f.PlatformKeyID
		if b.SignWithCertificate {
			serial = f.PlatformCertSerial
		}
		signed := SignTestNotification(f.keys.platform, serial, body, now.Add(b.ClockSkew))
		if b.BadSignature {
			sig, _ := base64.StdEncoding.DecodeString(signed.Get(HeaderSignature))
			sig[len(sig)/2] ^= 0x55
			signed.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
		}
		for _, k := range []string{HeaderSerial, HeaderTimestamp, HeaderNonce, HeaderSignature, HeaderSignatureType} {
			h.Set(k, signed.Get(k))
		}
	}
	f.record(r, status)
	w.WriteHeader(status)
	w.Write(body)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("wechat: fake channel: %v", err))
	}
	return b
}

func randomDigits(n int) string {
	b := randomBytes(n)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	return string(b)
}

// BillClient returns a BillClient that talks to this fake.
func (f *FakeChannel) BillClient() *BillClient {
	return &BillClient{BaseURL: f.URL, HTTP: f.srv.Client()}
}
