package models

import (
	"testing"
	"time"
)

// TestDemoFlowsLookLikeWeeksOfOperation: the demo merchant gets its flows
// with a few weeks of runs, reconciled days with discrepancies (older ones
// resolved), and alerts; a second call adds nothing.
func TestDemoFlowsLookLikeWeeksOfOperation(t *testing.T) {
	s := demoFixture(t)
	s.Now = func() time.Time { return demoNow }
	if _, err := s.GenerateDemoHistory(SystemActor, demoOpts(1500, 3)); err != nil {
		t.Fatal(err)
	}
	sum, err := s.GenerateDemoFlows(SystemActor, 21, 1)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Flows != 5 || sum.Runs < 4*20 || sum.ReconDays < 20 || sum.Discrepancies == 0 || sum.Alerts != 2 {
		t.Fatalf("demo flows: %+v", sum)
	}
	flows, _ := s.ListFlows(Scope{All: true}, FlowFilter{})
	for _, f := range flows {
		if f.Kind == FlowTriggerEval {
			continue // runs every minute from the start of the console
		}
		if f.LastStatus != RunSucceeded || f.LastRunAt == nil {
			t.Errorf("%s: last %q at %v", f.Name, f.LastStatus, f.LastRunAt)
		}
		if f.Kind == FlowBillSync && f.Enabled {
			t.Errorf("%s: a bill sync with demo credentials is enabled", f.Name)
		}
	}
	var failed, resolved, open int64
	s.DB.Model(&FlowRun{}).Where("status = ?", RunFailed).Count(&failed)
	s.DB.Model(&ReconItem{}).Where("resolved = ?", true).Count(&resolved)
	s.DB.Model(&ReconItem{}).Where("resolved = ?", false).Count(&open)
	if failed == 0 || resolved == 0 || open == 0 {
		t.Errorf("history: %d failed runs, %d resolved and %d open discrepancies", failed, resolved, open)
	}
	if rules, _ := s.ListTriggerRules(Scope{All: true}, TriggerFilter{}); len(rules) != 5 {
		t.Errorf("%d demo trigger rules", len(rules))
	}
	again, err := s.GenerateDemoFlows(SystemActor, 21, 1)
	if err != nil || again.Flows != 0 || again.Runs != 0 {
		t.Errorf("second call: %+v %v", again, err)
	}
}
