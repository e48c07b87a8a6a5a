package alipay

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
)

// BuildTestNotification is a test and demo helper: it returns params as the
// form of an asynchronous notification signed the way Alipay signs one —
// every parameter except sign and sign_type, sorted by name, name=value
// joined by "&", SHA256withRSA, base64 — with sign_type RSA2 unless params
// sets another sign_type (to build notifications VerifyNotification must
// refuse).
//
// Alipay signs with its own private key, which nobody else has: alipayKey is
// a key made for the test or the demo, whose public half is configured as the
// account's alipay_public_key (or is the key of its alipay_cert). A
// notification built here is accepted only by credentials made that way. It
// panics if signing fails, which only a broken key or random source can cause.
func BuildTestNotification(alipayKey *rsa.PrivateKey, params map[string]string) url.Values {
	form := make(url.Values, len(params)+2)
	plain := make(map[string]string, len(params))
	for k, v := range params {
		if k == "sign" {
			continue
		}
		form.Set(k, v)
		plain[k] = v
	}
	if form.Get("sign_type") == "" {
		form.Set("sign_type", "RSA2")
	}
	sum := sha256.Sum256([]byte(signContent(plain, false)))
	sig, err := rsa.SignPKCS1v15(rand.Reader, alipayKey, crypto.SHA256, sum[:])
	if err != nil {
		panic(fmt.Sprintf("alipay: unable to sign a test notification: %v", err))
	}
	form.Set("sign", base64.StdEncoding.EncodeToString(sig))
	return form
}
