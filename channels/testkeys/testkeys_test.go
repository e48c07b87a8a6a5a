package testkeys_test

import (
	"crypto/x509"
	"encoding/pem"
	"regexp"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"payfuse/channels"
	"payfuse/channels/all"
	"payfuse/channels/testkeys"
)

var now = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

func TestPFXOpensWithItsPassword(t *testing.T) {
	k := testkeys.RSAKey(2048)
	certPEM := testkeys.CertPEM(k, "pfx test", now, now.AddDate(1, 0, 0))
	blk, _ := pem.Decode(certPEM)
	for name, cert := range map[string][]byte{"PEM": certPEM, "DER": blk.Bytes} {
		t.Run(name, func(t *testing.T) {
			data := testkeys.PFX(k, cert, "s3cret-pfx")
			key, c, err := pkcs12.Decode(data, "s3cret-pfx")
			if err != nil {
				t.Fatalf("the PFX does not open with its password: %v", err)
			}
			if !channels.KeyMatches(k, c.PublicKey) || !k.Equal(key) {
				t.Fatal("the PFX holds another key or certificate")
			}
			if _, _, err := pkcs12.Decode(data, "other"); err == nil {
				t.Fatal("the PFX opens with another password")
			}
		})
	}
}

func TestKeysAndCertificates(t *testing.T) {
	k := testkeys.RSAKey(2048)
	if k.N.BitLen() != 2048 {
		t.Fatalf("%d-bit key", k.N.BitLen())
	}
	if got, err := channels.ParsePrivateKey(testkeys.PrivateKeyPEM(k)); err != nil || !got.Equal(k) {
		t.Fatalf("PrivateKeyPEM: %v", err)
	}
	if blk, _ := pem.Decode(testkeys.PrivateKeyPEM(k)); blk.Type != "PRIVATE KEY" {
		t.Fatalf("PrivateKeyPEM block %q, want PKCS#8", blk.Type)
	}
	if got, err := channels.ParsePublicKey(testkeys.PublicKeyPEM(&k.PublicKey)); err != nil || !got.Equal(&k.PublicKey) {
		t.Fatalf("PublicKeyPEM: %v", err)
	}
	from, to := now.Add(-time.Hour), now.AddDate(1, 0, 0)
	certs, err := channels.ParseCertificates(testkeys.CertPEM(k, "cn test", from, to))
	if err != nil || len(certs) != 1 {
		t.Fatalf("CertPEM: %v", err)
	}
	c := certs[0]
	if c.Subject.CommonName != "cn test" || !c.NotBefore.Equal(from) || !c.NotAfter.Equal(to) || !channels.KeyMatches(k, c.PublicKey) {
		t.Fatalf("certificate %s %v–%v", c.Subject, c.NotBefore, c.NotAfter)
	}
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		t.Fatalf("not self-signed: %v", err)
	}
}

func TestCredentials(t *testing.T) {
	ids := map[string]map[string]*regexp.Regexp{
		"wechat":   {"app_id": regexp.MustCompile(`^wx[0-9a-f]{16}$`), "mch_id": regexp.MustCompile(`^[0-9]{10}$`), "merchant_serial_no": regexp.MustCompile(`^[0-9A-F]{40}$`)},
		"alipay":   {"app_id": regexp.MustCompile(`^2021[0-9]{12}$`), "pid": regexp.MustCompile(`^2088[0-9]{12}$`)},
		"unionpay": {"mer_id": regexp.MustCompile(`^[0-9]{15}$`)},
	}
	for _, spec := range all.Specs() {
		t.Run(spec.Code, func(t *testing.T) {
			values := testkeys.Credentials(spec.Code, now)
			for _, f := range spec.Fields {
				if f.Required && len(values[f.Name]) == 0 {
					t.Errorf("required field %s is not set", f.Name)
				}
			}
			for name, re := range ids[spec.Code] {
				if !re.Match(values[name]) {
					t.Errorf("%s = %q does not look real", name, values[name])
				}
			}
			if ps := spec.Validate(values); ps != nil {
				t.Fatalf("Validate: %+v", ps)
			}
			r := spec.Check(values, now)
			if !r.OK {
				t.Fatalf("Check: %+v", r)
			}
			for _, c := range r.Certs {
				if c.State(now) != channels.CertValid || c.State(now.AddDate(1, 0, 0).Add(-channels.ExpiringSoon-time.Minute)) != channels.CertValid ||
					c.State(now.AddDate(1, 0, 1)) != channels.CertExpired {
					t.Errorf("certificate %s is not valid for a year from now: %v–%v", c.Subject, c.NotBefore, c.NotAfter)
				}
			}
			again := testkeys.Credentials(spec.Code, now)
			for _, f := range spec.Fields {
				if f.Kind == channels.KindPrivateKey && string(again[f.Name]) == string(values[f.Name]) {
					t.Errorf("%s is the same in two sets", f.Name)
				}
			}
		})
	}
	if testkeys.Credentials("paypal", now) != nil {
		t.Fatal("a set for an unknown channel")
	}
}

func TestAlipayChain(t *testing.T) {
	values := testkeys.Credentials("alipay", now)
	roots, _ := channels.ParseCertificates(values["alipay_root_cert"])
	pool := x509.NewCertPool()
	pool.AddCert(roots[0])
	for _, f := range []string{"app_cert", "alipay_cert"} {
		certs, _ := channels.ParseCertificates(values[f])
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s does not chain to the root: %v", f, err)
		}
	}
}
