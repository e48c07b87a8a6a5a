// Package testkeys makes keys, certificates, PKCS#12 files and whole
// credential sets for tests and for the demo data. Everything it makes is
// freshly generated and self-issued: none of it is accepted by any real
// payment channel. Its functions panic on failure, which only a broken
// random source or a programming error can cause.
package testkeys

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// Bits is the size of the keys Credentials makes.
const Bits = 2048

// RSAKey returns a new RSA private key of the given size.
func RSAKey(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(fmt.Sprintf("testkeys: unable to generate a %d-bit RSA key: %v", bits, err))
	}
	return k
}

// PrivateKeyPEM encodes k as a PKCS#8 "PRIVATE KEY" PEM block.
func PrivateKeyPEM(k *rsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(fmt.Sprintf("testkeys: unable to encode a private key: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// PKCS1PrivateKeyPEM encodes k as a PKCS#1 "RSA PRIVATE KEY" PEM block.
func PKCS1PrivateKeyPEM(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// PublicKeyPEM encodes pub as a PKIX "PUBLIC KEY" PEM block.
func PublicKeyPEM(pub *rsa.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(fmt.Sprintf("testkeys: unable to encode a public key: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// CertPEM returns a self-signed certificate for k with common name cn, valid
// from notBefore to notAfter, as a PEM block.
func CertPEM(k *rsa.PrivateKey, cn string, notBefore, notAfter time.Time) []byte {
	return pemCert(issue(k, cn, notBefore, notAfter, nil, nil, false))
}

// PFX packs k and its certificate (PEM or DER) into a PKCS#12 file that
// password opens.
func PFX(k *rsa.PrivateKey, cert []byte, password string) []byte {
	c := parseCert(cert)
	data, err := pkcs12.Modern2023.Encode(k, c, nil, password)
	if err != nil {
		panic(fmt.Sprintf("testkeys: unable to encode a PKCS#12 file: %v", err))
	}
	return data
}

// parseCert reads the first certificate of PEM or DER bytes.
func parseCert(b []byte) *x509.Certificate {
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		panic(fmt.Sprintf("testkeys: unable to read a certificate: %v", err))
	}
	return c
}

// serial returns a random positive serial of 20 bytes whose hex form has 40 digits.
func serial() *big.Int {
	b := make([]byte, 20)
	rand.Read(b)
	b[0] = 0x10 + b[0]%0x60
	return new(big.Int).SetBytes(b)
}

// issue makes a certificate for k, signed by parentKey as parent, or
// self-signed when parent is nil.
func issue(k *rsa.PrivateKey, cn string, notBefore, notAfter time.Time, parentKey *rsa.PrivateKey, parent *x509.Certificate, ca bool) *x509.Certificate {
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	if ca {
		tmpl.IsCA = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, parentKey)
	if err != nil {
		panic(fmt.Sprintf("testkeys: unable to create a certificate: %v", err))
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(fmt.Sprintf("testkeys: unable to read back a certificate: %v", err))
	}
	return c
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

const (
	digitChars = "0123456789"
	hexChars   = "0123456789abcdef"
	alnumChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// randomString returns n characters drawn from chars.
func randomString(chars string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[mrand.IntN(len(chars))]
	}
	return string(b)
}

// Credentials returns a complete, valid credential set for the channel with
// the given code ("wechat", "alipay" or "unionpay"), or nil for any other
// code. Ids look like the channel's; secrets are random; every key is a
// fresh 2048-bit RSA key; certificates are valid from an hour before now to a
// year after it.
//
//   - wechat: every field, including both the WeChat Pay public key (with its
//     id) and a platform certificate, as during a switch between the two.
//   - alipay: certificate mode, the application and Alipay certificates
//     issued by the root certificate; alipay_public_key is not set.
//   - unionpay: a PFX with a random password, and a verification bundle of an
//     intermediate and a root certificate, as ACP 5.1.0 uses.
func Credentials(code string, now time.Time) map[string][]byte {
	notBefore, notAfter := now.Add(-time.Hour), now.AddDate(1, 0, 0)
	switch code {
	case "wechat":
		merchant, platformKey, platformCertKey := RSAKey(Bits), RSAKey(Bits), RSAKey(Bits)
		mchID := "16" + randomString(digitChars, 8)
		merchantCert := issue(merchant, mchID+" test merchant API certificate", notBefore, notAfter, nil, nil, false)
		return map[string][]byte{
			"app_id":                 []byte("wx" + randomString(hexChars, 16)),
			"mch_id":                 []byte(mchID),
			"apiv3_key":              []byte(randomString(alnumChars, 32)),
			"merchant_serial_no":     []byte(fmt.Sprintf("%X", merchantCert.SerialNumber)),
			"merchant_private_key":   PrivateKeyPEM(merchant),
			"platform_public_key_id": []byte("PUB_KEY_ID_01" + randomString(digitChars, 32)),
			"platform_public_key":    PublicKeyPEM(&platformKey.PublicKey),
			"platform_certificate":   CertPEM(platformCertKey, "PayFuse test WeChat Pay platform certificate", notBefore, notAfter),
		}
	case "alipay":
		appKey, alipayKey, rootKey := RSAKey(Bits), RSAKey(Bits), RSAKey(Bits)
		appID := "2021" + randomString(digitChars, 12)
		root := issue(rootKey, "PayFuse test Alipay root CA", notBefore, notAfter, nil, nil, true)
		return map[string][]byte{
			"app_id":           []byte(appID),
			"pid":              []byte("2088" + randomString(digitChars, 12)),
			"app_private_key":  PrivateKeyPEM(appKey),
			"app_cert":         pemCert(issue(appKey, appID+" test application certificate", notBefore, notAfter, rootKey, root, false)),
			"alipay_cert":      pemCert(issue(alipayKey, "PayFuse test Alipay public key certificate", notBefore, notAfter, rootKey, root, false)),
			"alipay_root_cert": pemCert(root),
		}
	case "unionpay":
		signKey, middleKey, rootKey := RSAKey(Bits), RSAKey(Bits), RSAKey(Bits)
		merID := "777290058" + randomString(digitChars, 6)
		password := randomString(alnumChars, 12)
		signCert := issue(signKey, merID+" test signing certificate", notBefore, notAfter, nil, nil, false)
		root := issue(rootKey, "PayFuse test UnionPay root CA", notBefore, notAfter, nil, nil, true)
		middle := issue(middleKey, "PayFuse test UnionPay intermediate CA", notBefore, notAfter, rootKey, root, true)
		return map[string][]byte{
			"mer_id":             []byte(merID),
			"sign_cert_pfx":      PFX(signKey, signCert.Raw, password),
			"sign_cert_password": []byte(password),
			"verify_cert":        append(pemCert(middle), pemCert(root)...),
		}
	}
	return nil
}
