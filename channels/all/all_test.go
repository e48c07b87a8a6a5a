package all_test

import (
	"slices"
	"strings"
	"testing"

	"payfuse/channels"
	"payfuse/channels/all"
)

func TestSpecs(t *testing.T) {
	specs := all.Specs()
	var codes []string
	for _, s := range specs {
		codes = append(codes, s.Code)
	}
	if strings.Join(codes, ",") != "wechat,alipay,unionpay" {
		t.Fatalf("codes %v", codes)
	}
	methods := []string{"scan", "quick", "h5", "app"}
	kinds := []channels.Kind{channels.KindText, channels.KindSecretText, channels.KindPrivateKey,
		channels.KindPublicKey, channels.KindCertificate, channels.KindPFX}
	for _, s := range specs {
		if s.Name.EN == "" || s.Name.ZH == "" || s.Validate == nil || s.Check == nil || len(s.Fields) == 0 {
			t.Errorf("%s: incomplete spec", s.Code)
		}
		for _, m := range s.Methods {
			if !slices.Contains(methods, m) {
				t.Errorf("%s: unknown method %q", s.Code, m)
			}
		}
		seen := map[string]bool{}
		for _, f := range s.Fields {
			if seen[f.Name] {
				t.Errorf("%s: field %s twice", s.Code, f.Name)
			}
			seen[f.Name] = true
			if f.Label.EN == "" || f.Label.ZH == "" || f.Help.EN == "" || f.Help.ZH == "" {
				t.Errorf("%s.%s: label or help missing a language", s.Code, f.Name)
			}
			if !slices.Contains(kinds, f.Kind) {
				t.Errorf("%s.%s: unknown kind %q", s.Code, f.Name, f.Kind)
			}
			if f.Secret != (f.Kind != channels.KindText) {
				t.Errorf("%s.%s: kind %s but Secret=%v", s.Code, f.Name, f.Kind, f.Secret)
			}
			if f.Required && f.OneOf != "" {
				t.Errorf("%s.%s: both required and in a one-of group", s.Code, f.Name)
			}
		}
		if ps := s.Validate(nil); len(ps) == 0 {
			t.Errorf("%s: an empty set validates", s.Code)
		}
	}
}

func TestLookup(t *testing.T) {
	s, ok := all.Lookup("alipay")
	if !ok || s.Code != "alipay" {
		t.Fatalf("Lookup(alipay) = %s, %v", s.Code, ok)
	}
	s.Fields[0].Name = "changed"
	s.Methods[0] = "changed"
	again, _ := all.Lookup("alipay")
	if again.Fields[0].Name == "changed" || again.Methods[0] == "changed" {
		t.Fatal("a caller changed the shared spec")
	}
	if _, ok := all.Lookup("WeChat"); ok {
		t.Fatal("Lookup is not exact")
	}
	if _, ok := all.Lookup(""); ok {
		t.Fatal("Lookup found the empty code")
	}
}
