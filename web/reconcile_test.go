package web_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"payfuse/channels"
	"payfuse/channels/wechat"
	"payfuse/models"
)

// reconWorld is the ledger world with SHOP_SH's WeChat bill of 2026-02-28
// imported, and a notification that disagrees with the bill on the first
// payment's amount.
func reconWorld(t *testing.T) (*ledgerWorld, string) {
	t.Helper()
	w := newLedgerWorld(t)
	bill := readTestBill(t, "all.csv")
	sf, err := w.store.OpenStatement(w.acctSH, "all.csv", bytes.NewReader(bill), int64(len(bill)))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := w.store.ImportStatement(models.Actor{Name: "setup"}, w.acctSH.ID, sf); err != nil || res.Refused {
		t.Fatal(res, err)
	}
	var first channels.Record
	wechat.ParseTradeBill(bytes.NewReader(bill), func(r channels.Record) error {
		if first.ChannelRef == "" && r.Kind == channels.KindPayment && r.Status == channels.StatusSucceeded {
			first = r
		}
		return nil
	})
	first.Amount += 100
	first.Raw = map[string]string{"note": "notification"}
	if _, err := w.store.Ingest(models.Actor{Name: "setup"}, w.acctSH.ID, models.SourceNotification, []channels.Record{first}); err != nil {
		t.Fatal(err)
	}
	return w, first.ChannelRef
}

func TestReconciliationWorkspace(t *testing.T) {
	w, ref := reconWorld(t)
	fin := w.english(t, "finsh", "finance sh pass")

	page := fin.get("/reconcile")
	if page.StatusCode != http.StatusOK || !strings.Contains(page.Body, "SH WeChat") || !strings.Contains(page.Body, `id="recon-calendar"`) {
		t.Fatalf("workspace: %d %s", page.StatusCode, clip(page.Body))
	}
	// A bad date changes nothing and says why.
	r := fin.post("/reconcile/run", url.Values{"account": {id(w.acctSH.ID)}, "date": {"2026-02-30"}})
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "YYYY-MM-DD") {
		t.Errorf("bad date: %d %s", r.StatusCode, clip(r.Body))
	}
	r = fin.post("/reconcile/run", url.Values{"account": {id(w.acctSH.ID)}, "date": {"2026-02-28"}})
	loc := r.Header.Get("Location")
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/reconcile/days/") {
		t.Fatalf("run: %d %s", r.StatusCode, clip(r.Body))
	}
	day := fin.get(loc)
	for _, want := range []string{"Reconciliation of 2026-02-28", "Amount mismatch", "Only in statement", ref, "Open discrepancies"} {
		if !strings.Contains(day.Body, want) {
			t.Errorf("the day page lacks %q", want)
		}
	}
	// The calendar colours the day.
	cal := fin.get("/reconcile?account=" + id(w.acctSH.ID) + "&month=2026-02")
	if !strings.Contains(cal.Body, `data-date="2026-02-28" data-status="open"`) {
		t.Errorf("the calendar does not show the open day: %s", clip(cal.Body))
	}

	var item models.ReconItem
	if err := w.store.DB.Where("bucket = ? AND channel_ref = ?", models.BucketAmountMismatch, ref).First(&item).Error; err != nil {
		t.Fatal(err)
	}
	itemPath := "/reconcile/items/" + id(item.ID)
	p := fin.get(itemPath)
	if p.StatusCode != http.StatusOK || !strings.Contains(p.Body, `data-side="statement-amount"`) || !strings.Contains(p.Body, "Notification") {
		t.Fatalf("item: %d %s", p.StatusCode, clip(p.Body))
	}
	// Resolving needs a reason; "other" needs a note.
	r = fin.post(itemPath+"/resolve", url.Values{"resolution": {"other"}})
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "Explain the resolution") {
		t.Errorf("other without note: %d %s", r.StatusCode, clip(r.Body))
	}
	// Other merchants' finance cannot see or resolve it.
	finBJ := w.english(t, "finbj", "finance bj pass")
	if g := finBJ.get(loc); g.StatusCode != http.StatusNotFound {
		t.Errorf("another merchant's day: %d", g.StatusCode)
	}
	if g := finBJ.post(itemPath+"/resolve", url.Values{"resolution": {"written_off"}}); g.StatusCode != http.StatusNotFound {
		t.Errorf("another merchant resolves: %d", g.StatusCode)
	}
	// Operators do not reconcile.
	op := w.english(t, "opsh", "operator sh pass")
	if g := op.get("/reconcile"); g.StatusCode != http.StatusForbidden {
		t.Errorf("operator: %d", g.StatusCode)
	}
	// A note keeps it open.
	if r := fin.post(itemPath+"/notes", url.Values{"note": {""}}); r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "Write the note first") {
		t.Errorf("empty note: %d %s", r.StatusCode, clip(r.Body))
	}
	if r := fin.post(itemPath+"/notes", url.Values{"note": {"Asked WeChat Pay, ticket 7781"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("note: %d", r.StatusCode)
	}
	if p := fin.get(itemPath); !strings.Contains(p.Body, "finsh] Asked WeChat Pay, ticket 7781") {
		t.Errorf("the note is not on the item: %s", clip(p.Body))
	}
	if a := fin.get(loc); !strings.Contains(a.Body, `data-amount="amount_mismatch"`) {
		t.Errorf("the day does not show the buckets' amounts")
	}
	r = fin.post(itemPath+"/resolve", url.Values{"resolution": {"channel_corrected"}, "note": {"WeChat ticket 7781"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("resolve: %d %s", r.StatusCode, clip(r.Body))
	}
	w.store.DB.First(&item, item.ID)
	if !item.Resolved || item.Resolution != "channel_corrected" || item.ResolvedBy != "finsh" || !strings.Contains(item.Note, "7781") {
		t.Errorf("resolved item: %+v", item)
	}
	var n int64
	w.store.DB.Model(&models.AuditLog{}).Where("action = ? AND actor = ?", models.ActReconResolve, "finsh").Count(&n)
	if n != 1 {
		t.Errorf("%d audit entries for the resolution", n)
	}

	// In Chinese.
	zh := newClient(t, w.srv)
	zh.header.Set("Accept-Language", "zh-CN")
	zh.login("finsh", "finance sh pass")
	if z := zh.get(loc); !strings.Contains(z.Body, "金额不符") || !strings.Contains(z.Body, "仅账单有") {
		t.Errorf("the Chinese day page: %s", clip(z.Body))
	}
}
