package channels_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"payfuse/channels"
	"payfuse/channels/testkeys"
)

var (
	keysOnce sync.Once
	keyA     *rsa.PrivateKey
	keyB     *rsa.PrivateKey
)

// keys returns two 2048-bit keys shared by the tests of this package.
func keys() (*rsa.PrivateKey, *rsa.PrivateKey) {
	keysOnce.Do(func() { keyA, keyB = testkeys.RSAKey(2048), testkeys.RSAKey(2048) })
	return keyA, keyB
}

var testNow = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

func derOf(pemBytes []byte) []byte {
	blk, _ := pem.Decode(pemBytes)
	return blk.Bytes
}

// wrapped returns the base64 of der broken into lines of 64 characters, with
// some extra spaces, as copied from a web console.
func wrapped(der []byte) []byte {
	s := base64.StdEncoding.EncodeToString(der)
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64] + " \r\n")
		s = s[64:]
	}
	b.WriteString(s + "\n")
	return []byte(b.String())
}

// sm2LikeCertPEM returns a certificate Go cannot parse: an ECDSA P-256
// certificate whose curve OID is replaced by SM2's (same encoded length), as
// in the SM2 root inside Alipay's alipayRootCert.crt.
func sm2LikeCertPEM(t *testing.T) []byte {
	t.Helper()
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "SM2-like root"},
		NotBefore: testNow, NotAfter: testNow.AddDate(10, 0, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ek.PublicKey, ek)
	if err != nil {
		t.Fatal(err)
	}
	p256 := []byte{0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07}
	sm2 := []byte{0x06, 0x08, 0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x01, 0x82, 0x2D}
	if !bytes.Contains(der, p256) {
		t.Fatal("P-256 OID not found in the certificate")
	}
	der = bytes.ReplaceAll(der, p256, sm2)
	if _, err := x509.ParseCertificate(der); err == nil {
		t.Fatal("the SM2-like certificate parsed; the test needs one that does not")
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func ecKeyPEM(t *testing.T) []byte {
	t.Helper()
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ek)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// reasonOf returns the English reason of a *ParseError, or fails.
func reasonOf(t *testing.T, err error) string {
	t.Helper()
	var pe *channels.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *ParseError", err)
	}
	if pe.Reason.EN == "" || pe.Reason.ZH == "" {
		t.Fatalf("reason %+v lacks a language", pe.Reason)
	}
	return pe.Reason.EN
}

func TestParsePrivateKey(t *testing.T) {
	k, _ := keys()
	pkcs8 := testkeys.PrivateKeyPEM(k)
	pkcs1 := testkeys.PKCS1PrivateKeyPEM(k)
	cert := testkeys.CertPEM(k, "key test", testNow, testNow.AddDate(1, 0, 0))
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"},
		Bytes:   derOf(pkcs1)})
	ok := []struct {
		name string
		in   []byte
	}{
		{"PKCS#8 PEM", pkcs8},
		{"PKCS#1 PEM", pkcs1},
		{"PEM with CRLF and text around it", []byte("Bag Attributes\r\n" + strings.ReplaceAll(string(pkcs8), "\n", "\r\n") + "\r\n")},
		{"PEM after a certificate", append(append([]byte{}, cert...), pkcs8...)},
		{"bare base64 PKCS#8 (Alipay key tool, Java)", wrapped(derOf(pkcs8))},
		{"bare base64 PKCS#1 (Alipay key tool, non-Java)", []byte(base64.StdEncoding.EncodeToString(derOf(pkcs1)))},
		{"raw DER", derOf(pkcs8)},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := channels.ParsePrivateKey(tc.in)
			if err != nil {
				t.Fatalf("ParsePrivateKey: %v", err)
			}
			if !got.Equal(k) {
				t.Fatal("parsed a different key")
			}
		})
	}
	bad := []struct {
		name, reason string
		in           []byte
	}{
		{"empty", "empty", []byte(" \n")},
		{"garbage", "No private key found", []byte("this is not a key")},
		{"damaged PEM", "damaged", []byte("-----BEGIN PRIVATE KEY-----\n!!not base64!!\n-----END PRIVATE KEY-----\n")},
		{"PEM of garbage DER", "not a readable", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("0123456789")})},
		{"encrypted PKCS#1", "passphrase", encrypted},
		{"encrypted PKCS#8", "passphrase", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0}})},
		{"certificate", "certificate, not a private key", cert},
		{"public key", "public key, not a private key", testkeys.PublicKeyPEM(&k.PublicKey)},
		{"EC key", "ECDSA", ecKeyPEM(t)},
		{"two keys", "more than one", append(append([]byte{}, pkcs8...), pkcs1...)},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := channels.ParsePrivateKey(tc.in)
			if err == nil {
				t.Fatal("ParsePrivateKey accepted it")
			}
			if r := reasonOf(t, err); !strings.Contains(r, tc.reason) {
				t.Fatalf("reason %q does not say %q", r, tc.reason)
			}
		})
	}
}

func TestParsePublicKey(t *testing.T) {
	k, _ := keys()
	pkix := testkeys.PublicKeyPEM(&k.PublicKey)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.PublicKey)})
	ok := []struct {
		name string
		in   []byte
	}{
		{"PKIX PEM", pkix},
		{"PKCS#1 PEM", pkcs1},
		{"bare base64 on one line (Alipay console)", []byte(base64.StdEncoding.EncodeToString(derOf(pkix)))},
		{"bare base64 with line breaks and spaces", append([]byte("  "), wrapped(derOf(pkix))...)},
		{"bare base64 of PKCS#1", []byte(base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(&k.PublicKey)))},
		{"raw DER", derOf(pkix)},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := channels.ParsePublicKey(tc.in)
			if err != nil {
				t.Fatalf("ParsePublicKey: %v", err)
			}
			if !got.Equal(&k.PublicKey) {
				t.Fatal("parsed a different key")
			}
		})
	}
	bad := []struct {
		name, reason string
		in           []byte
	}{
		{"empty", "empty", nil},
		{"garbage", "No public key found", []byte("not a key at all")},
		{"base64 of garbage", "not a readable", []byte(base64.StdEncoding.EncodeToString([]byte{0x30, 1, 2, 3, 4, 5}))},
		{"certificate", "certificate, not a public key", testkeys.CertPEM(k, "c", testNow, testNow.Add(time.Hour))},
		{"private key PEM", "PRIVATE key", testkeys.PrivateKeyPEM(k)},
		{"private key bare base64", "PRIVATE key", []byte(base64.StdEncoding.EncodeToString(derOf(testkeys.PrivateKeyPEM(k))))},
		{"damaged PEM", "damaged", []byte("-----BEGIN PUBLIC KEY-----\n%%%\n-----END PUBLIC KEY-----")},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := channels.ParsePublicKey(tc.in)
			if err == nil {
				t.Fatal("ParsePublicKey accepted it")
			}
			if r := reasonOf(t, err); !strings.Contains(r, tc.reason) {
				t.Fatalf("reason %q does not say %q", r, tc.reason)
			}
		})
	}
}

func TestParseCertificates(t *testing.T) {
	a, b := keys()
	certA := testkeys.CertPEM(a, "A", testNow, testNow.AddDate(1, 0, 0))
	certB := testkeys.CertPEM(b, "B", testNow, testNow.AddDate(2, 0, 0))
	sm2 := sm2LikeCertPEM(t)
	junk := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x01}})
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, []byte("\n")) }
	ok := []struct {
		name string
		in   []byte
		cns  []string
	}{
		{"one PEM", certA, []string{"A"}},
		{"two PEM blocks", cat(certA, certB), []string{"A", "B"}},
		{"root bundle with an SM2 block", cat(certA, sm2, certB), []string{"A", "B"}},
		{"bundle with a junk block", cat(junk, certB), []string{"B"}},
		{"DER", derOf(certA), []string{"A"}},
		{"bare base64", wrapped(derOf(certB)), []string{"B"}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := channels.ParseCertificates(tc.in)
			if err != nil {
				t.Fatalf("ParseCertificates: %v", err)
			}
			var cns []string
			for _, c := range got {
				cns = append(cns, c.Subject.CommonName)
			}
			if strings.Join(cns, ",") != strings.Join(tc.cns, ",") {
				t.Fatalf("got certificates %v, want %v", cns, tc.cns)
			}
		})
	}
	bad := []struct {
		name, reason string
		in           []byte
	}{
		{"empty", "empty", []byte{}},
		{"garbage", "No certificate found", []byte("hello")},
		{"only unparseable blocks", "None of its certificates", cat(sm2, junk)},
		{"private key", "PRIVATE key", testkeys.PrivateKeyPEM(a)},
		{"certificate with a private key", "PRIVATE key", cat(certA, testkeys.PrivateKeyPEM(a))},
		{"public key", "public key, not a certificate", testkeys.PublicKeyPEM(&a.PublicKey)},
		{"damaged PEM", "damaged", []byte("-----BEGIN CERTIFICATE-----\nMII*\n-----END CERTIFICATE-----\n")},
		{"bare base64 private key", "PRIVATE key", wrapped(derOf(testkeys.PrivateKeyPEM(a)))},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := channels.ParseCertificates(tc.in)
			if err == nil {
				t.Fatal("ParseCertificates accepted it")
			}
			if r := reasonOf(t, err); !strings.Contains(r, tc.reason) {
				t.Fatalf("reason %q does not say %q", r, tc.reason)
			}
		})
	}
}

func TestParsePFX(t *testing.T) {
	a, b := keys()
	certA := testkeys.CertPEM(a, "A", testNow, testNow.AddDate(1, 0, 0))
	certB := testkeys.CertPEM(b, "B", testNow, testNow.AddDate(1, 0, 0))
	const password = "Pfx-Secret-9731"
	pfx := testkeys.PFX(a, certA, password)

	t.Run("opens", func(t *testing.T) {
		k, c, err := channels.ParsePFX(pfx, password)
		if err != nil {
			t.Fatalf("ParsePFX: %v", err)
		}
		if !k.Equal(a) || c.Subject.CommonName != "A" {
			t.Fatal("wrong key or certificate")
		}
	})
	t.Run("base64 text", func(t *testing.T) {
		if _, _, err := channels.ParsePFX(wrapped(pfx), password); err != nil {
			t.Fatalf("ParsePFX: %v", err)
		}
	})
	t.Run("legacy encryption", func(t *testing.T) {
		legacy, err := pkcs12.LegacyRC2.Encode(a, parse(t, certA), nil, password)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := channels.ParsePFX(legacy, password); err != nil {
			t.Fatalf("ParsePFX: %v", err)
		}
	})
	t.Run("matching certificate is not first", func(t *testing.T) {
		data, err := pkcs12.Modern2023.Encode(a, parse(t, certB), []*x509.Certificate{parse(t, certA)}, password)
		if err != nil {
			t.Fatal(err)
		}
		_, c, err := channels.ParsePFX(data, password)
		if err != nil {
			t.Fatalf("ParsePFX: %v", err)
		}
		if c.Subject.CommonName != "A" {
			t.Fatalf("got certificate %s, want the one matching the key", c.Subject.CommonName)
		}
	})
	t.Run("no matching certificate", func(t *testing.T) {
		k, c, err := channels.ParsePFX(testkeys.PFX(a, certB, password), password)
		if err != nil {
			t.Fatalf("ParsePFX: %v", err)
		}
		if channels.KeyMatches(k, c.PublicKey) {
			t.Fatal("key and certificate should not match")
		}
	})
	for _, wrong := range []string{"", "pfx-secret-9731", password + " ", "密码😀"} {
		t.Run("wrong password "+wrong, func(t *testing.T) {
			_, _, err := channels.ParsePFX(pfx, wrong)
			if !errors.Is(err, channels.ErrPFXPassword) {
				t.Fatalf("error %v does not wrap ErrPFXPassword", err)
			}
			if strings.Contains(err.Error(), password) || (wrong != "" && strings.Contains(err.Error(), wrong)) {
				t.Fatal("the error quotes the password")
			}
			reasonOf(t, err)
		})
	}
	t.Run("not a PFX", func(t *testing.T) {
		_, _, err := channels.ParsePFX([]byte("PK\x03\x04 a zip file"), password)
		if r := reasonOf(t, err); !strings.Contains(r, "not a PKCS#12") {
			t.Fatalf("reason %q", r)
		}
		if _, _, err := channels.ParsePFX(nil, password); err == nil {
			t.Fatal("an empty file opened")
		}
	})
}

func parse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(derOf(certPEM))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSignVerifyAndKeyMatches(t *testing.T) {
	a, b := keys()
	if err := channels.SignVerify(a, &a.PublicKey); err != nil {
		t.Fatalf("own pair: %v", err)
	}
	if err := channels.SignVerify(a, &b.PublicKey); err == nil {
		t.Fatal("a signature verified with another key")
	}
	if err := channels.SignVerify(nil, &a.PublicKey); err == nil {
		t.Fatal("signed without a key")
	}
	if !channels.KeyMatches(a, &a.PublicKey) || channels.KeyMatches(a, &b.PublicKey) || channels.KeyMatches(nil, &a.PublicKey) {
		t.Fatal("KeyMatches is wrong")
	}
}

func TestCertInfoOf(t *testing.T) {
	a, _ := keys()
	c := parse(t, testkeys.CertPEM(a, "Info", testNow, testNow.AddDate(1, 0, 0)))
	info := channels.CertInfoOf("f", c)
	if info.Field != "f" || info.Subject != "CN=Info" || !info.NotAfter.Equal(testNow.AddDate(1, 0, 0)) {
		t.Fatalf("unexpected %+v", info)
	}
	if info.Serial != strings.ToUpper(info.Serial) || len(info.Serial) != 40 {
		t.Fatalf("serial %q is not 40 upper-case hex digits", info.Serial)
	}
}
