package models

import (
	"errors"
	"testing"
)

// TestRollupCheckFindsAndRepairsDrift: rollups changed behind the ledger's
// back (a row off, a row deleted, a row for nothing) are found, repaired to
// the ledger's own sums, audited, and a second check finds nothing.
func TestRollupCheckFindsAndRepairsDrift(t *testing.T) {
	s, acct, _ := reconDay(t)
	all := Scope{All: true}
	c, err := s.CheckRollups(web, all, "2026-03-01", "2026-03-31", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Diffs) != 0 || c.Groups == 0 {
		t.Fatalf("a fresh ledger: %d groups, diffs %+v", c.Groups, c.Diffs)
	}
	s.DB.Exec("UPDATE daily_rollups SET payments = payments + 5, amount_succeeded = amount_succeeded - 1 WHERE biz_date = '2026-03-05'")
	s.DB.Exec("DELETE FROM daily_rollups WHERE biz_date = '2026-03-06'")
	s.DB.Create(&DailyRollup{MerchantCode: "SHOP_SH", AccountID: acct.ID, Channel: "wechat", Method: "h5", BizDate: "2026-03-07", Payments: 3})
	s.DB.Create(&DailyRollup{MerchantCode: "SHOP_SH", AccountID: acct.ID, Channel: "wechat", Method: "h5", BizDate: "2026-04-01", Payments: 9})

	c, err = s.CheckRollups(web, all, "2026-03-01", "2026-03-31", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Diffs) != 3 || c.Repaired {
		t.Fatalf("drift found: %+v", c.Diffs)
	}
	if d := c.Diffs[0]; d.BizDate != "2026-03-05" || d.Rollup.Payments != d.Raw.Payments+5 {
		t.Errorf("first difference %+v", d)
	}
	if d := c.Diffs[1]; d.BizDate != "2026-03-06" || d.Rollup.Payments != 0 || d.Raw.Payments != 1 {
		t.Errorf("missing row %+v", d)
	}
	if d := c.Diffs[2]; d.BizDate != "2026-03-07" || d.Raw.Payments != 0 {
		t.Errorf("stray row %+v", d)
	}
	// Out of scope: nothing to see.
	if c, _ := s.CheckRollups(web, Scope{Merchants: []string{"SHOP_GZ"}}, "2026-03-01", "2026-03-31", false); len(c.Diffs) != 0 {
		t.Errorf("another merchant sees %+v", c.Diffs)
	}

	c, err = s.CheckRollups(web, all, "2026-03-01", "2026-03-31", true)
	if err != nil || !c.Repaired || len(c.Diffs) != 3 {
		t.Fatalf("repair: %+v %v", c, err)
	}
	if c, _ := s.CheckRollups(web, all, "2026-03-01", "2026-03-31", false); len(c.Diffs) != 0 {
		t.Errorf("after repair: %+v", c.Diffs)
	}
	var outside DailyRollup
	s.DB.Where("biz_date = ?", "2026-04-01").First(&outside)
	if outside.Payments != 9 {
		t.Error("the repair touched a date outside its range")
	}
	var n int64
	s.DB.Model(&AuditLog{}).Where("action = ?", ActRollupRepair).Count(&n)
	if n != 1 {
		t.Errorf("%d repair audit entries", n)
	}

	var fe FieldErrors
	if _, err := s.CheckRollups(web, all, "2026-03-31", "2026-03-01", true); !errors.As(err, &fe) {
		t.Errorf("reversed range: %v", err)
	}
}
