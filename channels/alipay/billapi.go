package alipay

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"payfuse/channels"
)

// The trade bill is fetched in two steps. First a signed call to the open
// platform gateway, alipay.data.dataservice.bill.downloadurl.query with
// biz_content {"bill_type":"trade","bill_date":"YYYY-MM-DD"}, answers a
// bill_download_url; then a plain GET of that URL (it carries its own
// short-lived token: Alipay documents it as valid for 30 seconds) gives the
// zip ParseTradeBill reads.
//
// The gateway call uses the common request parameters app_id, method,
// format=JSON, charset=utf-8, sign_type=RSA2, timestamp (Beijing time,
// "2006-01-02 15:04:05"), version=1.0 and biz_content, plus, in certificate
// mode, app_cert_sn and alipay_root_cert_sn. sign is the base64
// SHA256withRSA signature, made with the application private key, of every
// other non-empty parameter (sign_type included), sorted by name, as
// name=value joined by "&". The common parameters travel in the URL's query
// (where the gateway reads charset) and biz_content in the form body, as
// Alipay's own SDKs send them.
//
// The gateway's answer is JSON: the method's response object under
// alipay_data_dataservice_bill_downloadurl_query_response (or, for a call the
// gateway refuses before the method runs, error_response), a sign, and in
// certificate mode alipay_cert_sn. Alipay signs the response object's text
// exactly as it appears in the body, so that text is cut out of the body as
// it is, never re-encoded, and verified with the Alipay public key (or the
// key of the Alipay certificate alipay_cert_sn names).

const (
	// DefaultGateway is Alipay Open Platform's production gateway.
	DefaultGateway = "https://openapi.alipay.com/gateway.do"
	// BillDownloadMethod is the gateway method that answers a bill's download URL.
	BillDownloadMethod = "alipay.data.dataservice.bill.downloadurl.query"
	// DefaultMaxBillBytes caps the zip a download may write when
	// BillClient.MaxBytes is zero. A busy merchant's daily trade bill is a few
	// MiB compressed; ParseTradeBill refuses more than 200 MiB inflated anyway.
	DefaultMaxBillBytes = 64 << 20
	// DefaultBillReadyAfter is how long after the end of the bill's day
	// (midnight, Beijing time) a "bill does not exist" answer is believed:
	// until then it means "not generated yet". Alipay says a day's bill is
	// usually ready before 09:00 the next day and may be late in special
	// cases, and suggests downloading after 10:00; noon leaves a margin.
	DefaultBillReadyAfter = 12 * time.Hour
	// DefaultBillTimeout bounds a whole call (gateway and download) when the
	// client has no HTTP client of its own.
	DefaultBillTimeout = 2 * time.Minute
)

const (
	billResponseKey  = "alipay_data_dataservice_bill_downloadurl_query_response"
	errorResponseKey = "error_response"
	maxGatewayReply  = 64 << 10 // the answer is a few hundred bytes
	timestampLayout  = "2006-01-02 15:04:05"
	dateLayout       = "2006-01-02"
)

// firstBillDay is the earliest day Alipay serves daily bills for.
var firstBillDay = time.Date(2016, 1, 1, 0, 0, 0, 0, beijing)

// The reasons a download fails (DownloadError.Reason).
const (
	// DownloadNoBill: Alipay has no bill for the day, asked after the bill
	// should have been ready. The account had no trades that day: an empty
	// day, not a failure to retry.
	DownloadNoBill = "no_bill"
	// DownloadNotReady: the day's bill is not generated yet (the day is today,
	// or Alipay said "no bill" before the ready time). Retry later.
	DownloadNotReady = "not_ready"
	// DownloadBadInput: the date or the client's configuration is unusable.
	DownloadBadInput = "bad_input"
	// DownloadBadCredentials: the account's credentials cannot sign the call
	// or verify the answer.
	DownloadBadCredentials = "bad_credentials"
	// DownloadSignatureRejected: Alipay refused the call's signature or
	// certificate numbers: the application private key (or certificates) do
	// not match what was uploaded to Alipay Open Platform.
	DownloadSignatureRejected = "signature_rejected"
	// DownloadAppRejected: Alipay does not know the APPID (or the application
	// is not online).
	DownloadAppRejected = "app_rejected"
	// DownloadNoPermission: the application may not download bills: the
	// product is not signed or the feature package not added.
	DownloadNoPermission = "no_permission"
	// DownloadInvalidArguments: Alipay found the call's arguments invalid.
	DownloadInvalidArguments = "invalid_arguments"
	// DownloadBusy: Alipay answered that its service is unavailable for now.
	DownloadBusy = "busy"
	// DownloadNetwork: the call or the download broke off or timed out.
	DownloadNetwork = "network"
	// DownloadBadResponse: the gateway's answer is unreadable or does not
	// verify with the account's Alipay public key (or certificate).
	DownloadBadResponse = "bad_response"
	// DownloadTooLarge: the file is larger than the client's cap.
	DownloadTooLarge = "too_large"
	// DownloadBadFile: the download is not a whole zip file (an expired link
	// answers a web page; a cut connection leaves the zip incomplete).
	DownloadBadFile = "bad_file"
	// DownloadRefused: any other refusal by Alipay.
	DownloadRefused = "refused"
)

// DownloadError says why a bill download failed. Message is safe to show and
// to log: it never quotes keys, certificates, the signature or the download
// URL (whose token is a credential for 30 seconds). Code and SubCode are
// Alipay's own codes when Alipay answered. Retryable says whether asking
// again later can succeed without anybody changing anything.
type DownloadError struct {
	Reason    string
	Message   channels.Text
	Retryable bool
	Code      string
	SubCode   string
	Err       error // the cause, when there is one (context.DeadlineExceeded, a network error)
}

func (e *DownloadError) Error() string {
	return "alipay: bill download failed (" + e.Reason + "): " + e.Message.EN
}

func (e *DownloadError) Unwrap() error { return e.Err }

func downloadErr(reason string, retryable bool, en, zh string, args ...any) *DownloadError {
	return &DownloadError{Reason: reason, Retryable: retryable, Message: channels.Textf(en, zh, args...)}
}

// BillInfo describes a downloaded bill.
type BillInfo struct {
	Date   string // the bill's day, "2006-01-02"
	Size   int64  // bytes written
	SHA256 string // hex digest of the zip as downloaded, for the audit trail and de-duplication
}

// BillClient downloads Alipay trade bills. The zero value is ready to use
// against Alipay's production gateway. It makes one attempt per call and
// does not retry: the caller (the flow engine) retries what is Retryable,
// with its own schedule.
type BillClient struct {
	Gateway string       // "" means DefaultGateway; tests point it at a FakeGateway
	HTTP    *http.Client // nil means a client with DefaultBillTimeout
	Now     func() time.Time
	// MaxBytes caps the zip written; 0 means DefaultMaxBillBytes.
	MaxBytes int64
	// ReadyAfter: see DefaultBillReadyAfter, used when it is 0.
	ReadyAfter time.Duration
}

var defaultBillHTTP = &http.Client{Timeout: DefaultBillTimeout}

func (c *BillClient) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *BillClient) client() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultBillHTTP
}

// DownloadTradeBill fetches the trade bill (bill_type trade) of one day,
// date as "2006-01-02" (a day in Beijing time), and writes the zip, as
// downloaded, to w; the caller gives a temporary file and reads it with
// ParseTradeBill. Errors are *DownloadError, except a failure to write to w,
// which is returned wrapped as it is. On error, what was written to w is not
// a bill and must be discarded.
//
// In detail:
//
//   - The date must be a real day from 2016-01-01 (the first day Alipay
//     serves) up to today in Beijing time. Today's bill does not exist yet:
//     that is DownloadNotReady without asking Alipay; a later day is
//     DownloadBadInput.
//   - The credentials must pass the account's own validation; the call is
//     signed with app_private_key, and in certificate mode it carries
//     app_cert_sn (the number of the certificate in app_cert that holds the
//     application key) and alipay_root_cert_sn (the numbers of the
//     RSA-signed certificates in alipay_root_cert joined by "_"; the SM2 one
//     is left out, as Alipay's rule says).
//   - A signed answer must verify, whatever it says. A success must be
//     signed. A "bill does not exist" must be signed too, because it lets the
//     caller record an empty day. Other refusals are taken unsigned (the
//     gateway does not sign a refusal of an APPID it does not know): they
//     change nothing and only say what went wrong.
//   - "Bill does not exist" (sub_code isp.bill_not_exist) means
//     DownloadNotReady before the ready time (ReadyAfter past the end of the
//     day) and DownloadNoBill after it. An "invalid arguments" answer before
//     the ready time is taken as not ready too: Alipay refuses the date of a
//     bill it has not made yet that way.
//   - The download must start as a zip and end with the zip's end record
//     (so a connection cut cleanly midway is caught here), and may not exceed
//     MaxBytes.
func (c *BillClient) DownloadTradeBill(ctx context.Context, creds map[string][]byte, date string, w io.Writer) (BillInfo, error) {
	if w == nil {
		return BillInfo{}, downloadErr(DownloadBadInput, false, "No file to write the bill to.", "没有用于写入账单的文件。")
	}
	day, err := c.checkDate(date)
	if err != nil {
		return BillInfo{}, err
	}
	gateway, err := c.gatewayURL()
	if err != nil {
		return BillInfo{}, err
	}
	sc, err := readSigning(creds)
	if err != nil {
		return BillInfo{}, err
	}
	params, err := sc.requestParams(date, c.now())
	if err != nil {
		return BillInfo{}, err
	}
	ans, err := c.call(ctx, gateway, params, creds)
	if err != nil {
		return BillInfo{}, err
	}
	if err := c.classify(ans, day); err != nil {
		return BillInfo{}, err
	}
	return c.fetch(ctx, ans.URL, date, w)
}

// checkDate reads date as a Beijing day and refuses days Alipay has no bill for.
func (c *BillClient) checkDate(date string) (time.Time, error) {
	day, err := time.ParseInLocation(dateLayout, date, beijing)
	if err != nil || day.Format(dateLayout) != date {
		return time.Time{}, downloadErr(DownloadBadInput, false,
			"The bill date %q is not a day like 2026-03-01.", "账单日期 %q 不是形如 2026-03-01 的日期。", truncate(date, 32))
	}
	now := c.now().In(beijing)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, beijing)
	switch {
	case day.Before(firstBillDay):
		return time.Time{}, downloadErr(DownloadBadInput, false,
			"Alipay has no daily bills before 2016-01-01 (asked for %s).", "支付宝不提供 2016-01-01 之前的日账单（所请求日期为 %s）。", date)
	case day.After(today):
		return time.Time{}, downloadErr(DownloadBadInput, false,
			"The bill date %s is in the future (today is %s in Beijing time).", "账单日期 %s 尚未到来（北京时间今天是 %s）。",
			date, today.Format(dateLayout))
	case day.Equal(today):
		return time.Time{}, downloadErr(DownloadNotReady, true,
			"The bill of %s is not ready: Alipay makes a day's bill the next morning (usually before 09:00 Beijing time).",
			"%s 的账单尚未生成：支付宝在次日上午（通常在北京时间 09:00 前）生成当日账单。", date)
	}
	return day, nil
}

func (c *BillClient) gatewayURL() (string, error) {
	g := c.Gateway
	if g == "" {
		g = DefaultGateway
	}
	u, err := url.Parse(g)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
		return "", downloadErr(DownloadBadInput, false,
			"The Alipay gateway address is not an http(s) URL without a query.", "支付宝网关地址不是不带查询参数的 http(s) 地址。")
	}
	return g, nil
}

// signing is what a call needs from the credentials.
type signing struct {
	appID      string
	key        *rsa.PrivateKey
	certMode   bool
	appCertSN  string
	rootCertSN string
}

// readSigning validates the credentials as the account form does and takes
// what signing needs. Messages name fields, never values.
func readSigning(creds map[string][]byte) (signing, error) {
	v, p := read(creds)
	if probs := v.Problems(); len(probs) > 0 {
		e := downloadErr(DownloadBadCredentials, false,
			"The account's Alipay credentials are not valid, so the bill cannot be requested: %s",
			"该账户的支付宝凭据无效，无法请求账单：%s", probs[0].Message)
		if len(probs) > 1 {
			e.Message.EN += fmt.Sprintf(" (and %d more problems)", len(probs)-1)
			e.Message.ZH += fmt.Sprintf("（另有 %d 个问题）", len(probs)-1)
		}
		return signing{}, e
	}
	sc := signing{appID: strings.TrimSpace(string(creds["app_id"])), key: p.appKey, certMode: p.certMode}
	if !sc.certMode {
		return sc, nil
	}
	appCerts, err := channels.ParseCertificates(creds["app_cert"])
	if err != nil {
		return signing{}, credErr("app_cert")
	}
	var appCert *x509.Certificate
	for _, c := range appCerts {
		if channels.KeyMatches(p.appKey, c.PublicKey) {
			appCert = c
			break
		}
	}
	if appCert == nil {
		return signing{}, credErr("app_cert")
	}
	sc.appCertSN = CertSN(appCert)
	roots, err := channels.ParseCertificates(creds["alipay_root_cert"])
	if err != nil {
		return signing{}, credErr("alipay_root_cert")
	}
	if sc.rootCertSN = RootCertSN(roots); sc.rootCertSN == "" {
		return signing{}, downloadErr(DownloadBadCredentials, false,
			"The %s holds no RSA-signed certificate, so alipay_root_cert_sn cannot be computed.",
			"%s中没有 RSA 签名的证书，无法计算 alipay_root_cert_sn。", fieldLabel("alipay_root_cert"))
	}
	return sc, nil
}

func credErr(field string) *DownloadError {
	return downloadErr(DownloadBadCredentials, false, "The account's %s cannot be used to sign the request.",
		"无法使用该账户的%s为请求签名。", fieldLabel(field))
}

// RootCertSN returns Alipay's number for a root certificate bundle
// (alipay_root_cert_sn): the CertSN of each certificate signed with an RSA
// algorithm (OID 1.2.840.113549.1.1.*), in the bundle's order, joined by
// "_". The SM2 root in Alipay's alipayRootCert.crt does not count (Go does
// not read it; it would be left out anyway).
func RootCertSN(certs []*x509.Certificate) string {
	var sns []string
	for _, c := range certs {
		switch c.SignatureAlgorithm {
		case x509.MD5WithRSA, x509.SHA1WithRSA, x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
			x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS:
			sns = append(sns, CertSN(c))
		}
	}
	return strings.Join(sns, "_")
}

// requestParams builds and signs the call's parameters.
func (sc signing) requestParams(date string, now time.Time) (map[string]string, error) {
	biz, err := json.Marshal(struct {
		BillType string `json:"bill_type"`
		BillDate string `json:"bill_date"`
	}{"trade", date})
	if err != nil {
		return nil, err
	}
	params := map[string]string{
		"app_id":      sc.appID,
		"method":      BillDownloadMethod,
		"format":      "JSON",
		"charset":     "utf-8",
		"sign_type":   "RSA2",
		"timestamp":   now.In(beijing).Format(timestampLayout),
		"version":     "1.0",
		"biz_content": string(biz),
	}
	if sc.certMode {
		params["app_cert_sn"] = sc.appCertSN
		params["alipay_root_cert_sn"] = sc.rootCertSN
	}
	sum := sha256.Sum256([]byte(requestSignContent(params)))
	sig, err := rsa.SignPKCS1v15(rand.Reader, sc.key, crypto.SHA256, sum[:])
	if err != nil {
		return nil, downloadErr(DownloadBadCredentials, false, "The request cannot be signed with the %s.",
			"无法使用%s为请求签名。", fieldLabel("app_private_key"))
	}
	params["sign"] = base64.StdEncoding.EncodeToString(sig)
	return params, nil
}

// requestSignContent is the string a request's sign covers: every parameter
// but sign with a non-empty value, sign_type included, sorted by name, as
// name=value joined by "&". (A notification's string leaves sign_type out:
// see signContent.)
func requestSignContent(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k != "sign" && v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(params[k])
	}
	return b.String()
}

// answer is the gateway's verified answer.
type answer struct {
	node    string // billResponseKey or errorResponseKey
	signed  bool   // a sign was there and verified
	Code    string `json:"code"`
	Msg     string `json:"msg"`
	SubCode string `json:"sub_code"`
	SubMsg  string `json:"sub_msg"`
	URL     string `json:"bill_download_url"`
}

// call sends the signed call and reads and verifies the answer.
func (c *BillClient) call(ctx context.Context, gateway string, params map[string]string, creds map[string][]byte) (answer, error) {
	query, body := url.Values{}, url.Values{}
	for k, v := range params {
		if k == "biz_content" {
			body.Set(k, v)
		} else {
			query.Set(k, v)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gateway+"?"+query.Encode(), strings.NewReader(body.Encode()))
	if err != nil {
		return answer{}, downloadErr(DownloadBadInput, false, "The request to Alipay cannot be built.", "无法构建发往支付宝的请求。")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	req.Header.Set("Accept", "application/json")
	resp, err := c.client().Do(req)
	if err != nil {
		return answer{}, networkErr(ctx, err, false)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxGatewayReply+1))
	if err != nil {
		return answer{}, networkErr(ctx, err, false)
	}
	if resp.StatusCode != http.StatusOK {
		return answer{}, statusErr(resp.StatusCode, false)
	}
	if len(raw) > maxGatewayReply {
		return answer{}, badResponse("it is far longer than any answer of this method")
	}
	return verifyAnswer(raw, creds)
}

// verifyAnswer cuts the response object out of the body byte for byte,
// verifies its sign and reads it.
func verifyAnswer(body []byte, creds map[string][]byte) (answer, error) {
	node, obj, sign, certSN, err := splitAnswer(body)
	if err != nil {
		return answer{}, err
	}
	var ans answer
	if err := json.Unmarshal(obj, &ans); err != nil {
		return answer{}, badResponse("its response object cannot be read")
	}
	ans.node = node
	if sign != "" {
		keys, snKnown, kerr := verifyKeys(creds, certSN)
		if kerr != nil {
			return answer{}, downloadErr(DownloadBadCredentials, false,
				"The account's Alipay public key (or certificate) cannot be read, so Alipay's answer cannot be verified.",
				"无法读取该账户的支付宝公钥（或证书），无法验证支付宝的应答。")
		}
		sig, derr := decodeSign(sign)
		if derr != nil || !verifyAnswerSign(keys, obj, sig) {
			if !snKnown {
				return answer{}, downloadErr(DownloadBadResponse, false,
					"Alipay's answer does not verify with the Alipay public key certificate, and it names an Alipay certificate (alipay_cert_sn) that is not configured: Alipay has probably changed its certificate. Download the new alipayCertPublicKey_RSA2.crt and update the credentials.",
					"支付宝应答使用支付宝公钥证书验签失败，且应答中的支付宝证书序列号（alipay_cert_sn）与已配置的证书不符：支付宝可能已更换证书。请下载新的 alipayCertPublicKey_RSA2.crt 并更新凭据。")
			}
			return answer{}, downloadErr(DownloadBadResponse, false,
				"Alipay's answer does not verify with the account's Alipay public key (or certificate): it was altered on the way, or the key configured is not this application's. Nothing was downloaded.",
				"支付宝应答使用本账户配置的支付宝公钥（或证书）验签失败：应答在传输中被篡改，或所配置的公钥不属于该应用。未下载任何文件。")
		}
		ans.signed = true
	}
	if ans.Code == "" {
		return answer{}, badResponse("it has no code")
	}
	return ans, nil
}

// verifyAnswerSign checks sig over the response object's text; failing
// that, over the text with "\/" read as "/", for an answer whose JSON
// escapes slashes while the signed text did not (Alipay's SDKs do the same).
// Both texts decode to the same values, so nothing unsigned gets in.
func verifyAnswerSign(keys []*rsa.PublicKey, obj, sig []byte) bool {
	if verifyContent(keys, string(obj), sig) {
		return true
	}
	if bytes.Contains(obj, []byte(`\/`)) {
		return verifyContent(keys, strings.ReplaceAll(string(obj), `\/`, "/"), sig)
	}
	return false
}

// splitAnswer reads the body's top level: the response object (exactly as
// its bytes appear), sign and alipay_cert_sn. A key given twice is refused:
// which one was signed would be ambiguous.
func splitAnswer(body []byte) (node string, obj []byte, sign, certSN string, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, terr := dec.Token(); terr != nil || tok != json.Delim('{') {
		return "", nil, "", "", badResponse("it is not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, terr := dec.Token()
		key, ok := tok.(string)
		if terr != nil || !ok {
			return "", nil, "", "", badResponse("it is not valid JSON")
		}
		if seen[key] {
			return "", nil, "", "", badResponse(fmt.Sprintf("it gives %s twice", truncate(key, 64)))
		}
		seen[key] = true
		var raw json.RawMessage
		if derr := dec.Decode(&raw); derr != nil {
			return "", nil, "", "", badResponse("it is not valid JSON")
		}
		switch key {
		case billResponseKey, errorResponseKey:
			if node != "" {
				return "", nil, "", "", badResponse("it holds two response objects")
			}
			if len(raw) == 0 || raw[0] != '{' {
				return "", nil, "", "", badResponse("its response is not an object")
			}
			node, obj = key, raw
		case "sign", "alipay_cert_sn":
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return "", nil, "", "", badResponse(key + " is not a string")
			}
			if key == "sign" {
				sign = s
			} else {
				certSN = s
			}
		}
	}
	if tok, terr := dec.Token(); terr != nil || tok != json.Delim('}') {
		return "", nil, "", "", badResponse("it is not valid JSON")
	}
	if _, terr := dec.Token(); terr != io.EOF {
		return "", nil, "", "", badResponse("it has data after the JSON object")
	}
	if node == "" {
		return "", nil, "", "", badResponse("it holds no " + billResponseKey)
	}
	return node, obj, sign, certSN, nil
}

func badResponse(why string) *DownloadError {
	return downloadErr(DownloadBadResponse, false,
		"Alipay's answer cannot be used: %s. Nothing was downloaded.", "支付宝的应答无法使用：%s。未下载任何文件。", why)
}

// classify turns a verified answer into nil (a download URL to fetch) or
// the error it means.
func (c *BillClient) classify(ans answer, day time.Time) error {
	readyAfter := c.ReadyAfter
	if readyAfter <= 0 {
		readyAfter = DefaultBillReadyAfter
	}
	readyAt := day.AddDate(0, 0, 1).Add(readyAfter)
	beforeReady := c.now().Before(readyAt)
	date := day.Format(dateLayout)
	sub := strings.ToLower(ans.SubCode)
	reply := replyText(ans)
	mk := func(reason string, retryable bool, en, zh string, args ...any) error {
		e := downloadErr(reason, retryable, en, zh, args...)
		e.Code, e.SubCode = truncate(ans.Code, 16), truncate(ans.SubCode, 64)
		return e
	}

	if ans.Code == "10000" {
		if !ans.signed {
			return badResponse("it is a success but it is not signed")
		}
		if ans.node != billResponseKey || ans.URL == "" {
			return badResponse("it is a success without bill_download_url")
		}
		return nil
	}
	switch {
	case strings.Contains(sub, "bill_not_exist"):
		if !ans.signed {
			return badResponse("it says the bill does not exist, but it is not signed")
		}
		if beforeReady {
			return mk(DownloadNotReady, true,
				"The bill of %s is not ready yet (Alipay: %s). Alipay usually makes a day's bill before 09:00 the next day; PayFuse will ask again.",
				"%s 的账单尚未生成（支付宝：%s）。支付宝通常在次日 09:00 前生成前一日账单，PayFuse 将稍后再次获取。", date, reply)
		}
		return mk(DownloadNoBill, false,
			"Alipay has no trade bill for %s (%s): the account had no trades that day.",
			"支付宝没有 %s 的交易账单（%s）：该账户当日没有交易。", date, reply)
	case strings.Contains(sub, "invalid-signature") || strings.Contains(sub, "cert-sn") ||
		strings.Contains(sub, "missing-signature-key") || strings.Contains(sub, "invalid-signature-type"):
		return mk(DownloadSignatureRejected, false,
			"Alipay refused the request's signature (%s). The application private key (or the certificates) do not match what was uploaded for this APPID in Alipay Open Platform → Development settings → Interface signing method.",
			"支付宝拒绝了请求的签名（%s）。应用私钥（或证书）与在支付宝开放平台该 APPID 的「开发设置 → 接口加签方式」中上传的不一致。", reply)
	case strings.Contains(sub, "invalid-app-id") || strings.Contains(sub, "app-id") || strings.Contains(sub, "app-not-online"):
		return mk(DownloadAppRejected, false,
			"Alipay does not accept the APPID (%s): check it, and that the application is online in Alipay Open Platform.",
			"支付宝不接受该 APPID（%s）：请核对 APPID，并确认该应用在支付宝开放平台已上线。", reply)
	case ans.Code == "40006" || ans.Code == "20001" || strings.Contains(sub, "permission"):
		return mk(DownloadNoPermission, false,
			"The application may not download bills (%s). In Alipay Open Platform, sign a payment product (such as Face-to-Face Payment) and add its feature package to this application.",
			"该应用无权下载账单（%s）。请在支付宝开放平台签约支付产品（如当面付），并为该应用添加对应功能包。", reply)
	case strings.Contains(sub, "invalid-arguments") || strings.Contains(sub, "invalid_arguments") || strings.Contains(sub, "invailid_arguments"):
		if beforeReady {
			return mk(DownloadNotReady, true,
				"The bill of %s is not ready yet (Alipay: %s). PayFuse will ask again later.",
				"%s 的账单尚未生成（支付宝：%s）。PayFuse 将稍后再次获取。", date, reply)
		}
		return mk(DownloadInvalidArguments, false,
			"Alipay found the request for the bill of %s invalid (%s).", "支付宝认为 %s 账单的请求参数无效（%s）。", date, reply)
	case ans.Code == "20000" || strings.Contains(sub, "unknow-error") || strings.Contains(sub, "system_error") ||
		strings.Contains(sub, "system-error") || strings.Contains(sub, "busy"):
		return mk(DownloadBusy, true,
			"Alipay's service is unavailable for now (%s); PayFuse will try again.", "支付宝服务暂不可用（%s）；PayFuse 将稍后重试。", reply)
	}
	return mk(DownloadRefused, false, "Alipay refused the request for the bill of %s (%s).",
		"支付宝拒绝了 %s 账单的请求（%s）。", date, reply)
}

// replyText is Alipay's answer as it may be shown: codes and messages,
// shortened. Alipay's sub_msg is in Chinese; it is quoted as it is.
func replyText(ans answer) string {
	s := ans.Code
	if ans.Msg != "" {
		s += " " + truncate(ans.Msg, 64)
	}
	if ans.SubCode != "" {
		s += ", " + truncate(ans.SubCode, 64)
	}
	if ans.SubMsg != "" {
		s += " " + truncate(ans.SubMsg, 120)
	}
	return s
}

// networkErr describes a failed exchange without the URL: *url.Error quotes
// it, and a download URL's token is a credential while it lasts.
func networkErr(ctx context.Context, err error, download bool) *DownloadError {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	what := channels.Text{EN: "The call to Alipay's gateway", ZH: "调用支付宝网关"}
	if download {
		what = channels.Text{EN: "The bill download", ZH: "下载账单"}
	}
	var e *DownloadError
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
		e = downloadErr(DownloadNetwork, true, "%s was stopped: %v.", "%s被中止：%v。", what, err)
	case isTimeout(err):
		e = downloadErr(DownloadNetwork, true, "%s timed out.", "%s超时。", what)
	default:
		e = downloadErr(DownloadNetwork, true, "%s failed: %v.", "%s失败：%v。", what, err)
	}
	e.Err = err
	return e
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func statusErr(status int, download bool) *DownloadError {
	what := channels.Text{EN: "Alipay's gateway", ZH: "支付宝网关"}
	if download {
		what = channels.Text{EN: "Alipay's bill server", ZH: "支付宝账单服务器"}
	}
	if status >= 500 || status == http.StatusTooManyRequests {
		return downloadErr(DownloadBusy, true, "%s answered HTTP %d; PayFuse will try again.",
			"%s返回 HTTP %d；PayFuse 将稍后重试。", what, status)
	}
	if download {
		return downloadErr(DownloadBadFile, true,
			"%s answered HTTP %d instead of the bill (the link lasts 30 seconds); a new link will be asked for.",
			"%s返回 HTTP %d 而不是账单（下载链接仅 30 秒内有效）；将重新获取下载链接。", what, status)
	}
	return downloadErr(DownloadBadResponse, false, "%s answered HTTP %d.", "%s返回 HTTP %d。", what, status)
}

// zip signatures: a local file header starts a zip with entries; the end of
// central directory record ends every zip.
var (
	zipLocal = []byte("PK\x03\x04")
	zipEnd   = []byte("PK\x05\x06")
)

// endRecordWindow is how far from the end the end record may start: its 22
// bytes plus a comment of up to 65,535.
const endRecordWindow = 22 + 0xFFFF

// fetch downloads the zip to w.
func (c *BillClient) fetch(ctx context.Context, rawURL, date string, w io.Writer) (BillInfo, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return BillInfo{}, badResponse("bill_download_url is not an http(s) URL")
	}
	limit := c.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBillBytes
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return BillInfo{}, badResponse("bill_download_url is not usable")
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return BillInfo{}, networkErr(ctx, err, true)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return BillInfo{}, statusErr(resp.StatusCode, true)
	}
	if resp.ContentLength > limit {
		return BillInfo{}, tooLarge(limit)
	}
	br := bufio.NewReader(resp.Body)
	head, err := br.Peek(len(zipLocal))
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return BillInfo{}, networkErr(ctx, err, true)
	}
	if !bytes.Equal(head, zipLocal) {
		return BillInfo{}, downloadErr(DownloadBadFile, true,
			"The download of the bill of %s is not a zip file (the link lasts 30 seconds; an expired one answers a web page). A new link will be asked for.",
			"%s 账单的下载内容不是 zip 文件（下载链接仅 30 秒内有效，过期后返回网页）。将重新获取下载链接。", date)
	}
	sum := sha256.New()
	out := &writeErrWriter{w: w}
	tail := &tailWriter{max: endRecordWindow}
	n, err := io.Copy(io.MultiWriter(out, sum, tail), io.LimitReader(br, limit))
	if out.err != nil {
		return BillInfo{}, fmt.Errorf("alipay: unable to write the bill of %s: %w", date, out.err)
	}
	if err != nil {
		return BillInfo{}, networkErr(ctx, err, true)
	}
	if n == limit {
		if _, perr := br.Peek(1); perr == nil {
			return BillInfo{}, tooLarge(limit)
		}
	}
	if !tail.hasEndRecord() {
		return BillInfo{}, downloadErr(DownloadBadFile, true,
			"The download of the bill of %s is incomplete (%d bytes, no end of the zip): the connection was cut. It will be downloaded again.",
			"%s 账单下载不完整（%d 字节，缺少 zip 结尾）：连接中断。将重新下载。", date, n)
	}
	return BillInfo{Date: date, Size: n, SHA256: hex.EncodeToString(sum.Sum(nil))}, nil
}

func tooLarge(limit int64) *DownloadError {
	return downloadErr(DownloadTooLarge, false,
		"The bill is larger than %d MiB, the most PayFuse downloads; it was not kept.",
		"账单大于 PayFuse 允许下载的 %d MiB，未保存。", max(limit>>20, 1))
}

// writeErrWriter remembers the destination's error, to tell it from the network's.
type writeErrWriter struct {
	w   io.Writer
	err error
}

func (w *writeErrWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// tailWriter keeps the last max bytes written.
type tailWriter struct {
	buf []byte
	max int
}

func (t *tailWriter) Write(b []byte) (int, error) {
	t.buf = append(t.buf, b...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(b), nil
}

// hasEndRecord reports whether the tail holds a zip end record whose
// comment runs exactly to the end.
func (t *tailWriter) hasEndRecord() bool {
	b := t.buf
	if len(b) > t.max {
		b = b[len(b)-t.max:]
	}
	for i := len(b) - 22; i >= 0; i-- {
		if !bytes.Equal(b[i:i+4], zipEnd) {
			continue
		}
		commentLen := int(b[i+20]) | int(b[i+21])<<8
		if i+22+commentLen == len(b) {
			return true
		}
	}
	return false
}
