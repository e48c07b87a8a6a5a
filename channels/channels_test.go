package channels_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/testkeys"
)

func TestTextIn(t *testing.T) {
	txt := channels.Text{EN: "Hello", ZH: "你好"}
	tests := []struct{ lang, want string }{
		{"zh-CN", "你好"},
		{"zh", "你好"},
		{"zh_cn", "你好"},
		{"en", "Hello"},
		{"", "Hello"},
		{"fr-FR", "Hello"},
	}
	for _, tc := range tests {
		if got := txt.In(tc.lang); got != tc.want {
			t.Errorf("In(%q) = %q, want %q", tc.lang, got, tc.want)
		}
	}
	if got := (channels.Text{EN: "only English"}).In("zh-CN"); got != "only English" {
		t.Errorf("empty Chinese does not fall back: %q", got)
	}
}

func TestTextf(t *testing.T) {
	label := channels.Text{EN: "App ID", ZH: "应用ID"}
	got := channels.Textf("%s has %d characters", "%s有 %d 个字符", label, 5)
	if got.EN != "App ID has 5 characters" || got.ZH != "应用ID有 5 个字符" {
		t.Fatalf("Textf = %+v", got)
	}
}

func TestCertState(t *testing.T) {
	c := channels.CertInfo{NotBefore: testNow, NotAfter: testNow.AddDate(0, 0, 60)}
	tests := []struct {
		name string
		at   time.Time
		want channels.CertState
		ok   bool
		says string
	}{
		{"before", testNow.Add(-time.Minute), channels.CertNotYetValid, false, "not valid until"},
		{"valid", testNow.AddDate(0, 0, 1), channels.CertValid, true, "valid until"},
		{"ten days left", testNow.AddDate(0, 0, 50), channels.CertExpiringSoon, true, "Warning: "},
		{"just inside the window", c.NotAfter.Add(-channels.ExpiringSoon + time.Second), channels.CertExpiringSoon, true, "Warning: "},
		{"just outside the window", c.NotAfter.Add(-channels.ExpiringSoon - time.Second), channels.CertValid, true, "valid until"},
		{"expired", c.NotAfter.Add(time.Second), channels.CertExpired, false, "expired on"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.State(tc.at); got != tc.want {
				t.Fatalf("State = %s, want %s", got, tc.want)
			}
			it := channels.CertItem(channels.Text{EN: "Cert", ZH: "证书"}, c, tc.at)
			if it.OK != tc.ok || !strings.Contains(it.Detail.EN, tc.says) || it.Detail.ZH == "" || it.Name.ZH == "" {
				t.Fatalf("CertItem = %+v", it)
			}
		})
	}
}

// fields is a small schema for exercising Validation directly.
var fields = []channels.Field{
	{Name: "id", Label: channels.Text{EN: "ID", ZH: "编号"}, Kind: channels.KindText, Required: true},
	{Name: "key", Label: channels.Text{EN: "Key", ZH: "私钥"}, Kind: channels.KindPrivateKey, Secret: true, Required: true},
	{Name: "pub", Label: channels.Text{EN: "Public key", ZH: "公钥"}, Kind: channels.KindPublicKey, Secret: true},
	{Name: "cert", Label: channels.Text{EN: "Certificate", ZH: "证书"}, Kind: channels.KindCertificate, Secret: true},
}

func TestValidation(t *testing.T) {
	a, b := keys()
	small := testkeys.RSAKey(1024)
	idRE := regexp.MustCompile(`^[0-9]{4}$`)
	run := func(values map[string][]byte) (*channels.Validation, channels.Report) {
		v := channels.NewValidation(channels.Text{EN: "Test", ZH: "测试"}, fields, values)
		v.Fields()
		v.Pattern("id", idRE, channels.Text{EN: "4 digits", ZH: "4 位数字"})
		k := v.PrivateKey("key")
		pub := v.PublicKey("pub")
		v.Match("key", k, "pub", pub)
		v.Certificates("cert", true)
		return v, v.Report(testNow, channels.SignItem(v.Label("key"), k, v.Label("pub"), pub))
	}
	cert := testkeys.CertPEM(a, "A", testNow.AddDate(0, 0, -1), testNow.AddDate(1, 0, 0))
	tests := []struct {
		name   string
		values map[string][]byte
		fields []string // fields with problems, in order
	}{
		{"all good", map[string][]byte{"id": []byte(" 1234\n"), "key": testkeys.PrivateKeyPEM(a), "pub": testkeys.PublicKeyPEM(&a.PublicKey), "cert": cert}, nil},
		{"missing required", map[string][]byte{"pub": testkeys.PublicKeyPEM(&a.PublicKey), "id": []byte("  ")}, []string{"id", "key"}},
		{"unknown field", map[string][]byte{"id": []byte("1234"), "key": testkeys.PrivateKeyPEM(a), "zzz": []byte("x"), "aaa": nil}, []string{"aaa", "zzz"}},
		{"bad id", map[string][]byte{"id": []byte("12345"), "key": testkeys.PrivateKeyPEM(a)}, []string{"id"}},
		{"mismatch", map[string][]byte{"id": []byte("1234"), "key": testkeys.PrivateKeyPEM(a), "pub": testkeys.PublicKeyPEM(&b.PublicKey)}, []string{"pub"}},
		{"small keys", map[string][]byte{"id": []byte("1234"), "key": testkeys.PrivateKeyPEM(small),
			"cert": testkeys.CertPEM(small, "small", testNow, testNow.AddDate(1, 0, 0))}, []string{"key", "cert"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, r := run(tc.values)
			var got []string
			for _, p := range v.Problems() {
				got = append(got, p.Field)
				if p.Message.EN == "" || p.Message.ZH == "" {
					t.Errorf("problem %+v lacks a language", p)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("problems on %v, want %v: %+v", got, tc.fields, v.Problems())
			}
			if r.OK != (tc.fields == nil) {
				t.Fatalf("report OK = %v with problems %v", r.OK, got)
			}
		})
	}
}

func TestSpecField(t *testing.T) {
	s := channels.Spec{Fields: fields}
	if f, ok := s.Field("pub"); !ok || f.Kind != channels.KindPublicKey {
		t.Fatalf("Field(pub) = %+v, %v", f, ok)
	}
	if _, ok := s.Field("nope"); ok {
		t.Fatal("found a field that does not exist")
	}
}
