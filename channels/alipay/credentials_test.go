package alipay_test

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
	"maps"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/alipay"
	"payfuse/channels/testkeys"
)

var now = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

var base = sync.OnceValue(func() map[string][]byte { return testkeys.Credentials(alipay.Code, now) })

// alipayKeyPEM is a public key for public-key mode.
var alipayKeyPEM = sync.OnceValue(func() []byte { return testkeys.PublicKeyPEM(&testkeys.RSAKey(2048).PublicKey) })

var trioGone = map[string][]byte{"app_cert": nil, "alipay_cert": nil, "alipay_root_cert": nil}

// set returns a copy of the valid (certificate-mode) set with the changes
// applied in order; a nil value deletes the field.
func set(changes ...map[string][]byte) map[string][]byte {
	v := maps.Clone(base())
	for _, ch := range changes {
		for k, c := range ch {
			if c == nil {
				delete(v, k)
			} else {
				v[k] = c
			}
		}
	}
	return v
}

// publicKeyMode returns a valid set in public-key mode, the Alipay public key given as data.
func publicKeyMode(data []byte, more ...map[string][]byte) map[string][]byte {
	return set(append([]map[string][]byte{trioGone, {"alipay_public_key": data}}, more...)...)
}

func derOf(p []byte) []byte {
	blk, _ := pem.Decode(p)
	return blk.Bytes
}

// consoleBase64 renders DER as Alipay's console shows a key: bare base64,
// here with the line breaks a copy from a web page may add.
func consoleBase64(der []byte) []byte {
	s := base64.StdEncoding.EncodeToString(der)
	return []byte(s[:100] + "\n" + s[100:200] + "\r\n  " + s[200:] + "\n")
}

// sm2LikeCertPEM returns a certificate Go cannot parse, as the SM2 root in
// alipayRootCert.crt: a P-256 certificate whose curve OID is replaced by SM2's.
func sm2LikeCertPEM(t *testing.T) []byte {
	t.Helper()
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "SM2 root"},
		NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(10, 0, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ek.PublicKey, ek)
	if err != nil {
		t.Fatal(err)
	}
	der = bytes.ReplaceAll(der,
		[]byte{0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07},
		[]byte{0x06, 0x08, 0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x01, 0x82, 0x2D})
	if _, err := x509.ParseCertificate(der); err == nil {
		t.Fatal("the SM2-like certificate parsed")
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func secretsIn(values map[string][]byte) []string {
	var out []string
	for _, f := range alipay.Spec.Fields {
		v := string(values[f.Name])
		switch f.Kind {
		case channels.KindSecretText:
			if len(v) >= 6 {
				out = append(out, v)
			}
		case channels.KindPrivateKey, channels.KindPublicKey, channels.KindCertificate:
			for _, line := range strings.Split(strings.ReplaceAll(v, "\r", ""), "\n") {
				line = strings.TrimSpace(line)
				if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
					out = append(out, line)
				}
			}
		}
	}
	return out
}

func texts(r channels.Report) []channels.Text {
	var out []channels.Text
	for _, p := range r.Problems {
		out = append(out, p.Message)
	}
	for _, it := range r.Items {
		out = append(out, it.Name, it.Detail)
	}
	return out
}

func checkMessages(t *testing.T, values map[string][]byte, r channels.Report) {
	t.Helper()
	secrets := secretsIn(values)
	for _, txt := range texts(r) {
		if txt.EN == "" || txt.ZH == "" {
			t.Errorf("message %+v lacks a language", txt)
		}
		for _, s := range secrets {
			if strings.Contains(txt.EN, s) || strings.Contains(txt.ZH, s) {
				t.Errorf("message %q quotes a secret", txt.EN)
			}
		}
	}
}

func problemFields(ps []channels.Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Field)
	}
	return out
}

func TestValidSets(t *testing.T) {
	pemKey := alipayKeyPEM()
	appKeyDER := derOf(base()["app_private_key"])
	appKey, err := x509.ParsePKCS8PrivateKey(appKeyDER)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		values map[string][]byte
		certs  int
		mode   string
	}{
		{"certificate mode", set(), 3, "Certificate mode."},
		{"public-key mode, PEM", publicKeyMode(pemKey), 0, "Public-key mode."},
		{"public-key mode, bare base64 DER as the console shows it", publicKeyMode(consoleBase64(derOf(pemKey))), 0, "Public-key mode."},
		{"public-key mode, one line of base64", publicKeyMode([]byte(base64.StdEncoding.EncodeToString(derOf(pemKey)))), 0, "Public-key mode."},
		{"both modes", set(map[string][]byte{"alipay_public_key": pemKey}), 3, "is set too"},
		{"app key as bare base64 PKCS#8 (key tool)", set(map[string][]byte{"app_private_key": consoleBase64(appKeyDER)}), 3, "Certificate mode."},
		{"app key as PKCS#1 PEM", set(map[string][]byte{"app_private_key": testkeys.PKCS1PrivateKeyPEM(appKey.(*rsa.PrivateKey))}), 3, "Certificate mode."},
		{"root bundle with an SM2 certificate", set(map[string][]byte{
			"alipay_root_cert": bytes.Join([][]byte{base()["alipay_root_cert"], sm2LikeCertPEM(t)}, nil)}), 3, "Certificate mode."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if ps := alipay.Spec.Validate(tc.values); ps != nil {
				t.Fatalf("Validate: %+v", ps)
			}
			r := alipay.Spec.Check(tc.values, now)
			checkMessages(t, tc.values, r)
			if !r.OK || r.Problems != nil {
				t.Fatalf("Check not OK: %+v", r)
			}
			if len(r.Certs) != tc.certs {
				t.Fatalf("%d certificates, want %d", len(r.Certs), tc.certs)
			}
			if !strings.Contains(r.Items[0].Detail.EN, tc.mode) {
				t.Fatalf("mode item %+v, want %q", r.Items[0], tc.mode)
			}
		})
	}
}

func TestRootBundleNote(t *testing.T) {
	values := set(map[string][]byte{"alipay_root_cert": bytes.Join([][]byte{sm2LikeCertPEM(t), base()["alipay_root_cert"]}, nil)})
	r := alipay.Spec.Check(values, now)
	for _, it := range r.Items {
		if strings.Contains(it.Detail.EN, "1 of 2 certificates read") {
			if !it.OK {
				t.Fatalf("a skipped SM2 root is not a failure: %+v", it)
			}
			return
		}
	}
	t.Fatalf("no note on the skipped certificate: %+v", r.Items)
}

func TestProblems(t *testing.T) {
	otherKey := testkeys.RSAKey(2048)
	appKey, err := channels.ParsePrivateKey(base()["app_private_key"])
	if err != nil {
		t.Fatal(err)
	}
	ownPublic := testkeys.PublicKeyPEM(&appKey.PublicKey)
	tests := []struct {
		name   string
		values map[string][]byte
		fields []string
		says   string
	}{
		{"app_id missing", set(map[string][]byte{"app_id": nil}), []string{"app_id"}, "required"},
		{"pid missing", set(map[string][]byte{"pid": {}}), []string{"pid"}, "required"},
		{"app_private_key missing", set(map[string][]byte{"app_private_key": nil}), []string{"app_private_key"}, "required"},
		{"no public key nor certificates", set(trioGone), []string{"alipay_public_key"}, "certificate mode"},
		{"app_cert missing", set(map[string][]byte{"app_cert": nil}), []string{"app_cert"}, "certificate mode"},
		{"alipay_cert missing", set(map[string][]byte{"alipay_cert": nil}), []string{"alipay_cert"}, "certificate mode"},
		{"alipay_root_cert missing", set(map[string][]byte{"alipay_root_cert": nil}), []string{"alipay_root_cert"}, "certificate mode"},
		{"only the root given", set(map[string][]byte{"app_cert": nil, "alipay_cert": nil}), []string{"app_cert", "alipay_cert"}, "certificate mode"},
		{"trio incomplete with the public key", set(map[string][]byte{"app_cert": nil, "alipay_public_key": alipayKeyPEM()}), []string{"app_cert"}, "certificate mode"},
		{"app_id 15 digits", set(map[string][]byte{"app_id": []byte("202100000000000")}), []string{"app_id"}, "16 digits"},
		{"app_id letters", set(map[string][]byte{"app_id": []byte("2021abcd00000000")}), []string{"app_id"}, "16 digits"},
		{"pid without 2088", set(map[string][]byte{"pid": []byte("2089000000000000")}), []string{"pid"}, "2088"},
		{"pid too long", set(map[string][]byte{"pid": []byte("20880000000000001")}), []string{"pid"}, "2088"},
		{"app key from another pair than app_cert", set(map[string][]byte{"app_private_key": testkeys.PrivateKeyPEM(otherKey)}), []string{"app_cert"}, "does not match"},
		{"app_cert for another key", set(map[string][]byte{"app_cert": testkeys.CertPEM(otherKey, "other app", now.Add(-time.Hour), now.AddDate(1, 0, 0))}), []string{"app_cert"}, "does not match"},
		{"app public key pasted as Alipay public key", publicKeyMode(consoleBase64(derOf(ownPublic))), []string{"alipay_public_key"}, "public half"},
		{"app certificate pasted as Alipay certificate", set(map[string][]byte{"alipay_cert": base()["app_cert"]}), []string{"alipay_cert"}, "public half"},
		{"garbage app key", set(map[string][]byte{"app_private_key": []byte("-----BEGIN RSA PRIVATE KEY-----\n***\n-----END RSA PRIVATE KEY-----\n")}), []string{"app_private_key"}, "damaged"},
		{"garbage bare base64 app key", set(map[string][]byte{"app_private_key": []byte("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC")}), []string{"app_private_key"}, "not a readable"},
		{"garbage public key", publicKeyMode([]byte("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA")), []string{"alipay_public_key"}, "public key"},
		{"garbage root certificate", set(map[string][]byte{"alipay_root_cert": []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}), []string{"alipay_root_cert"}, "None of its certificates"},
		{"only SM2 in the root file", set(map[string][]byte{"alipay_root_cert": sm2LikeCertPEM(t)}), []string{"alipay_root_cert"}, "None of its certificates"},
		{"1024-bit app key", publicKeyMode(alipayKeyPEM(), map[string][]byte{"app_private_key": testkeys.PrivateKeyPEM(testkeys.RSAKey(1024))}), []string{"app_private_key"}, "1024-bit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := alipay.Spec.Validate(tc.values)
			got := problemFields(ps)
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("problems on %v, want %v: %+v", got, tc.fields, ps)
			}
			if !strings.Contains(ps[0].Message.EN, tc.says) {
				t.Fatalf("message %q does not say %q", ps[0].Message.EN, tc.says)
			}
			r := alipay.Spec.Check(tc.values, now)
			checkMessages(t, tc.values, r)
			if r.OK {
				t.Fatal("Check is OK")
			}
		})
	}
}

func TestMismatchFailsTheSignatureTest(t *testing.T) {
	values := set(map[string][]byte{"app_private_key": testkeys.PrivateKeyPEM(testkeys.RSAKey(2048))})
	r := alipay.Spec.Check(values, now)
	for _, it := range r.Items {
		if strings.Contains(it.Name.EN, "matches") {
			if it.OK || !strings.Contains(it.Detail.EN, "does not verify") {
				t.Fatalf("item %+v", it)
			}
			return
		}
	}
	t.Fatalf("no match item: %+v", r.Items)
}

func TestCertificateValidity(t *testing.T) {
	appKey, err := channels.ParsePrivateKey(base()["app_private_key"])
	if err != nil {
		t.Fatal(err)
	}
	alipayKey := testkeys.RSAKey(2048)
	tests := []struct {
		name     string
		field    string
		cert     []byte
		reportOK bool
		itemOK   bool
		detail   string
	}{
		{"expired app certificate", "app_cert", testkeys.CertPEM(appKey, "old app cert", now.AddDate(-2, 0, 0), now.AddDate(0, 0, -1)), false, false, "expired on"},
		{"Alipay certificate expires in 10 days", "alipay_cert", testkeys.CertPEM(alipayKey, "old alipay cert", now.AddDate(-1, 0, 0), now.AddDate(0, 0, 10)), true, true, "expires in 10 days"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			values := set(map[string][]byte{tc.field: tc.cert})
			if ps := alipay.Spec.Validate(values); ps != nil {
				t.Fatalf("Validate: %+v", ps)
			}
			r := alipay.Spec.Check(values, now)
			checkMessages(t, values, r)
			if r.OK != tc.reportOK {
				t.Fatalf("Report.OK = %v", r.OK)
			}
			var info *channels.CertInfo
			for i := range r.Certs {
				if r.Certs[i].Field == tc.field {
					info = &r.Certs[i]
				}
			}
			if info == nil || !strings.Contains(info.Subject, "old ") {
				t.Fatalf("Certs = %+v", r.Certs)
			}
			for _, it := range r.Items {
				if strings.Contains(it.Detail.EN, info.Serial) {
					if it.OK != tc.itemOK || !strings.Contains(it.Detail.EN, tc.detail) {
						t.Fatalf("item %+v", it)
					}
					return
				}
			}
			t.Fatalf("no item for the certificate: %+v", r.Items)
		})
	}
}
