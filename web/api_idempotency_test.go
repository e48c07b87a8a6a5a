package web_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"payfuse/models"
)

func ledgerRowsByRef(t *testing.T, store *models.Store, ref string) int64 {
	t.Helper()
	var n int64
	if err := store.DB.Model(&models.Transaction{}).Where("channel_ref = ?", ref).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAPIIdempotency: a write with an Idempotency-Key runs once; the same key
// and body replay the first response (whatever the JSON's key order), the
// same key with another body is 422, keys are per token, client errors are
// kept too, and after 24 hours the key is free again.
func TestAPIIdempotency(t *testing.T) {
	w := newAPIWorld(t)
	clk := withClock(w.store)
	body := `{"account_id": ` + id(w.acctSH.ID) + `, "kind": "payment", "channel_ref": "IDEM1", "status": "succeeded", "amount": 4200, "paid_at": "2026-03-05T15:00:00+08:00"}`
	reordered := `{"paid_at":"2026-03-05T15:00:00+08:00","amount":4200,"status":"succeeded","channel_ref":"IDEM1","kind":"payment","account_id":` + id(w.acctSH.ID) + `}`
	first := w.call(t, "POST", "/api/v1/transactions", body, "Idempotency-Key", "order-77-v1")
	if first.Status != http.StatusCreated || first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %s", first.Status, first.Raw)
	}
	again := w.call(t, "POST", "/api/v1/transactions", reordered, "Idempotency-Key", "order-77-v1")
	if again.Status != http.StatusCreated || again.Raw != first.Raw || again.Header.Get("Idempotent-Replayed") != "true" ||
		again.Header.Get("Location") != first.Header.Get("Location") {
		t.Fatalf("replay: %d %q %s", again.Status, again.Header.Get("Idempotent-Replayed"), again.Raw)
	}
	if n := auditCount(t, w.store, models.ActAPIRecord); n != 1 {
		t.Errorf("%d records audited, want 1", n)
	}
	changed := `{"account_id": ` + id(w.acctSH.ID) + `, "kind": "payment", "channel_ref": "IDEM1", "status": "succeeded", "amount": 4300, "paid_at": "2026-03-05T15:00:00+08:00"}`
	r := w.call(t, "POST", "/api/v1/transactions", changed, "Idempotency-Key", "order-77-v1")
	if r.Status != http.StatusUnprocessableEntity || r.errCode() != "idempotency_key_reused" || r.errField() != "Idempotency-Key" {
		t.Errorf("another body: %d %s", r.Status, r.Raw)
	}
	checkErrorShape(t, "mismatch", r)
	if r := w.call(t, "PATCH", "/api/v1/transactions/"+id(w.shTxn), body, "Idempotency-Key", "order-77-v1"); r.Status != http.StatusUnprocessableEntity {
		t.Errorf("another path: %d", r.Status)
	}
	if got := w.txn(t, w.txnID(t, "payment", "IDEM1")); got.Amount != 4200 || got.Conflict {
		t.Errorf("the refused request changed the record: %+v", got)
	}
	// Keys are per token.
	_, other := mustToken(t, w.store, nil, "other-writer", []string{"SHOP_SH"}, models.PermLedgerWrite)
	if r := apiCall(t, w.srv, other, "POST", "/api/v1/transactions", changed, "Idempotency-Key", "order-77-v1"); r.Status != http.StatusOK || r.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("the same key with another token: %d %s", r.Status, r.Raw)
	}
	// A client error is kept and replayed too; a bad key is refused.
	bad := `{"account_id": ` + id(w.acctSH.ID) + `, "kind": "payment"}`
	r1 := w.call(t, "POST", "/api/v1/transactions", bad, "Idempotency-Key", "bad-1")
	r2 := w.call(t, "POST", "/api/v1/transactions", bad, "Idempotency-Key", "bad-1")
	if r1.Status != 422 || r2.Status != 422 || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("client error: %d, replay %d %q", r1.Status, r2.Status, r2.Header.Get("Idempotent-Replayed"))
	}
	if r := w.call(t, "POST", "/api/v1/transactions", body, "Idempotency-Key", "with space"); r.Status != http.StatusBadRequest || r.errCode() != "invalid_idempotency_key" {
		t.Errorf("bad key: %d %s", r.Status, r.Raw)
	}
	// PATCH and imports replay as well (an import replays its 201, not "already imported").
	p1 := w.call(t, "PATCH", "/api/v1/transactions/"+id(w.shTxn), map[string]any{"annotation": "first"}, "Idempotency-Key", "note-1")
	w.call(t, "PATCH", "/api/v1/transactions/"+id(w.shTxn), map[string]any{"annotation": "second"})
	p2 := w.call(t, "PATCH", "/api/v1/transactions/"+id(w.shTxn), map[string]any{"annotation": "first"}, "Idempotency-Key", "note-1")
	if p2.Raw != p1.Raw || p2.Header.Get("Idempotent-Replayed") != "true" || auditCount(t, w.store, models.ActAPIAnnotate) != 2 {
		t.Errorf("PATCH replay: %s / %s, %d audits", p1.Raw, p2.Raw, auditCount(t, w.store, models.ActAPIAnnotate))
	}
	bill := readTestBill(t, "all.csv")
	i1 := apiUpload(t, w.srv, w.token, map[string]string{"account_id": id(w.acctSH.ID)}, "all.csv", bill, "Idempotency-Key", "bill-0305")
	i2 := apiUpload(t, w.srv, w.token, map[string]string{"account_id": id(w.acctSH.ID)}, "all.csv", bill, "Idempotency-Key", "bill-0305")
	if i1.Status != http.StatusCreated || i2.Status != http.StatusCreated || i2.Raw != i1.Raw || i2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("import replay: %d %d", i1.Status, i2.Status)
	}
	if r := apiUpload(t, w.srv, w.token, map[string]string{"account_id": id(w.acctSH.ID)}, "other.csv", bill, "Idempotency-Key", "bill-0305"); r.Status != 422 {
		t.Errorf("import under the key with another file name: %d", r.Status)
	}
	// After 24 hours the key is free.
	clk.Add(models.IdempotencyTTL)
	if r := w.call(t, "POST", "/api/v1/transactions", changed, "Idempotency-Key", "order-77-v1"); r.Status != http.StatusOK || r.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("after 24 h: %d %q", r.Status, r.Header.Get("Idempotent-Replayed"))
	}
	if n, err := w.store.PurgeIdempotencyKeys(clk.Now().Add(time.Second)); err != nil || n == 0 {
		t.Errorf("purge: %d %v", n, err)
	}
}

// TestAPIIdempotencyConcurrent: requests racing with one key run the write
// once; the others get its response replayed or 409 (retry), never a second
// write.
func TestAPIIdempotencyConcurrent(t *testing.T) {
	w := newAPIWorld(t)
	body := `{"account_id": ` + id(w.acctSH.ID) + `, "kind": "payment", "channel_ref": "RACE1", "status": "succeeded", "amount": 100, "paid_at": "2026-03-05T15:00:00+08:00"}`
	const n = 8
	var wg sync.WaitGroup
	results := make([]apiResp, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = w.call(t, "POST", "/api/v1/transactions", body, "Idempotency-Key", "race-key")
		}()
	}
	close(start)
	wg.Wait()
	ran, replayed, busy := 0, 0, 0
	for _, r := range results {
		switch {
		case r.Status == http.StatusCreated && r.Header.Get("Idempotent-Replayed") == "":
			ran++
		case r.Status == http.StatusCreated:
			replayed++
		case r.Status == http.StatusConflict && r.errCode() == "idempotency_in_progress" && r.Header.Get("Retry-After") != "":
			busy++
		default:
			t.Errorf("unexpected answer %d %s", r.Status, r.Raw)
		}
	}
	if ran != 1 || ran+replayed+busy != n {
		t.Errorf("%d ran, %d replayed, %d told to retry", ran, replayed, busy)
	}
	if c := ledgerRowsByRef(t, w.store, "RACE1"); c != 1 {
		t.Errorf("%d ledger rows", c)
	}
	if c := auditCount(t, w.store, models.ActAPIRecord); c != 1 {
		t.Errorf("%d writes audited", c)
	}
	// A retry after the race gets the stored response.
	if r := w.call(t, "POST", "/api/v1/transactions", body, "Idempotency-Key", "race-key"); r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry: %d", r.Status)
	}
}
