package alipay

import (
	"archive/zip"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"payfuse/channels/testkeys"
)

// FakeGateway is an in-process stand-in for Alipay Open Platform's gateway
// and bill server, for tests and demos: nothing it does reaches Alipay. It
// answers alipay.data.dataservice.bill.downloadurl.query as Alipay does — it
// checks app_id, method, the common parameters and the request's RSA2
// signature with the application's public key (and, in certificate mode,
// app_cert_sn and alipay_root_cert_sn), and signs its answers with its own
// "Alipay" private key over the response object's exact text — and serves
// the bills registered with AddBill from the bill_download_url it hands out.
// Switches make it misbehave the ways the real one can. It is safe for
// concurrent use.
type FakeGateway struct {
	// URL is the gateway address to give BillClient.Gateway.
	URL string
	// AppID and PID are the application's and the merchant's ids in Credentials.
	AppID, PID string

	srv        *httptest.Server
	appPub     *rsa.PublicKey
	alipayKey  *rsa.PrivateKey
	creds      map[string][]byte
	certMode   bool
	appCertSN  string
	rootCertSN string
	alipaySN   string

	mu        sync.Mutex
	bills     map[string][]byte // date -> zip
	notReady  map[string]bool
	tokens    map[string]string // download token -> date
	busy      int
	slow      time.Duration
	badSign   bool
	truncate  bool
	noPerm    bool
	calls     int
	downloads int
}

// FakeOptions configures NewFakeGateway. The zero value gives a gateway in
// public-key mode with fresh keys.
type FakeOptions struct {
	// CertMode makes Credentials a certificate-mode set (app_cert,
	// alipay_cert, alipay_root_cert) and the gateway check the certificate
	// numbers and send alipay_cert_sn.
	CertMode bool
	// AppKey is the application's key pair, AlipayKey "Alipay's". Nil means
	// a fresh 2048-bit key; tests that start many gateways pass keys they
	// made once, as key generation is the slow part.
	AppKey, AlipayKey *rsa.PrivateKey
	// AppID and PID default to fixed test ids.
	AppID, PID string
}

// NewFakeGateway starts a fake gateway; Close stops it. It panics if a key
// or certificate cannot be made, which only a broken random source can cause.
func NewFakeGateway(opts FakeOptions) *FakeGateway {
	if opts.AppKey == nil {
		opts.AppKey = testkeys.RSAKey(testkeys.Bits)
	}
	if opts.AlipayKey == nil {
		opts.AlipayKey = testkeys.RSAKey(testkeys.Bits)
	}
	if opts.AppID == "" {
		opts.AppID = "2021000100020003"
	}
	if opts.PID == "" {
		opts.PID = "2088000100020003"
	}
	f := &FakeGateway{
		AppID:     opts.AppID,
		PID:       opts.PID,
		appPub:    &opts.AppKey.PublicKey,
		alipayKey: opts.AlipayKey,
		certMode:  opts.CertMode,
		bills:     map[string][]byte{},
		notReady:  map[string]bool{},
		tokens:    map[string]string{},
	}
	f.creds = map[string][]byte{
		"app_id":          []byte(opts.AppID),
		"pid":             []byte(opts.PID),
		"app_private_key": testkeys.PrivateKeyPEM(opts.AppKey),
	}
	if opts.CertMode {
		now := time.Now()
		notBefore, notAfter := now.Add(-time.Hour), now.AddDate(1, 0, 0)
		appCert := testkeys.CertPEM(opts.AppKey, opts.AppID+" test application certificate", notBefore, notAfter)
		alipayCert := testkeys.CertPEM(opts.AlipayKey, "PayFuse fake Alipay public key certificate", notBefore, notAfter)
		// Like alipayRootCert.crt, the bundle holds RSA-signed roots and one
		// that is not (an ECDSA one here, an SM2 one in Alipay's), which
		// alipay_root_cert_sn leaves out.
		root := append(testkeys.CertPEM(opts.AlipayKey, "PayFuse fake Alipay root CA R1", notBefore, notAfter), ecdsaRootPEM(notBefore, notAfter)...)
		root = append(root, testkeys.CertPEM(opts.AppKey, "PayFuse fake Alipay root CA R2", notBefore, notAfter)...)
		f.creds["app_cert"], f.creds["alipay_cert"], f.creds["alipay_root_cert"] = appCert, alipayCert, root
		f.appCertSN = CertSN(mustCert(appCert))
		f.alipaySN = CertSN(mustCert(alipayCert))
		roots, err := x509.ParseCertificates(pemDER(root))
		if err != nil {
			panic(fmt.Sprintf("alipay: unable to read the fake root certificates: %v", err))
		}
		f.rootCertSN = RootCertSN(roots)
	} else {
		f.creds["alipay_public_key"] = testkeys.PublicKeyPEM(&opts.AlipayKey.PublicKey)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/gateway.do", f.gateway)
	mux.HandleFunc("/downloadBillFile.resource", f.download)
	f.srv = httptest.NewServer(mux)
	f.URL = f.srv.URL + "/gateway.do"
	return f
}

// Close stops the server.
func (f *FakeGateway) Close() { f.srv.Close() }

// Credentials returns a copy of the PayFuse account credentials that match
// the gateway: the application's key (and certificates) and the fake
// Alipay's public key (or certificate).
func (f *FakeGateway) Credentials() map[string][]byte {
	out := make(map[string][]byte, len(f.creds))
	for k, v := range f.creds {
		out[k] = append([]byte(nil), v...)
	}
	return out
}

// Client returns a BillClient pointed at the gateway.
func (f *FakeGateway) Client() *BillClient {
	return &BillClient{Gateway: f.URL, HTTP: f.srv.Client()}
}

// AddBill registers the zip served as the trade bill of date ("2006-01-02").
// A date without a bill is answered "bill does not exist" (isp.bill_not_exist).
func (f *FakeGateway) AddBill(date string, zipData []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bills[date] = append([]byte(nil), zipData...)
}

// SetNotReady makes the gateway answer "bill does not exist" for date even
// when a bill is registered, as Alipay does before it has made the bill.
func (f *FakeGateway) SetNotReady(date string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notReady[date] = on
}

// SetBusy makes the next n calls answer 20000 isp.unknow-error (service
// unavailable); the ones after answer normally.
func (f *FakeGateway) SetBusy(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.busy = n
}

// SetSlow makes every call wait d before answering (or until the client
// gives up), to exercise timeouts.
func (f *FakeGateway) SetSlow(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slow = d
}

// SetBadResponseSign makes the gateway's signatures not match its answers.
func (f *FakeGateway) SetBadResponseSign(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.badSign = on
}

// SetTruncatedDownload makes the bill server send half of each bill and end
// the response cleanly, as a cut connection behind a proxy can look.
func (f *FakeGateway) SetTruncatedDownload(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.truncate = on
}

// SetNoPermission makes the gateway answer 40006 (insufficient permissions),
// as for an application without the bill feature.
func (f *FakeGateway) SetNoPermission(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noPerm = on
}

// Calls returns the number of gateway calls received.
func (f *FakeGateway) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Downloads returns the number of bill downloads served, whole or in part.
func (f *FakeGateway) Downloads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.downloads
}

// fakeState is the switches as one call sees them.
type fakeState struct {
	slow     time.Duration
	busy     bool
	badSign  bool
	noPerm   bool
	notReady map[string]bool
}

func (f *FakeGateway) gateway(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls++
	st := fakeState{slow: f.slow, badSign: f.badSign, noPerm: f.noPerm}
	if f.busy > 0 {
		f.busy--
		st.busy = true
	}
	f.mu.Unlock()
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// The body is read first: only then does the server notice a client
	// that hangs up, and end the wait below.
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if st.slow > 0 {
		t := time.NewTimer(st.slow)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
	params := map[string]string{}
	for k, vs := range r.Form {
		if len(vs) != 1 {
			f.answer(w, errorResponseKey, st, false, "40002", "Invalid Arguments", "isv.invalid-parameter", "参数重复："+k, "")
			return
		}
		params[k] = vs[0]
	}

	// The gateway's own checks, in the order Alipay documents its common errors.
	switch {
	case params["app_id"] == "":
		f.answer(w, errorResponseKey, st, false, "40001", "Missing Required Arguments", "isv.missing-app-id", "缺少appId参数", "")
		return
	case params["app_id"] != f.AppID:
		f.answer(w, errorResponseKey, st, false, "40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数", "")
		return
	case params["method"] == "":
		f.answer(w, errorResponseKey, st, true, "40001", "Missing Required Arguments", "isv.missing-method", "缺少方法名参数", "")
		return
	case params["method"] != BillDownloadMethod:
		f.answer(w, errorResponseKey, st, true, "40002", "Invalid Arguments", "isv.invalid-method", "不存在的方法名", "")
		return
	case params["sign"] == "":
		f.answer(w, errorResponseKey, st, true, "40001", "Missing Required Arguments", "isv.missing-signature", "缺少签名参数", "")
		return
	case params["sign_type"] != "RSA2":
		f.answer(w, errorResponseKey, st, true, "40002", "Invalid Arguments", "isv.invalid-signature-type", "无效的签名类型", "")
		return
	case !strings.EqualFold(params["charset"], "utf-8"):
		f.answer(w, errorResponseKey, st, true, "40002", "Invalid Arguments", "isv.invalid-charset", "字符集错误", "")
		return
	case params["format"] != "" && !strings.EqualFold(params["format"], "json"):
		f.answer(w, errorResponseKey, st, true, "40002", "Invalid Arguments", "isv.invalid-format", "无效的数据格式", "")
		return
	case params["version"] != "1.0":
		f.answer(w, errorResponseKey, st, true, "40002", "Invalid Arguments", "isv.invalid-version", "无效的版本号", "")
		return
	}
	if _, err := time.ParseInLocation(timestampLayout, params["timestamp"], beijing); err != nil {
		f.answer(w, errorResponseKey, st, true, "40002", "Invalid Arguments", "isv.invalid-timestamp", "非法的时间戳参数", "")
		return
	}
	if f.certMode {
		switch {
		case params["app_cert_sn"] == "":
			f.answer(w, errorResponseKey, st, true, "40001", "Missing Required Arguments", "isv.missing-app-cert-sn", "缺少应用公钥证书序列号", "")
			return
		case params["app_cert_sn"] != f.appCertSN:
			f.answer(w, errorResponseKey, st, true, "40002", "Invalid Arguments", "isv.invalid-app-cert-sn", "无效的应用公钥证书序列号", "")
			return
		case params["alipay_root_cert_sn"] != f.rootCertSN:
			f.answer(w, errorResponseKey, st, true, "40002", "Invalid Arguments", "isv.invalid-alipay-root-cert-sn", "无效的支付宝根证书序列号", "")
			return
		}
	}
	sig, err := base64.StdEncoding.DecodeString(params["sign"])
	sum := sha256.Sum256([]byte(requestSignContent(params)))
	if err != nil || rsa.VerifyPKCS1v15(f.appPub, crypto.SHA256, sum[:], sig) != nil {
		f.answer(w, errorResponseKey, st, true, "40002", "Invalid Arguments", "isv.invalid-signature",
			"验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配", "")
		return
	}

	// The method itself.
	var biz struct {
		BillType string `json:"bill_type"`
		BillDate string `json:"bill_date"`
	}
	if err := json.Unmarshal([]byte(params["biz_content"]), &biz); err != nil || biz.BillType != "trade" {
		f.answer(w, billResponseKey, st, true, "40004", "Business Failed", "isv.invalid-arguments", "参数不合法", "")
		return
	}
	if d, err := time.ParseInLocation(dateLayout, biz.BillDate, beijing); err != nil || d.Format(dateLayout) != biz.BillDate {
		f.answer(w, billResponseKey, st, true, "40004", "Business Failed", "isv.invalid-arguments", "参数不合法", "")
		return
	}
	switch {
	case st.busy:
		f.answer(w, billResponseKey, st, true, "20000", "Service Currently Unavailable", "isp.unknow-error", "系统繁忙", "")
		return
	case st.noPerm:
		f.answer(w, billResponseKey, st, true, "40006", "Insufficient Permissions", "isv.insufficient-isv-permissions", "ISV权限不足，建议在开发者中心检查对应功能是否已经添加", "")
		return
	}
	f.mu.Lock()
	_, ok := f.bills[biz.BillDate]
	ok = ok && !f.notReady[biz.BillDate]
	token := ""
	if ok {
		b := make([]byte, 16)
		rand.Read(b)
		token = hex.EncodeToString(b)
		f.tokens[token] = biz.BillDate
	}
	f.mu.Unlock()
	if !ok {
		f.answer(w, billResponseKey, st, true, "40004", "Business Failed", "isp.bill_not_exist", "账单不存在", "")
		return
	}
	compact := strings.ReplaceAll(biz.BillDate, "-", "")
	q := url.Values{}
	q.Set("bizType", "trade")
	q.Set("userId", f.PID+"0156")
	q.Set("fileType", "csv.zip")
	q.Set("bizDates", compact)
	q.Set("downloadFileName", f.PID+"0156_"+compact+".csv.zip")
	q.Set("timestamp", fmt.Sprint(time.Now().UnixMilli()))
	q.Set("token", token)
	f.answer(w, billResponseKey, st, true, "10000", "Success", "", "", f.srv.URL+"/downloadBillFile.resource?"+q.Encode())
}

// answer writes a gateway answer: the response object written out by hand
// in Alipay's style (keys in Alipay's order, "/" escaped as "\/"), so a
// client that re-encodes it instead of verifying its exact text fails; and,
// when signed, the signature over that text and, in certificate mode,
// alipay_cert_sn.
func (f *FakeGateway) answer(w http.ResponseWriter, node string, st fakeState, signed bool, code, msg, subCode, subMsg, downloadURL string) {
	var obj strings.Builder
	obj.WriteString(`{"code":` + alipayJSON(code) + `,"msg":` + alipayJSON(msg))
	if subCode != "" {
		obj.WriteString(`,"sub_code":` + alipayJSON(subCode) + `,"sub_msg":` + alipayJSON(subMsg))
	}
	if downloadURL != "" {
		obj.WriteString(`,"bill_download_url":` + alipayJSON(downloadURL))
	}
	obj.WriteString(`}`)
	body := `{"` + node + `":` + obj.String()
	if signed {
		content := obj.String()
		if st.badSign {
			content += " "
		}
		sum := sha256.Sum256([]byte(content))
		sig, err := rsa.SignPKCS1v15(rand.Reader, f.alipayKey, crypto.SHA256, sum[:])
		if err != nil {
			http.Error(w, "unable to sign", http.StatusInternalServerError)
			return
		}
		if f.certMode {
			body += `,"alipay_cert_sn":` + alipayJSON(f.alipaySN)
		}
		body += `,"sign":` + alipayJSON(base64.StdEncoding.EncodeToString(sig))
	}
	body += "}"
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Write([]byte(body))
}

// alipayJSON quotes s as a JSON string the way Alipay's gateway does: "/"
// escaped, non-ASCII and "&" as they are.
func alipayJSON(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\' || r == '/':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (f *FakeGateway) download(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	date, ok := f.tokens[r.URL.Query().Get("token")]
	data := f.bills[date]
	truncate := f.truncate
	if ok {
		f.downloads++
	}
	f.mu.Unlock()
	if !ok || data == nil {
		// Alipay answers an unknown or expired link with a web page.
		w.Header().Set("Content-Type", "text/html;charset=utf-8")
		w.Write([]byte("<html><body>下载超时，请重新下载</body></html>"))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="bill.csv.zip"`)
	if truncate {
		// No Content-Length: the response ends cleanly after half the file.
		w.Write(data[:len(data)/2])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.Write(data)
}

func mustCert(pemData []byte) *x509.Certificate {
	c, err := x509.ParseCertificate(pemDER(pemData))
	if err != nil {
		panic(fmt.Sprintf("alipay: unable to read a fake certificate: %v", err))
	}
	return c
}

// pemDER concatenates the DER of every PEM block.
func pemDER(b []byte) []byte {
	var der []byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return der
		}
		der = append(der, blk.Bytes...)
	}
}

// ecdsaRootPEM makes a self-signed ECDSA root, standing for the non-RSA root
// of Alipay's root bundle.
func ecdsaRootPEM(notBefore, notAfter time.Time) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("alipay: unable to make a fake ECDSA key: %v", err))
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(20260301),
		Subject:               pkix.Name{CommonName: "PayFuse fake Alipay root CA (ECDSA)"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		panic(fmt.Sprintf("alipay: unable to make a fake ECDSA certificate: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestTrade is one payment of a bill made by BuildTestTradeBill.
type TestTrade struct {
	TradeNo string    // 支付宝交易号
	OrderNo string    // 商户订单号
	Amount  int64     // fen; 订单金额 and 商家实收
	Fee     int64     // fen; 服务费, positive
	Paid    time.Time // 完成时间 (and 创建时间); shown in Beijing time
}

// BuildTestTradeBill is a test and demo helper: it returns a trade bill zip
// in Alipay's layout (GBK CSV files named <pid>0156_<yyyymmdd>_业务明细.csv and
// …(汇总).csv, names in GBK without the UTF-8 flag) listing the payments, with
// the footer totals, that ParseTradeBill reads. pid is the 16-digit PID.
func BuildTestTradeBill(pid, date string, trades ...TestTrade) []byte {
	day, err := time.ParseInLocation(dateLayout, date, beijing)
	if err != nil {
		panic(fmt.Sprintf("alipay: BuildTestTradeBill: bad date %q", date))
	}
	next := day.AddDate(0, 0, 1)
	cn := func(t time.Time) string { return t.Format("2006年01月02日 15:04:05") }
	head := fmt.Sprintf("#账号：[%s0156]\n#起始日期：[%s]   终止日期：[%s]\n", pid, cn(day), cn(next))

	var d strings.Builder
	d.WriteString("#支付宝业务明细查询\n" + head)
	d.WriteString("#-----------------------------------------业务明细列表----------------------------------------\n")
	d.WriteString("支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注\n")
	var total, fees int64
	for _, t := range trades {
		at := t.Paid.In(beijing).Format(timestampLayout)
		fmt.Fprintf(&d, "%s\t,%s\t,交易\t,测试商品,%s,%s,\t,\t,\t,\t,\t,%s,%s,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,\t,%s,0.00,\n",
			t.TradeNo, t.OrderNo, at, at, yuan(t.Amount), yuan(t.Amount), yuan(-t.Fee))
		total += t.Amount
		fees += t.Fee
	}
	d.WriteString("#-----------------------------------------业务明细列表结束------------------------------------\n")
	fmt.Fprintf(&d, "#交易合计：%d笔，商家实收共%s元，商家优惠共0.00元\n", len(trades), yuan(total))
	d.WriteString("#退款合计：0笔，商家实收退款共0.00元，商家优惠退款共0.00元\n")
	fmt.Fprintf(&d, "#导出时间：[%s]\n", cn(next.Add(6*time.Hour)))

	var s strings.Builder
	s.WriteString("#支付宝业务汇总查询\n" + head)
	s.WriteString("#-----------------------------------------业务汇总列表----------------------------------------\n")
	s.WriteString("门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）\n")
	fmt.Fprintf(&s, "合计\t,\t,%d,0,%s,%s,0.00,0.00,0.00,%s,0.00,%s\n", len(trades), yuan(total), yuan(total), yuan(-fees), yuan(total-fees))
	s.WriteString("#-----------------------------------------业务汇总列表结束------------------------------------\n")
	fmt.Fprintf(&s, "#导出时间：[%s]\n", cn(next.Add(6*time.Hour)))

	compact := strings.ReplaceAll(date, "-", "")
	base := pid + "0156_" + compact + "_业务明细"
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range []struct{ name, body string }{{base + ".csv", d.String()}, {base + "(汇总).csv", s.String()}} {
		name, err := simplifiedchinese.GBK.NewEncoder().String(e.name)
		if err != nil {
			panic(fmt.Sprintf("alipay: BuildTestTradeBill: %v", err))
		}
		body, err := simplifiedchinese.GBK.NewEncoder().String(e.body)
		if err != nil {
			panic(fmt.Sprintf("alipay: BuildTestTradeBill: %v", err))
		}
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, NonUTF8: true, Method: zip.Deflate, Modified: next.Add(6 * time.Hour)})
		if err != nil {
			panic(fmt.Sprintf("alipay: BuildTestTradeBill: %v", err))
		}
		fw.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		panic(fmt.Sprintf("alipay: BuildTestTradeBill: %v", err))
	}
	return buf.Bytes()
}
