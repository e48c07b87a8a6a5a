package wechat_test

import (
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/testkeys"
	"payfuse/channels/wechat"
)

var now = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

var base = sync.OnceValue(func() map[string][]byte { return testkeys.Credentials(wechat.Code, now) })

// set returns a copy of the valid set with changes applied; a nil value deletes the field.
func set(changes map[string][]byte) map[string][]byte {
	v := maps.Clone(base())
	for k, c := range changes {
		if c == nil {
			delete(v, k)
		} else {
			v[k] = c
		}
	}
	return v
}

// secretsIn lists distinctive pieces of every secret value in values: the
// secret texts whole, and each base64 line of key and certificate PEM.
func secretsIn(values map[string][]byte) []string {
	var out []string
	for _, f := range wechat.Spec.Fields {
		v := string(values[f.Name])
		switch f.Kind {
		case channels.KindSecretText:
			if len(v) >= 6 {
				out = append(out, v)
			}
		case channels.KindPrivateKey, channels.KindPublicKey, channels.KindCertificate:
			for _, line := range strings.Split(v, "\n") {
				if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
					out = append(out, line)
				}
			}
		}
	}
	return out
}

// texts lists every message of a report.
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

// checkMessages fails when a message lacks a language or quotes a secret.
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
	tests := []struct {
		name   string
		values map[string][]byte
		certs  int
	}{
		{"everything", set(nil), 1},
		{"public key only", set(map[string][]byte{"platform_certificate": nil}), 0},
		{"platform certificate only", set(map[string][]byte{"platform_public_key": nil, "platform_public_key_id": nil}), 1},
		{"text with surrounding white space", set(map[string][]byte{"mch_id": []byte(" 1600000001\n")}), 1},
		{"PKCS#1 merchant key", set(map[string][]byte{"merchant_private_key": testkeys.PKCS1PrivateKeyPEM(testkeys.RSAKey(2048))}), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if ps := wechat.Spec.Validate(tc.values); ps != nil {
				t.Fatalf("Validate: %+v", ps)
			}
			r := wechat.Spec.Check(tc.values, now)
			checkMessages(t, tc.values, r)
			if !r.OK || r.Problems != nil {
				t.Fatalf("Check not OK: %+v", r)
			}
			if len(r.Certs) != tc.certs {
				t.Fatalf("%d certificates, want %d", len(r.Certs), tc.certs)
			}
			if len(r.Items) == 0 || !strings.Contains(r.Items[0].Detail.EN, "verifies") {
				t.Fatalf("first item is not the signature test: %+v", r.Items)
			}
		})
	}
}

func TestProblems(t *testing.T) {
	other := testkeys.RSAKey(2048)
	merchant := base()["merchant_private_key"]
	key := string(base()["apiv3_key"])
	tests := []struct {
		name    string
		changes map[string][]byte
		fields  []string
		says    string
	}{
		{"app_id missing", map[string][]byte{"app_id": nil}, []string{"app_id"}, "required"},
		{"mch_id empty", map[string][]byte{"mch_id": {}}, []string{"mch_id"}, "required"},
		{"apiv3_key missing", map[string][]byte{"apiv3_key": nil}, []string{"apiv3_key"}, "required"},
		{"merchant_serial_no missing", map[string][]byte{"merchant_serial_no": nil}, []string{"merchant_serial_no"}, "required"},
		{"merchant_private_key missing", map[string][]byte{"merchant_private_key": nil}, []string{"merchant_private_key"}, "required"},
		{"no platform key nor certificate", map[string][]byte{"platform_public_key": nil, "platform_public_key_id": nil, "platform_certificate": nil},
			[]string{"platform_public_key"}, "or the WeChat Pay platform certificate"},
		{"public key without its id", map[string][]byte{"platform_public_key_id": nil}, []string{"platform_public_key_id"}, "required with"},
		{"id without the public key", map[string][]byte{"platform_public_key": nil}, []string{"platform_public_key"}, "clear the ID"},
		{"app_id short", map[string][]byte{"app_id": []byte("wx12345")}, []string{"app_id"}, "16 letters"},
		{"app_id prefix", map[string][]byte{"app_id": []byte("ab1234567890abcdef")}, []string{"app_id"}, "\"wx\""},
		{"mch_id short", map[string][]byte{"mch_id": []byte("1234567")}, []string{"mch_id"}, "8 to 12 digits"},
		{"mch_id letters", map[string][]byte{"mch_id": []byte("16000000A1")}, []string{"mch_id"}, "8 to 12 digits"},
		{"serial not hex", map[string][]byte{"merchant_serial_no": []byte("XYZ0123456789ABC")}, []string{"merchant_serial_no"}, "hexadecimal"},
		{"serial too long", map[string][]byte{"merchant_serial_no": []byte(strings.Repeat("A", 65))}, []string{"merchant_serial_no"}, "hexadecimal"},
		{"public key id", map[string][]byte{"platform_public_key_id": []byte("KEY_0123456789")}, []string{"platform_public_key_id"}, "PUB_KEY_ID_"},
		{"apiv3_key 31 bytes", map[string][]byte{"apiv3_key": []byte(key[:31])}, []string{"apiv3_key"}, "has 31"},
		{"apiv3_key 33 bytes", map[string][]byte{"apiv3_key": []byte(key + "Z")}, []string{"apiv3_key"}, "has 33"},
		{"apiv3_key with a line break", map[string][]byte{"apiv3_key": []byte(key + "\n")}, []string{"apiv3_key"}, "line break"},
		{"apiv3_key with a space inside", map[string][]byte{"apiv3_key": []byte(key[:10] + " " + key[11:])}, []string{"apiv3_key"}, "letters and digits"},
		{"garbage merchant key", map[string][]byte{"merchant_private_key": []byte("-----BEGIN PRIVATE KEY-----\nnonsense!\n-----END PRIVATE KEY-----\n")},
			[]string{"merchant_private_key"}, "damaged"},
		{"certificate as merchant key", map[string][]byte{"merchant_private_key": base()["platform_certificate"]}, []string{"merchant_private_key"}, "certificate, not a private key"},
		{"1024-bit merchant key", map[string][]byte{"merchant_private_key": testkeys.PrivateKeyPEM(testkeys.RSAKey(1024))}, []string{"merchant_private_key"}, "1024-bit"},
		{"garbage public key", map[string][]byte{"platform_public_key": []byte("hello world")}, []string{"platform_public_key"}, "No public key"},
		{"merchant key as public key", map[string][]byte{"platform_public_key": merchant}, []string{"platform_public_key"}, "PRIVATE key"},
		{"own public key as platform key", map[string][]byte{"platform_public_key": ownPublic(t, merchant)}, []string{"platform_public_key"}, "public half"},
		{"garbage certificate", map[string][]byte{"platform_certificate": []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")},
			[]string{"platform_certificate"}, "certificate"},
		{"own certificate as platform certificate", map[string][]byte{"platform_certificate": ownCert(t, merchant)}, []string{"platform_certificate"}, "public half"},
		{"another key as merchant key still valid alone", map[string][]byte{"merchant_private_key": testkeys.PrivateKeyPEM(other)}, nil, ""},
		{"unknown field", map[string][]byte{"appid": []byte("wx")}, []string{"appid"}, "not a credential field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			values := set(tc.changes)
			ps := wechat.Spec.Validate(values)
			got := problemFields(ps)
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("problems on %v, want %v: %+v", got, tc.fields, ps)
			}
			if tc.says != "" && !strings.Contains(ps[0].Message.EN, tc.says) {
				t.Fatalf("message %q does not say %q", ps[0].Message.EN, tc.says)
			}
			r := wechat.Spec.Check(values, now)
			checkMessages(t, values, r)
			if r.OK != (tc.fields == nil) {
				t.Fatalf("Check OK = %v", r.OK)
			}
			for _, txt := range texts(r) {
				if strings.Contains(txt.EN, key) || strings.Contains(txt.EN, key[:31]) {
					t.Fatal("a message quotes the APIv3 key")
				}
			}
		})
	}
}

func ownPublic(t *testing.T, merchantPEM []byte) []byte {
	t.Helper()
	k, err := channels.ParsePrivateKey(merchantPEM)
	if err != nil {
		t.Fatal(err)
	}
	return testkeys.PublicKeyPEM(&k.PublicKey)
}

func ownCert(t *testing.T, merchantPEM []byte) []byte {
	t.Helper()
	k, err := channels.ParsePrivateKey(merchantPEM)
	if err != nil {
		t.Fatal(err)
	}
	return testkeys.CertPEM(k, "merchant API certificate", now.Add(-time.Hour), now.AddDate(1, 0, 0))
}

func TestCertificateValidity(t *testing.T) {
	k := testkeys.RSAKey(2048)
	tests := []struct {
		name      string
		from, to  time.Time
		ok        bool
		detail    string
		itemState bool
	}{
		{"expired", now.AddDate(-1, 0, 0), now.AddDate(0, 0, -2), false, "expired on", false},
		{"expires in 10 days", now.AddDate(-1, 0, 0), now.AddDate(0, 0, 10), true, "Warning: ", true},
		{"not yet valid", now.AddDate(0, 0, 3), now.AddDate(1, 0, 0), false, "not valid until", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			values := set(map[string][]byte{"platform_certificate": testkeys.CertPEM(k, "rotating platform cert", tc.from, tc.to)})
			if ps := wechat.Spec.Validate(values); ps != nil {
				t.Fatalf("Validate refused a parseable certificate: %+v", ps)
			}
			r := wechat.Spec.Check(values, now)
			checkMessages(t, values, r)
			if r.OK != tc.ok {
				t.Fatalf("Report.OK = %v, want %v", r.OK, tc.ok)
			}
			if len(r.Certs) != 1 || r.Certs[0].Field != "platform_certificate" || !r.Certs[0].NotAfter.Equal(tc.to) {
				t.Fatalf("Certs = %+v", r.Certs)
			}
			found := false
			for _, it := range r.Items {
				if strings.Contains(it.Detail.EN, "rotating platform cert") {
					found = true
					if it.OK != tc.itemState || !strings.Contains(it.Detail.EN, tc.detail) {
						t.Fatalf("item %+v", it)
					}
				}
			}
			if !found {
				t.Fatalf("no validity item: %+v", r.Items)
			}
		})
	}
}

func TestSpec(t *testing.T) {
	s := wechat.Spec
	if s.Code != "wechat" || s.Name.ZH != "微信支付" {
		t.Fatalf("spec %s %+v", s.Code, s.Name)
	}
	want := "app_id,mch_id,apiv3_key,merchant_serial_no,merchant_private_key,platform_public_key_id,platform_public_key,platform_certificate"
	var names []string
	for _, f := range s.Fields {
		names = append(names, f.Name)
	}
	if strings.Join(names, ",") != want {
		t.Fatalf("fields %v", names)
	}
}
