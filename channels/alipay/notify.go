package alipay

import (
	"crypto"
	"crypto/md5"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"

	"payfuse/channels"
)

// The reasons a notification is refused (NotifyError.Reason).
const (
	// ReasonBadSignature: no sign, or a sign that the configured Alipay
	// public key (or certificate) does not verify.
	ReasonBadSignature = "bad_signature"
	// ReasonWrongApp: a genuine notification for another application (app_id).
	ReasonWrongApp = "wrong_app"
	// ReasonBadPayload: signed, but not a notification PayFuse can read.
	ReasonBadPayload = "bad_payload"
	// ReasonUnsupportedSignType: sign_type is not RSA2 (SHA256withRSA).
	ReasonUnsupportedSignType = "unsupported_sign_type"
	// ReasonBadCredentials: the account's own credentials cannot verify
	// anything (no app_id, no readable Alipay public key or certificate). The
	// notification is not at fault; answering with an error makes Alipay
	// retry it later, once the credentials are fixed.
	ReasonBadCredentials = "bad_credentials"
)

// NotifyError says why a notification was refused. Message is safe to show
// and to log: it never quotes keys, certificates or the signature.
type NotifyError struct {
	Reason  string
	Message channels.Text
}

func (e *NotifyError) Error() string {
	return "alipay: notification refused (" + e.Reason + "): " + e.Message.EN
}

func notifyErr(reason, en, zh string, args ...any) *NotifyError {
	return &NotifyError{Reason: reason, Message: channels.Textf(en, zh, args...)}
}

// VerifyNotification verifies an Alipay asynchronous notification (the
// parameters of its form POST) with the account's credentials, and reads it
// into a record. The string Alipay signs is every parameter except sign and
// sign_type, sorted by name, as name=value (values as decoded) joined by "&";
// sign is its SHA256withRSA signature (sign_type RSA2) in base64, made with
// Alipay's private key, verified with alipay_public_key or, in certificate
// mode, with the key of alipay_cert. app_id must be the account's app_id.
//
// The record: trade_no is ChannelRef and out_trade_no MerchantOrderNo;
// trade_status maps WAIT_BUYER_PAY to pending, TRADE_SUCCESS and
// TRADE_FINISHED to succeeded, TRADE_CLOSED to closed; Amount is what the
// merchant receives (see below); gmt_create and gmt_payment (Beijing time) are CreatedAt and PaidAt
// in UTC; seller_id (the PID) is AccountRef; the currency is CNY. A refund
// notification becomes a refund record: ChannelRef trade_no + "/" +
// out_biz_no, PaymentRef trade_no, Amount refund_fee (see below).
//
// Errors are *NotifyError, whose Reason is one of the Reason constants and
// whose Message never quotes keys, certificates or the signature.
//
// In detail:
//
//   - A parameter given twice is refused (bad_payload): the signed string
//     would be ambiguous. A missing sign_type is taken as RSA2; RSA (SHA1)
//     and anything else are refused as unsupported_sign_type.
//   - The signature must verify before anything else is read. Alipay's
//     documented rule signs every parameter but sign and sign_type, empty
//     ones included; when that fails and some parameters are empty, the
//     string without them is tried too (some gateways leave them out). Empty
//     values carry nothing the record uses, so this lets nothing unsigned in.
//   - Certificate mode is chosen as the credentials choose it: any of the
//     three certificates set means certificate mode, and alipay_public_key is
//     then not used. alipay_cert may hold more than one certificate (during
//     Alipay's certificate rotation). When the notification carries
//     alipay_cert_sn (Alipay's certificate number: the MD5, in hex, of the
//     issuer's name and the serial number in decimal) the certificate with
//     that number verifies it; when none of the configured certificates has
//     that number, all are tried, and a failure then says the Alipay
//     certificate has probably changed. The signature decides, the number
//     only picks the key. The certificate's chain and validity dates are not
//     checked here (the credential check reports them): a notification that
//     arrives after the certificate expired is still verified by its key.
//   - The trade_status mapping is as above. A notification is a refund when
//     refund_fee is above zero and it names the refund (out_biz_no) or its
//     time (gmt_refund): Alipay sends one when a refund succeeds, with
//     trade_status TRADE_SUCCESS after a partial refund and TRADE_CLOSED after
//     a full one. The refund record has Status succeeded, RefundNo and the
//     second half of ChannelRef out_biz_no (the out_request_no the merchant
//     gave; when absent, out_trade_no, which is what Alipay uses for a refund
//     requested without one), CreatedAt and RefundedAt gmt_refund.
//     Alipay documents refund_fee as the trade's TOTAL refunded amount (总退款
//     金额), at the order's level: it is this refund's amount for the trade's
//     first refund (and for a single full refund), but after a second
//     partial refund it is the running total; and where the merchant paid
//     for a discount, the bill's refund row counts only the merchant's part
//     (商家实收). In both cases the bill's figure differs from it, and the
//     ledger flags the two rather than taking either silently. No parameter
//     gives the merchant's part of one refund.
//   - A payment's Amount is receipt_amount (实收金额, "what the merchant
//     actually received in the trade") when the notification carries it, as
//     paid trades' notifications do, and total_amount (订单金额) otherwise,
//     as for a trade not paid yet. receipt_amount is total_amount less the
//     discounts the merchant paid for, the figure the trade bill calls
//     商家实收, so a payment seen by both sources has one amount, and PayFuse's
//     amounts mean the same for every channel: what the merchant is paid.
//     total_amount must be above zero either way; it stays in Raw.
//   - Payer is buyer_logon_id, else buyer_id, else buyer_open_id, masked.
//     Raw holds every parameter except sign and notify_time.
func VerifyNotification(form url.Values, creds map[string][]byte) (channels.Record, error) {
	params := make(map[string]string, len(form))
	for k, vs := range form {
		if len(vs) != 1 {
			return channels.Record{}, notifyErr(ReasonBadPayload,
				"The parameter %s is given %d times; a notification gives each once.",
				"参数 %s 出现了 %d 次，通知中每个参数只应出现一次。", truncate(k, 32), len(vs))
		}
		params[k] = vs[0]
	}
	if strings.TrimSpace(params["sign"]) == "" {
		return channels.Record{}, notifyErr(ReasonBadSignature,
			"The notification has no sign: it cannot come from Alipay.", "通知中没有签名（sign），不可能来自支付宝。")
	}
	switch st := params["sign_type"]; st {
	case "", "RSA2":
	case "RSA":
		return channels.Record{}, notifyErr(ReasonUnsupportedSignType,
			"The notification is signed with sign_type RSA (SHA1withRSA); PayFuse accepts RSA2 only. Set the application's interface signing method to RSA2 in Alipay Open Platform.",
			"该通知使用 RSA（SHA1withRSA）签名，PayFuse 只接受 RSA2。请在支付宝开放平台将应用的接口加签方式设置为 RSA2。")
	default:
		return channels.Record{}, notifyErr(ReasonUnsupportedSignType,
			"The notification's sign_type %q is not supported; PayFuse accepts RSA2 only.",
			"不支持通知的签名类型（sign_type）%q，PayFuse 只接受 RSA2。", truncate(st, 16))
	}

	appID := strings.TrimSpace(string(creds["app_id"]))
	if appID == "" {
		return channels.Record{}, notifyErr(ReasonBadCredentials,
			"The account has no APPID set, so its notifications cannot be checked.", "该账户未设置 APPID，无法核验其通知。")
	}
	keys, snKnown, err := verifyKeys(creds, params["alipay_cert_sn"])
	if err != nil {
		return channels.Record{}, err
	}
	sig, err := decodeSign(params["sign"])
	if err != nil {
		return channels.Record{}, notifyErr(ReasonBadSignature,
			"The notification's sign is not base64: it cannot come from Alipay.", "通知的签名（sign）不是 base64 编码，不可能来自支付宝。")
	}
	if !verifyParams(keys, params, sig) {
		switch {
		case params["app_id"] != "" && params["app_id"] != appID:
			return channels.Record{}, notifyErr(ReasonBadSignature,
				"The signature does not verify, and the notification names another application (app_id %s, not this account's %s): was it sent to the wrong account?",
				"签名验证失败，且通知所属应用（app_id %s）不是本账户的应用（%s）：是否发到了错误的账户？", truncate(params["app_id"], 32), appID)
		case !snKnown:
			return channels.Record{}, notifyErr(ReasonBadSignature,
				"The signature does not verify with the Alipay public key certificate, and the notification names an Alipay certificate (alipay_cert_sn) that is not configured: Alipay has probably changed its certificate. Download the new alipayCertPublicKey_RSA2.crt and update the credentials.",
				"使用支付宝公钥证书验签失败，且通知中的支付宝证书序列号（alipay_cert_sn）与已配置的证书不符：支付宝可能已更换证书。请下载新的 alipayCertPublicKey_RSA2.crt 并更新凭据。")
		}
		return channels.Record{}, notifyErr(ReasonBadSignature,
			"The signature does not verify with the account's Alipay public key (or certificate): the notification was altered, or did not come from Alipay, or the key configured is not this application's.",
			"使用本账户配置的支付宝公钥（或证书）验签失败：通知被篡改、并非来自支付宝，或所配置的公钥不属于该应用。")
	}
	if got := params["app_id"]; got != appID {
		return channels.Record{}, notifyErr(ReasonWrongApp,
			"The notification is for application %s, not this account's application %s.",
			"该通知属于应用 %s，而非本账户的应用 %s。", truncate(got, 32), appID)
	}
	if err := decodeCharset(params); err != nil {
		return channels.Record{}, err
	}
	rec, err := notificationRecord(params)
	if err != nil {
		return channels.Record{}, err
	}
	return rec, nil
}

// decodeCharset turns the parameters to UTF-8. Alipay form-encodes a
// notification in the application's charset (its charset parameter: utf-8,
// or GBK for older integrations) and signs those bytes, so the signature is
// checked on the bytes as sent and only then are they decoded.
func decodeCharset(params map[string]string) error {
	switch cs := strings.ToLower(strings.TrimSpace(params["charset"])); cs {
	case "", "utf-8", "utf8":
		return nil
	case "gbk", "gb2312", "gb18030":
		dec := simplifiedchinese.GB18030.NewDecoder()
		for k, v := range params {
			u, err := dec.String(v) // bytes that are not GBK decode to U+FFFD
			if err != nil || strings.ContainsRune(u, utf8.RuneError) {
				return notifyErr(ReasonBadPayload, "The parameter %s is not valid %s text.",
					"参数 %s 不是有效的 %s 文本。", truncate(k, 32), strings.ToUpper(cs))
			}
			params[k] = u
		}
		return nil
	default:
		return notifyErr(ReasonBadPayload, "The notification's charset %q is not one Alipay uses (utf-8, GBK).",
			"通知的字符集（charset）%q 不是支付宝使用的字符集（utf-8、GBK）。", truncate(cs, 16))
	}
}

// verifyKeys returns the Alipay keys that may have signed the notification.
// snKnown is false when the notification names an alipay_cert_sn that none
// of the configured certificates has.
func verifyKeys(creds map[string][]byte, certSN string) (keys []*rsa.PublicKey, snKnown bool, err error) {
	certMode := false
	for _, f := range certFields {
		if given(creds[f]) {
			certMode = true
		}
	}
	if !certMode {
		if !given(creds["alipay_public_key"]) {
			return nil, true, notifyErr(ReasonBadCredentials,
				"The account has neither an Alipay public key nor an Alipay public key certificate, so its notifications cannot be checked.",
				"该账户既未配置支付宝公钥也未配置支付宝公钥证书，无法核验其通知。")
		}
		pub, err := channels.ParsePublicKey(creds["alipay_public_key"])
		if err != nil {
			return nil, true, credentialErr(fieldLabel("alipay_public_key"), err)
		}
		return []*rsa.PublicKey{pub}, true, nil
	}
	if !given(creds["alipay_cert"]) {
		return nil, true, notifyErr(ReasonBadCredentials,
			"The account is in certificate mode but has no %s, so its notifications cannot be checked.",
			"该账户为证书模式，但未配置%s，无法核验其通知。", fieldLabel("alipay_cert"))
	}
	certs, err := channels.ParseCertificates(creds["alipay_cert"])
	if err != nil {
		return nil, true, credentialErr(fieldLabel("alipay_cert"), err)
	}
	var all, bySN []*rsa.PublicKey
	for _, c := range certs {
		pub, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok {
			continue
		}
		all = append(all, pub)
		if certSN != "" && strings.EqualFold(CertSN(c), certSN) {
			bySN = append(bySN, pub)
		}
	}
	if len(all) == 0 {
		return nil, true, notifyErr(ReasonBadCredentials,
			"The %s holds no RSA key, so notifications cannot be checked.", "%s中没有 RSA 公钥，无法核验通知。", fieldLabel("alipay_cert"))
	}
	switch {
	case certSN == "":
		return all, true, nil
	case len(bySN) > 0:
		return bySN, true, nil
	}
	return all, false, nil
}

// CertSN returns Alipay's number for a certificate (app_cert_sn,
// alipay_cert_sn): the hex MD5 of the issuer's distinguished name, most
// specific part first ("CN=…,OU=…,O=…,C=…"), followed by the serial number
// in decimal.
func CertSN(c *x509.Certificate) string {
	sum := md5.Sum([]byte(c.Issuer.String() + c.SerialNumber.String()))
	return hex.EncodeToString(sum[:])
}

func credentialErr(label channels.Text, err error) *NotifyError {
	var pe *channels.ParseError
	if errors.As(err, &pe) {
		return notifyErr(ReasonBadCredentials, "The account's %s cannot be read: %s", "无法读取该账户的%s：%s", label, pe.Reason)
	}
	return notifyErr(ReasonBadCredentials, "The account's %s cannot be read.", "无法读取该账户的%s。", label)
}

func fieldLabel(name string) channels.Text {
	if f, ok := Spec.Field(name); ok {
		return f.Label
	}
	return channels.Text{EN: name, ZH: name}
}

func given(b []byte) bool { return len(strings.TrimSpace(string(b))) > 0 }

// decodeSign decodes the base64 sign. A form body whose '+' was not escaped
// arrives with spaces in their place; spaces are never base64, so they are
// read back as '+'.
func decodeSign(s string) ([]byte, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), " ", "+")
	s = strings.NewReplacer("\r", "", "\n", "").Replace(s)
	return base64.StdEncoding.DecodeString(s)
}

// verifyParams checks sig over the parameters with any of keys: first the
// string of all parameters (Alipay's rule), then, if some are empty, the
// string without the empty ones.
func verifyParams(keys []*rsa.PublicKey, params map[string]string, sig []byte) bool {
	if verifyContent(keys, signContent(params, false), sig) {
		return true
	}
	for k, v := range params {
		if v == "" && k != "sign" && k != "sign_type" {
			return verifyContent(keys, signContent(params, true), sig)
		}
	}
	return false
}

func verifyContent(keys []*rsa.PublicKey, content string, sig []byte) bool {
	sum := sha256.Sum256([]byte(content))
	for _, k := range keys {
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) == nil {
			return true
		}
	}
	return false
}

// signContent builds the string Alipay signs: every parameter except sign
// and sign_type (and, with skipEmpty, except those with empty values), sorted
// by name, as name=value joined by "&", values as decoded.
func signContent(params map[string]string, skipEmpty bool) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k == "sign" || k == "sign_type" || (skipEmpty && v == "") {
			continue
		}
		keys = append(keys, k)
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

// notificationRecord maps a verified notification to a record.
func notificationRecord(params map[string]string) (channels.Record, error) {
	raw := make(map[string]string, len(params))
	for k, v := range params {
		// Alipay repeats an unanswered notification with the same notify_id
		// and a new notify_time (and so a new sign): without those two a
		// repeat is the same evidence, and the ledger keeps it once.
		if k != "sign" && k != "notify_time" {
			raw[k] = v
		}
	}
	payer := params["buyer_logon_id"]
	if payer == "" {
		payer = params["buyer_id"]
	}
	if payer == "" {
		payer = params["buyer_open_id"]
	}
	rec := channels.Record{
		Channel:         Code,
		Kind:            channels.KindPayment,
		ChannelRef:      strings.TrimSpace(params["trade_no"]),
		MerchantOrderNo: strings.TrimSpace(params["out_trade_no"]),
		NativeStatus:    params["trade_status"],
		Currency:        "CNY",
		Payer:           channels.MaskPayer(payer),
		AccountRef:      strings.TrimSpace(params["seller_id"]),
		Raw:             raw,
	}
	if rec.ChannelRef == "" {
		return channels.Record{}, payloadErr("trade_no", whyMissing)
	}
	switch rec.NativeStatus {
	case "WAIT_BUYER_PAY":
		rec.Status = channels.StatusPending
	case "TRADE_SUCCESS", "TRADE_FINISHED":
		rec.Status = channels.StatusSucceeded
	case "TRADE_CLOSED":
		rec.Status = channels.StatusClosed
	case "":
		return channels.Record{}, payloadErr("trade_status", whyMissing)
	default:
		return channels.Record{}, notifyErr(ReasonBadPayload,
			"The trade_status %q is not one Alipay documents (WAIT_BUYER_PAY, TRADE_SUCCESS, TRADE_FINISHED, TRADE_CLOSED).",
			"交易状态（trade_status）%q 不是支付宝文档中的取值（WAIT_BUYER_PAY、TRADE_SUCCESS、TRADE_FINISHED、TRADE_CLOSED）。",
			truncate(rec.NativeStatus, 32))
	}
	var err error
	if rec.CreatedAt, err = notifyTime(params, "gmt_create"); err != nil {
		return channels.Record{}, err
	}
	if rec.PaidAt, err = notifyTime(params, "gmt_payment"); err != nil {
		return channels.Record{}, err
	}

	var refundFee int64
	if s := params["refund_fee"]; s != "" {
		if refundFee, err = channels.ParseYuan(s); err != nil || refundFee < 0 {
			return channels.Record{}, payloadErr("refund_fee", whyAmount)
		}
	}
	refundNo := strings.TrimSpace(params["out_biz_no"])
	if refundFee > 0 && (refundNo != "" || params["gmt_refund"] != "") {
		if refundNo == "" {
			refundNo = rec.MerchantOrderNo
		}
		if refundNo == "" {
			return channels.Record{}, payloadErr("out_biz_no", whyRefundNo)
		}
		refundedAt, err := notifyTime(params, "gmt_refund")
		if err != nil {
			return channels.Record{}, err
		}
		rec.Kind = channels.KindRefund
		rec.PaymentRef = rec.ChannelRef
		rec.ChannelRef = rec.ChannelRef + "/" + refundNo
		rec.RefundNo = refundNo
		rec.Status = channels.StatusSucceeded
		rec.Amount = refundFee
		rec.CreatedAt, rec.RefundedAt, rec.PaidAt = refundedAt, refundedAt, time.Time{}
		return rec, nil
	}

	s := params["total_amount"]
	if s == "" {
		return channels.Record{}, payloadErr("total_amount", whyMissing)
	}
	if rec.Amount, err = channels.ParseYuan(s); err != nil || rec.Amount <= 0 {
		return channels.Record{}, payloadErr("total_amount", whyPositive)
	}
	if s := params["receipt_amount"]; s != "" {
		if rec.Amount, err = channels.ParseYuan(s); err != nil || rec.Amount < 0 {
			return channels.Record{}, payloadErr("receipt_amount", whyAmount)
		}
	}
	return rec, nil
}

// notifyTime parses a Beijing-time parameter into UTC; absent is zero.
func notifyTime(params map[string]string, name string) (time.Time, error) {
	s := strings.TrimSpace(params[name])
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation(billLayout, s, beijing)
	if err != nil {
		return time.Time{}, payloadErr(name, whyTime)
	}
	return t.UTC(), nil
}

// Why a parameter is unusable.
var (
	whyMissing  = channels.Text{EN: "it is missing", ZH: "缺失"}
	whyAmount   = channels.Text{EN: "it is not an amount in yuan", ZH: "不是有效的元金额"}
	whyPositive = channels.Text{EN: "it is not an amount in yuan above zero", ZH: "不是大于零的元金额"}
	whyTime     = channels.Text{EN: "it is not a time like 2026-03-01 09:15:02", ZH: "不是形如 2026-03-01 09:15:02 的时间"}
	whyRefundNo = channels.Text{EN: "a refund names neither out_biz_no nor out_trade_no", ZH: "退款通知中既没有 out_biz_no 也没有 out_trade_no"}
)

func payloadErr(param string, why channels.Text) *NotifyError {
	return notifyErr(ReasonBadPayload, "The notification's %s is unusable: %s.", "通知参数 %s 无法使用：%s。", param, why)
}

// truncate shortens text from a notification before it goes into a message.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
