package wechat

// This file is for tests and demo data only: it plays WeChat Pay's side of a
// notification, so that tests of other packages (the notification endpoint)
// and the demo data generator can make notifications VerifyNotification
// accepts. Nothing it makes is accepted by anyone but PayFuse configured
// with the matching test credentials (see payfuse/channels/testkeys).

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"payfuse/channels"
)

// BuildTestNotification is a test and demo helper. It returns the headers
// and body WeChat Pay would POST to notify rec (a payment or a refund in
// canonical form): the event encrypted with apiv3Key (AEAD_AES_256_GCM) and
// the request signed with platformKey under serial (the WeChat Pay public-key
// id, or the platform certificate's serial in hex), timestamped now.
// VerifyNotification, given the matching credentials and a time within
// NotificationWindow of now, returns rec again (Raw aside; Payer is the
// masked openid).
//
// The event is built back from rec: NativeStatus, or else the WeChat word for
// Status; trade_type from Raw["trade_type"], or else from Method; the payer's
// openid from Raw["payer.openid"], or else one made up from ChannelRef; the
// appid from Raw["appid"]. A payment's amount.total and payer_total are
// rec.Amount; a refund's amount.total is Raw["amount.total"] when set, else
// rec.Amount. PaidAt or RefundedAt become success_time (now when they are
// zero and the status is succeeded). It panics when it cannot sign or
// encrypt (a nil key, an APIv3 key that is not 32 bytes).
func BuildTestNotification(platformKey *rsa.PrivateKey, serial string, apiv3Key []byte, rec channels.Record, now time.Time) (http.Header, []byte) {
	var event map[string]any
	var eventType, summary, originalType string
	if rec.Kind == channels.KindRefund {
		event, eventType = testRefundEvent(rec, now)
		summary, originalType = "退款状态变更", "refund"
	} else {
		event, eventType = testTransactionEvent(rec, now)
		summary, originalType = "支付成功", "transaction"
	}
	plain, err := json.Marshal(event)
	if err != nil {
		panic(fmt.Sprintf("wechat: test notification: unable to encode the event: %v", err))
	}

	block, err := aes.NewCipher(apiv3Key)
	if err != nil {
		panic(fmt.Sprintf("wechat: test notification: unusable APIv3 key: %v", err))
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("wechat: test notification: %v", err))
	}
	nonce := randomText(gcm.NonceSize())
	ciphertext := gcm.Seal(nil, []byte(nonce), plain, []byte(originalType))

	var env envelope
	env.ID = randomUUID()
	env.CreateTime = now.In(beijing).Format(time.RFC3339)
	env.EventType = eventType
	env.ResourceType = "encrypt-resource"
	env.Summary = summary
	env.Resource.OriginalType = originalType
	env.Resource.Algorithm = "AEAD_AES_256_GCM"
	env.Resource.Ciphertext = base64.StdEncoding.EncodeToString(ciphertext)
	env.Resource.AssociatedData = originalType
	env.Resource.Nonce = nonce
	body, err := json.Marshal(env)
	if err != nil {
		panic(fmt.Sprintf("wechat: test notification: unable to encode the body: %v", err))
	}
	return SignTestNotification(platformKey, serial, body, now), body
}

// SignTestNotification is a test and demo helper: it returns the headers
// WeChat Pay would send with body, signed with platformKey under serial at
// time now, with a fresh random Wechatpay-Nonce. It panics when it cannot
// sign.
func SignTestNotification(platformKey *rsa.PrivateKey, serial string, body []byte, now time.Time) http.Header {
	ts := strconv.FormatInt(now.Unix(), 10)
	nonce := randomText(32)
	sum := sha256.Sum256([]byte(ts + "\n" + nonce + "\n" + string(body) + "\n"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, platformKey, crypto.SHA256, sum[:])
	if err != nil {
		panic(fmt.Sprintf("wechat: test notification: unable to sign: %v", err))
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(HeaderSerial, serial)
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderNonce, nonce)
	h.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	h.Set(HeaderSignatureType, signatureType)
	return h
}

func testTransactionEvent(rec channels.Record, now time.Time) (map[string]any, string) {
	state := rec.NativeStatus
	if state == "" {
		state = map[string]string{
			channels.StatusSucceeded:  "SUCCESS",
			channels.StatusPending:    "NOTPAY",
			channels.StatusProcessing: "USERPAYING",
			channels.StatusClosed:     "CLOSED",
			channels.StatusRevoked:    "REVOKED",
			channels.StatusFailed:     "PAYERROR",
		}[rec.Status]
	}
	if state == "" {
		state = "SUCCESS"
	}
	tradeType := rec.Raw["trade_type"]
	if tradeType == "" {
		tradeType = map[string]string{
			channels.MethodScan:  "NATIVE",
			channels.MethodQuick: "JSAPI",
			channels.MethodH5:    "MWEB",
			channels.MethodApp:   "APP",
		}[rec.Method]
	}
	if tradeType == "" {
		tradeType = "FACEPAY" // a real trade type with no canonical method
	}
	currency := rec.Currency
	if currency == "" {
		currency = "CNY"
	}
	ev := map[string]any{
		"appid":            valueOr(rec.Raw["appid"], "wx0123456789abcdef"),
		"mchid":            rec.AccountRef,
		"out_trade_no":     rec.MerchantOrderNo,
		"transaction_id":   rec.ChannelRef,
		"trade_type":       tradeType,
		"trade_state":      state,
		"trade_state_desc": "",
		"bank_type":        "OTHERS",
		"attach":           "",
		"payer":            map[string]any{"openid": valueOr(rec.Raw["payer.openid"], testOpenID(rec.ChannelRef))},
		"amount": map[string]any{
			"total": rec.Amount, "payer_total": rec.Amount, "currency": currency, "payer_currency": currency,
		},
	}
	if state == "SUCCESS" {
		ev["trade_state_desc"] = "支付成功"
	}
	if paid := rec.PaidAt; !paid.IsZero() || state == "SUCCESS" {
		if paid.IsZero() {
			paid = now
		}
		ev["success_time"] = paid.In(beijing).Format(time.RFC3339)
	}
	return ev, "TRANSACTION.SUCCESS"
}

func testRefundEvent(rec channels.Record, now time.Time) (map[string]any, string) {
	status := rec.NativeStatus
	if status == "" || status == "REFUND" {
		status = map[string]string{
			channels.StatusSucceeded:  "SUCCESS",
			channels.StatusProcessing: "PROCESSING",
			channels.StatusClosed:     "CLOSED",
			channels.StatusFailed:     "ABNORMAL",
		}[rec.Status]
	}
	if status == "" {
		status = "SUCCESS"
	}
	total := rec.Amount
	if t, err := strconv.ParseInt(rec.Raw["amount.total"], 10, 64); err == nil && t >= rec.Amount {
		total = t
	}
	ev := map[string]any{
		"mchid":                 rec.AccountRef,
		"out_trade_no":          rec.MerchantOrderNo,
		"transaction_id":        rec.PaymentRef,
		"out_refund_no":         rec.RefundNo,
		"refund_id":             rec.ChannelRef,
		"refund_status":         status,
		"user_received_account": "支付用户零钱",
		"amount": map[string]any{
			"total": total, "refund": rec.Amount, "payer_total": total, "payer_refund": rec.Amount,
		},
	}
	if done := rec.RefundedAt; !done.IsZero() || status == "SUCCESS" {
		if done.IsZero() {
			done = now
		}
		ev["success_time"] = done.In(beijing).Format(time.RFC3339)
	}
	return ev, "REFUND." + status
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// testOpenID makes an openid-like identity (28 characters, starting with o)
// that is the same for the same seed.
func testOpenID(seed string) string {
	sum := sha256.Sum256([]byte("payfuse test openid " + seed))
	return "o" + base64.RawURLEncoding.EncodeToString(sum[:])[:27]
}

// randomText returns n random letters and digits.
func randomText(n int) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("wechat: test notification: %v", err))
	}
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

// randomUUID returns a random version 4 UUID, the form notification ids take.
func randomUUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("wechat: test notification: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
