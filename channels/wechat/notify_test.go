package wechat_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/testkeys"
	"payfuse/channels/wechat"
)

var notifyNow = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

// notifyKeys is a WeChat Pay side for the tests: the private halves of the
// account's WeChat Pay public key and platform certificate, and the account's
// credentials that hold their public halves.
type notifyKeys struct {
	platform   *rsa.PrivateKey // signs under the public-key id
	certKey    *rsa.PrivateKey // signs under the certificate serial
	keyID      string
	certSerial string
	creds      map[string][]byte
}

var testNotifyKeys = sync.OnceValue(func() notifyKeys {
	creds := testkeys.Credentials(wechat.Code, notifyNow)
	platform, certKey := testkeys.RSAKey(testkeys.Bits), testkeys.RSAKey(testkeys.Bits)
	certPEM := testkeys.CertPEM(certKey, "PayFuse test WeChat Pay platform certificate", notifyNow.Add(-time.Hour), notifyNow.AddDate(1, 0, 0))
	creds["platform_public_key"] = testkeys.PublicKeyPEM(&platform.PublicKey)
	creds["platform_certificate"] = certPEM
	return notifyKeys{
		platform: platform, certKey: certKey,
		keyID:      string(creds["platform_public_key_id"]),
		certSerial: certSerial(certPEM),
		creds:      creds,
	}
})

func certSerial(certPEM []byte) string {
	blk, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("%X", c.SerialNumber)
}

// credsWith returns a copy of the test credentials with changes; nil deletes.
func credsWith(changes map[string][]byte) map[string][]byte {
	c := maps.Clone(testNotifyKeys().creds)
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func testPayment() channels.Record {
	return channels.Record{
		Channel: "wechat", Kind: "payment", ChannelRef: "4200002851202603010000000001", MerchantOrderNo: "PF20260301000001",
		Method: "quick", Status: "succeeded", NativeStatus: "SUCCESS", Amount: 12345, Currency: "CNY",
		AccountRef: "1612345678", PaidAt: notifyNow.Add(-30 * time.Second),
		Raw: map[string]string{"payer.openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
	}
}

func testRefund() channels.Record {
	return channels.Record{
		Channel: "wechat", Kind: "refund", ChannelRef: "50300908172026030100000000001", PaymentRef: "4200002851202603010000000001",
		MerchantOrderNo: "PF20260301000001", RefundNo: "RF20260301000001", Status: "succeeded", NativeStatus: "SUCCESS",
		Amount: 2345, Currency: "CNY", AccountRef: "1612345678", RefundedAt: notifyNow.Add(-10 * time.Second),
		Raw: map[string]string{"amount.total": "12345"},
	}
}

// sealEvent wraps plaintext as WeChat Pay does: encrypted with key under a
// fresh 12-character nonce, in a notification body of the given event type.
func sealEvent(t testing.TB, key []byte, eventType string, plaintext []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, _ := cipher.NewGCM(block)
	nonce := "n0nce12chars"
	body, err := json.Marshal(map[string]any{
		"id": "EV-2026030110000001", "create_time": "2026-03-01T10:00:00+08:00", "resource_type": "encrypt-resource",
		"event_type": eventType, "summary": "支付成功",
		"resource": map[string]string{
			"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM", "associated_data": "transaction", "nonce": nonce,
			"ciphertext": base64.StdEncoding.EncodeToString(gcm.Seal(nil, []byte(nonce), plaintext, []byte("transaction"))),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// notifyErr checks that err is a *NotifyError with a safe, bilingual message
// and returns its reason.
func notifyErr(t *testing.T, err error) string {
	t.Helper()
	var ne *wechat.NotifyError
	if !errors.As(err, &ne) {
		t.Fatalf("err = %v (%T), want a *wechat.NotifyError", err, err)
	}
	if ne.Message.EN == "" || ne.Message.ZH == "" {
		t.Errorf("message lacks a language: %+v", ne.Message)
	}
	k := testNotifyKeys()
	for _, secret := range []string{string(k.creds["apiv3_key"]), "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "4200002851202603010000000001", "PF20260301000001"} {
		if strings.Contains(ne.Error(), secret) || strings.Contains(ne.Message.ZH, secret) {
			t.Errorf("message %q quotes a secret or the decrypted event", ne.Error())
		}
	}
	return ne.Reason
}

func TestVerifyNotificationPayment(t *testing.T) {
	k := testNotifyKeys()
	h, body := wechat.BuildTestNotification(k.platform, k.keyID, k.creds["apiv3_key"], testPayment(), notifyNow)
	n, err := wechat.VerifyNotification(h, body, k.creds, notifyNow)
	if err != nil {
		t.Fatal(err)
	}
	want := channels.Record{
		Channel: "wechat", Kind: "payment", ChannelRef: "4200002851202603010000000001", MerchantOrderNo: "PF20260301000001",
		Method: "quick", Status: "succeeded", NativeStatus: "SUCCESS", Amount: 12345, Currency: "CNY",
		Payer: channels.MaskPayer("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"), AccountRef: "1612345678",
		PaidAt: notifyNow.Add(-30 * time.Second),
	}
	if got := withoutRaw(n.Record); !reflect.DeepEqual(got, want) {
		t.Errorf("record\n got %+v\nwant %+v", got, want)
	}
	if n.EventType != "TRANSACTION.SUCCESS" || n.ID == "" || n.Nonce != h.Get("Wechatpay-Nonce") || !n.Timestamp.Equal(notifyNow) {
		t.Errorf("notification %q %q %q %v", n.EventType, n.ID, n.Nonce, n.Timestamp)
	}
	for key, v := range map[string]string{
		"transaction_id": "4200002851202603010000000001", "amount.total": "12345", "payer.openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
		"trade_type": "JSAPI", "notification.id": n.ID, "notification.event_type": "TRANSACTION.SUCCESS",
	} {
		if n.Record.Raw[key] != v {
			t.Errorf("Raw[%q] = %q, want %q", key, n.Record.Raw[key], v)
		}
	}
	if n.Record.FeeKnown {
		t.Error("a notification does not know the fee")
	}
}

func TestVerifyNotificationRefund(t *testing.T) {
	k := testNotifyKeys()
	h, body := wechat.BuildTestNotification(k.platform, k.keyID, k.creds["apiv3_key"], testRefund(), notifyNow)
	n, err := wechat.VerifyNotification(h, body, k.creds, notifyNow)
	if err != nil {
		t.Fatal(err)
	}
	want := testRefund()
	want.Raw = nil
	if got := withoutRaw(n.Record); !reflect.DeepEqual(got, want) {
		t.Errorf("record\n got %+v\nwant %+v", got, want)
	}
	if n.EventType != "REFUND.SUCCESS" || n.Record.Raw["amount.total"] != "12345" {
		t.Errorf("event %q, Raw %v", n.EventType, n.Record.Raw)
	}
}

// TestNotificationsAgreeWithTheBill builds a notification of every record of
// the ALL bill and checks that it decodes to the same payment or refund.
func TestNotificationsAgreeWithTheBill(t *testing.T) {
	k := testNotifyKeys()
	recs, _, err := parseBill(readBill(t, "all.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		h, body := wechat.BuildTestNotification(k.platform, k.keyID, k.creds["apiv3_key"], r, notifyNow)
		n, err := wechat.VerifyNotification(h, body, k.creds, notifyNow)
		if err != nil {
			t.Fatalf("%s %s: %v", r.Kind, r.ChannelRef, err)
		}
		got := n.Record
		type key struct {
			Kind, ChannelRef, PaymentRef, MerchantOrderNo, RefundNo, Method, Status, Currency, AccountRef string
			Amount                                                                                        int64
			PaidAt, RefundedAt                                                                            time.Time
		}
		g := key{got.Kind, got.ChannelRef, got.PaymentRef, got.MerchantOrderNo, got.RefundNo, got.Method, got.Status, got.Currency, got.AccountRef, got.Amount, got.PaidAt, got.RefundedAt}
		w := key{r.Kind, r.ChannelRef, r.PaymentRef, r.MerchantOrderNo, r.RefundNo, r.Method, r.Status, r.Currency, r.AccountRef, r.Amount, r.PaidAt, r.RefundedAt}
		if r.Kind == channels.KindRefund {
			w.Method = "" // refund notifications do not say how the payment was made
		}
		if g != w {
			t.Errorf("bill and notification disagree\nnotification %+v\n        bill %+v", g, w)
		}
	}
}

func TestVerifyNotificationMerchantCoupon(t *testing.T) {
	k := testNotifyKeys()
	event := `{"mchid":"1612345678","appid":"wx2b4c6d8e0f1a3b5c","out_trade_no":"PF1","transaction_id":"4200000009",
		"trade_type":"NATIVE","trade_state":"SUCCESS","success_time":"2026-03-01T09:59:00+08:00","payer":{"openid":"o1234567"},
		"amount":{"total":5000,"payer_total":4000,"currency":"CNY","payer_currency":"CNY"},
		"promotion_detail":[{"coupon_id":"C1","type":"NOCASH","amount":500},{"coupon_id":"C2","type":"CASH","amount":500}]}`
	body := sealEvent(t, k.creds["apiv3_key"], "TRANSACTION.SUCCESS", []byte(event))
	n, err := wechat.VerifyNotification(wechat.SignTestNotification(k.platform, k.keyID, body, notifyNow), body, k.creds, notifyNow)
	if err != nil {
		t.Fatal(err)
	}
	// 应结订单金额 = 订单金额 − 免充值券: the CASH coupon is WeChat Pay's money, paid to the merchant.
	if n.Record.Amount != 4500 || n.Record.Raw["amount.total"] != "5000" || n.Record.Raw["promotion_detail.0.type"] != "NOCASH" {
		t.Errorf("Amount %d, Raw %v", n.Record.Amount, n.Record.Raw)
	}
	if want := time.Date(2026, 3, 1, 1, 59, 0, 0, time.UTC); !n.Record.PaidAt.Equal(want) || n.Record.PaidAt.Location() != time.UTC {
		t.Errorf("PaidAt = %v, want %v", n.Record.PaidAt, want)
	}
}

func TestVerifyNotificationAccepts(t *testing.T) {
	k := testNotifyKeys()
	key := k.creds["apiv3_key"]
	certOnly := credsWith(map[string][]byte{"platform_public_key": nil, "platform_public_key_id": nil})
	keyOnly := credsWith(map[string][]byte{"platform_certificate": nil})
	cases := []struct {
		name   string
		signer *rsa.PrivateKey
		serial string
		creds  map[string][]byte
		at     time.Time // signing time
		edit   func(http.Header) http.Header
	}{
		{"public key", k.platform, k.keyID, keyOnly, notifyNow, nil},
		{"platform certificate only", k.certKey, k.certSerial, certOnly, notifyNow, nil},
		{"certificate serial in lower case", k.certKey, strings.ToLower(k.certSerial), certOnly, notifyNow, nil},
		{"certificate while both are configured", k.certKey, k.certSerial, k.creds, notifyNow, nil},
		{"public key while both are configured", k.platform, k.keyID, k.creds, notifyNow, nil},
		{"4m59s old", k.platform, k.keyID, k.creds, notifyNow.Add(-4*time.Minute - 59*time.Second), nil},
		{"4m59s ahead", k.platform, k.keyID, k.creds, notifyNow.Add(4*time.Minute + 59*time.Second), nil},
		{"header names in any case", k.platform, k.keyID, k.creds, notifyNow, func(h http.Header) http.Header {
			out := http.Header{}
			for name, vs := range h {
				out[strings.ToLower(name)] = vs // a map filled by hand, not through Set
			}
			return out
		}},
		{"no signature type header", k.platform, k.keyID, k.creds, notifyNow, func(h http.Header) http.Header {
			h.Del("Wechatpay-Signature-Type")
			return h
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, body := wechat.BuildTestNotification(c.signer, c.serial, key, testPayment(), c.at)
			if c.edit != nil {
				h = c.edit(h)
			}
			n, err := wechat.VerifyNotification(h, body, c.creds, notifyNow)
			if err != nil {
				t.Fatal(err)
			}
			if n.Record.ChannelRef != testPayment().ChannelRef {
				t.Errorf("record %+v", withoutRaw(n.Record))
			}
		})
	}
}

func TestVerifyNotificationRefuses(t *testing.T) {
	k := testNotifyKeys()
	key := k.creds["apiv3_key"]
	valid := func() (http.Header, []byte) {
		return wechat.BuildTestNotification(k.platform, k.keyID, key, testPayment(), notifyNow)
	}
	// signed returns a body re-signed as WeChat Pay would, so that only the
	// body's content is wrong.
	signed := func(body []byte) (http.Header, []byte) {
		return wechat.SignTestNotification(k.platform, k.keyID, body, notifyNow), body
	}
	event := func(eventType, plaintext string) func() (http.Header, []byte) {
		return func() (http.Header, []byte) { return signed(sealEvent(t, key, eventType, []byte(plaintext))) }
	}
	expiredCert := testkeys.CertPEM(k.certKey, "expired", notifyNow.AddDate(-1, 0, 0), notifyNow.Add(-time.Minute))
	otherKey := testkeys.RSAKey(testkeys.Bits)

	cases := []struct {
		name   string
		build  func() (http.Header, []byte)
		creds  map[string][]byte
		reason string
	}{
		{"tampered body", func() (http.Header, []byte) {
			h, body := valid()
			return h, bytes.Replace(body, []byte(`"encrypt-resource"`), []byte(`"encrypt-resourcE"`), 1)
		}, nil, "bad_signature"},
		{"signed by another key", func() (http.Header, []byte) {
			return wechat.BuildTestNotification(otherKey, k.keyID, key, testPayment(), notifyNow)
		}, nil, "bad_signature"},
		{"signature of another body", func() (http.Header, []byte) {
			h, _ := valid()
			_, other := valid()
			return h, other
		}, nil, "bad_signature"},
		{"signature not base64", func() (http.Header, []byte) {
			h, body := valid()
			h.Set("Wechatpay-Signature", "not*base64!")
			return h, body
		}, nil, "bad_signature"},
		{"signature probe", func() (http.Header, []byte) {
			h, body := valid()
			h.Set("Wechatpay-Signature", "WECHATPAY/SIGNTEST/"+h.Get("Wechatpay-Signature"))
			return h, body
		}, nil, "bad_signature"},
		{"another signature type", func() (http.Header, []byte) {
			h, body := valid()
			h.Set("Wechatpay-Signature-Type", "WECHATPAY2-SM2-WITH-SM3")
			return h, body
		}, nil, "bad_signature"},
		{"timestamp changed after signing", func() (http.Header, []byte) {
			h, body := valid()
			h.Set("Wechatpay-Timestamp", strconv.FormatInt(notifyNow.Unix()+1, 10))
			return h, body
		}, nil, "bad_signature"},
		{"5 minutes old", func() (http.Header, []byte) {
			return wechat.BuildTestNotification(k.platform, k.keyID, key, testPayment(), notifyNow.Add(-5*time.Minute))
		}, nil, "stale_timestamp"},
		{"5 minutes ahead", func() (http.Header, []byte) {
			return wechat.BuildTestNotification(k.platform, k.keyID, key, testPayment(), notifyNow.Add(5*time.Minute))
		}, nil, "stale_timestamp"},
		{"a day old", func() (http.Header, []byte) {
			return wechat.BuildTestNotification(k.platform, k.keyID, key, testPayment(), notifyNow.AddDate(0, 0, -1))
		}, nil, "stale_timestamp"},
		{"unknown serial", func() (http.Header, []byte) {
			return wechat.BuildTestNotification(k.platform, "PUB_KEY_ID_0114232019112100000000000000000000", key, testPayment(), notifyNow)
		}, nil, "unknown_serial"},
		{"unknown certificate serial", func() (http.Header, []byte) {
			return wechat.BuildTestNotification(k.certKey, "5157F09EFDC096DE15EBE81A47057A7232F1B8E1", key, testPayment(), notifyNow)
		}, nil, "unknown_serial"},
		{"public key id on a certificate-only account", func() (http.Header, []byte) {
			return valid()
		}, credsWith(map[string][]byte{"platform_public_key": nil, "platform_public_key_id": nil}), "unknown_serial"},
		{"expired platform certificate", func() (http.Header, []byte) {
			return wechat.BuildTestNotification(k.certKey, certSerial(expiredCert), key, testPayment(), notifyNow)
		}, credsWith(map[string][]byte{"platform_certificate": expiredCert}), "unknown_serial"},
		{"wrong APIv3 key", func() (http.Header, []byte) {
			return wechat.BuildTestNotification(k.platform, k.keyID, []byte("0123456789abcdefABCDEF0123456789"), testPayment(), notifyNow)
		}, nil, "decrypt_failed"},
		{"ciphertext not base64", func() (http.Header, []byte) {
			_, body := valid()
			var env map[string]any
			json.Unmarshal(body, &env)
			env["resource"].(map[string]any)["ciphertext"] = "@@not base64@@"
			b, _ := json.Marshal(env)
			return signed(b)
		}, nil, "decrypt_failed"},
		{"ciphertext changed", func() (http.Header, []byte) {
			_, body := valid()
			var env map[string]any
			json.Unmarshal(body, &env)
			res := env["resource"].(map[string]any)
			ct, _ := base64.StdEncoding.DecodeString(res["ciphertext"].(string))
			ct[0] ^= 1
			res["ciphertext"] = base64.StdEncoding.EncodeToString(ct)
			b, _ := json.Marshal(env)
			return signed(b)
		}, nil, "decrypt_failed"},
		{"associated data changed", func() (http.Header, []byte) {
			_, body := valid()
			return signed(bytes.Replace(body, []byte(`"associated_data":"transaction"`), []byte(`"associated_data":"refund"`), 1))
		}, nil, "decrypt_failed"},
		{"nonce of the wrong size", func() (http.Header, []byte) {
			_, body := valid()
			var env map[string]any
			json.Unmarshal(body, &env)
			env["resource"].(map[string]any)["nonce"] = "short"
			b, _ := json.Marshal(env)
			return signed(b)
		}, nil, "decrypt_failed"},
		{"missing Wechatpay-Serial", func() (http.Header, []byte) {
			h, body := valid()
			h.Del("Wechatpay-Serial")
			return h, body
		}, nil, "missing_header"},
		{"missing Wechatpay-Signature", func() (http.Header, []byte) {
			h, body := valid()
			h.Del("Wechatpay-Signature")
			return h, body
		}, nil, "missing_header"},
		{"missing Wechatpay-Timestamp", func() (http.Header, []byte) {
			h, body := valid()
			h.Del("Wechatpay-Timestamp")
			return h, body
		}, nil, "missing_header"},
		{"empty Wechatpay-Nonce", func() (http.Header, []byte) {
			h, body := valid()
			h.Set("Wechatpay-Nonce", " ")
			return h, body
		}, nil, "missing_header"},
		{"no headers", func() (http.Header, []byte) {
			_, body := valid()
			return nil, body
		}, nil, "missing_header"},
		{"body too large", func() (http.Header, []byte) {
			return signed(append([]byte(`{"padding":"`), bytes.Repeat([]byte("x"), 64<<10)...))
		}, nil, "bad_payload"},
		{"body not JSON", func() (http.Header, []byte) { return signed([]byte("hello")) }, nil, "bad_payload"},
		{"unknown event type", event("MCHTRANSFER.BILL.FINISHED", `{}`), nil, "bad_payload"},
		{"another algorithm", func() (http.Header, []byte) {
			_, body := valid()
			return signed(bytes.Replace(body, []byte("AEAD_AES_256_GCM"), []byte("AEAD_SM4_GCM"), 1))
		}, nil, "bad_payload"},
		{"event not JSON", event("TRANSACTION.SUCCESS", `not json`), nil, "bad_payload"},
		{"event without transaction_id", event("TRANSACTION.SUCCESS",
			`{"mchid":"1612345678","out_trade_no":"PF20260301000001","trade_state":"SUCCESS","success_time":"2026-03-01T10:00:00+08:00","amount":{"total":1}}`), nil, "bad_payload"},
		{"event without amount", event("TRANSACTION.SUCCESS",
			`{"mchid":"1612345678","out_trade_no":"PF20260301000001","transaction_id":"4200002851202603010000000001","trade_state":"SUCCESS","success_time":"2026-03-01T10:00:00+08:00"}`), nil, "bad_payload"},
		{"event with a fractional amount", event("TRANSACTION.SUCCESS",
			`{"mchid":"1612345678","out_trade_no":"PF20260301000001","transaction_id":"4200002851202603010000000001","trade_state":"SUCCESS","success_time":"2026-03-01T10:00:00+08:00","amount":{"total":1.5}}`), nil, "bad_payload"},
		{"event with an unknown trade_state", event("TRANSACTION.SUCCESS",
			`{"mchid":"1612345678","out_trade_no":"PF20260301000001","transaction_id":"4200002851202603010000000001","trade_state":"MAYBE","amount":{"total":100}}`), nil, "bad_payload"},
		{"event with a bad success_time", event("TRANSACTION.SUCCESS",
			`{"mchid":"1612345678","out_trade_no":"PF20260301000001","transaction_id":"4200002851202603010000000001","trade_state":"SUCCESS","success_time":"2026-03-01 10:00:00","amount":{"total":100}}`), nil, "bad_payload"},
		{"succeeded event without success_time", event("TRANSACTION.SUCCESS",
			`{"mchid":"1612345678","out_trade_no":"PF20260301000001","transaction_id":"4200002851202603010000000001","trade_state":"SUCCESS","amount":{"total":100}}`), nil, "bad_payload"},
		{"merchant coupon larger than the order", event("TRANSACTION.SUCCESS",
			`{"mchid":"1612345678","out_trade_no":"PF20260301000001","transaction_id":"4200002851202603010000000001","trade_state":"SUCCESS","success_time":"2026-03-01T10:00:00+08:00","amount":{"total":100},"promotion_detail":[{"type":"NOCASH","amount":101}]}`), nil, "bad_payload"},
		{"refund without refund_id", event("REFUND.SUCCESS",
			`{"mchid":"1612345678","out_trade_no":"PF20260301000001","transaction_id":"4200002851202603010000000001","out_refund_no":"R1","refund_status":"SUCCESS","success_time":"2026-03-01T10:00:00+08:00","amount":{"total":100,"refund":100}}`), nil, "bad_payload"},
		{"refund larger than the order", event("REFUND.SUCCESS",
			`{"mchid":"1612345678","out_trade_no":"PF20260301000001","transaction_id":"4200002851202603010000000001","out_refund_no":"R1","refund_id":"503001","refund_status":"SUCCESS","success_time":"2026-03-01T10:00:00+08:00","amount":{"total":100,"refund":101}}`), nil, "bad_payload"},
		{"refund without refund_status", event("REFUND.SUCCESS",
			`{"mchid":"1612345678","out_trade_no":"PF20260301000001","transaction_id":"4200002851202603010000000001","out_refund_no":"R1","refund_id":"503001","success_time":"2026-03-01T10:00:00+08:00","amount":{"total":100,"refund":100}}`), nil, "bad_payload"},
		{"APIv3 key of the wrong size", valid, credsWith(map[string][]byte{"apiv3_key": []byte("short")}), "bad_credentials"},
		{"unreadable public key", valid, credsWith(map[string][]byte{"platform_public_key": []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")}), "bad_credentials"},
		{"no platform key at all", valid, credsWith(map[string][]byte{"platform_public_key": nil, "platform_public_key_id": nil, "platform_certificate": nil}), "bad_credentials"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			creds := c.creds
			if creds == nil {
				creds = k.creds
			}
			h, body := c.build()
			n, err := wechat.VerifyNotification(h, body, creds, notifyNow)
			if err == nil {
				t.Fatalf("accepted: %+v", n)
			}
			if n != nil {
				t.Errorf("a notification came back with the error")
			}
			if reason := notifyErr(t, err); reason != c.reason {
				t.Errorf("reason = %s, want %s (%v)", reason, c.reason, err)
			}
		})
	}
}

func FuzzVerifyNotification(f *testing.F) {
	// The harness signs most inputs itself; a 1024-bit key keeps that cheap
	// (what is fuzzed is the checking and decoding, not the key size).
	signer := testkeys.RSAKey(1024)
	creds := credsWith(map[string][]byte{"platform_public_key": testkeys.PublicKeyPEM(&signer.PublicKey)})
	k := notifyKeys{platform: signer, keyID: testNotifyKeys().keyID, creds: creds}
	key := k.creds["apiv3_key"]
	seedHeaders, seedBody := wechat.BuildTestNotification(k.platform, k.keyID, key, testPayment(), notifyNow)
	_, refundBody := wechat.BuildTestNotification(k.platform, k.keyID, key, testRefund(), notifyNow)
	payment := `{"mchid":"1612345678","out_trade_no":"PF1","transaction_id":"42001","trade_type":"JSAPI","trade_state":"SUCCESS","success_time":"2026-03-01T10:00:00+08:00","payer":{"openid":"o123456"},"amount":{"total":100,"payer_total":90,"currency":"CNY"},"promotion_detail":[{"type":"NOCASH","amount":10}]}`
	refund := `{"mchid":"1612345678","out_trade_no":"PF1","transaction_id":"42001","out_refund_no":"R1","refund_id":"5031","refund_status":"SUCCESS","success_time":"2026-03-01T10:00:00+08:00","amount":{"total":100,"refund":50,"payer_total":100,"payer_refund":50}}`
	// mode: 0 checks the body against the seed's headers; 1 signs the body
	// first; 2 and 3 encrypt the event as a payment or refund, then sign.
	f.Add(seedBody, []byte(payment), uint8(0))
	f.Add(seedBody, []byte(payment), uint8(1))
	f.Add(refundBody, []byte(refund), uint8(1))
	f.Add([]byte(`{}`), []byte(payment), uint8(2))
	f.Add([]byte(`{}`), []byte(refund), uint8(3))
	f.Fuzz(func(t *testing.T, body, event []byte, mode uint8) {
		h := seedHeaders.Clone()
		switch mode % 4 {
		case 1:
			h = wechat.SignTestNotification(k.platform, k.keyID, body, notifyNow)
		case 2, 3:
			eventType := "TRANSACTION.SUCCESS"
			if mode%4 == 3 {
				eventType = "REFUND.SUCCESS"
			}
			body = sealEvent(t, key, eventType, event)
			h = wechat.SignTestNotification(k.platform, k.keyID, body, notifyNow)
		}
		n, err := wechat.VerifyNotification(h, body, k.creds, notifyNow)
		if err != nil {
			var ne *wechat.NotifyError
			if !errors.As(err, &ne) || n != nil {
				t.Fatalf("err = %v (%T), notification %v", err, err, n)
			}
			if ne.Message.EN == "" || ne.Message.ZH == "" || strings.Contains(ne.Error(), string(key)) {
				t.Fatalf("bad message %+v", ne.Message)
			}
			return
		}
		r := n.Record
		if r.Kind != channels.KindPayment && r.Kind != channels.KindRefund || r.Amount < 0 || r.Kind == channels.KindRefund && r.Amount == 0 || r.ChannelRef == "" ||
			r.Status == "" || r.AccountRef == "" || r.Currency == "" || r.FeeKnown {
			t.Fatalf("accepted an incomplete record %+v", withoutRaw(r))
		}
	})
}
