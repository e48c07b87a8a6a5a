package wechat

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"payfuse/channels"
)

// Downloading a trade bill takes two signed requests, as WeChat Pay
// documents them (申请交易账单, 下载账单):
//
//  1. GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL|SUCCESS|REFUND&tar_type=GZIP
//     answers {"hash_type":"SHA1","hash_value":"<hex>","download_url":"…"};
//     the answer is signed by WeChat Pay like a notification (Wechatpay-*
//     headers over "timestamp\nnonce\nbody\n") and is verified here.
//  2. GET download_url answers the file itself: gzip-compressed when
//     tar_type=GZIP was asked. WeChat Pay does not sign it; its integrity is
//     hash_value, the SHA1 of the ORIGINAL bill (after gunzip), which is
//     checked here. The link is valid for minutes only, so it is fetched at
//     once and never kept.
//
// Both requests carry "Authorization: WECHATPAY2-SHA256-RSA2048 mchid=…,
// nonce_str=…,signature=…,timestamp=…,serial_no=…", the signature being
// SHA256withRSA (PKCS #1 v1.5) with the merchant API private key over
// "METHOD\nPATH?QUERY\ntimestamp\nnonce\nbody\n" (the body is empty for GET).
//
// Errors come back as non-2xx answers with {"code":"…","message":"…"}:
// STATEMENT_CREATING (the bill is still being made: try again later),
// NO_STATEMENT_EXIST (no payment or refund that day: the day is empty),
// 401 SIGN_ERROR, 403 NO_AUTH, 429 RATELIMIT_EXCEEDED, 5xx SYSTEM_ERROR.

// DefaultBaseURL is WeChat Pay's API v3 domain (api2.mch.weixin.qq.com is its
// backup domain).
const DefaultBaseURL = "https://api.mch.weixin.qq.com"

// Default caps of a BillClient.
const (
	DefaultMaxDownloadBytes int64 = 1 << 30 // 1 GiB received (the gzip file)
	DefaultMaxBillBytes     int64 = 2 << 30 // 2 GiB of bill once decompressed
)

// The bill types the client asks for; ParseTradeBill reads all three.
const (
	BillTypeAll     = "ALL"
	BillTypeSuccess = "SUCCESS"
	BillTypeRefund  = "REFUND"
)

// maxAPIAnswer caps a JSON answer of the API (a few hundred bytes in practice).
const maxAPIAnswer = 64 << 10

// userAgent names PayFuse to WeChat Pay, which asks API callers for one.
const userAgent = "PayFuse (WeChat Pay APIv3 bill client; Go)"

// Reasons a download fails (DownloadError.Reason), besides ReasonBadSignature,
// ReasonUnknownSerial, ReasonStaleTimestamp and ReasonBadCredentials, which
// mean for WeChat Pay's answers what they mean for its notifications.
const (
	ReasonBillNotReady = "bill_not_ready" // the bill is still being made (STATEMENT_CREATING, or asked for today): retry later
	ReasonNoBill       = "no_bill"        // no bill for that day (NO_STATEMENT_EXIST): the day had no payment or refund
	ReasonUnauthorized = "unauthorized"   // WeChat Pay refused PayFuse's signature (401 SIGN_ERROR)
	ReasonForbidden    = "forbidden"      // the merchant may not download this bill (403 NO_AUTH)
	ReasonBadRequest   = "bad_request"    // WeChat Pay refused the parameters (PARAM_ERROR, INVALID_REQUEST)
	ReasonRateLimited  = "rate_limited"   // too many requests (429): retry later
	ReasonServerError  = "server_error"   // WeChat Pay's own error (5xx): retry later
	ReasonBadResponse  = "bad_response"   // an answer that is not what the API documents
	ReasonLinkExpired  = "link_expired"   // the download link was refused (expired): retry, which asks for a new one
	ReasonHashMismatch = "hash_mismatch"  // the file is damaged: not the announced SHA1, or does not decompress; retry
	ReasonTooLarge     = "too_large"      // the file is over MaxDownloadBytes or the bill over MaxBillBytes
	ReasonTimeout      = "timeout"        // no answer in time: retry
	ReasonCanceled     = "canceled"       // the caller stopped the download
	ReasonTransport    = "transport"      // the network failed: retry
	ReasonWriteFailed  = "write_failed"   // the bill could not be written where the caller asked
	ReasonBadInput     = "bad_input"      // the date or bill type asked for is not valid; nothing was sent
)

// Errors a DownloadError matches with errors.Is, for the two outcomes a
// caller plans for rather than reports.
var (
	ErrBillNotReady = errors.New("wechat: the trade bill is not ready yet")
	ErrNoBill       = errors.New("wechat: there is no trade bill for that day")
)

// DownloadError says why a trade bill could not be downloaded. Message is
// safe to log and show: it never quotes key material, signatures, the
// Authorization header or the download link.
type DownloadError struct {
	Reason  string // one of the Reason constants
	Message channels.Text
	// Status is the HTTP status of WeChat Pay's answer, 0 when there was none.
	Status int
	// Code is WeChat Pay's error code (STATEMENT_CREATING, SIGN_ERROR, …), "" when none.
	Code string
	// RequestID is WeChat Pay's Request-ID header, to quote to its support.
	RequestID string
	// Verified reports that the error answer carried WeChat Pay's signature and
	// it verified. WeChat Pay may leave error answers unsigned; a caller that
	// acts on one for good (an empty day on ReasonNoBill) may want it signed.
	Verified bool
	// Err is the underlying transport, context or local error, if any.
	Err error
}

// Error returns the reason, WeChat Pay's code when there is one, and the
// English message.
func (e *DownloadError) Error() string {
	s := "wechat: trade bill download failed (" + e.Reason
	if e.Code != "" {
		s += ", " + e.Code
	}
	s += "): " + e.Message.EN
	if e.Err != nil {
		s += " (" + e.Err.Error() + ")"
	}
	return s
}

// Unwrap returns the underlying error.
func (e *DownloadError) Unwrap() error { return e.Err }

// Is matches ErrBillNotReady and ErrNoBill by Reason.
func (e *DownloadError) Is(target error) bool {
	switch target {
	case ErrBillNotReady:
		return e.Reason == ReasonBillNotReady
	case ErrNoBill:
		return e.Reason == ReasonNoBill
	}
	return false
}

// Retryable reports whether the same download may succeed later without
// anyone changing anything: the bill was not ready, WeChat Pay was busy or
// failing, the network failed or was slow, the link expired, or the file came
// damaged. Bad credentials, a bad signature, a refused request, an oversized
// bill or a missing bill are not retryable.
func (e *DownloadError) Retryable() bool {
	switch e.Reason {
	case ReasonBillNotReady, ReasonRateLimited, ReasonServerError, ReasonLinkExpired,
		ReasonHashMismatch, ReasonTimeout, ReasonCanceled, ReasonTransport:
		return true
	}
	return false
}

// IsRetryable reports whether err is a DownloadError that is Retryable.
func IsRetryable(err error) bool {
	var de *DownloadError
	return errors.As(err, &de) && de.Retryable()
}

func downloadErr(reason string, msg channels.Text) *DownloadError {
	return &DownloadError{Reason: reason, Message: msg}
}

// BillClient downloads WeChat Pay trade bills through API v3. The zero value
// works against WeChat Pay; tests point BaseURL at a FakeChannel. It holds no
// credentials: each call is given the account's. It is safe for concurrent
// use.
type BillClient struct {
	// BaseURL is the API's scheme and host; "" means DefaultBaseURL.
	BaseURL string
	// HTTP sends the requests; nil means a client with connection, handshake
	// and response-header timeouts and a 30-minute overall limit. Give the
	// call a context deadline for a tighter one.
	HTTP *http.Client
	// Now gives the time for request timestamps and for checking the answers';
	// nil means time.Now.
	Now func() time.Time
	// MaxDownloadBytes caps the bytes received for the file (compressed);
	// 0 means DefaultMaxDownloadBytes.
	MaxDownloadBytes int64
	// MaxBillBytes caps the bill once decompressed; 0 means DefaultMaxBillBytes.
	MaxBillBytes int64
}

// BillInfo is what a download learnt.
type BillInfo struct {
	Date       string // bill_date asked for, YYYY-MM-DD (a Beijing date)
	Type       string // ALL, SUCCESS or REFUND
	HashType   string // as announced: SHA1
	HashValue  string // the announced digest of the bill, lower-case hex; the bill written matched it
	Bytes      int64  // bytes of bill written (decompressed)
	Received   int64  // bytes received for the file (compressed when Compressed)
	Compressed bool   // the file came gzip-compressed
	RequestID  string // WeChat Pay's Request-ID of the answer to 申请交易账单
}

// defaultBillHTTP bounds each step of a request; the body of a large bill may
// take long, so the overall limit is generous.
var defaultBillHTTP = &http.Client{
	Timeout: 30 * time.Minute,
	Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		ForceAttemptHTTP2:     true,
	},
}

func (c *BillClient) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *BillClient) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultBillHTTP
}

func orDefault(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}

// DownloadTradeBill fetches the trade bill of one Beijing date ("2006-01-02")
// of type ALL, SUCCESS or REFUND (any case) for the account whose credentials
// are creds (values by field name, as stored), and streams the bill, gunzipped,
// to w: CSV exactly as WeChat Pay made it, ready for ParseTradeBill. Memory
// stays bounded whatever the bill's size.
//
// It refuses, before sending anything, a date that is not a real date, a day
// after today (Beijing time), an unknown bill type, or credentials lacking the
// merchant id, certificate serial, private key or a WeChat Pay key to verify
// answers with; today's bill is reported not ready (WeChat Pay makes a day's
// bill the next morning). The answer to 申请交易账单 must carry a valid
// WeChat Pay signature from less than 5 minutes away; the file must hash to
// the announced SHA1 and stay under the caps; the download link must be on
// BaseURL's host or WeChat Pay's API domains.
//
// Errors are *DownloadError (see Retryable, ErrBillNotReady, ErrNoBill). On
// error, whatever was written to w is not a trustworthy bill and must be
// discarded: the hash can only be checked at the end.
func (c *BillClient) DownloadTradeBill(ctx context.Context, creds map[string][]byte, date, billType string, w io.Writer) (BillInfo, error) {
	info := BillInfo{Date: strings.TrimSpace(date), Type: strings.ToUpper(strings.TrimSpace(billType))}
	if derr := c.checkRequest(info.Date, info.Type); derr != nil {
		return info, derr
	}
	bc, derr := readBillCreds(creds)
	if derr != nil {
		return info, derr
	}
	base, derr := c.baseURL()
	if derr != nil {
		return info, derr
	}

	apply := *base
	apply.Path = strings.TrimRight(base.Path, "/") + "/v3/bill/tradebill"
	apply.RawQuery = url.Values{
		"bill_date": {info.Date},
		"bill_type": {info.Type},
		"tar_type":  {"GZIP"},
	}.Encode()
	ans, derr := c.applyForBill(ctx, bc, creds, apply.String())
	if ans != nil {
		info.RequestID = ans.requestID
	}
	if derr != nil {
		return info, derr
	}
	info.HashType, info.HashValue = strings.ToUpper(ans.HashType), strings.ToLower(ans.HashValue)

	link, derr := checkDownloadURL(base, ans.DownloadURL)
	if derr != nil {
		derr.RequestID = info.RequestID
		return info, derr
	}
	derr = c.fetchBill(ctx, bc, creds, link, &info, w)
	if derr != nil {
		return info, derr
	}
	return info, nil
}

// checkRequest validates the date and the bill type.
func (c *BillClient) checkRequest(date, billType string) *DownloadError {
	switch billType {
	case BillTypeAll, BillTypeSuccess, BillTypeRefund:
	default:
		return downloadErr(ReasonBadInput, channels.Textf(
			"The bill type %q is not ALL, SUCCESS or REFUND.",
			"账单类型 %q 不是 ALL、SUCCESS 或 REFUND。", truncate(billType, 40)))
	}
	d, err := time.ParseInLocation(time.DateOnly, date, beijing)
	if err != nil || d.Format(time.DateOnly) != date {
		return downloadErr(ReasonBadInput, channels.Textf(
			"The bill date %q is not a date written YYYY-MM-DD (for example 2026-03-01).",
			"账单日期 %q 不是 YYYY-MM-DD 格式的日期（例如 2026-03-01）。", truncate(date, 40)))
	}
	now := c.now().In(beijing)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, beijing)
	switch {
	case d.After(today):
		return downloadErr(ReasonBadInput, channels.Textf(
			"The bill date %s is in the future (today is %s in Beijing); WeChat Pay makes a day's bill the morning after.",
			"账单日期 %s 晚于今天（北京时间 %s）；微信支付于次日上午生成前一日的账单。", date, today.Format(time.DateOnly)))
	case d.Equal(today):
		return downloadErr(ReasonBillNotReady, channels.Textf(
			"The trade bill of %s is made tomorrow: WeChat Pay makes a day's bill the next morning (download it after 10:00 Beijing time).",
			"%s 的交易账单将于明天生成：微信支付于次日上午生成前一日的账单（请于北京时间 10 点后下载）。", date))
	}
	return nil
}

// billCreds is what signing the requests needs.
type billCreds struct {
	mchID, serial string
	key           *rsa.PrivateKey
}

// readBillCreds reads the merchant's signing credentials and checks that a
// WeChat Pay key to verify answers with is there. Messages name fields by
// their labels, never quoting values.
func readBillCreds(creds map[string][]byte) (billCreds, *DownloadError) {
	problem := func(field, en, zh string) *DownloadError {
		f, _ := Spec.Field(field)
		return downloadErr(ReasonBadCredentials, channels.Textf(en, zh, f.Label))
	}
	var bc billCreds
	bc.mchID = strings.TrimSpace(string(creds["mch_id"]))
	if !mchIDRE.MatchString(bc.mchID) {
		return bc, problem("mch_id",
			"The account's %s is missing or is not 8 to 12 digits; correct the channel account's credentials.",
			"该账户的%s缺失或不是 8–12 位数字，请修正渠道账户的凭据。")
	}
	bc.serial = strings.TrimSpace(string(creds["merchant_serial_no"]))
	if !serialRE.MatchString(bc.serial) {
		return bc, problem("merchant_serial_no",
			"The account's %s is missing or is not hexadecimal; correct the channel account's credentials.",
			"该账户的%s缺失或不是十六进制字符，请修正渠道账户的凭据。")
	}
	key, err := channels.ParsePrivateKey(creds["merchant_private_key"])
	if err != nil {
		return bc, problem("merchant_private_key",
			"The account's %s is missing or cannot be read; correct the channel account's credentials.",
			"该账户的%s缺失或无法读取，请修正渠道账户的凭据。")
	}
	bc.key = key
	if len(bytes.TrimSpace(creds["platform_public_key"])) == 0 && len(bytes.TrimSpace(creds["platform_certificate"])) == 0 {
		f1, _ := Spec.Field("platform_public_key")
		f2, _ := Spec.Field("platform_certificate")
		return bc, downloadErr(ReasonBadCredentials, channels.Textf(
			"The account has neither a %s nor a %s, so WeChat Pay's answers cannot be verified; add one to the channel account's credentials.",
			"该账户既没有%s也没有%s，无法验证微信支付的应答，请在渠道账户的凭据中补充。", f1.Label, f2.Label))
	}
	return bc, nil
}

// baseURL parses BaseURL.
func (c *BillClient) baseURL() (*url.URL, *DownloadError) {
	raw := c.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return nil, downloadErr(ReasonBadInput, channels.Text{
			EN: "The WeChat Pay API address configured is not an http(s) URL without credentials or query.",
			ZH: "所配置的微信支付 API 地址不是不含账号信息和查询参数的 http(s) 地址。",
		})
	}
	return u, nil
}

// checkDownloadURL accepts a download link on BaseURL's scheme and host, or
// on WeChat Pay's API domains over https, so that a signed request never goes
// anywhere else.
func checkDownloadURL(base *url.URL, raw string) (*url.URL, *DownloadError) {
	u, err := url.Parse(strings.TrimSpace(raw))
	bad := err != nil || !u.IsAbs() || u.User != nil || u.Host == ""
	if !bad {
		sameAsBase := u.Scheme == base.Scheme && strings.EqualFold(u.Host, base.Host)
		host := strings.ToLower(u.Hostname())
		wechat := u.Scheme == "https" && (u.Port() == "" || u.Port() == "443") &&
			(host == "api.mch.weixin.qq.com" || host == "api2.mch.weixin.qq.com")
		bad = !sameAsBase && !wechat
	}
	if bad {
		return nil, downloadErr(ReasonBadResponse, channels.Text{
			EN: "WeChat Pay's answer gives a download link that is not on WeChat Pay's API domain; it was not followed.",
			ZH: "微信支付应答中的下载地址不在微信支付的 API 域名下，未予访问。",
		})
	}
	return u, nil
}

// billAnswer is the answer to 申请交易账单.
type billAnswer struct {
	HashType    string `json:"hash_type"`
	HashValue   string `json:"hash_value"`
	DownloadURL string `json:"download_url"`
	requestID   string
}

// apiErrorBody is an API v3 error answer.
type apiErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// applyForBill asks for the bill's download link and verifies the answer.
func (c *BillClient) applyForBill(ctx context.Context, bc billCreds, creds map[string][]byte, target string) (*billAnswer, *DownloadError) {
	resp, derr := c.send(ctx, bc, target, "application/json")
	if derr != nil {
		return nil, derr
	}
	defer resp.Body.Close()
	ans := &billAnswer{requestID: resp.Header.Get("Request-ID")}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIAnswer+1))
	if err != nil {
		derr := transportErr(ctx, err)
		derr.Status, derr.RequestID = resp.StatusCode, ans.requestID
		return ans, derr
	}
	if len(body) > maxAPIAnswer {
		return ans, &DownloadError{Reason: ReasonBadResponse, Status: resp.StatusCode, RequestID: ans.requestID,
			Message: channels.Textf(
				"WeChat Pay's answer is larger than %d bytes; an answer to a bill request is a few hundred.",
				"微信支付的应答超过 %d 字节，而申请账单的应答通常只有几百字节。", maxAPIAnswer)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return ans, c.answerError(resp, body, creds, false)
	}
	if derr := c.verifyAnswer(resp.Header, body, creds); derr != nil {
		derr.Status, derr.RequestID = resp.StatusCode, ans.requestID
		return ans, derr
	}
	badAnswer := func(en, zh string) *DownloadError {
		return &DownloadError{Reason: ReasonBadResponse, Status: resp.StatusCode, RequestID: ans.requestID,
			Message: channels.Text{EN: "WeChat Pay's answer to the bill request " + en, ZH: "微信支付对申请账单的应答" + zh}}
	}
	if err := json.Unmarshal(body, ans); err != nil {
		return ans, badAnswer("is not the documented JSON.", "不是文档规定的 JSON 格式。")
	}
	if !strings.EqualFold(strings.TrimSpace(ans.HashType), "SHA1") {
		return ans, badAnswer("announces a hash type other than SHA1, the only one documented.",
			"给出的哈希类型不是文档规定的 SHA1。")
	}
	ans.HashType, ans.HashValue = strings.TrimSpace(ans.HashType), strings.TrimSpace(ans.HashValue)
	if b, err := hex.DecodeString(ans.HashValue); err != nil || len(b) != sha1.Size {
		return ans, badAnswer("gives a hash_value that is not a SHA1 in hexadecimal.", "中的 hash_value 不是十六进制的 SHA1 值。")
	}
	if strings.TrimSpace(ans.DownloadURL) == "" {
		return ans, badAnswer("lacks download_url.", "缺少 download_url。")
	}
	return ans, nil
}

// send makes one signed GET.
func (c *BillClient) send(ctx context.Context, bc billCreds, target, accept string) (*http.Response, *DownloadError) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, downloadErr(ReasonBadResponse, channels.Text{
			EN: "The request to WeChat Pay could not be built from the address given.",
			ZH: "无法根据给定地址构造发往微信支付的请求。",
		})
	}
	auth, err := authorization(bc, http.MethodGet, req.URL.RequestURI(), nil, c.now())
	if err != nil {
		return nil, &DownloadError{Reason: ReasonBadCredentials, Err: err, Message: channels.Text{
			EN: "The request could not be signed with the account's merchant API private key.",
			ZH: "无法用该账户的商户API私钥对请求签名。",
		}}
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, transportErr(ctx, err)
	}
	return resp, nil
}

// authorization builds the Authorization header value of a request.
func authorization(bc billCreds, method, uri string, body []byte, now time.Time) (string, error) {
	ts := strconv.FormatInt(now.Unix(), 10)
	nonce := randomText(32)
	digest := sha256.New()
	digest.Write([]byte(method + "\n" + uri + "\n" + ts + "\n" + nonce + "\n"))
	digest.Write(body)
	digest.Write([]byte("\n"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, bc.key, crypto.SHA256, digest.Sum(nil))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`%s mchid="%s",nonce_str="%s",signature="%s",timestamp="%s",serial_no="%s"`,
		signatureType, bc.mchID, nonce, base64.StdEncoding.EncodeToString(sig), ts, bc.serial), nil
}

// verifyAnswer checks WeChat Pay's signature on an API answer, with the
// keys and rules of notifications.
func (c *BillClient) verifyAnswer(h http.Header, body []byte, creds map[string][]byte) *DownloadError {
	serial, sigText := strings.TrimSpace(h.Get(HeaderSerial)), strings.TrimSpace(h.Get(HeaderSignature))
	tsText, nonce := strings.TrimSpace(h.Get(HeaderTimestamp)), strings.TrimSpace(h.Get(HeaderNonce))
	if serial == "" || sigText == "" || tsText == "" || nonce == "" {
		return downloadErr(ReasonBadSignature, channels.Text{
			EN: "WeChat Pay's answer is not signed (it lacks the Wechatpay-* signature headers), so it is not trusted. A proxy between PayFuse and WeChat Pay may be removing them.",
			ZH: "微信支付的应答没有签名（缺少 Wechatpay-* 签名头），不予信任。PayFuse 与微信支付之间的代理可能删除了这些头。",
		})
	}
	if st := strings.TrimSpace(h.Get(HeaderSignatureType)); st != "" && !strings.EqualFold(st, signatureType) {
		return downloadErr(ReasonBadSignature, channels.Textf(
			"WeChat Pay's answer is signed with %q, not %s, the only scheme PayFuse verifies.",
			"微信支付应答的签名类型为 %q，不是 PayFuse 支持验证的 %s。", truncate(st, 40), signatureType))
	}
	key, nerr := platformKey(creds, serial, c.now())
	if nerr != nil {
		reason := nerr.Reason
		if reason != ReasonUnknownSerial && reason != ReasonBadCredentials {
			reason = ReasonBadSignature
		}
		return downloadErr(reason, channels.Text{
			EN: "WeChat Pay's answer cannot be verified: " + nerr.Message.EN,
			ZH: "无法验证微信支付的应答：" + nerr.Message.ZH,
		})
	}
	sig, err := base64.StdEncoding.DecodeString(sigText)
	digest := sha256.New()
	digest.Write([]byte(tsText + "\n" + nonce + "\n"))
	digest.Write(body)
	digest.Write([]byte("\n"))
	if err != nil || rsa.VerifyPKCS1v15(key, crypto.SHA256, digest.Sum(nil), sig) != nil {
		return downloadErr(ReasonBadSignature, channels.Text{
			EN: "WeChat Pay's answer does not verify with the key Wechatpay-Serial names: it was not signed by WeChat Pay, or was changed on the way. It is not trusted.",
			ZH: "微信支付的应答无法用 Wechatpay-Serial 指明的密钥验证通过：应答并非微信支付签发，或在传输中被篡改，不予信任。",
		})
	}
	secs, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || secs < 0 || secs > 1<<40 {
		return downloadErr(ReasonStaleTimestamp, channels.Text{
			EN: "WeChat Pay's answer has a Wechatpay-Timestamp that is not a Unix time in seconds.",
			ZH: "微信支付应答的 Wechatpay-Timestamp 不是以秒为单位的 Unix 时间。",
		})
	}
	ts, now := time.Unix(secs, 0).UTC(), c.now()
	if d := now.Sub(ts); d >= NotificationWindow || d <= -NotificationWindow {
		return downloadErr(ReasonStaleTimestamp, channels.Textf(
			"WeChat Pay's answer is timestamped %s, %s away from this server's clock (%s); more than %s is refused. Check this server's clock.",
			"微信支付应答的时间戳为 %[1]s，与本服务器时钟（%[3]s）相差 %[2]s；相差超过 %[4]s 的应答将被拒绝。请检查本服务器的时钟。",
			ts.Format(time.RFC3339), absDuration(now.Sub(ts)), now.UTC().Format(time.RFC3339), NotificationWindow))
	}
	return nil
}

// answerError turns a non-2xx answer into a DownloadError. A signed error
// answer must verify; an unsigned one is taken for what it says (WeChat Pay
// may not sign errors, and 401 answers cannot be signed for a caller it did
// not recognise), with Verified false.
func (c *BillClient) answerError(resp *http.Response, body []byte, creds map[string][]byte, download bool) *DownloadError {
	var eb apiErrorBody
	_ = json.Unmarshal(body, &eb)
	code := strings.ToUpper(strings.TrimSpace(eb.Code))
	said := truncate(strings.TrimSpace(code+" "+strings.TrimSpace(eb.Message)), 160)
	if said == "" {
		said = "HTTP " + strconv.Itoa(resp.StatusCode)
	}
	derr := &DownloadError{Status: resp.StatusCode, Code: code, RequestID: resp.Header.Get("Request-ID")}
	if resp.StatusCode != http.StatusUnauthorized && resp.Header.Get(HeaderSignature) != "" {
		if verr := c.verifyAnswer(resp.Header, body, creds); verr != nil {
			verr.Status, verr.Code, verr.RequestID = derr.Status, derr.Code, derr.RequestID
			return verr
		}
		derr.Verified = true
	}
	status := resp.StatusCode
	switch {
	case code == "STATEMENT_CREATING":
		derr.Reason = ReasonBillNotReady
		derr.Message = channels.Textf(
			"WeChat Pay is still making this bill (it said: %s). Bills are made the next morning; try again after 10:00 Beijing time, or in half an hour.",
			"微信支付仍在生成该账单（返回：%s）。账单于次日上午生成，请在北京时间 10 点后或半小时后重试。", said)
	case code == "NO_STATEMENT_EXIST":
		derr.Reason = ReasonNoBill
		derr.Message = channels.Textf(
			"WeChat Pay has no trade bill for this day (it said: %s): the merchant had no payment or refund that day.",
			"微信支付没有该日的交易账单（返回：%s）：该商户当日没有交易或退款。", said)
	case status == http.StatusUnauthorized || code == "SIGN_ERROR":
		derr.Reason = ReasonUnauthorized
		derr.Message = channels.Textf(
			"WeChat Pay refused PayFuse's signature (it said: %s). Check that the merchant ID, the merchant API certificate serial number and the merchant API private key belong together, and that this server's clock is right.",
			"微信支付拒绝了 PayFuse 的签名（返回：%s）。请检查商户号、商户API证书序列号与商户API私钥是否相互匹配，以及本服务器时钟是否准确。", said)
	case status == http.StatusForbidden || code == "NO_AUTH":
		derr.Reason = ReasonForbidden
		derr.Message = channels.Textf(
			"WeChat Pay says this merchant may not download this bill (it said: %s). Check the merchant ID and its permissions in the Merchant Platform.",
			"微信支付表示该商户无权下载此账单（返回：%s）。请在商户平台检查商户号及其权限。", said)
	case status == http.StatusTooManyRequests || code == "RATELIMIT_EXCEEDED" || code == "RATE_LIMITED" || code == "FREQUENCY_LIMITED":
		derr.Reason = ReasonRateLimited
		derr.Message = channels.Textf(
			"WeChat Pay is limiting the rate of requests (it said: %s); try again in a few minutes.",
			"微信支付限制了请求频率（返回：%s），请几分钟后重试。", said)
	case status >= 500 || code == "SYSTEM_ERROR" || code == "SERVICE_UNAVAILABLE":
		derr.Reason = ReasonServerError
		derr.Message = channels.Textf(
			"WeChat Pay had a temporary error (it said: %s); try again later.",
			"微信支付暂时出错（返回：%s），请稍后重试。", said)
	case download && (status == http.StatusBadRequest || status == http.StatusNotFound):
		derr.Reason = ReasonLinkExpired
		derr.Message = channels.Textf(
			"WeChat Pay refused the download link (it said: %s); links are valid for a few minutes only. Try again: a new link is asked for each time.",
			"微信支付拒绝了下载地址（返回：%s）；下载地址仅在几分钟内有效。请重试，每次都会重新申请下载地址。", said)
	case status >= 400:
		derr.Reason = ReasonBadRequest
		derr.Message = channels.Textf(
			"WeChat Pay refused the request (it said: %s). Trade bills can be downloaded for the last three months only.",
			"微信支付拒绝了该请求（返回：%s）。交易账单仅可下载近三个月内的。", said)
	default:
		derr.Reason = ReasonBadResponse
		derr.Message = channels.Textf(
			"WeChat Pay answered with HTTP %d, which the API does not document.",
			"微信支付返回了接口文档未规定的 HTTP %d。", status)
	}
	return derr
}

// fetchBill downloads the file, gunzips it when it is gzip, checks caps and
// hash, and writes the bill to w.
func (c *BillClient) fetchBill(ctx context.Context, bc billCreds, creds map[string][]byte, link *url.URL, info *BillInfo, w io.Writer) *DownloadError {
	maxDown, maxBill := orDefault(c.MaxDownloadBytes, DefaultMaxDownloadBytes), orDefault(c.MaxBillBytes, DefaultMaxBillBytes)
	resp, derr := c.send(ctx, bc, link.String(), "*/*")
	if derr != nil {
		derr.RequestID = info.RequestID
		return derr
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAPIAnswer))
		return c.answerError(resp, body, creds, true)
	}
	tooLarge := func(what channels.Text, limit int64) *DownloadError {
		return &DownloadError{Reason: ReasonTooLarge, Status: resp.StatusCode, RequestID: info.RequestID,
			Message: channels.Textf(
				"The %s is larger than the limit of %s; it was not taken. Raise the limit if such bills are expected.",
				"%s超过了 %s 的上限，未予接收。如确有如此大的账单，请调高上限。", what, formatBytes(limit))}
	}
	fileText := channels.Text{EN: "downloaded file", ZH: "下载的账单文件"}
	billText := channels.Text{EN: "bill, once decompressed,", ZH: "解压后的账单"}
	if resp.ContentLength > maxDown {
		return tooLarge(fileText, maxDown)
	}

	counted := &capReader{r: resp.Body, max: maxDown}
	br := bufio.NewReaderSize(counted, 32<<10)
	var src io.Reader = br
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return c.streamErr(ctx, err, info, tooLarge(fileText, maxDown))
		}
		defer zr.Close()
		info.Compressed = true
		src = zr
	}
	h := sha1.New()
	n, err := copyBill(w, h, src, maxBill)
	info.Bytes, info.Received = n, counted.n
	if err != nil {
		var we writeError
		switch {
		case errors.As(err, &we):
			return &DownloadError{Reason: ReasonWriteFailed, RequestID: info.RequestID, Err: we.err, Message: channels.Text{
				EN: "The bill could not be stored while downloading (is the disk full?); nothing was taken.",
				ZH: "下载时无法保存账单（磁盘是否已满？），未导入任何内容。",
			}}
		case errors.Is(err, errBillCap):
			return tooLarge(billText, maxBill)
		}
		return c.streamErr(ctx, err, info, tooLarge(fileText, maxDown))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != info.HashValue {
		return &DownloadError{Reason: ReasonHashMismatch, RequestID: info.RequestID, Message: channels.Text{
			EN: "The downloaded bill does not match the SHA1 WeChat Pay announced for it: it was damaged or changed on the way, and was not taken. Try again.",
			ZH: "下载的账单与微信支付公布的 SHA1 摘要不符：账单在传输中损坏或被篡改，未予接收。请重试。",
		}}
	}
	return nil
}

// streamErr classifies an error met while reading the file.
func (c *BillClient) streamErr(ctx context.Context, err error, info *BillInfo, tooLarge *DownloadError) *DownloadError {
	switch {
	case errors.Is(err, errDownloadCap):
		return tooLarge
	case ctx.Err() != nil, isTimeout(err):
		derr := transportErr(ctx, err)
		derr.RequestID = info.RequestID
		return derr
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), isCorrupt(err):
		return &DownloadError{Reason: ReasonHashMismatch, RequestID: info.RequestID, Err: err, Message: channels.Text{
			EN: "The downloaded bill is damaged (it does not decompress) and was not taken. Try again.",
			ZH: "下载的账单已损坏（无法解压），未予接收。请重试。",
		}}
	}
	derr := transportErr(ctx, err)
	derr.RequestID = info.RequestID
	return derr
}

func isCorrupt(err error) bool {
	var ce flate.CorruptInputError
	return errors.As(err, &ce)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// transportErr classifies a failure to talk to WeChat Pay. The URL is
// dropped from the error: a download link is a credential while it lives.
func transportErr(ctx context.Context, err error) *DownloadError {
	timeout := isTimeout(err)
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case timeout || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &DownloadError{Reason: ReasonTimeout, Err: err, Message: channels.Text{
			EN: "WeChat Pay did not answer in time; try again later.",
			ZH: "微信支付未在时限内应答，请稍后重试。",
		}}
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		return &DownloadError{Reason: ReasonCanceled, Err: err, Message: channels.Text{
			EN: "The download was stopped before it finished.",
			ZH: "下载在完成前被中止。",
		}}
	}
	return &DownloadError{Reason: ReasonTransport, Err: err, Message: channels.Text{
		EN: "PayFuse could not talk to WeChat Pay (the network failed or the connection broke); try again later.",
		ZH: "PayFuse 无法与微信支付通信（网络故障或连接中断），请稍后重试。",
	}}
}

var (
	errDownloadCap = errors.New("wechat: download larger than the cap")
	errBillCap     = errors.New("wechat: bill larger than the cap")
)

// capReader counts what it reads and fails once more than max bytes came.
type capReader struct {
	r      io.Reader
	n, max int64
}

func (r *capReader) Read(p []byte) (int, error) {
	if r.n > r.max {
		return 0, errDownloadCap
	}
	if room := r.max + 1 - r.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := r.r.Read(p)
	r.n += int64(n)
	if r.n > r.max {
		return n, errDownloadCap
	}
	return n, err
}

// writeError marks an error of the caller's writer.
type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }

// copyBill copies src to w and h, failing with errBillCap once more than
// max bytes came.
func copyBill(w io.Writer, h io.Writer, src io.Reader, max int64) (int64, error) {
	buf := make([]byte, 32<<10)
	var total int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			if total+int64(nr) > max {
				return total, errBillCap
			}
			h.Write(buf[:nr])
			nw, werr := w.Write(buf[:nr])
			total += int64(nw)
			if werr == nil && nw != nr {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return total, writeError{werr}
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// formatBytes writes a size for people: "2 GiB", "512 MiB", "100 bytes".
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + " GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
