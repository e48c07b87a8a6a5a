package models

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"gorm.io/gorm"

	"payfuse/channels"
)

// DemoFlowsSummary says what GenerateDemoFlows added.
type DemoFlowsSummary struct {
	Flows         int
	Runs          int
	ReconDays     int
	Discrepancies int
	Alerts        int
}

// GenerateDemoFlows gives each demo merchant that has no flows yet the
// flows a merchant would run — a daily bill sync per account (disabled: the
// demo accounts' credentials are not real, so the channels would refuse
// them), a daily reconciliation and a nightly rollup check — with the last
// `days` days of run history, the reconciliation of those days (with the
// discrepancies the demo history holds, a few of them resolved) and the
// alerts such a history raises. The history rows are written directly:
// they are what the engine would have recorded had it run then.
func (s *Store) GenerateDemoFlows(a Actor, days int, seed int64) (DemoFlowsSummary, error) {
	var sum DemoFlowsSummary
	if days <= 0 {
		days = 21
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	all := Scope{All: true}
	for _, code := range DemoMerchants {
		m, err := s.GetMerchantByCode(all, code)
		if errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return sum, err
		}
		var n int64
		if err := s.DB.Model(&Flow{}).Where("merchant_code = ?", code).Count(&n).Error; err != nil {
			return sum, err
		}
		if n > 0 {
			continue // this merchant has flows already: leave them alone
		}
		accts, err := s.ListAccounts(all, AccountFilter{MerchantID: m.ID})
		if err != nil {
			return sum, err
		}
		lower := strings.ToLower(strings.ReplaceAll(code, "_", "-"))
		type planned struct {
			in   FlowInput
			acct *ChannelAccount
		}
		var plan []planned
		for i := range accts {
			ac := &accts[i]
			if ac.Channel != "wechat" && ac.Channel != "alipay" {
				continue
			}
			plan = append(plan, planned{FlowInput{Name: fmt.Sprintf("%s-%s-bill-sync", lower, ac.Channel), Kind: FlowBillSync, MerchantCode: code,
				AccountID: ac.ID, Schedule: "0 10 * * *", Params: `{"lag_days":1,"bill_type":"ALL"}`, Enabled: false}, ac})
		}
		plan = append(plan,
			planned{in: FlowInput{Name: lower + "-triggers", Kind: FlowTriggerEval, MerchantCode: code, Schedule: "* * * * *", Enabled: true}},
			planned{in: FlowInput{Name: lower + "-reconcile", Kind: FlowReconcile, MerchantCode: code, Schedule: "30 10 * * *", Params: `{"lag_days":1}`, Enabled: true}},
			planned{in: FlowInput{Name: lower + "-rollup-check", Kind: FlowRollupCheck, MerchantCode: code, Schedule: "0 3 * * *", Params: `{"days":7}`, Enabled: true}})
		for _, p := range plan {
			f, err := s.CreateFlow(a, all, p.in)
			if err != nil {
				return sum, fmt.Errorf("demo flows: %s: %w", p.in.Name, err)
			}
			sum.Flows++
			runs, err := s.demoRunHistory(f, p.acct, days, rng)
			if err != nil {
				return sum, err
			}
			sum.Runs += runs
		}
		// The rules a merchant would watch its channels with.
		for _, r := range []TriggerRuleInput{
			{Name: "success rate under 90%", Kind: TriggerSuccessRate, Params: `{"window_minutes":60,"min_percent":90,"min_payments":20}`, Severity: SeverityWarning},
			{Name: "payment over 5,000 yuan", Kind: TriggerLargePayment, Params: `{"amount":500000}`, Severity: SeverityInfo},
			{Name: "statement missing by 11:00", Kind: TriggerBillMissing, Params: `{"at":"11:00"}`, Severity: SeverityWarning},
			{Name: "day not balanced by 18:00", Kind: TriggerReconUnbalanced, Params: `{"at":"18:00"}`, Severity: SeverityWarning},
			{Name: "certificate expires within 30 days", Kind: TriggerCertExpiry, Params: `{"days":30}`, Severity: SeverityCritical},
		} {
			r.MerchantCode, r.Alert, r.Enabled = code, true, true
			if _, err := s.CreateTriggerRule(a, all, r); err != nil {
				return sum, fmt.Errorf("demo trigger rule %q: %w", r.Name, err)
			}
		}

		// The reconciliation those runs did, day by day.
		loc := m.Location()
		today := s.now().In(loc)
		for i := range accts {
			for d := days; d >= 1; d-- {
				date := today.AddDate(0, 0, -d).Format(time.DateOnly)
				day, err := s.Reconcile(SystemActor, all, accts[i].ID, date)
				if err != nil {
					return sum, err
				}
				if day.Matched+day.Discrepancies() == 0 {
					continue
				}
				sum.ReconDays++
				sum.Discrepancies += day.Discrepancies()
				// Finance has worked through the older days.
				if d > 3 && day.Open > 0 {
					items, err := s.ListReconItems(all, day.ID, ReconItemFilter{State: "open"})
					if err != nil {
						return sum, err
					}
					for _, it := range items {
						res := ReconResolutions[rng.IntN(len(ReconResolutions)-1)]
						if _, err := s.ResolveReconItem(Actor{Name: "finance.demo", IP: "local"}, all, it.ID,
							ReconcileInput{Resolution: res, Note: "Checked with the channel's support ticket (demo)."}); err != nil {
							return sum, err
						}
					}
				}
			}
		}
		// One account's sync keeps failing: the alert finance would see.
		if len(plan) > 0 && plan[0].acct != nil {
			f, err := s.GetFlowByName(all, plan[0].in.Name)
			if err != nil {
				return sum, err
			}
			if _, _, err := s.RaiseAlert(RaiseInput{MerchantCode: code, Source: "flow", SourceID: f.ID, Kind: "flow_failed", Severity: SeverityCritical,
				DedupeKey: fmt.Sprintf("flow:%d", f.ID),
				Title:     channels.Text{EN: "Flow " + f.Name + " failed", ZH: "流程 " + f.Name + " 运行失败"},
				Body: channels.Text{EN: "3 attempts: the bill of the day was not ready by the last retry (STATEMENT_CREATING). Run it again once the channel has the bill.",
					ZH: "3 次尝试：最后一次重试时当天账单仍未生成（STATEMENT_CREATING）。渠道生成账单后请重新运行。"},
				Link: fmt.Sprintf("/flows/%d", f.ID)}); err != nil {
				return sum, err
			}
			sum.Alerts++
		}
		if len(accts) > 0 {
			if _, _, err := s.RaiseAlert(RaiseInput{MerchantCode: code, Source: "trigger", Kind: "success_rate", Severity: SeverityWarning,
				DedupeKey: "demo:success_rate:" + code,
				Title:     channels.Text{EN: "Success rate below 90% on " + accts[0].DisplayName, ZH: accts[0].DisplayName + " 成功率低于 90%"},
				Body:      channels.Text{EN: "86.4% of 220 payments in the last 60 minutes succeeded.", ZH: "最近 60 分钟 220 笔支付中成功 86.4%。"},
				Link:      "/ledger?status=failed"}); err != nil {
				return sum, err
			}
			sum.Alerts++
		}
	}
	return sum, nil
}

// demoRunHistory writes a flow's runs of the last days: one a day at its
// scheduled time, mostly succeeded, now and then a retry that succeeded.
func (s *Store) demoRunHistory(f *Flow, acct *ChannelAccount, days int, rng *rand.Rand) (int, error) {
	if f.Kind == FlowTriggerEval {
		// Every minute: its history is the engine's to write from now on.
		return 0, nil
	}
	sched, err := ParseSchedule(f.Schedule, f.Location())
	if err != nil {
		return 0, err
	}
	now := s.now()
	start := now.AddDate(0, 0, -days)
	var runs []FlowRun
	for at := sched.Next(start); at.Before(now); at = sched.Next(at) {
		occ := at.UTC()
		date := at.In(f.Location()).AddDate(0, 0, -1).Format(time.DateOnly)
		counts, err := s.demoCounts(f, acct, date)
		if err != nil {
			return 0, err
		}
		took := time.Duration(2+rng.IntN(40)) * time.Second
		o := occ
		started, attempt, trigger := occ, 1, TriggerSchedule
		if f.Kind == FlowBillSync && rng.IntN(6) == 0 && occ.Add(2*time.Hour).Before(now) {
			// The bill was not ready at ten: a retry an hour later took it.
			end := occ.Add(3 * time.Second)
			retry := occ.Add(time.Hour)
			runs = append(runs, FlowRun{FlowID: f.ID, MerchantCode: f.MerchantCode, Trigger: TriggerSchedule, Occurrence: &o, Attempt: 1,
				Status: RunFailed, StartedAt: occ, EndedAt: &end, RetryAt: &retry, Owner: "demo",
				Error: encodeText(channels.Text{EN: "the bill of " + date + " is not ready yet (STATEMENT_CREATING)", ZH: date + " 的账单尚未生成（STATEMENT_CREATING）"}),
				Log:   occ.In(f.Location()).Format("15:04:05 ") + "bill of " + date + ": not ready, retrying\n"})
			started, attempt, trigger = retry, 2, TriggerRetry
		}
		end := started.Add(took)
		runs = append(runs, FlowRun{FlowID: f.ID, MerchantCode: f.MerchantCode, Trigger: trigger, Occurrence: &o, Attempt: attempt,
			Status: RunSucceeded, StartedAt: started, EndedAt: &end, RunCounts: counts, Owner: "demo",
			Log: started.In(f.Location()).Format("15:04:05 ") + demoLogLine(f, date, counts) + "\n"})
	}
	if len(runs) == 0 {
		return 0, nil
	}
	err = s.Tx(func(tx *gorm.DB) error {
		if err := tx.CreateInBatches(runs, 100).Error; err != nil {
			return err
		}
		last := runs[len(runs)-1]
		return tx.Model(&Flow{}).Where("id = ?", f.ID).Updates(map[string]any{
			"last_run_id": last.ID, "last_status": last.Status, "last_run_at": last.StartedAt}).Error
	})
	if err != nil {
		return 0, fmt.Errorf("demo flows: runs of %s: %w", f.Name, err)
	}
	return len(runs), nil
}

func demoLogLine(f *Flow, date string, c RunCounts) string {
	switch f.Kind {
	case FlowBillSync:
		return fmt.Sprintf("bill of %s: %d rows, %d new, %d merged; reconciled, %d discrepancies", date, c.RowsRead, c.RowsNew, c.RowsMerged, c.Discrepancies)
	case FlowReconcile:
		return fmt.Sprintf("%s reconciled: %d records, %d discrepancies", date, c.RowsRead, c.Discrepancies)
	case FlowTriggerEval:
		return "5 rules evaluated, nothing fired"
	}
	return fmt.Sprintf("rollups of the 7 days to %s: %d groups compared, 0 differ", date, c.RowsRead)
}

// demoCounts are plausible counts for a run about date: the ledger's own.
func (s *Store) demoCounts(f *Flow, acct *ChannelAccount, date string) (RunCounts, error) {
	q := s.DB.Model(&Transaction{}).Where("merchant_code = ? AND biz_date = ?", f.MerchantCode, date)
	if acct != nil {
		q = q.Where("account_id = ?", acct.ID)
	}
	var n int64
	if err := q.Count(&n).Error; err != nil {
		return RunCounts{}, err
	}
	c := RunCounts{RowsRead: int(n)}
	switch f.Kind {
	case FlowBillSync:
		c.RowsMerged = int(n) * 9 / 10
		c.RowsNew = int(n) - c.RowsMerged
		c.Discrepancies = c.RowsNew / 4
	case FlowReconcile:
		c.Discrepancies = int(n) / 40
	}
	return c, nil
}
