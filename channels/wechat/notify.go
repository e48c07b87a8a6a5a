package wechat

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"payfuse/channels"
)

// A WeChat Pay API v3 notification (支付成功回调通知, 退款结果通知) is a JSON
// POST whose headers sign it:
//
//	Wechatpay-Serial     the platform certificate serial or WeChat Pay public-key id (PUB_KEY_ID_…)
//	Wechatpay-Timestamp  Unix seconds
//	Wechatpay-Nonce      a random string
//	Wechatpay-Signature  base64 SHA256withRSA over "timestamp\nnonce\nbody\n"
//
// and whose body carries the event encrypted with the merchant's APIv3 key:
// resource.ciphertext is base64 of AEAD_AES_256_GCM output (the 16-byte tag
// appended); resource.nonce (12 characters) and resource.associated_data
// (possibly empty) are plain text, used as their bytes.

// MaxNotificationBody is the largest notification body VerifyNotification
// accepts; WeChat Pay's are a few KiB.
const MaxNotificationBody = 64 << 10

// NotificationWindow is how far a notification's timestamp may be from now:
// a timestamp this far away or further is refused.
const NotificationWindow = 5 * time.Minute

// The notification headers.
const (
	HeaderSerial        = "Wechatpay-Serial"
	HeaderSignature     = "Wechatpay-Signature"
	HeaderTimestamp     = "Wechatpay-Timestamp"
	HeaderNonce         = "Wechatpay-Nonce"
	HeaderSignatureType = "Wechatpay-Signature-Type"
)

// signatureType is the only signature scheme verified (the RSA one; WeChat
// Pay sends the header only sometimes).
const signatureType = "WECHATPAY2-SHA256-RSA2048"

// Reasons a notification is refused (NotifyError.Reason).
const (
	ReasonMissingHeader  = "missing_header"  // a signing header is absent or empty
	ReasonUnknownSerial  = "unknown_serial"  // Wechatpay-Serial names no configured key or valid certificate
	ReasonBadSignature   = "bad_signature"   // the signature is not base64 or does not verify
	ReasonStaleTimestamp = "stale_timestamp" // the timestamp is not a time within NotificationWindow of now
	ReasonDecryptFailed  = "decrypt_failed"  // the resource does not decrypt with the APIv3 key
	ReasonBadPayload     = "bad_payload"     // the body or the decrypted event is too large, malformed or unknown
	ReasonBadCredentials = "bad_credentials" // the account's own credentials cannot be used (its fault, not the sender's)
)

// NotifyError says why a notification was refused. Message is safe to log
// and show: it never quotes key material, the signature or the decrypted
// event.
type NotifyError struct {
	Reason  string // one of the Reason constants
	Message channels.Text
}

func (e *NotifyError) Error() string {
	return "wechat: notification refused (" + e.Reason + "): " + e.Message.EN
}

func refuseNotify(reason, en, zh string, args ...any) *NotifyError {
	return &NotifyError{Reason: reason, Message: channels.Textf(en, zh, args...)}
}

// Notification is a verified, decrypted WeChat Pay v3 payment (or refund)
// notification.
type Notification struct {
	ID        string    // the notification id (body "id"), the same on WeChat Pay's retries
	EventType string    // e.g. TRANSACTION.SUCCESS, REFUND.SUCCESS
	Nonce     string    // Wechatpay-Nonce, for the caller's replay check
	Timestamp time.Time // Wechatpay-Timestamp, UTC
	Record    channels.Record
}

// envelope is a notification body.
type envelope struct {
	ID           string `json:"id"`
	CreateTime   string `json:"create_time"`
	EventType    string `json:"event_type"`
	ResourceType string `json:"resource_type"`
	Summary      string `json:"summary"`
	Resource     struct {
		OriginalType   string `json:"original_type"`
		Algorithm      string `json:"algorithm"`
		Ciphertext     string `json:"ciphertext"`
		AssociatedData string `json:"associated_data"`
		Nonce          string `json:"nonce"`
	} `json:"resource"`
}

// transactionEvent is the decrypted resource of a TRANSACTION.* notification.
type transactionEvent struct {
	AppID          string `json:"appid"`
	MchID          string `json:"mchid"`
	SpMchID        string `json:"sp_mchid"`
	SubMchID       string `json:"sub_mchid"`
	OutTradeNo     string `json:"out_trade_no"`
	TransactionID  string `json:"transaction_id"`
	TradeType      string `json:"trade_type"`
	TradeState     string `json:"trade_state"`
	TradeStateDesc string `json:"trade_state_desc"`
	SuccessTime    string `json:"success_time"`
	Payer          struct {
		OpenID    string `json:"openid"`
		SpOpenID  string `json:"sp_openid"`
		SubOpenID string `json:"sub_openid"`
	} `json:"payer"`
	Amount struct {
		Total      *int64 `json:"total"`
		PayerTotal *int64 `json:"payer_total"`
		Currency   string `json:"currency"`
	} `json:"amount"`
	PromotionDetail []struct {
		Type   string `json:"type"`
		Amount int64  `json:"amount"`
	} `json:"promotion_detail"`
}

// refundEvent is the decrypted resource of a REFUND.* notification.
type refundEvent struct {
	MchID         string `json:"mchid"`
	SpMchID       string `json:"sp_mchid"`
	SubMchID      string `json:"sub_mchid"`
	OutTradeNo    string `json:"out_trade_no"`
	TransactionID string `json:"transaction_id"`
	OutRefundNo   string `json:"out_refund_no"`
	RefundID      string `json:"refund_id"`
	RefundStatus  string `json:"refund_status"`
	SuccessTime   string `json:"success_time"`
	Amount        struct {
		Total       *int64 `json:"total"`
		Refund      *int64 `json:"refund"`
		PayerTotal  *int64 `json:"payer_total"`
		PayerRefund *int64 `json:"payer_refund"`
		Currency    string `json:"currency"`
	} `json:"amount"`
}

// VerifyNotification checks a notification against an account's credentials
// (values by field name, as stored: platform_public_key with
// platform_public_key_id, and/or platform_certificate; apiv3_key) at time
// now, and decodes it. In order:
//
//   - the body is at most MaxNotificationBody bytes (else bad_payload);
//   - the four Wechatpay-* headers are there (missing_header); header names
//     match in any case;
//   - Wechatpay-Serial names the configured public-key id or the serial of
//     a configured platform certificate that is valid at now (unknown_serial);
//   - the base64 RSA signature (SHA256withRSA, PKCS #1 v1.5) over
//     "timestamp\nnonce\nbody\n" verifies with that key (bad_signature);
//   - the timestamp is less than NotificationWindow from now, either way
//     (stale_timestamp). Replays within the window are the caller's to catch,
//     by Nonce or ID;
//   - the resource decrypts (AEAD_AES_256_GCM, the APIv3 key, the resource's
//     nonce and associated_data; decrypt_failed);
//   - the event is a payment (TRANSACTION.*) or refund (REFUND.*) with the
//     fields a record needs (bad_payload).
//
// A payment event becomes a payment record: ChannelRef transaction_id,
// MerchantOrderNo out_trade_no, Status from trade_state, PaidAt success_time,
// Payer the masked openid, AccountRef mchid (sub_mchid for a service
// provider's sub-merchant), FeeKnown false. Its Amount is amount.total less
// the merchant-funded coupons (promotion_detail of type NOCASH), which is the
// money the merchant is paid and what the trade bill's 应结订单金额 says; with
// no such coupon it is amount.total. A refund event becomes a refund record:
// ChannelRef refund_id, PaymentRef transaction_id, RefundNo out_refund_no,
// Amount amount.refund, Status from refund_status, RefundedAt success_time.
// Raw holds every decrypted field (dotted paths such as "amount.total") and
// the notification's own id, event_type, create_time and summary under
// "notification.".
//
// Errors are *NotifyError. Their messages never include key material, the
// signature or the decrypted event.
func VerifyNotification(h http.Header, body []byte, creds map[string][]byte, now time.Time) (*Notification, error) {
	if len(body) > MaxNotificationBody {
		return nil, refuseNotify(ReasonBadPayload,
			"The body is %d bytes; a WeChat Pay notification is at most %d.",
			"通知报文为 %d 字节，微信支付通知不超过 %d 字节。", len(body), MaxNotificationBody)
	}
	hdr := func(name string) string { return strings.TrimSpace(headerValue(h, name)) }
	serial, sigText, tsText, nonce := hdr(HeaderSerial), hdr(HeaderSignature), hdr(HeaderTimestamp), hdr(HeaderNonce)
	var missing []string
	for _, hv := range []struct{ name, v string }{
		{HeaderSerial, serial}, {HeaderSignature, sigText}, {HeaderTimestamp, tsText}, {HeaderNonce, nonce},
	} {
		if hv.v == "" {
			missing = append(missing, hv.name)
		}
	}
	if len(missing) > 0 {
		return nil, refuseNotify(ReasonMissingHeader,
			"The request lacks the header(s) %s; it is not a signed WeChat Pay notification.",
			"请求缺少请求头 %s，不是经过签名的微信支付通知。", strings.Join(missing, ", "))
	}
	if st := hdr(HeaderSignatureType); st != "" && !strings.EqualFold(st, signatureType) {
		return nil, refuseNotify(ReasonBadSignature,
			"The signature type %q is not %s, the only one PayFuse verifies.",
			"签名类型 %q 不是 PayFuse 支持验证的 %s。", truncate(st, 40), signatureType)
	}

	key, nerr := platformKey(creds, serial, now)
	if nerr != nil {
		return nil, nerr
	}
	sig, err := base64.StdEncoding.DecodeString(sigText)
	if err != nil {
		return nil, refuseNotify(ReasonBadSignature,
			"Wechatpay-Signature is not base64.", "Wechatpay-Signature 不是 base64 编码。")
	}
	digest := sha256.New()
	digest.Write([]byte(tsText + "\n" + nonce + "\n"))
	digest.Write(body)
	digest.Write([]byte("\n"))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest.Sum(nil), sig); err != nil {
		return nil, refuseNotify(ReasonBadSignature,
			"The signature does not verify with the key Wechatpay-Serial names: the request was not signed by WeChat Pay, or was changed on the way.",
			"签名无法用 Wechatpay-Serial 指明的密钥验证通过：请求并非微信支付签发，或在传输中被篡改。")
	}

	secs, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || secs < 0 || secs > 1<<40 {
		return nil, refuseNotify(ReasonStaleTimestamp,
			"Wechatpay-Timestamp is not a Unix time in seconds.", "Wechatpay-Timestamp 不是以秒为单位的 Unix 时间。")
	}
	ts := time.Unix(secs, 0).UTC()
	if d := now.Sub(ts); d >= NotificationWindow || d <= -NotificationWindow {
		return nil, refuseNotify(ReasonStaleTimestamp,
			"The notification is timestamped %s, %s away from now (%s); more than %s away is refused.",
			"通知时间戳为 %s，与当前时间 %s 相差 %s；相差超过 %s 的通知将被拒绝。",
			ts.Format(time.RFC3339), now.UTC().Format(time.RFC3339), absDuration(now.Sub(ts)), NotificationWindow)
	}

	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, refuseNotify(ReasonBadPayload,
			"The body is not the JSON of a WeChat Pay notification.", "通知报文不是微信支付通知的 JSON 格式。")
	}
	kind := ""
	switch {
	case strings.HasPrefix(env.EventType, "TRANSACTION."):
		kind = channels.KindPayment
	case strings.HasPrefix(env.EventType, "REFUND."):
		kind = channels.KindRefund
	default:
		return nil, refuseNotify(ReasonBadPayload,
			"The event type %q is not a payment (TRANSACTION.*) or refund (REFUND.*) notification.",
			"通知类型 %q 不是支付（TRANSACTION.*）或退款（REFUND.*）通知。", truncate(env.EventType, 40))
	}
	if env.ID == "" || env.Resource.Ciphertext == "" {
		return nil, refuseNotify(ReasonBadPayload,
			"The notification lacks its id or resource.ciphertext.", "通知缺少 id 或 resource.ciphertext。")
	}
	if env.Resource.Algorithm != "AEAD_AES_256_GCM" {
		return nil, refuseNotify(ReasonBadPayload,
			"The resource is encrypted with %q; PayFuse decrypts AEAD_AES_256_GCM only.",
			"通知资源的加密算法为 %q；PayFuse 仅支持 AEAD_AES_256_GCM。", truncate(env.Resource.Algorithm, 40))
	}

	plain, nerr := decryptResource(creds["apiv3_key"], env.Resource.Nonce, env.Resource.AssociatedData, env.Resource.Ciphertext)
	if nerr != nil {
		return nil, nerr
	}
	raw, err := flattenJSON(plain)
	if err != nil {
		return nil, refuseNotify(ReasonBadPayload,
			"The decrypted event is not a JSON object.", "解密后的通知内容不是 JSON 对象。")
	}
	raw["notification.id"] = env.ID
	raw["notification.event_type"] = env.EventType
	raw["notification.create_time"] = env.CreateTime
	raw["notification.summary"] = env.Summary

	var rec channels.Record
	if kind == channels.KindPayment {
		rec, nerr = transactionRecord(plain)
	} else {
		rec, nerr = refundRecord(plain)
	}
	if nerr != nil {
		return nil, nerr
	}
	rec.Raw = raw
	return &Notification{ID: env.ID, EventType: env.EventType, Nonce: nonce, Timestamp: ts, Record: rec}, nil
}

// headerValue looks a header up case-insensitively: through Get for a
// canonical http.Header, and by comparing names for maps filled by hand.
func headerValue(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, name) {
			return vs[0]
		}
	}
	return ""
}

// platformKey finds the verification key Wechatpay-Serial names.
func platformKey(creds map[string][]byte, serial string, now time.Time) (*rsa.PublicKey, *NotifyError) {
	keyID := strings.TrimSpace(string(creds["platform_public_key_id"]))
	pem := creds["platform_public_key"]
	if keyID != "" && serial == keyID {
		k, err := channels.ParsePublicKey(pem)
		if err != nil {
			return nil, refuseNotify(ReasonBadCredentials,
				"The account's WeChat Pay public key cannot be read; check the channel account's credentials.",
				"该账户的微信支付公钥无法读取，请检查渠道账户的凭据。")
		}
		return k, nil
	}
	certPEM := creds["platform_certificate"]
	if len(bytes.TrimSpace(certPEM)) == 0 {
		if len(bytes.TrimSpace(pem)) == 0 {
			return nil, refuseNotify(ReasonBadCredentials,
				"The account has neither a WeChat Pay public key nor a platform certificate to verify notifications with.",
				"该账户既没有微信支付公钥，也没有平台证书，无法验证通知。")
		}
		return nil, unknownSerial(serial)
	}
	certs, err := channels.ParseCertificates(certPEM)
	if err != nil {
		return nil, refuseNotify(ReasonBadCredentials,
			"The account's WeChat Pay platform certificate cannot be read; check the channel account's credentials.",
			"该账户的微信支付平台证书无法读取，请检查渠道账户的凭据。")
	}
	want, ok := new(big.Int).SetString(serial, 16)
	if !ok {
		return nil, unknownSerial(serial)
	}
	for _, c := range certs {
		if c.SerialNumber == nil || c.SerialNumber.Cmp(want) != 0 {
			continue
		}
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return nil, refuseNotify(ReasonUnknownSerial,
				"The platform certificate with serial %s is not valid now (valid %s to %s); update the account's platform certificate.",
				"序列号为 %s 的平台证书当前不在有效期内（%s 至 %s），请更新该账户的平台证书。",
				truncate(serial, 64), c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly))
		}
		k, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok || c.PublicKeyAlgorithm != x509.RSA {
			return nil, refuseNotify(ReasonBadCredentials,
				"The platform certificate with serial %s does not hold an RSA key.",
				"序列号为 %s 的平台证书不含 RSA 公钥。", truncate(serial, 64))
		}
		return k, nil
	}
	return nil, unknownSerial(serial)
}

func unknownSerial(serial string) *NotifyError {
	return refuseNotify(ReasonUnknownSerial,
		"Wechatpay-Serial %q names neither the account's WeChat Pay public key id nor one of its platform certificates. If WeChat Pay has switched keys, update the account's credentials.",
		"Wechatpay-Serial %q 既不是该账户的微信支付公钥ID，也不是其平台证书的序列号。若微信支付已更换密钥，请更新该账户的凭据。",
		truncate(serial, 64))
}

// decryptResource opens an AEAD_AES_256_GCM resource with the APIv3 key.
func decryptResource(key []byte, nonce, associatedData, ciphertext string) ([]byte, *NotifyError) {
	if len(key) != APIv3KeySize {
		return nil, refuseNotify(ReasonBadCredentials,
			"The account's APIv3 key is not %d bytes; check the channel account's credentials.",
			"该账户的APIv3密钥不是 %d 字节，请检查渠道账户的凭据。", APIv3KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, refuseNotify(ReasonBadCredentials, "The APIv3 key cannot be used.", "APIv3密钥无法使用。")
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, refuseNotify(ReasonBadCredentials, "The APIv3 key cannot be used.", "APIv3密钥无法使用。")
	}
	if len(nonce) != gcm.NonceSize() {
		return nil, refuseNotify(ReasonDecryptFailed,
			"resource.nonce is %d bytes; AEAD_AES_256_GCM needs %d.",
			"resource.nonce 为 %d 字节，AEAD_AES_256_GCM 需要 %d 字节。", len(nonce), gcm.NonceSize())
	}
	ct, err := base64.StdEncoding.DecodeString(ciphertext)
	if err != nil {
		return nil, refuseNotify(ReasonDecryptFailed,
			"resource.ciphertext is not base64.", "resource.ciphertext 不是 base64 编码。")
	}
	plain, err := gcm.Open(nil, []byte(nonce), ct, []byte(associatedData))
	if err != nil {
		return nil, refuseNotify(ReasonDecryptFailed,
			"The resource does not decrypt with the account's APIv3 key: the key is wrong, or the resource was changed.",
			"无法用该账户的APIv3密钥解密通知资源：密钥有误，或资源已被篡改。")
	}
	return plain, nil
}

// badEvent refuses a decrypted event that cannot make a record; en and zh
// complete "The decrypted event …". They name fields, never their values.
func badEvent(en, zh string) *NotifyError {
	return &NotifyError{Reason: ReasonBadPayload, Message: channels.Text{
		EN: "The decrypted event " + en + ".",
		ZH: "解密后的通知内容" + zh + "。",
	}}
}

// transactionRecord decodes a TRANSACTION.* event.
func transactionRecord(plain []byte) (channels.Record, *NotifyError) {
	var ev transactionEvent
	if err := json.Unmarshal(plain, &ev); err != nil {
		return channels.Record{}, badEvent("is not a transaction", "不是交易数据")
	}
	rec := channels.Record{
		Channel:         Code,
		Kind:            channels.KindPayment,
		ChannelRef:      strings.TrimSpace(ev.TransactionID),
		MerchantOrderNo: strings.TrimSpace(ev.OutTradeNo),
		Method:          tradeTypeMethod(ev.TradeType),
		NativeStatus:    strings.ToUpper(strings.TrimSpace(ev.TradeState)),
		AccountRef:      firstNonEmpty(ev.SubMchID, ev.MchID),
		Payer:           channels.MaskPayer(firstNonEmpty(ev.Payer.SubOpenID, ev.Payer.OpenID, ev.Payer.SpOpenID)),
	}
	switch {
	case rec.ChannelRef == "":
		return rec, badEvent("lacks transaction_id", "缺少 transaction_id")
	case rec.MerchantOrderNo == "":
		return rec, badEvent("lacks out_trade_no", "缺少 out_trade_no")
	case rec.AccountRef == "":
		return rec, badEvent("lacks the merchant id (mchid or sub_mchid)", "缺少商户号（mchid 或 sub_mchid）")
	case ev.Amount.Total == nil:
		return rec, badEvent("lacks amount.total", "缺少 amount.total")
	case *ev.Amount.Total <= 0:
		return rec, badEvent("has an amount that is not positive", "中的金额不是正数")
	case ev.Amount.PayerTotal != nil && *ev.Amount.PayerTotal < 0:
		return rec, badEvent("has a payer amount that is negative", "中的用户支付或退款金额为负数")
	case ev.Amount.PayerTotal != nil && *ev.Amount.PayerTotal > *ev.Amount.Total:
		return rec, badEvent("has a payer_total larger than amount.total", "中的 payer_total 大于 amount.total")
	}
	var ok bool
	if rec.Status, ok = tradeStateStatus(rec.NativeStatus); !ok {
		return rec, badEvent("has a trade_state PayFuse does not know", "中的 trade_state 无法识别")
	}
	if rec.Currency, ok = normalizeCurrency(ev.Amount.Currency); !ok {
		return rec, badEvent("has a currency that is not an ISO 4217 code", "中的币种不是 ISO 4217 代码")
	}
	// What the merchant is paid: the order total less merchant-funded
	// (免充值, NOCASH) coupons, as the bill's 应结订单金额 = 订单金额 − 非充值代金券金额.
	rec.Amount = *ev.Amount.Total
	for _, pd := range ev.PromotionDetail {
		if strings.EqualFold(strings.TrimSpace(pd.Type), "NOCASH") {
			if pd.Amount < 0 || pd.Amount > rec.Amount {
				return rec, badEvent("has a NOCASH coupon amount that does not fit the order", "中的免充值代金券金额与订单金额不符")
			}
			rec.Amount -= pd.Amount
		}
	}
	paidAt, nerr := eventTime(ev.SuccessTime)
	if nerr != nil {
		return rec, nerr
	}
	if rec.Status == channels.StatusSucceeded {
		if paidAt.IsZero() {
			return rec, badEvent("lacks success_time", "缺少 success_time")
		}
		rec.PaidAt = paidAt
	}
	return rec, nil
}

// refundRecord decodes a REFUND.* event.
func refundRecord(plain []byte) (channels.Record, *NotifyError) {
	var ev refundEvent
	if err := json.Unmarshal(plain, &ev); err != nil {
		return channels.Record{}, badEvent("is not a refund", "不是退款数据")
	}
	rec := channels.Record{
		Channel:         Code,
		Kind:            channels.KindRefund,
		ChannelRef:      strings.TrimSpace(ev.RefundID),
		PaymentRef:      strings.TrimSpace(ev.TransactionID),
		MerchantOrderNo: strings.TrimSpace(ev.OutTradeNo),
		RefundNo:        strings.TrimSpace(ev.OutRefundNo),
		NativeStatus:    strings.ToUpper(strings.TrimSpace(ev.RefundStatus)),
		AccountRef:      firstNonEmpty(ev.SubMchID, ev.MchID),
	}
	switch {
	case rec.ChannelRef == "":
		return rec, badEvent("lacks refund_id", "缺少 refund_id")
	case rec.PaymentRef == "":
		return rec, badEvent("lacks transaction_id", "缺少 transaction_id")
	case rec.RefundNo == "":
		return rec, badEvent("lacks out_refund_no", "缺少 out_refund_no")
	case rec.AccountRef == "":
		return rec, badEvent("lacks the merchant id (mchid or sub_mchid)", "缺少商户号（mchid 或 sub_mchid）")
	case ev.Amount.Refund == nil:
		return rec, badEvent("lacks amount.refund", "缺少 amount.refund")
	case *ev.Amount.Refund <= 0:
		return rec, badEvent("has an amount that is not positive", "中的金额不是正数")
	case ev.Amount.Total != nil && *ev.Amount.Refund > *ev.Amount.Total:
		return rec, badEvent("has a refund larger than the order amount", "中的退款金额大于订单金额")
	case ev.Amount.PayerRefund != nil && *ev.Amount.PayerRefund < 0,
		ev.Amount.PayerTotal != nil && *ev.Amount.PayerTotal < 0:
		return rec, badEvent("has a payer amount that is negative", "中的用户支付或退款金额为负数")
	}
	var ok bool
	// An empty refund_status is not "succeeded" here: every refund
	// notification carries one.
	if rec.NativeStatus == "" {
		return rec, badEvent("has a refund_status PayFuse does not know", "中的 refund_status 无法识别")
	}
	if rec.Status, ok = refundStatus(rec.NativeStatus); !ok {
		return rec, badEvent("has a refund_status PayFuse does not know", "中的 refund_status 无法识别")
	}
	if rec.Currency, ok = normalizeCurrency(ev.Amount.Currency); !ok {
		return rec, badEvent("has a currency that is not an ISO 4217 code", "中的币种不是 ISO 4217 代码")
	}
	rec.Amount = *ev.Amount.Refund
	at, nerr := eventTime(ev.SuccessTime)
	if nerr != nil {
		return rec, nerr
	}
	if rec.Status == channels.StatusSucceeded {
		if at.IsZero() {
			return rec, badEvent("lacks success_time", "缺少 success_time")
		}
		rec.RefundedAt = at
	}
	return rec, nil
}

// eventTime reads an RFC 3339 time ("2018-06-08T10:34:56+08:00") as UTC; ""
// gives the zero time.
func eventTime(s string) (time.Time, *NotifyError) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, badEvent("has a success_time that is not RFC 3339", "中的 success_time 不是 RFC 3339 时间")
	}
	return t.UTC(), nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// flattenJSON turns a JSON object into dotted paths and their values as
// text: {"amount":{"total":100}} gives "amount.total" = "100"; array
// elements are numbered ("promotion_detail.0.amount"); null gives "".
func flattenJSON(b []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	out := make(map[string]string)
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(joinPath(prefix, k), e)
			}
		case []any:
			for i, e := range x {
				walk(joinPath(prefix, strconv.Itoa(i)), e)
			}
		case string:
			out[prefix] = x
		case json.Number:
			out[prefix] = x.String()
		case bool:
			out[prefix] = strconv.FormatBool(x)
		case nil:
			out[prefix] = ""
		}
	}
	walk("", v)
	return out, nil
}

func joinPath(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}
