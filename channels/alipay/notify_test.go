package alipay_test

import (
	"crypto/md5"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"payfuse/channels"
	"payfuse/channels/alipay"
	"payfuse/channels/testkeys"
)

const (
	testAppID = "2021000123456789"
	testPID   = "2088123456789012"
)

// notifyKeys: the stand-in for Alipay's key, another Alipay key (as after a
// rotation, or someone else's), and the application's own key.
var notifyKeys = sync.OnceValues(func() (*rsa.PrivateKey, *rsa.PrivateKey) {
	return testkeys.RSAKey(2048), testkeys.RSAKey(2048)
})

func alipayKey() *rsa.PrivateKey { k, _ := notifyKeys(); return k }
func otherKey() *rsa.PrivateKey  { _, k := notifyKeys(); return k }

var certNow = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// publicKeyCreds is an account in public-key mode.
func publicKeyCreds() map[string][]byte {
	return map[string][]byte{
		"app_id":            []byte(testAppID),
		"pid":               []byte(testPID),
		"app_private_key":   testkeys.PrivateKeyPEM(otherKey()),
		"alipay_public_key": testkeys.PublicKeyPEM(&alipayKey().PublicKey),
	}
}

// certCreds is an account in certificate mode whose alipay_cert holds the
// given keys' certificates.
func certCreds(keys ...*rsa.PrivateKey) map[string][]byte {
	var alipayCerts []byte
	for i, k := range keys {
		alipayCerts = append(alipayCerts, testkeys.CertPEM(k, fmt.Sprintf("PayFuse test Alipay certificate %d", i), certNow, certNow.AddDate(1, 0, 0))...)
	}
	return map[string][]byte{
		"app_id":           []byte(testAppID),
		"pid":              []byte(testPID),
		"app_private_key":  testkeys.PrivateKeyPEM(otherKey()),
		"app_cert":         testkeys.CertPEM(otherKey(), testAppID, certNow, certNow.AddDate(1, 0, 0)),
		"alipay_cert":      alipayCerts,
		"alipay_root_cert": testkeys.CertPEM(otherKey(), "PayFuse test root", certNow, certNow.AddDate(1, 0, 0)),
	}
}

// sn is Alipay's certificate number, computed here from its definition
// (MD5 of the issuer's name, most specific part first, then the decimal
// serial) to check alipay.CertSN.
func sn(t testing.TB, certPEM []byte) string {
	t.Helper()
	blk, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var rdns []string
	for _, a := range c.Issuer.Names {
		if a.Type.Equal([]int{2, 5, 4, 3}) {
			rdns = append(rdns, "CN="+a.Value.(string))
		}
	}
	sum := md5.Sum([]byte(strings.Join(rdns, ",") + c.SerialNumber.Text(10)))
	want := hex.EncodeToString(sum[:])
	if got := alipay.CertSN(c); got != want {
		t.Fatalf("CertSN = %s, want %s", got, want)
	}
	return want
}

// paymentParams is a TRADE_SUCCESS notification, laid out as Alipay documents one.
func paymentParams() map[string]string {
	return map[string]string{
		"notify_time": "2026-03-01 09:15:10", "notify_type": "trade_status_sync", "notify_id": "2026030100222091509051231234567890",
		"app_id": testAppID, "auth_app_id": testAppID, "charset": "utf-8", "version": "1.0",
		"trade_no": "2026030122001411110500000001", "out_trade_no": "PF20260301000001",
		"buyer_id": "2088602123451234", "buyer_logon_id": "138****0001", "seller_id": testPID, "seller_email": "shop@example.com",
		"trade_status": "TRADE_SUCCESS", "total_amount": "32.00", "receipt_amount": "32.00", "invoice_amount": "32.00",
		"buyer_pay_amount": "32.00", "point_amount": "0.00", "subject": "拿铁咖啡 & 可颂=早餐", "body": "南山店",
		"gmt_create": "2026-03-01 09:15:02", "gmt_payment": "2026-03-01 09:15:09",
		"fund_bill_list": `[{"amount":"32.00","fundChannel":"ALIPAYACCOUNT"}]`,
	}
}

// refundParams is the notification Alipay sends after a partial refund.
func refundParams() map[string]string {
	p := paymentParams()
	p["out_biz_no"] = "RF20260301000001"
	p["refund_fee"] = "12.50"
	p["gmt_refund"] = "2026-03-01 11:30:00"
	return p
}

func with(p map[string]string, kv ...string) map[string]string {
	p = maps.Clone(p)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "<delete>" {
			delete(p, kv[i])
		} else {
			p[kv[i]] = kv[i+1]
		}
	}
	return p
}

func signed(p map[string]string) url.Values { return alipay.BuildTestNotification(alipayKey(), p) }

var wantPayment = channels.Record{
	Channel: "alipay", Kind: "payment", ChannelRef: "2026030122001411110500000001", MerchantOrderNo: "PF20260301000001",
	Status: "succeeded", NativeStatus: "TRADE_SUCCESS", Amount: 3200, Currency: "CNY", Payer: "13******01",
	AccountRef: testPID, CreatedAt: utc("2026-03-01 01:15:02"), PaidAt: utc("2026-03-01 01:15:09"),
}

func TestVerifyNotification(t *testing.T) {
	refund := wantPayment
	refund.Kind, refund.ChannelRef, refund.PaymentRef, refund.RefundNo = "refund", "2026030122001411110500000001/RF20260301000001", "2026030122001411110500000001", "RF20260301000001"
	refund.Amount, refund.PaidAt, refund.CreatedAt, refund.RefundedAt = 1250, time.Time{}, utc("2026-03-01 03:30:00"), utc("2026-03-01 03:30:00")
	fullRefund := refund
	fullRefund.NativeStatus, fullRefund.Amount = "TRADE_CLOSED", 3200
	fullRefund.ChannelRef, fullRefund.RefundNo = "2026030122001411110500000001/PF20260301000001", "PF20260301000001"
	pending := wantPayment
	pending.Status, pending.NativeStatus, pending.PaidAt = "pending", "WAIT_BUYER_PAY", time.Time{}
	closed := pending
	closed.Status, closed.NativeStatus = "closed", "TRADE_CLOSED"
	finished := wantPayment
	finished.NativeStatus = "TRADE_FINISHED"
	byBuyerID := wantPayment
	byBuyerID.Payer = "20******34"
	coupon := wantPayment
	coupon.Amount = 1650

	bareKey := func() map[string][]byte {
		c := publicKeyCreds()
		der, _ := x509.MarshalPKIXPublicKey(&alipayKey().PublicKey)
		b64 := base64.StdEncoding.EncodeToString(der)
		c["alipay_public_key"] = []byte(b64[:64] + "\n" + b64[64:] + "\n")
		return c
	}

	type creds = map[string][]byte
	plain := func(creds) url.Values { return signed(paymentParams()) }
	withSN := func(c creds) url.Values {
		return signed(with(paymentParams(), "alipay_cert_sn", sn(t, c["alipay_cert"])))
	}
	rotation := sync.OnceValue(func() creds { return certCreds(otherKey(), alipayKey()) })
	cases := []struct {
		name  string
		form  func(creds) url.Values
		creds func() creds
		want  channels.Record
	}{
		{"payment", plain, publicKeyCreds, wantPayment},
		{"bare base64 Alipay key", plain, bareKey, wantPayment},
		{"no sign_type", func(creds) url.Values { f := signed(paymentParams()); f.Del("sign_type"); return f }, publicKeyCreds, wantPayment},
		{"pending", func(creds) url.Values {
			return signed(with(paymentParams(), "trade_status", "WAIT_BUYER_PAY", "gmt_payment", "<delete>"))
		}, publicKeyCreds, pending},
		{"closed unpaid", func(creds) url.Values {
			return signed(with(paymentParams(), "trade_status", "TRADE_CLOSED", "gmt_payment", "<delete>", "refund_fee", "0.00"))
		}, publicKeyCreds, closed},
		{"finished", func(creds) url.Values { return signed(with(paymentParams(), "trade_status", "TRADE_FINISHED")) }, publicKeyCreds, finished},
		{"merchant coupon: Amount is receipt_amount", func(creds) url.Values {
			return signed(with(paymentParams(), "total_amount", "18.50", "receipt_amount", "16.50"))
		}, publicKeyCreds, coupon},
		{"no receipt_amount: Amount is total_amount", func(creds) url.Values {
			return signed(with(paymentParams(), "receipt_amount", "<delete>"))
		}, publicKeyCreds, wantPayment},
		{"payer by buyer_id", func(creds) url.Values { return signed(with(paymentParams(), "buyer_logon_id", "<delete>")) }, publicKeyCreds, byBuyerID},
		{"refund_fee 0.00 on a payment", func(creds) url.Values { return signed(with(paymentParams(), "refund_fee", "0.00")) }, publicKeyCreds, wantPayment},
		{"partial refund", func(creds) url.Values { return signed(refundParams()) }, publicKeyCreds, refund},
		{"full refund without out_biz_no", func(creds) url.Values {
			return signed(with(refundParams(), "trade_status", "TRADE_CLOSED", "refund_fee", "32.00", "out_biz_no", "<delete>"))
		}, publicKeyCreds, fullRefund},
		{"spaces for plus signs in sign", func(creds) url.Values {
			f := signed(paymentParams())
			for i := 0; !strings.Contains(f.Get("sign"), "+"); i++ { // find a notification whose signature has a '+'
				f = signed(with(paymentParams(), "notify_id", fmt.Sprint(i)))
			}
			f.Set("sign", strings.ReplaceAll(f.Get("sign"), "+", " "))
			return f
		}, publicKeyCreds, wantPayment},
		{"signed without an empty parameter", func(creds) url.Values {
			f := signed(paymentParams())
			f.Set("passback_params", "")
			return f
		}, publicKeyCreds, wantPayment},
		{"signed with an empty parameter", func(creds) url.Values { return signed(with(paymentParams(), "passback_params", "")) }, publicKeyCreds, wantPayment},
		{"certificate mode", plain, func() creds { return certCreds(alipayKey()) }, wantPayment},
		{"certificate mode ignores alipay_public_key", plain, func() creds {
			c := certCreds(alipayKey())
			c["alipay_public_key"] = testkeys.PublicKeyPEM(&otherKey().PublicKey)
			return c
		}, wantPayment},
		{"certificate mode with alipay_cert_sn", withSN, func() creds { return certCreds(alipayKey()) }, wantPayment},
		{"certificate rotation: alipay_cert_sn picks the certificate", func(c creds) url.Values {
			second := strings.SplitAfter(string(c["alipay_cert"]), "-----END CERTIFICATE-----\n")[1]
			return signed(with(paymentParams(), "alipay_cert_sn", sn(t, []byte(second))))
		}, rotation, wantPayment},
		{"certificate rotation without alipay_cert_sn", plain, rotation, wantPayment},
		{"alipay_cert_sn unknown but the signature verifies", func(creds) url.Values {
			return signed(with(paymentParams(), "alipay_cert_sn", strings.Repeat("0", 32)))
		}, func() creds { return certCreds(alipayKey()) }, wantPayment},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			creds := c.creds()
			got, err := alipay.VerifyNotification(c.form(creds), creds)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			raw := got.Raw
			got.Raw = nil
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", c.want) {
				t.Errorf("record:\n got %+v\nwant %+v", got, c.want)
			}
			if _, ok := raw["sign"]; ok || raw["trade_no"] != "2026030122001411110500000001" || raw["subject"] != "拿铁咖啡 & 可颂=早餐" {
				t.Errorf("Raw = %v", raw)
			}
		})
	}
}

func TestVerifyNotificationRefusals(t *testing.T) {
	good := func() url.Values { return signed(paymentParams()) }
	alipayPEM := string(testkeys.PublicKeyPEM(&alipayKey().PublicKey))
	cases := []struct {
		name   string
		form   func() url.Values
		creds  func() map[string][]byte
		reason string
		part   string
	}{
		{"tampered amount", func() url.Values { f := good(); f.Set("total_amount", "3200.00"); return f }, publicKeyCreds, alipay.ReasonBadSignature, "does not verify"},
		{"tampered status", func() url.Values {
			f := signed(with(paymentParams(), "trade_status", "WAIT_BUYER_PAY"))
			f.Set("trade_status", "TRADE_SUCCESS")
			return f
		}, publicKeyCreds, alipay.ReasonBadSignature, "does not verify"},
		{"added parameter", func() url.Values { f := good(); f.Set("refund_fee", "32.00"); return f }, publicKeyCreds, alipay.ReasonBadSignature, "does not verify"},
		{"removed parameter", func() url.Values { f := good(); f.Del("out_trade_no"); return f }, publicKeyCreds, alipay.ReasonBadSignature, "does not verify"},
		{"wrong key", func() url.Values { return alipay.BuildTestNotification(otherKey(), paymentParams()) }, publicKeyCreds, alipay.ReasonBadSignature, "does not verify"},
		{"signature of another notification", func() url.Values {
			f := good()
			f.Set("sign", signed(with(paymentParams(), "total_amount", "0.01")).Get("sign"))
			return f
		}, publicKeyCreds, alipay.ReasonBadSignature, "does not verify"},
		{"missing sign", func() url.Values { f := good(); f.Del("sign"); return f }, publicKeyCreds, alipay.ReasonBadSignature, "no sign"},
		{"empty sign", func() url.Values { f := good(); f.Set("sign", " "); return f }, publicKeyCreds, alipay.ReasonBadSignature, "no sign"},
		{"sign not base64", func() url.Values { f := good(); f.Set("sign", "not*base64"); return f }, publicKeyCreds, alipay.ReasonBadSignature, "not base64"},
		{"wrong app_id", func() url.Values { return signed(with(paymentParams(), "app_id", "2021000999999999")) }, publicKeyCreds, alipay.ReasonWrongApp, "2021000999999999"},
		{"wrong app and wrong key", func() url.Values {
			return alipay.BuildTestNotification(otherKey(), with(paymentParams(), "app_id", "2021000999999999"))
		}, publicKeyCreds, alipay.ReasonBadSignature, "wrong account"},
		{"no app_id", func() url.Values { return signed(with(paymentParams(), "app_id", "<delete>")) }, publicKeyCreds, alipay.ReasonWrongApp, "not this account's"},
		{"sign_type RSA", func() url.Values { return signed(with(paymentParams(), "sign_type", "RSA")) }, publicKeyCreds, alipay.ReasonUnsupportedSignType, "RSA2 only"},
		{"sign_type MD5", func() url.Values { return signed(with(paymentParams(), "sign_type", "MD5")) }, publicKeyCreds, alipay.ReasonUnsupportedSignType, "RSA2 only"},
		{"parameter twice", func() url.Values { f := good(); f.Add("total_amount", "0.01"); return f }, publicKeyCreds, alipay.ReasonBadPayload, "given 2 times"},
		{"unknown trade_status", func() url.Values { return signed(with(paymentParams(), "trade_status", "TRADE_PENDING")) }, publicKeyCreds, alipay.ReasonBadPayload, "TRADE_PENDING"},
		{"no trade_no", func() url.Values { return signed(with(paymentParams(), "trade_no", "<delete>")) }, publicKeyCreds, alipay.ReasonBadPayload, "trade_no"},
		{"bad total_amount", func() url.Values { return signed(with(paymentParams(), "total_amount", "32.001")) }, publicKeyCreds, alipay.ReasonBadPayload, "total_amount"},
		{"zero total_amount", func() url.Values { return signed(with(paymentParams(), "total_amount", "0.00")) }, publicKeyCreds, alipay.ReasonBadPayload, "above zero"},
		{"bad receipt_amount", func() url.Values { return signed(with(paymentParams(), "receipt_amount", "x")) }, publicKeyCreds, alipay.ReasonBadPayload, "receipt_amount"},
		{"bad gmt_payment", func() url.Values { return signed(with(paymentParams(), "gmt_payment", "2026-03-01T09:15:09")) }, publicKeyCreds, alipay.ReasonBadPayload, "gmt_payment"},
		{"bad refund_fee", func() url.Values { return signed(with(refundParams(), "refund_fee", "-1.00")) }, publicKeyCreds, alipay.ReasonBadPayload, "refund_fee"},
		{"refund without any number", func() url.Values {
			return signed(with(refundParams(), "out_biz_no", "<delete>", "out_trade_no", "<delete>"))
		}, publicKeyCreds, alipay.ReasonBadPayload, "out_biz_no"},
		{"certificate mode, wrong key", func() url.Values { return alipay.BuildTestNotification(otherKey(), paymentParams()) },
			func() map[string][]byte { return certCreds(alipayKey()) }, alipay.ReasonBadSignature, "does not verify"},
		{"certificate mode, Alipay changed its certificate", func() url.Values {
			return alipay.BuildTestNotification(otherKey(), with(paymentParams(), "alipay_cert_sn", strings.Repeat("a", 32)))
		}, func() map[string][]byte { return certCreds(alipayKey()) }, alipay.ReasonBadSignature, "changed its certificate"},
		{"no verification key", good, func() map[string][]byte {
			c := publicKeyCreds()
			delete(c, "alipay_public_key")
			return c
		}, alipay.ReasonBadCredentials, "neither"},
		{"unreadable Alipay key", good, func() map[string][]byte {
			c := publicKeyCreds()
			c["alipay_public_key"] = []byte("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
			return c
		}, alipay.ReasonBadCredentials, "PEM text is damaged"},
		{"certificate mode without alipay_cert", good, func() map[string][]byte {
			c := certCreds(alipayKey())
			delete(c, "alipay_cert")
			return c
		}, alipay.ReasonBadCredentials, "Alipay public key certificate"},
		{"no app_id configured", good, func() map[string][]byte {
			c := publicKeyCreds()
			c["app_id"] = []byte(" ")
			return c
		}, alipay.ReasonBadCredentials, "APPID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			form := c.form()
			_, err := alipay.VerifyNotification(form, c.creds())
			var ne *alipay.NotifyError
			if !errors.As(err, &ne) {
				t.Fatalf("err = %v (%T), want a *alipay.NotifyError", err, err)
			}
			if ne.Reason != c.reason || !strings.Contains(ne.Message.EN, c.part) {
				t.Errorf("got %s: %q; want %s containing %q", ne.Reason, ne.Message.EN, c.reason, c.part)
			}
			if ne.Message.ZH == "" || ne.Message.ZH == ne.Message.EN {
				t.Errorf("no Chinese message: %+v", ne.Message)
			}
			// Messages never quote keys or the signature.
			for _, secret := range []string{form.Get("sign"), alipayPEM[27:91], string(testkeys.PrivateKeyPEM(otherKey()))[28:92]} {
				if len(secret) > 8 && (strings.Contains(err.Error(), secret) || strings.Contains(ne.Message.ZH, secret)) {
					t.Errorf("message quotes secret material: %v", err)
				}
			}
		})
	}
}

func TestBuildTestNotification(t *testing.T) {
	f := alipay.BuildTestNotification(alipayKey(), with(paymentParams(), "sign", "ignored"))
	if f.Get("sign_type") != "RSA2" || f.Get("sign") == "ignored" || f.Get("trade_no") != "2026030122001411110500000001" {
		t.Errorf("form = %v", f)
	}
	if _, err := alipay.VerifyNotification(f, publicKeyCreds()); err != nil {
		t.Errorf("VerifyNotification: %v", err)
	}
	// The form survives being sent as a body.
	back, err := url.ParseQuery(f.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alipay.VerifyNotification(back, publicKeyCreds()); err != nil {
		t.Errorf("VerifyNotification after encoding: %v", err)
	}
}

func FuzzVerifyNotification(f *testing.F) {
	f.Add(signed(paymentParams()).Encode(), false)
	f.Add(signed(refundParams()).Encode(), false)
	f.Add(signed(with(paymentParams(), "alipay_cert_sn", "x")).Encode(), false)
	f.Add(url.Values{"sign": {"AAAA"}, "sign_type": {"RSA2"}}.Encode(), false)
	f.Add(url.Values{"sign": {"AAAA"}, "sign_type": {"RSA"}}.Encode(), false)
	// With sign set, the fuzzed parameters are signed first, so their
	// reading into a record is fuzzed too.
	f.Add(url.Values(mapValues(paymentParams())).Encode(), true)
	f.Add(url.Values(mapValues(refundParams())).Encode(), true)
	f.Add("trade_no=1&app_id="+testAppID+"&trade_status=TRADE_CLOSED&refund_fee=1&gmt_refund=x", true)
	creds := publicKeyCreds()
	f.Fuzz(func(t *testing.T, body string, sign bool) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		if sign {
			p := make(map[string]string, len(form))
			for k, vs := range form {
				p[k] = vs[0]
			}
			form = signed(p)
		}
		rec, err := alipay.VerifyNotification(form, creds)
		if err != nil {
			var ne *alipay.NotifyError
			if !errors.As(err, &ne) || ne.Reason == "" || ne.Message.EN == "" || ne.Message.ZH == "" {
				t.Fatalf("err = %v (%T)", err, err)
			}
			return
		}
		if rec.Amount < 0 || (rec.Kind == "refund" && rec.Amount == 0) || rec.ChannelRef == "" || rec.Currency != "CNY" || (rec.Kind != "payment" && rec.Kind != "refund") ||
			(rec.Kind == "refund" && (rec.PaymentRef == "" || rec.RefundNo == "")) {
			t.Fatalf("bad record %+v", rec)
		}
	})
}

func mapValues(p map[string]string) url.Values {
	v := url.Values{}
	for k, s := range p {
		v.Set(k, s)
	}
	return v
}

// TestVerifyGBKNotification: an application set to charset GBK gets its
// notifications form-encoded in GBK and signed over the GBK bytes; they
// verify, and the text reaches the ledger as UTF-8.
func TestVerifyGBKNotification(t *testing.T) {
	enc := simplifiedchinese.GBK.NewEncoder()
	p := with(paymentParams(), "charset", "GBK")
	for k, v := range p {
		gbk, err := enc.String(v)
		if err != nil {
			t.Fatal(err)
		}
		p[k] = gbk
	}
	// Through the wire: percent-encoded GBK bytes, parsed as the endpoint does.
	form, err := url.ParseQuery(signed(p).Encode())
	if err != nil {
		t.Fatal(err)
	}
	if form.Get("subject") == paymentParams()["subject"] {
		t.Fatal("the test notification is not GBK-encoded")
	}
	rec, err := alipay.VerifyNotification(form, publicKeyCreds())
	if err != nil {
		t.Fatalf("GBK notification refused: %v", err)
	}
	if rec.Raw["subject"] != "拿铁咖啡 & 可颂=早餐" || rec.Raw["body"] != "南山店" {
		t.Errorf("text not decoded from GBK: subject %q, body %q", rec.Raw["subject"], rec.Raw["body"])
	}
	if rec.Amount != 3200 || rec.ChannelRef != wantPayment.ChannelRef {
		t.Errorf("record %+v", rec)
	}

	// Bytes that are not GBK are refused, after the signature checks out.
	bad := with(p, "body", "\xff\xff")
	if _, err := alipay.VerifyNotification(signed(bad), publicKeyCreds()); !isReason(err, alipay.ReasonBadPayload) {
		t.Errorf("invalid GBK: %v", err)
	}
	// A charset Alipay does not use.
	if _, err := alipay.VerifyNotification(signed(with(paymentParams(), "charset", "latin1")), publicKeyCreds()); !isReason(err, alipay.ReasonBadPayload) {
		t.Errorf("unknown charset: %v", err)
	}
}

func isReason(err error, reason string) bool {
	var ne *alipay.NotifyError
	return errors.As(err, &ne) && ne.Reason == reason
}
