package unionpay_test

import (
	"bytes"
	"crypto/rsa"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/testkeys"
	"payfuse/channels/unionpay"
)

var now = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// password is distinctive so a message quoting it is easy to spot.
const password = "Qx7-UnionPay-Pfx-Pw"

var fixture = sync.OnceValue(func() struct {
	values map[string][]byte
	key    *rsa.PrivateKey
	cert   []byte
} {
	k := testkeys.RSAKey(2048)
	cert := testkeys.CertPEM(k, "777290058110048 signing", now.Add(-time.Hour), now.AddDate(1, 0, 0))
	v := testkeys.Credentials(unionpay.Code, now)
	v["sign_cert_pfx"] = testkeys.PFX(k, cert, password)
	v["sign_cert_password"] = []byte(password)
	return struct {
		values map[string][]byte
		key    *rsa.PrivateKey
		cert   []byte
	}{v, k, cert}
})

// set returns a copy of the valid set with changes applied; a nil value deletes the field.
func set(changes map[string][]byte) map[string][]byte {
	v := maps.Clone(fixture().values)
	for k, c := range changes {
		if c == nil {
			delete(v, k)
		} else {
			v[k] = c
		}
	}
	return v
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

// checkMessages fails when a message lacks a language or quotes the
// password, the password given, or a line of the verification certificates.
func checkMessages(t *testing.T, values map[string][]byte, r channels.Report) {
	t.Helper()
	secrets := []string{password}
	if pw := string(values["sign_cert_password"]); len(pw) >= 6 {
		secrets = append(secrets, strings.TrimSpace(pw))
	}
	for _, line := range strings.Split(string(values["verify_cert"]), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			secrets = append(secrets, line)
		}
	}
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
	tests := []struct {
		name   string
		values map[string][]byte
	}{
		{"from testkeys", testkeys.Credentials(unionpay.Code, now)},
		{"distinctive password", set(nil)},
		{"single verification certificate (ACP 5.0.0)", set(map[string][]byte{
			"verify_cert": testkeys.CertPEM(testkeys.RSAKey(2048), "UnionPay verify", now.Add(-time.Hour), now.AddDate(2, 0, 0))})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if ps := unionpay.Spec.Validate(tc.values); ps != nil {
				t.Fatalf("Validate: %+v", ps)
			}
			r := unionpay.Spec.Check(tc.values, now)
			checkMessages(t, tc.values, r)
			if !r.OK || r.Problems != nil {
				t.Fatalf("Check not OK: %+v", r)
			}
			if len(r.Certs) < 2 || r.Certs[0].Field != "sign_cert_pfx" || r.Certs[len(r.Certs)-1].Field != "verify_cert" {
				t.Fatalf("Certs = %+v", r.Certs)
			}
			if !r.Items[0].OK || !strings.Contains(r.Items[0].Detail.EN, "verifies with its certificate") {
				t.Fatalf("first item is not a passing signature test: %+v", r.Items[0])
			}
		})
	}
}

func TestProblems(t *testing.T) {
	f := fixture()
	other := testkeys.RSAKey(2048)
	small := testkeys.RSAKey(1024)
	tests := []struct {
		name   string
		values map[string][]byte
		fields []string
		says   string
	}{
		{"mer_id missing", set(map[string][]byte{"mer_id": nil}), []string{"mer_id"}, "required"},
		{"sign_cert_pfx missing", set(map[string][]byte{"sign_cert_pfx": nil}), []string{"sign_cert_pfx"}, "required"},
		{"sign_cert_password missing", set(map[string][]byte{"sign_cert_password": {}}), []string{"sign_cert_password"}, "required"},
		{"verify_cert missing", set(map[string][]byte{"verify_cert": nil}), []string{"verify_cert"}, "required"},
		{"mer_id 14 digits", set(map[string][]byte{"mer_id": []byte("77729005811004")}), []string{"mer_id"}, "15 digits"},
		{"mer_id letters", set(map[string][]byte{"mer_id": []byte("77729005811004X")}), []string{"mer_id"}, "15 digits"},
		{"wrong password", set(map[string][]byte{"sign_cert_password": []byte("Wrong-Password-42")}), []string{"sign_cert_pfx"}, "does not open"},
		{"password with a line break", set(map[string][]byte{"sign_cert_password": []byte(password + "\n")}), []string{"sign_cert_password"}, "line break"},
		{"key from another pair than the certificate", set(map[string][]byte{"sign_cert_pfx": testkeys.PFX(other, f.cert, password)}), []string{"sign_cert_pfx"}, "does not match"},
		{"1024-bit signing key", set(map[string][]byte{"sign_cert_pfx": testkeys.PFX(small,
			testkeys.CertPEM(small, "small", now.Add(-time.Hour), now.AddDate(1, 0, 0)), password)}), []string{"sign_cert_pfx"}, "1024-bit"},
		{"not a PFX", set(map[string][]byte{"sign_cert_pfx": f.cert}), []string{"sign_cert_pfx"}, "not a PKCS#12"},
		{"garbage verify PEM", set(map[string][]byte{"verify_cert": []byte("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n")}), []string{"verify_cert"}, "damaged"},
		{"own signing certificate as verify_cert", set(map[string][]byte{"verify_cert": f.cert}), []string{"verify_cert"}, "public half"},
		{"private key as verify_cert", set(map[string][]byte{"verify_cert": testkeys.PrivateKeyPEM(other)}), []string{"verify_cert"}, "PRIVATE key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := unionpay.Spec.Validate(tc.values)
			got := problemFields(ps)
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("problems on %v, want %v: %+v", got, tc.fields, ps)
			}
			if !strings.Contains(ps[0].Message.EN, tc.says) {
				t.Fatalf("message %q does not say %q", ps[0].Message.EN, tc.says)
			}
			r := unionpay.Spec.Check(tc.values, now)
			checkMessages(t, tc.values, r)
			if r.OK {
				t.Fatal("Check is OK")
			}
			for _, txt := range texts(r) {
				if strings.Contains(txt.EN, "Wrong-Password-42") || strings.Contains(txt.ZH, "Wrong-Password-42") {
					t.Fatal("a message quotes the password given")
				}
			}
		})
	}
}

func TestCertificateValidity(t *testing.T) {
	f := fixture()
	verify := testkeys.RSAKey(2048)
	tests := []struct {
		name     string
		changes  map[string][]byte
		reportOK bool
		subject  string
		itemOK   bool
		detail   string
	}{
		{"expired signing certificate", map[string][]byte{"sign_cert_pfx": testkeys.PFX(f.key,
			testkeys.CertPEM(f.key, "expired signing", now.AddDate(-1, 0, 0), now.AddDate(0, 0, -30)), password)},
			false, "expired signing", false, "expired on"},
		{"verification certificate expires in 10 days", map[string][]byte{"verify_cert": bytes.Join([][]byte{
			testkeys.CertPEM(verify, "ending verify", now.AddDate(-1, 0, 0), now.AddDate(0, 0, 10)),
			testkeys.CertPEM(testkeys.RSAKey(2048), "root", now.AddDate(-1, 0, 0), now.AddDate(5, 0, 0))}, nil)},
			true, "ending verify", true, "Warning: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			values := set(tc.changes)
			if ps := unionpay.Spec.Validate(values); ps != nil {
				t.Fatalf("Validate: %+v", ps)
			}
			r := unionpay.Spec.Check(values, now)
			checkMessages(t, values, r)
			if r.OK != tc.reportOK {
				t.Fatalf("Report.OK = %v: %+v", r.OK, r.Items)
			}
			found := false
			for _, c := range r.Certs {
				found = found || strings.Contains(c.Subject, tc.subject)
			}
			if !found {
				t.Fatalf("Certs = %+v", r.Certs)
			}
			for _, it := range r.Items {
				if strings.Contains(it.Detail.EN, tc.subject) {
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
