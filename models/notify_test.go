package models

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels"
)

func countNonces(t *testing.T, s *Store) int64 {
	t.Helper()
	var n int64
	if err := s.DB.Model(&NotifyNonce{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func countRows(t *testing.T, s *Store, model any) int64 {
	t.Helper()
	var n int64
	if err := s.DB.Model(model).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIngestNotificationTakesANonceOnce(t *testing.T) {
	s, c := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	acct, values := mustAccount(t, s, m, "wechat")
	mch := string(values["mch_id"])
	keep := c.Now().Add(6 * time.Minute)

	rec := pay("N1", mch, 500, channels.StatusSucceeded, c.Now())
	if err := s.IngestNotification(acct.ID, "nonce-1", keep, rec); err != nil {
		t.Fatalf("first: %v", err)
	}
	if got := txn(t, s, channels.KindPayment, "N1"); got.Sources != SourceNotification {
		t.Errorf("sources = %q", got.Sources)
	}
	// The same nonce again, even for another record: a replay, nothing changes.
	if err := s.IngestNotification(acct.ID, "nonce-1", keep, pay("N2", mch, 700, channels.StatusSucceeded, c.Now())); !errors.Is(err, ErrReplayedNonce) {
		t.Fatalf("replay: %v, want ErrReplayedNonce", err)
	}
	if countRows(t, s, &Transaction{}) != 1 || countRows(t, s, &TransactionSource{}) != 1 {
		t.Error("a replay changed the ledger")
	}
	// Nonces belong to one account: another account may use the same one.
	alt, altValues := mustAccount(t, s, m, "wechat")
	if err := s.IngestNotification(alt.ID, "nonce-1", keep, pay("N3", string(altValues["mch_id"]), 100, channels.StatusSucceeded, c.Now())); err != nil {
		t.Fatalf("same nonce, other account: %v", err)
	}

	// A record the ledger refuses leaves its nonce unused.
	wrong := pay("N4", "1699999999", 100, channels.StatusSucceeded, c.Now())
	var re *RecordError
	if err := s.IngestNotification(acct.ID, "nonce-2", keep, wrong); !errors.As(err, &re) {
		t.Fatalf("another mchid: %v, want a RecordError", err)
	}
	if err := s.IngestNotification(acct.ID, "nonce-2", keep, pay("N4", mch, 100, channels.StatusSucceeded, c.Now())); err != nil {
		t.Fatalf("nonce of a refused notification was burned: %v", err)
	}

	// Once expired, a nonce left behind counts as unused.
	c.Add(7 * time.Minute)
	if err := s.IngestNotification(acct.ID, "nonce-1", c.Now().Add(6*time.Minute), pay("N5", mch, 100, channels.StatusSucceeded, c.Now())); err != nil {
		t.Fatalf("expired nonce: %v", err)
	}
	if err := s.IngestNotification(acct.ID, "nonce-1", c.Now().Add(6*time.Minute), pay("N6", mch, 100, channels.StatusSucceeded, c.Now())); !errors.Is(err, ErrReplayedNonce) {
		t.Fatalf("renewed nonce replayed: %v, want ErrReplayedNonce", err)
	}
	if err := s.IngestNotification(acct.ID, strings.Repeat("n", MaxNonceLength+1), keep, pay("N7", mch, 100, channels.StatusSucceeded, c.Now())); !errors.Is(err, ErrNonceTooLong) {
		t.Fatalf("long nonce: %v", err)
	}
	// No nonce (Alipay): a repeat is a duplicate, not an error.
	rec8 := pay("N8", mch, 100, channels.StatusSucceeded, c.Now())
	for i := 0; i < 2; i++ {
		if err := s.IngestNotification(acct.ID, "", time.Time{}, rec8); err != nil {
			t.Fatalf("no nonce, delivery %d: %v", i+1, err)
		}
	}
	var srcs int64
	s.DB.Model(&TransactionSource{}).Where("transaction_id = ?", txn(t, s, channels.KindPayment, "N8").ID).Count(&srcs)
	if srcs != 1 {
		t.Errorf("a repeated notification without nonce recorded %d sources, want 1", srcs)
	}
	if err := s.IngestNotification(999999, "nonce-x", keep, rec8); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown account: %v", err)
	}
}

func TestPurgeNotifyNonces(t *testing.T) {
	s, c := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	acct, values := mustAccount(t, s, m, "wechat")
	mch := string(values["mch_id"])
	for i := 0; i < purgeNonceBatch+5; i++ {
		if err := s.DB.Create(&NotifyNonce{AccountID: acct.ID, Nonce: "old-" + idStr(uint64(i)), ExpiresAt: c.Now().Add(-time.Second)}).Error; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.IngestNotification(acct.ID, "fresh", c.Now().Add(6*time.Minute), pay("P1", mch, 100, channels.StatusSucceeded, c.Now())); err != nil {
		t.Fatal(err)
	}
	n, err := s.PurgeNotifyNonces(c.Now())
	if err != nil || n != purgeNonceBatch+5 {
		t.Fatalf("purged %d (%v), want %d", n, err, purgeNonceBatch+5)
	}
	if countNonces(t, s) != 1 {
		t.Errorf("%d nonces left, want the live one", countNonces(t, s))
	}
	if err := s.IngestNotification(acct.ID, "fresh", c.Now().Add(6*time.Minute), pay("P2", mch, 100, channels.StatusSucceeded, c.Now())); !errors.Is(err, ErrReplayedNonce) {
		t.Errorf("live nonce after purge: %v", err)
	}
}

func TestNotificationAccount(t *testing.T) {
	s, _ := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	wx, values := mustAccount(t, s, m, "wechat")
	acct, creds, err := s.NotificationAccount("wechat", wx.ID)
	if err != nil || acct.ID != wx.ID || string(creds["apiv3_key"]) != string(values["apiv3_key"]) || string(creds["mch_id"]) != string(values["mch_id"]) {
		t.Fatalf("NotificationAccount: %v", err)
	}
	// The same credential set AccountCredentials opens.
	_, full, err := s.AccountCredentials(wx.ID)
	if err != nil || len(full) != len(creds) {
		t.Fatalf("AccountCredentials: %d fields (%v), NotificationAccount: %d", len(full), err, len(creds))
	}
	for k, v := range full {
		if string(creds[k]) != string(v) {
			t.Errorf("field %s differs", k)
		}
	}
	// Its checks: another master key, a ciphertext moved or altered.
	vault := s.Vault
	s.Vault = newVault(t)
	if _, _, err := s.NotificationAccount("wechat", wx.ID); !errors.Is(err, ErrMasterKeyMismatch) {
		t.Errorf("another master key: %v", err)
	}
	s.Vault = vault
	if _, _, err := s.NotificationAccount("alipay", wx.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("other channel: %v", err)
	}
	if _, _, err := s.NotificationAccount("wechat", 999999); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	if _, _, err := s.SaveAccount(web, wx.ID, AccountInput{Methods: []string{"scan"}, Enabled: false}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.NotificationAccount("wechat", wx.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("disabled account: %v", err)
	}
	if _, _, err := s.SaveAccount(web, wx.ID, AccountInput{Methods: []string{"scan"}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.DB.Model(&ChannelSecret{}).Where("account_id = ? AND field = ?", wx.ID, "apiv3_key").
		Update("ciphertext", []byte("0123456789abcdefghijklmnopqrstuvwxyz0123456789")).Error; err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.NotificationAccount("wechat", wx.ID); !errors.Is(err, ErrSealBroken) {
		t.Errorf("altered ciphertext: %v", err)
	}
}

// TestIngestNotificationGroupCommit: notifications arriving together are
// stored together, yet each gets its own outcome — a replay, a refused
// record or one the ledger holds under another account fails only itself.
func TestIngestNotificationGroupCommit(t *testing.T) {
	s, c := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	acct, values := mustAccount(t, s, m, "wechat")
	alt, altValues := mustAccount(t, s, m, "wechat")
	mch := string(values["mch_id"])
	if err := s.IngestNotification(alt.ID, "", time.Time{}, pay("ELSEWHERE", string(altValues["mch_id"]), 100, channels.StatusSucceeded, c.Now())); err != nil {
		t.Fatal(err)
	}
	keep := c.Now().Add(6 * time.Minute)
	type call struct {
		nonce string
		rec   channels.Record
	}
	var calls []call
	for i := 0; i < 40; i++ {
		calls = append(calls, call{"good-" + idStr(uint64(i)), pay("G"+idStr(uint64(i)), mch, 100+int64(i), channels.StatusSucceeded, c.Now())})
	}
	calls = append(calls,
		call{"twice", pay("D1", mch, 100, channels.StatusSucceeded, c.Now())},
		call{"twice", pay("D2", mch, 100, channels.StatusSucceeded, c.Now())},
		call{"wrong-mch", pay("W1", "1699999999", 100, channels.StatusSucceeded, c.Now())},
		call{"elsewhere", pay("ELSEWHERE", mch, 100, channels.StatusSucceeded, c.Now())},
	)
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, cl := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = s.IngestNotification(acct.ID, cl.nonce, keep, cl.rec)
		}()
	}
	close(start)
	wg.Wait()
	for i := 0; i < 40; i++ {
		if errs[i] != nil {
			t.Errorf("good notification %d: %v", i, errs[i])
		}
	}
	d1, d2 := errs[40], errs[41]
	if (d1 == nil) == (d2 == nil) || !errors.Is(d1, ErrReplayedNonce) && !errors.Is(d2, ErrReplayedNonce) {
		t.Errorf("same nonce twice: %v / %v, want one taken and one replay", d1, d2)
	}
	var re *RecordError
	if !errors.As(errs[42], &re) || !errors.As(errs[43], &re) {
		t.Errorf("refused records: %v / %v, want RecordErrors", errs[42], errs[43])
	}
	var n int64
	s.DB.Model(&Transaction{}).Where("account_id = ?", acct.ID).Count(&n)
	if n != 41 {
		t.Errorf("%d ledger rows for the account, want 41", n)
	}
	if countNonces(t, s) != 41 {
		t.Errorf("%d nonces, want 41 (refused records burn none)", countNonces(t, s))
	}
	if _, ok := notifyQueues.Load(notifyQueueKey{s, acct.ID}); ok {
		t.Error("the account's queue outlived its notifications")
	}
}
