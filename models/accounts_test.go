package models

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"payfuse/channels/testkeys"
)

func vaultStore(t testing.TB) (*Store, *clock) {
	s, c := testStore(t)
	key := make([]byte, 32)
	rand.Read(key)
	v, err := NewVault(key)
	if err != nil {
		t.Fatal(err)
	}
	s.Vault = v
	return s, c
}

func newVault(t testing.TB) *Vault {
	key := make([]byte, 32)
	rand.Read(key)
	v, _ := NewVault(key)
	return v
}

func mustMerchant(t testing.TB, s *Store, code string) *Merchant {
	t.Helper()
	m, err := s.CreateMerchant(SystemActor, MerchantInput{Code: code, Name: "Shop " + code})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustAccount(t testing.TB, s *Store, m *Merchant, channel string) (*ChannelAccount, map[string][]byte) {
	t.Helper()
	values := testkeys.Credentials(channel, s.Now())
	spec, _ := LookupChannel(channel)
	acct, _, err := s.SaveAccount(web, 0, AccountInput{MerchantID: m.ID, Channel: channel, Methods: spec.Methods, FeeRateBP: 60, Enabled: true, Values: values})
	if err != nil {
		t.Fatalf("save %s account: %v", channel, err)
	}
	return acct, values
}

// rawDump returns every byte the database holds for our tables: the SQLite
// file (with its WAL), or every row of every table on MySQL.
func rawDump(t *testing.T, s *Store) []byte {
	t.Helper()
	if s.Dialect == SQLite {
		s.DB.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
		var path string
		s.DB.Raw("SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&path)
		var buf bytes.Buffer
		for _, p := range []string{path, path + "-wal"} {
			if b, err := os.ReadFile(p); err == nil {
				buf.Write(b)
			}
		}
		if buf.Len() == 0 {
			t.Fatalf("could not read the SQLite file %q", path)
		}
		return buf.Bytes()
	}
	var buf bytes.Buffer
	tables, _ := s.DB.Migrator().GetTables()
	for _, table := range tables {
		rows, err := s.DB.Raw("SELECT * FROM `" + table + "`").Rows()
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			rows.Scan(ptrs...)
			for _, v := range vals {
				fmt.Fprintf(&buf, "%s\x00", v)
			}
		}
		rows.Close()
	}
	return buf.Bytes()
}

func TestSecretsNeverStoredInPlaintext(t *testing.T) {
	s, _ := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	var secrets [][]byte
	for _, ch := range []string{"wechat", "alipay", "unionpay"} {
		acct, values := mustAccount(t, s, m, ch)
		spec, _ := LookupChannel(ch)
		for _, f := range spec.Fields {
			if f.Secret && len(values[f.Name]) > 0 {
				secrets = append(secrets, values[f.Name])
			}
		}
		if !acct.CheckOK {
			t.Errorf("%s: generated credentials did not pass the check: %s", ch, acct.CheckSummary)
		}
	}
	raw := rawDump(t, s)
	for _, secret := range secrets {
		// Look for a distinctive 24-byte run from the middle of each secret.
		probe := secret[len(secret)/2 : len(secret)/2+min(24, len(secret)/2)]
		if bytes.Contains(raw, probe) {
			t.Errorf("the database holds secret plaintext (%d bytes matched)", len(probe))
		}
	}
	rows, _ := s.ListAudit(AuditFilter{Limit: 200})
	for _, r := range rows.Rows {
		for _, secret := range secrets {
			probe := string(secret[len(secret)/2 : len(secret)/2+min(24, len(secret)/2)])
			if strings.Contains(r.Before+r.After+r.Detail, probe) {
				t.Errorf("audit record %s holds secret plaintext", r.Action)
			}
		}
	}
}

func TestUpdateWithBlankSecretsKeepsThem(t *testing.T) {
	s, _ := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	acct, values := mustAccount(t, s, m, "wechat")
	before, _ := s.SecretStatuses(acct.ID)
	updated, _, err := s.SaveAccount(web, acct.ID, AccountInput{DisplayName: "WeChat – renamed", Methods: []string{"scan"}, FeeRateBP: 38, Enabled: true,
		Values: map[string][]byte{"app_id": values["app_id"], "apiv3_key": nil, "merchant_private_key": []byte("")}})
	if err != nil {
		t.Fatal(err)
	}
	if updated.DisplayName != "WeChat – renamed" || updated.Methods != "scan" || updated.FeeRateBP != 38 {
		t.Fatalf("update not applied: %+v", updated)
	}
	after, _ := s.SecretStatuses(acct.ID)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("blank fields changed the secrets:\n%v\n%v", before, after)
	}
	_, creds, err := s.AccountCredentials(acct.ID)
	if err != nil || !bytes.Equal(creds["apiv3_key"], values["apiv3_key"]) {
		t.Fatalf("stored secret lost after update: %v", err)
	}
	report, err := s.CheckAccount(web, ScopeFor(RoleAdmin, nil), acct.ID)
	if err != nil || !report.OK {
		t.Fatalf("after the update the check fails: %v %+v", err, report)
	}
}

func TestBadCredentialsChangeNothing(t *testing.T) {
	s, _ := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	acct, values := mustAccount(t, s, m, "wechat")
	before := rawDump(t, s)
	_, _, err := s.SaveAccount(web, acct.ID, AccountInput{DisplayName: "x", Enabled: true, Values: map[string][]byte{"apiv3_key": []byte("too short")}})
	var ce *CredentialError
	if !errors.As(err, &ce) || len(ce.Problems) == 0 || ce.Problems[0].Field != "apiv3_key" {
		t.Fatalf("want a problem on apiv3_key, got %v", err)
	}
	if strings.Contains(err.Error(), "too short") {
		t.Fatal("the error echoes the secret")
	}
	other := testkeys.Credentials("wechat", s.Now())
	_, _, err = s.SaveAccount(web, 0, AccountInput{MerchantID: m.ID, Channel: "wechat", Enabled: true,
		Values: map[string][]byte{"app_id": values["app_id"]}})
	if !errors.As(err, &ce) {
		t.Fatalf("missing required secrets accepted: %v", err)
	}
	_ = other
	var n int64
	s.DB.Model(&ChannelAccount{}).Count(&n)
	if n != 1 {
		t.Fatalf("%d accounts after refused saves", n)
	}
	if s.Dialect == SQLite && len(rawDump(t, s)) == 0 || before == nil {
		t.Fatal("dump failed")
	}
}

func TestTamperingAndWrongKeysAreDetected(t *testing.T) {
	s, _ := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	a1, _ := mustAccount(t, s, m, "wechat")
	a2, _ := mustAccount(t, s, m, "wechat")
	admin := ScopeFor(RoleAdmin, nil)

	// A flipped bit in a ciphertext.
	var sec ChannelSecret
	s.DB.Where("account_id = ? AND field = ?", a1.ID, "apiv3_key").First(&sec)
	orig := append([]byte(nil), sec.Ciphertext...)
	sec.Ciphertext[len(sec.Ciphertext)-1] ^= 1
	s.DB.Model(&ChannelSecret{}).Where("id = ?", sec.ID).Update("ciphertext", sec.Ciphertext)
	if _, err := s.CheckAccount(web, admin, a1.ID); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("tampered ciphertext: %v", err)
	}
	s.DB.Model(&ChannelSecret{}).Where("id = ?", sec.ID).Update("ciphertext", orig)
	if _, err := s.CheckAccount(web, admin, a1.ID); err != nil {
		t.Fatalf("restored ciphertext: %v", err)
	}

	// Two rows' ciphertexts swapped (same field, other account; other field, same account).
	swap := func(x, y ChannelSecret) {
		s.DB.Model(&ChannelSecret{}).Where("id = ?", x.ID).Updates(map[string]any{"ciphertext": y.Ciphertext, "data_key_id": y.DataKeyID})
		s.DB.Model(&ChannelSecret{}).Where("id = ?", y.ID).Updates(map[string]any{"ciphertext": x.Ciphertext, "data_key_id": x.DataKeyID})
	}
	var x, y, z ChannelSecret
	s.DB.Where("account_id = ? AND field = ?", a1.ID, "apiv3_key").First(&x)
	s.DB.Where("account_id = ? AND field = ?", a2.ID, "apiv3_key").First(&y)
	s.DB.Where("account_id = ? AND field = ?", a1.ID, "merchant_private_key").First(&z)
	swap(x, y)
	if _, err := s.CheckAccount(web, admin, a1.ID); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("ciphertext moved between accounts: %v", err)
	}
	restore := func(rows ...ChannelSecret) {
		for _, r := range rows {
			s.DB.Model(&ChannelSecret{}).Where("id = ?", r.ID).Updates(map[string]any{"ciphertext": r.Ciphertext, "data_key_id": r.DataKeyID})
		}
	}
	restore(x, y)
	if _, err := s.CheckAccount(web, admin, a1.ID); err != nil {
		t.Fatalf("after restoring the swap: %v", err)
	}
	// Same data key, other field: the AAD names the row, so this fails too.
	s.DB.Model(&ChannelSecret{}).Where("id = ?", x.ID).Update("ciphertext", z.Ciphertext)
	if _, err := s.CheckAccount(web, admin, a1.ID); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("ciphertext moved between fields: %v", err)
	}
	s.DB.Model(&ChannelSecret{}).Where("id = ?", x.ID).Update("ciphertext", x.Ciphertext)

	// The wrong master key: a clear error, and nothing is overwritten.
	right := s.Vault
	s.Vault = newVault(t)
	if _, err := s.CheckAccount(web, admin, a1.ID); !errors.Is(err, ErrMasterKeyMismatch) {
		t.Fatalf("wrong master key: %v", err)
	}
	if _, _, err := s.SaveAccount(web, 0, AccountInput{MerchantID: m.ID, Channel: "wechat", Enabled: true, Values: testkeys.Credentials("wechat", s.Now())}); !errors.Is(err, ErrMasterKeyMismatch) {
		t.Fatalf("new account under a wrong master key: %v", err)
	}
	s.Vault = right
	if _, err := s.CheckAccount(web, admin, a1.ID); err != nil {
		t.Fatalf("with the right key again: %v", err)
	}
	var keys int64
	s.DB.Model(&DataKey{}).Count(&keys)
	if keys != 2 {
		t.Fatalf("%d data keys, want 2 (nothing created under the wrong key)", keys)
	}
}

func TestMasterKeyRotationSurvivesACrash(t *testing.T) {
	s, _ := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	var ids []uint64
	for _, ch := range []string{"wechat", "alipay", "unionpay"} {
		a, _ := mustAccount(t, s, m, ch)
		ids = append(ids, a.ID)
	}
	old, next := s.Vault, newVault(t)
	// A crash after the second re-wrap: the transaction rolls back whole.
	if _, _, err := s.RotateMasterKey(CLIActor(), old, next, 2); err == nil {
		t.Fatal("the simulated crash did not fail")
	}
	var underNew int64
	s.DB.Model(&DataKey{}).Where("master_key_id = ?", next.KeyID()).Count(&underNew)
	if underNew != 0 {
		t.Fatalf("%d keys re-wrapped by a crashed rotation", underNew)
	}
	if _, err := s.CheckAccount(web, ScopeFor(RoleAdmin, nil), ids[0]); err != nil {
		t.Fatalf("the old key stopped working after a crashed rotation: %v", err)
	}
	// Re-run: completes; a second re-run changes nothing.
	n, skipped, err := s.RotateMasterKey(CLIActor(), old, next, 0)
	if err != nil || n != 3 || skipped != 0 {
		t.Fatalf("rotation: %d re-wrapped, %d skipped, %v", n, skipped, err)
	}
	n, skipped, err = s.RotateMasterKey(CLIActor(), old, next, 0)
	if err != nil || n != 0 || skipped != 3 {
		t.Fatalf("second run: %d re-wrapped, %d skipped, %v", n, skipped, err)
	}
	s.Vault = next
	for _, id := range ids {
		if r, err := s.CheckAccount(web, ScopeFor(RoleAdmin, nil), id); err != nil || !r.OK {
			t.Fatalf("account %d under the new key: %v", id, err)
		}
	}
	s.Vault = old
	if _, err := s.CheckAccount(web, ScopeFor(RoleAdmin, nil), ids[0]); !errors.Is(err, ErrMasterKeyMismatch) {
		t.Fatalf("the old key still works after rotation: %v", err)
	}
	if len(auditActions(t, s, ActKeysRotate)) != 2 {
		t.Fatal("rotations not audited")
	}
}

func TestMerchantScopeHidesOtherMerchants(t *testing.T) {
	s, _ := vaultStore(t)
	sh := mustMerchant(t, s, "SHOP_SH")
	bj := mustMerchant(t, s, "SHOP_BJ")
	acctBJ, _ := mustAccount(t, s, bj, "alipay")
	op := MustCreateUser(t, s, "opsh", "operator sh pass", RoleOperator, "SHOP_SH")
	if _, err := s.GetMerchant(op.Scope(), bj.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("operator reads another merchant: %v", err)
	}
	if _, err := s.GetMerchant(op.Scope(), sh.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccount(op.Scope(), acctBJ.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("operator reads another merchant's account: %v", err)
	}
	if _, err := s.CheckAccount(web, op.Scope(), acctBJ.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("operator checks another merchant's account: %v", err)
	}
	list, total, _ := s.ListMerchants(op.Scope(), MerchantFilter{})
	if total != 1 || list[0].Code != "SHOP_SH" {
		t.Fatalf("operator lists %v", list)
	}
	accts, _ := s.ListAccounts(op.Scope(), AccountFilter{})
	if len(accts) != 0 {
		t.Fatalf("operator lists %d foreign accounts", len(accts))
	}
}

func TestMerchantValidationAndAudit(t *testing.T) {
	s, _ := testStore(t)
	_, err := s.CreateMerchant(web, MerchantInput{Code: "x", Name: "", Timezone: "Mars/Olympus", Currency: "yuan"})
	var fe FieldErrors
	if !errors.As(err, &fe) || len(fe) != 4 {
		t.Fatalf("want 4 field errors, got %v", err)
	}
	m, err := s.CreateMerchant(web, MerchantInput{Code: "shop_sh", Name: "上海店"})
	if err != nil || m.Code != "SHOP_SH" || m.Timezone != "Asia/Shanghai" || m.Currency != "CNY" || m.Status != MerchantActive {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := s.CreateMerchant(web, MerchantInput{Code: "SHOP_SH", Name: "again"}); !errors.As(err, &fe) || fe["code"] != "err.merchant_code_taken" {
		t.Fatalf("duplicate code: %v", err)
	}
	if _, err := s.UpdateMerchant(web, m.ID, MerchantInput{Code: "OTHER", Name: "上海旗舰店", Timezone: "Asia/Hong_Kong", Currency: "HKD"}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetMerchant(ScopeFor(RoleAdmin, nil), m.ID)
	if got.Code != "SHOP_SH" || got.Timezone != "Asia/Hong_Kong" {
		t.Fatalf("after update: %+v", got)
	}
	s.SetMerchantStatus(web, m.ID, MerchantSuspended)
	for _, a := range []string{ActMerchantCreate, ActMerchantUpdate, ActMerchantSuspend} {
		if len(auditActions(t, s, a)) != 1 {
			t.Errorf("%s not audited", a)
		}
	}
}

func TestDeleteAccountDestroysItsKey(t *testing.T) {
	s, _ := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	a, _ := mustAccount(t, s, m, "unionpay")
	if err := s.DeleteAccount(web, a.ID); err != nil {
		t.Fatal(err)
	}
	for _, model := range []any{&ChannelAccount{}, &ChannelSecret{}, &DataKey{}} {
		var n int64
		s.DB.Model(model).Count(&n)
		if n != 0 {
			t.Errorf("%T: %d rows left", model, n)
		}
	}
	if len(auditActions(t, s, ActAccountDelete)) != 1 {
		t.Error("delete not audited")
	}
}

func TestExpiringCertificatesAreFlagged(t *testing.T) {
	s, c := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	a, _ := mustAccount(t, s, m, "alipay")
	if a.CertNotAfter == nil {
		t.Fatal("no certificate expiry recorded")
	}
	list, _ := s.ExpiringAccounts(ScopeFor(RoleAdmin, nil), c.Now(), 30*24*time.Hour)
	if len(list) != 0 {
		t.Fatal("a year-long certificate flagged as expiring")
	}
	c.Add(a.CertNotAfter.Sub(c.Now()) - 10*24*time.Hour)
	list, _ = s.ExpiringAccounts(ScopeFor(RoleAdmin, nil), c.Now(), 30*24*time.Hour)
	if len(list) != 1 {
		t.Fatal("a certificate 10 days from expiry is not flagged")
	}
}
