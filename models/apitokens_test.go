package models

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"payfuse/channels"
)

func tokenWorld(t *testing.T) *Store {
	t.Helper()
	s := OpenTest(t)
	for _, code := range []string{"SHOP_SH", "SHOP_BJ"} {
		if _, err := s.CreateMerchant(SystemActor, MerchantInput{Code: code, Name: code}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestAPITokenCreateStoresOnlyAHash(t *testing.T) {
	s := tokenWorld(t)
	tok, secret, err := s.CreateAPIToken(SystemActor, nil, APITokenInput{Name: " orders ", Merchants: []string{"shop_sh", "SHOP_SH"},
		Permissions: []string{PermReportsRead, PermLedgerRead, PermLedgerRead}, AllowedIPs: "10.0.0.1, 10.1.0.0/16\n::ffff:10.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secret))
	if !strings.HasPrefix(secret, "pf_") || len(secret) != 46 || tok.TokenHash != hex.EncodeToString(sum[:]) || tok.Prefix != secret[:11] {
		t.Fatalf("secret %q, token %+v", secret, tok)
	}
	if tok.Name != "orders" || tok.Merchants != "SHOP_SH" || tok.Permissions != "ledger:read,reports:read" || tok.AllowedIPs != "10.0.0.1,10.0.0.2,10.1.0.0/16" {
		t.Fatalf("normalised: %+v", tok)
	}
	var n int64
	s.DB.Model(&APIToken{}).Where("token_hash = ? OR prefix = ?", secret, secret).Count(&n)
	if n != 0 {
		t.Fatal("the secret is stored")
	}
	auth, err := s.AuthenticateAPIToken(secret, "10.1.2.3")
	if err != nil || !auth.Has(PermLedgerRead) || auth.Has(PermLedgerWrite) || auth.Scope.All || !auth.Scope.Allows("SHOP_SH") || auth.Scope.Allows("SHOP_BJ") {
		t.Fatalf("auth: %+v %v", auth, err)
	}
	if _, err := s.AuthenticateAPIToken(secret, "192.0.2.1"); !errors.Is(err, ErrTokenAddress) {
		t.Fatalf("from elsewhere: %v", err)
	}
	if _, err := s.AuthenticateAPIToken(secret[:len(secret)-1]+"x", "10.0.0.1"); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("a wrong secret: %v", err)
	}
}

func TestAPITokenInputChecks(t *testing.T) {
	s := tokenWorld(t)
	op := MustCreateUser(t, s, "opuser", "operator password", RoleOperator, "SHOP_SH")
	past := s.Now().Add(-time.Hour)
	for name, tc := range map[string]struct {
		maker *User
		in    APITokenInput
		field string
	}{
		"no name":            {nil, APITokenInput{Merchants: []string{"SHOP_SH"}, Permissions: []string{PermLedgerRead}}, "name"},
		"long name":          {nil, APITokenInput{Name: strings.Repeat("x", 65), Merchants: []string{"SHOP_SH"}, Permissions: []string{PermLedgerRead}}, "name"},
		"no permission":      {nil, APITokenInput{Name: "a", Merchants: []string{"SHOP_SH"}}, "permissions"},
		"unknown permission": {nil, APITokenInput{Name: "a", Merchants: []string{"SHOP_SH"}, Permissions: []string{"ledger:delete"}}, "permissions"},
		"no merchant":        {nil, APITokenInput{Name: "a", Permissions: []string{PermLedgerRead}}, "merchants"},
		"unknown merchant":   {nil, APITokenInput{Name: "a", Merchants: []string{"SHOP_XX"}, Permissions: []string{PermLedgerRead}}, "merchants"},
		"expired":            {nil, APITokenInput{Name: "a", Merchants: []string{"SHOP_SH"}, Permissions: []string{PermLedgerRead}, ExpiresAt: &past}, "expires"},
		"bad address":        {nil, APITokenInput{Name: "a", Merchants: []string{"SHOP_SH"}, Permissions: []string{PermLedgerRead}, AllowedIPs: "10.0.0.300"}, "allowed_ips"},
		"operator, foreign":  {op, APITokenInput{Name: "a", Merchants: []string{"SHOP_BJ"}, Permissions: []string{PermLedgerRead}}, "merchants"},
		"operator, all":      {op, APITokenInput{Name: "a", AllMerchants: true, Permissions: []string{PermLedgerRead}}, "merchants"},
		"operator, reports":  {op, APITokenInput{Name: "a", Merchants: []string{"SHOP_SH"}, Permissions: []string{PermReportsRead}}, "permissions"},
	} {
		_, _, err := s.CreateAPIToken(SystemActor, tc.maker, tc.in)
		var fe FieldErrors
		if !errors.As(err, &fe) || fe[tc.field] == "" {
			t.Errorf("%s: %v, want an error on %s", name, err, tc.field)
		}
	}
	var n int64
	s.DB.Model(&APIToken{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d tokens made from bad input", n)
	}
}

// TestAPITokenFollowsItsMaker: a token never reaches further than its maker
// can today; a disabled maker's tokens stop.
func TestAPITokenFollowsItsMaker(t *testing.T) {
	s := tokenWorld(t)
	fin := MustCreateUser(t, s, "fin", "finance password", RoleFinance, "SHOP_SH", "SHOP_BJ")
	_, secret, err := s.CreateAPIToken(SystemActor, fin, APITokenInput{Name: "bi", Merchants: []string{"SHOP_SH", "SHOP_BJ"}, Permissions: []string{PermLedgerRead, PermReportsRead}})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := s.AuthenticateAPIToken(secret, "127.0.0.1")
	if err != nil || !auth.Scope.Allows("SHOP_BJ") || !auth.Has(PermReportsRead) || !auth.CanCorrect {
		t.Fatalf("auth: %+v %v", auth, err)
	}
	if _, err := s.UpdateUserAccess(SystemActor, fin.ID, string(RoleOperator), []string{"SHOP_SH"}); err != nil {
		t.Fatal(err)
	}
	auth, err = s.AuthenticateAPIToken(secret, "127.0.0.1")
	if err != nil || auth.Scope.Allows("SHOP_BJ") || !auth.Scope.Allows("SHOP_SH") || auth.Has(PermReportsRead) || !auth.Has(PermLedgerRead) || auth.CanCorrect {
		t.Fatalf("after the maker's demotion: %+v %v", auth, err)
	}
	if err := s.SetUserDisabled(SystemActor, fin.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateAPIToken(secret, "127.0.0.1"); !errors.Is(err, ErrTokenMaker) {
		t.Fatalf("disabled maker: %v", err)
	}
}

func TestAPITokenRevokeAndVisibility(t *testing.T) {
	s := tokenWorld(t)
	all, allSecret, _ := s.CreateAPIToken(SystemActor, nil, APITokenInput{Name: "all", AllMerchants: true, Permissions: []string{PermLedgerRead}})
	bj, _, _ := s.CreateAPIToken(SystemActor, nil, APITokenInput{Name: "bj", Merchants: []string{"SHOP_BJ"}, Permissions: []string{PermLedgerRead}})
	sh, _, _ := s.CreateAPIToken(SystemActor, nil, APITokenInput{Name: "sh", Merchants: []string{"SHOP_SH"}, Permissions: []string{PermLedgerRead}})
	shScope := Scope{Merchants: []string{"SHOP_SH"}}
	list, err := s.ListAPITokens(shScope)
	if err != nil || len(list) != 1 || list[0].ID != sh.ID {
		t.Fatalf("operator's list: %+v %v", list, err)
	}
	for _, id := range []uint64{all.ID, bj.ID} {
		if _, err := s.RevokeAPIToken(SystemActor, shScope, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoke a token outside the scope: %v", err)
		}
	}
	if _, err := s.RevokeAPIToken(Actor{Name: "boss"}, Scope{All: true}, all.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateAPIToken(allSecret, "127.0.0.1"); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("revoked: %v", err)
	}
	got, _ := s.GetAPIToken(Scope{All: true}, all.ID)
	if got.State(s.Now()) != TokenRevoked || got.RevokedBy != "boss" {
		t.Fatalf("revoked token: %+v", got)
	}
}

func TestDemoAPIToken(t *testing.T) {
	s := OpenTest(t)
	for _, code := range DemoMerchants {
		if _, err := s.CreateMerchant(SystemActor, MerchantInput{Code: code, Name: code}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := s.EnsureDemoAPIToken(SystemActor, false)
	if err != nil || first == "" {
		t.Fatalf("first: %q %v", first, err)
	}
	if again, err := s.EnsureDemoAPIToken(SystemActor, false); err != nil || again != "" {
		t.Fatalf("kept: %q %v", again, err)
	}
	renewed, err := s.EnsureDemoAPIToken(SystemActor, true)
	if err != nil || renewed == "" || renewed == first {
		t.Fatalf("renewed: %v", err)
	}
	if _, err := s.AuthenticateAPIToken(first, "127.0.0.1"); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("the old secret still works: %v", err)
	}
	auth, err := s.AuthenticateAPIToken(renewed, "127.0.0.1")
	if err != nil || len(auth.Perms) != len(APIPermissions) || !auth.Scope.Allows("SHOP_GZ") {
		t.Fatalf("demo token: %+v %v", auth, err)
	}
}

func TestAnnotations(t *testing.T) {
	s, acct, mch := ledgerFixture(t)
	mustMerchant(t, s, "SHOP_BJ")
	at := time.Date(2026, 3, 5, 2, 0, 0, 0, time.UTC)
	if _, err := s.Ingest(SystemActor, acct.ID, SourceMerchant, []channels.Record{pay("U1", mch, 100, channels.StatusSucceeded, at)}); err != nil {
		t.Fatal(err)
	}
	txn, err := s.TransactionByKey(Scope{Merchants: []string{"SHOP_SH"}}, "wechat", channels.KindPayment, "U1")
	if err != nil || !strings.Contains(txn.Sources, SourceMerchant) {
		t.Fatalf("by key: %+v %v", txn, err)
	}
	if _, err := s.TransactionByKey(Scope{Merchants: []string{"SHOP_BJ"}}, "wechat", channels.KindPayment, "U1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("by key outside the scope: %v", err)
	}
	a := Actor{Name: "token:t"}
	if err := s.AnnotateTransaction(a, Scope{Merchants: []string{"SHOP_BJ"}}, txn.ID, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("outside the scope: %v", err)
	}
	if err := s.AnnotateTransaction(a, Scope{All: true}, txn.ID, strings.Repeat("长", 501)); err == nil {
		t.Fatal("a long note was taken")
	}
	for _, note := range []string{"first", "second", "second", ""} {
		if err := s.AnnotateTransaction(a, Scope{All: true}, txn.ID, note); err != nil {
			t.Fatal(err)
		}
	}
	notes, _ := s.Annotations([]uint64{txn.ID})
	page, _ := s.ListAudit(AuditFilter{Action: ActAPIAnnotate})
	if len(notes) != 0 || len(page.Rows) != 3 || page.Rows[0].Actor != "token:t" {
		t.Fatalf("notes %v, %d audit records", notes, len(page.Rows))
	}
}
