package models

import (
	"strings"
	"testing"
)

func TestPasswordHashUsesArgon2idBaseline(t *testing.T) {
	h, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not use argon2id t=2, 19 MiB, p=1", h)
	}
	if !VerifyPassword(h, "correct horse battery staple") {
		t.Fatal("the right password does not verify")
	}
	if VerifyPassword(h, "correct horse battery stapler") {
		t.Fatal("a wrong password verifies")
	}
	h2, _ := HashPassword("correct horse battery staple")
	if h2 == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=x$AA$AA", "plain"} {
		if VerifyPassword(bad, "anything") {
			t.Fatalf("malformed hash %q verified", bad)
		}
	}
}

func TestPasswordLengthPolicy(t *testing.T) {
	cases := []struct {
		pw   string
		want string
	}{
		{strings.Repeat("a", 11), "err.password_short"},
		{strings.Repeat("a", 12), ""},
		{strings.Repeat("密", 12), ""}, // characters, not bytes
		{strings.Repeat("密", 11), "err.password_short"},
		{strings.Repeat("a", 128), ""},
		{strings.Repeat("a", 129), "err.password_long"},
	}
	for _, c := range cases {
		if got := PasswordError(c.pw); got != c.want {
			t.Errorf("PasswordError(%d chars) = %q, want %q", len([]rune(c.pw)), got, c.want)
		}
	}
}

func TestRandomPasswordAlphabetAndLength(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		p := RandomPassword(20)
		if len(p) != 20 || strings.ContainsAny(p, "0O1lI") {
			t.Fatalf("RandomPassword = %q", p)
		}
		if seen[p] {
			t.Fatal("RandomPassword repeated itself")
		}
		seen[p] = true
	}
}

func BenchmarkHashPassword(b *testing.B) {
	for i := 0; i < b.N; i++ {
		HashPassword("correct horse battery staple")
	}
}
