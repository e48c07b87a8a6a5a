package models

import (
	"errors"
	"testing"

	"payfuse/channels"
)

func TestAlertInbox(t *testing.T) {
	s := OpenTest(t)
	raise := func(merchant, key string) (*Alert, bool) {
		t.Helper()
		a, created, err := s.RaiseAlert(RaiseInput{MerchantCode: merchant, Source: "flow", SourceID: 7, Kind: "flow_failed",
			Severity: SeverityCritical, DedupeKey: key, Title: channels.Text{EN: "Bill sync failed", ZH: "账单同步失败"}, Link: "/flows/7"})
		if err != nil {
			t.Fatal(err)
		}
		return a, created
	}
	a1, created := raise("SHOP_SH", "flow:7")
	if !created || a1.Status != AlertOpen || a1.Count != 1 {
		t.Fatalf("first raise: %+v %v", a1, created)
	}
	// The condition persists: the same alert counts it, no new one.
	a2, created := raise("SHOP_SH", "flow:7")
	if created || a2.ID != a1.ID || a2.Count != 2 {
		t.Fatalf("repeat: %+v %v", a2, created)
	}
	raise("SHOP_BJ", "flow:8")
	raise("", "system:disk")

	sh := Scope{Merchants: []string{"SHOP_SH"}}
	if n, _ := s.CountOpenAlerts(sh); n != 1 {
		t.Errorf("SHOP_SH sees %d open alerts", n)
	}
	if n, _ := s.CountOpenAlerts(Scope{All: true}); n != 3 {
		t.Errorf("an admin sees %d open alerts", n)
	}
	if _, err := s.AcknowledgeAlert(web, sh, 3); !errors.Is(err, ErrNotFound) {
		t.Errorf("another merchant's alert: %v", err)
	}
	got, err := s.AcknowledgeAlert(web, sh, a1.ID)
	if err != nil || got.Status != AlertAcknowledged || got.AcknowledgedBy != web.Name {
		t.Fatalf("acknowledge: %+v %v", got, err)
	}
	if n, _ := s.CountOpenAlerts(sh); n != 0 {
		t.Errorf("an acknowledged alert still counts as open")
	}
	// Still unresolved: a repeat lands on it.
	if a3, created := raise("SHOP_SH", "flow:7"); created || a3.ID != a1.ID || a3.Count != 3 {
		t.Errorf("repeat while acknowledged: %+v", a3)
	}
	if _, err := s.ResolveAlert(web, sh, a1.ID, "re-entered the API key"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcknowledgeAlert(web, sh, a1.ID); !errors.Is(err, ErrAlertResolved) {
		t.Errorf("acknowledge a resolved alert: %v", err)
	}
	// After it is resolved the condition opens a new alert.
	if a4, created := raise("SHOP_SH", "flow:7"); !created || a4.ID == a1.ID {
		t.Errorf("raise after resolve: %+v %v", a4, created)
	}
	list, _ := s.ListAlerts(sh, AlertFilter{Status: AlertResolved})
	if len(list) != 1 || list[0].ResolveNote != "re-entered the API key" || list[0].TitleText().ZH != "账单同步失败" {
		t.Errorf("resolved list %+v", list)
	}
	var n int64
	s.DB.Model(&AuditLog{}).Where("action IN ?", []string{ActAlertAck, ActAlertResolve}).Count(&n)
	if n != 2 {
		t.Errorf("%d audit entries", n)
	}
}
