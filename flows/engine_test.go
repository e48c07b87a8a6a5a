package flows

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/models"
)

// clock is a settable time source: schedules move by it, not by sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
func (c *clock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

var (
	admin = models.Scope{All: true}
	web   = models.Actor{Name: "alice", IP: "192.0.2.1"}
)

// fixture is a database with merchant SHOP_SH (Asia/Shanghai) and a clock
// at 2026-03-01 08:00:30 UTC.
func fixture(t *testing.T) (*models.Store, *clock) {
	t.Helper()
	s := models.OpenTest(t)
	c := &clock{t: time.Date(2026, 3, 1, 8, 0, 30, 0, time.UTC)}
	s.Now = c.Now
	if _, err := s.CreateMerchant(models.SystemActor, models.MerchantInput{Code: "SHOP_SH", Name: "上海店"}); err != nil {
		t.Fatal(err)
	}
	return s, c
}

// reopen connects to s's database with a pool of its own, as another
// `payfuse serve` process would.
func reopen(t *testing.T, s *models.Store, c *clock) *models.Store {
	t.Helper()
	var dsn models.DSN
	if s.Dialect == models.SQLite {
		var rows []struct {
			Seq  int
			Name string
			File string
		}
		if err := s.DB.Raw("PRAGMA database_list").Scan(&rows).Error; err != nil || len(rows) == 0 {
			t.Fatalf("database file: %v", err)
		}
		dsn = models.DSN{Dialect: models.SQLite, Path: rows[0].File}
	} else {
		var name string
		if err := s.DB.Raw("SELECT DATABASE()").Scan(&name).Error; err != nil {
			t.Fatal(err)
		}
		var err error
		if dsn, err = models.ParseDSN(os.Getenv(models.TestMySQLEnv)); err != nil {
			t.Fatal(err)
		}
		dsn.MySQL = dsn.MySQL.Clone()
		dsn.MySQL.DBName = name
	}
	db, err := models.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	other := models.NewStore(db, s.Dialect)
	other.Now = c.Now
	t.Cleanup(func() { other.Close() })
	return other
}

// newEngine returns an engine on s that never renews by itself (tests that
// need renewals set RenewEvery) and jitters retries to exactly 3/4 of the delay.
func newEngine(t *testing.T, s *models.Store, c *clock, id string) *Engine {
	e := New(s)
	e.ID, e.Now, e.LeaseTTL, e.RenewEvery, e.Rand = id, c.Now, time.Minute, time.Hour, func() float64 { return 0.5 }
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	return e
}

// drain waits until every run the engine started has ended.
func drain(e *Engine) { e.wg.Wait() }

func poll(t *testing.T, e *Engine) {
	t.Helper()
	if err := e.Poll(context.Background()); err != nil {
		t.Fatalf("poll of %s: %v", e.ID, err)
	}
}

func createFlow(t *testing.T, s *models.Store, in models.FlowInput) *models.Flow {
	t.Helper()
	if in.MerchantCode == "" {
		in.MerchantCode = "SHOP_SH"
	}
	f, err := s.CreateFlow(web, admin, in)
	if err != nil {
		t.Fatalf("create flow %s: %v", in.Name, err)
	}
	return f
}

func runsOf(t *testing.T, s *models.Store, flowID uint64) []models.FlowRun {
	t.Helper()
	page, err := s.ListRuns(admin, models.RunFilter{FlowID: flowID, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(page.Rows)-1; i < j; i, j = i+1, j-1 {
		page.Rows[i], page.Rows[j] = page.Rows[j], page.Rows[i]
	}
	return page.Rows // oldest first
}

func noneRunning(t *testing.T, s *models.Store) {
	t.Helper()
	page, _ := s.ListRuns(admin, models.RunFilter{Status: models.RunRunning})
	if len(page.Rows) > 0 {
		t.Fatalf("runs left running: %+v", page.Rows)
	}
}

// waitFor polls cond (a state change another goroutine makes) for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestFlowThreeEnginesRunEachOccurrenceOnce(t *testing.T) {
	s, c := fixture(t)
	stores := []*models.Store{s, reopen(t, s, c), reopen(t, s, c)}
	var mu sync.Mutex
	seen := map[string]int{} // flow/occurrence -> handler invocations
	byEngine := map[string]int{}
	handler := HandlerFunc(func(ctx context.Context, run *Run) (Counts, error) {
		time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
		mu.Lock()
		seen[fmt.Sprintf("%s@%s", run.Flow.Name, run.Occurrence.Format("15:04"))]++
		byEngine[run.engine.ID]++
		mu.Unlock()
		return Counts{RowsRead: 1}, nil
	})
	var engines []*Engine
	for i, st := range stores {
		e := newEngine(t, st, c, fmt.Sprintf("engine-%d", i+1))
		e.Register(models.FlowTriggerEval, handler)
		engines = append(engines, e)
	}
	var flows []*models.Flow
	for i := range 3 {
		f := createFlow(t, s, models.FlowInput{Name: fmt.Sprintf("tick-%d", i), Kind: models.FlowTriggerEval, Schedule: "* * * * *", Enabled: true})
		flows = append(flows, f)
	}

	const minutes = 20
	for range minutes {
		c.Add(time.Minute)
		var wg sync.WaitGroup
		for _, e := range engines {
			for range 2 { // each engine polls twice, concurrently with the others
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := e.Poll(context.Background()); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		wg.Wait()
		for _, e := range engines {
			drain(e)
		}
	}

	if len(seen) != minutes*len(flows) {
		t.Fatalf("%d occurrences ran, want %d: %v", len(seen), minutes*len(flows), seen)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s ran %d times", k, n)
		}
	}
	for _, f := range flows {
		runs := runsOf(t, s, f.ID)
		if len(runs) != minutes {
			t.Fatalf("%s has %d runs, want %d", f.Name, len(runs), minutes)
		}
		for i, r := range runs {
			want := time.Date(2026, 3, 1, 8, 1+i, 0, 0, time.UTC)
			if r.Status != models.RunSucceeded || r.Trigger != models.TriggerSchedule || !r.Occurrence.Equal(want) || r.RowsRead != 1 {
				t.Errorf("%s run %d: %+v (want occurrence %v)", f.Name, i, r, want)
			}
		}
	}
	t.Logf("runs per engine: %v", byEngine)
}

func TestFlowLeaseTakeoverAfterHolderDies(t *testing.T) {
	s, c := fixture(t)
	a := newEngine(t, s, c, "engine-a")
	b := newEngine(t, reopen(t, s, c), c, "engine-b")
	started, wake := make(chan struct{}), make(chan struct{})
	zombie := make(chan error, 1)
	a.Register(models.FlowBillSync, HandlerFunc(func(ctx context.Context, run *Run) (Counts, error) {
		run.Logf("page 1-3 imported")
		if err := run.Checkpoint("page=3", Counts{RowsRead: 300, RowsNew: 290}); err != nil {
			return Counts{}, err
		}
		close(started)
		<-wake // hangs: engine-a stops renewing, as a dead process would
		zombie <- run.Checkpoint("page=4", Counts{RowsRead: 400})
		return Counts{RowsRead: 400}, nil
	}))
	var resumed string
	b.Register(models.FlowBillSync, HandlerFunc(func(ctx context.Context, run *Run) (Counts, error) {
		resumed = run.Resume
		return Counts{RowsRead: 500, RowsNew: 10}, nil
	}))
	f := createFlow(t, s, models.FlowInput{Name: "wechat-bills", Kind: models.FlowBillSync, Schedule: "0 * * * *", Enabled: true})

	c.Set(time.Date(2026, 3, 1, 9, 0, 10, 0, time.UTC))
	poll(t, a)
	<-started
	poll(t, b) // the lease is live: engine-b leaves the run alone
	drain(b)
	if runs := runsOf(t, s, f.ID); len(runs) != 1 || runs[0].Status != models.RunRunning || runs[0].Owner != "engine-a" {
		t.Fatalf("before expiry: %+v", runs)
	}

	c.Add(61 * time.Second) // engine-a's lease has expired
	poll(t, b)
	drain(b)
	runs := runsOf(t, s, f.ID)
	if len(runs) != 2 {
		t.Fatalf("after takeover: %+v", runs)
	}
	dead, retry := runs[0], runs[1]
	if dead.Status != models.RunFailed || dead.EndedAt == nil || !strings.Contains(dead.ErrorText().EN, "engine-a") ||
		dead.ErrorText().ZH == "" || dead.RowsRead != 300 || !strings.Contains(dead.Log, "page 1-3 imported") {
		t.Fatalf("the dead run: %+v", dead)
	}
	if retry.Status != models.RunSucceeded || retry.Owner != "engine-b" || retry.Trigger != models.TriggerRetry || retry.Attempt != 2 ||
		!retry.Occurrence.Equal(*dead.Occurrence) || resumed != "page=3" || retry.RowsRead != 500 {
		t.Fatalf("the retry: %+v (resumed from %q)", retry, resumed)
	}
	noneRunning(t, s)

	// engine-a wakes up: its checkpoint and its result no longer count.
	close(wake)
	drain(a)
	if err := <-zombie; !errors.Is(err, models.ErrRunLost) {
		t.Fatalf("the zombie's checkpoint: %v", err)
	}
	if got, _ := s.GetRun(admin, dead.ID); got.Status != models.RunFailed || got.RowsRead != 300 {
		t.Fatalf("the zombie overwrote its run: %+v", got)
	}
	if got, _ := s.GetFlow(admin, f.ID); got.LastStatus != models.RunSucceeded || *got.LastRunID != retry.ID {
		t.Fatalf("flow after takeover: %+v", got)
	}
}

func TestFlowRenewedLeaseIsNotTakenOver(t *testing.T) {
	s, c := fixture(t)
	a := newEngine(t, s, c, "engine-a")
	a.RenewEvery = time.Millisecond
	b := newEngine(t, reopen(t, s, c), c, "engine-b")
	release := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, run *Run) (Counts, error) {
		<-release
		return Counts{}, nil
	})
	a.Register(models.FlowReconcile, h)
	b.Register(models.FlowReconcile, h)
	f := createFlow(t, s, models.FlowInput{Name: "recon", Kind: models.FlowReconcile, Enabled: true})
	run, err := a.RunNow(admin, f.ID, web)
	if err != nil {
		t.Fatal(err)
	}
	lease := models.FlowLeaseName(f.ID)
	// Three half-TTL steps: 90 s in all, longer than the lease, each renewed.
	for range 3 {
		l, _ := s.GetLease(lease)
		c.Add(30 * time.Second)
		waitFor(t, "a renewal", func() bool {
			now, _ := s.GetLease(lease)
			return now.Fence > l.Fence && now.ExpiresAt.After(c.Now().Add(30*time.Second))
		})
	}
	poll(t, b)
	if _, err := b.RunNow(admin, f.ID, web); err != ErrBusy {
		t.Fatalf("run now on another engine while running: %v", err)
	}
	close(release)
	got, err := a.WaitRun(context.Background(), run.ID)
	if err != nil || got.Status != models.RunSucceeded || got.Owner != "engine-a" {
		t.Fatalf("the renewed run: %+v, %v", got, err)
	}
	if runs := runsOf(t, s, f.ID); len(runs) != 1 {
		t.Fatalf("runs: %+v", runs)
	}
}

func TestFlowMissedRunsCatchUpOnce(t *testing.T) {
	s, c := fixture(t)
	e := newEngine(t, s, c, "engine")
	var occurrences []time.Time
	e.Register(models.FlowRollupCheck, HandlerFunc(func(ctx context.Context, run *Run) (Counts, error) {
		occurrences = append(occurrences, *run.Occurrence)
		return Counts{}, nil
	}))
	f := createFlow(t, s, models.FlowInput{Name: "rollups", Kind: models.FlowRollupCheck, Schedule: "* * * * *", Enabled: true})
	c.Set(time.Date(2026, 3, 1, 8, 1, 10, 0, time.UTC))
	poll(t, e)
	drain(e)
	// Down from 08:01:10 to 08:06:40: 08:02, 08:03, 08:04, 08:05 and 08:06 are missed.
	c.Set(time.Date(2026, 3, 1, 8, 6, 40, 0, time.UTC))
	poll(t, e)
	drain(e)
	poll(t, e)
	drain(e)
	want := []time.Time{time.Date(2026, 3, 1, 8, 1, 0, 0, time.UTC), time.Date(2026, 3, 1, 8, 6, 0, 0, time.UTC)}
	if len(occurrences) != 2 || !occurrences[0].Equal(want[0]) || !occurrences[1].Equal(want[1]) {
		t.Fatalf("ran for %v, want %v", occurrences, want)
	}
	if got, _ := s.GetFlow(admin, f.ID); !got.NextRunAt.Equal(time.Date(2026, 3, 1, 8, 7, 0, 0, time.UTC)) {
		t.Fatalf("next run %v", got.NextRunAt)
	}
	if runs := runsOf(t, s, f.ID); len(runs) != 2 {
		t.Fatalf("%d runs, want 2", len(runs))
	}
}

type recordingAlerter struct {
	mu     sync.Mutex
	alerts []string
	runs   []uint64
}

func (a *recordingAlerter) Alert(ctx context.Context, flow *models.Flow, run *models.FlowRun, msg channels.Text) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.alerts = append(a.alerts, msg.EN+" | "+msg.ZH)
	a.runs = append(a.runs, run.ID)
	return nil
}

func TestFlowRetriesWithBackoffThenAlerts(t *testing.T) {
	s, c := fixture(t)
	e := newEngine(t, s, c, "engine")
	alerts := &recordingAlerter{}
	e.Alerter = alerts
	calls := 0
	e.Register(models.FlowBillSync, HandlerFunc(func(ctx context.Context, run *Run) (Counts, error) {
		calls++
		run.Logf("asking for the bill, attempt %d", run.Attempt)
		return Counts{}, Fail("the channel answered 503", "渠道返回 503")
	}))
	f := createFlow(t, s, models.FlowInput{Name: "alipay-bills", Kind: models.FlowBillSync, Schedule: "0 9 * * *", Enabled: true,
		MaxAttempts: 3, RetryBaseSeconds: 60})
	due := *f.NextRunAt
	c.Set(due.Add(time.Second))
	poll(t, e)
	drain(e)
	// Backoff with the test's jitter (3/4 of the delay): 45 s after attempt 1, 90 s after attempt 2.
	steps := []struct {
		wait  time.Duration
		calls int
	}{{44 * time.Second, 1}, {time.Second, 2}, {89 * time.Second, 2}, {time.Second, 3}, {time.Hour, 3}}
	for _, step := range steps {
		c.Add(step.wait)
		poll(t, e)
		drain(e)
		if calls != step.calls {
			t.Fatalf("at %v: %d attempts, want %d", c.Now().Sub(due), calls, step.calls)
		}
	}
	runs := runsOf(t, s, f.ID)
	if len(runs) != 3 {
		t.Fatalf("runs: %+v", runs)
	}
	for i, r := range runs {
		if r.Attempt != i+1 || r.Status != models.RunFailed || r.ErrorText().ZH != "渠道返回 503" || !strings.Contains(r.Log, fmt.Sprintf("attempt %d", i+1)) {
			t.Errorf("attempt %d: %+v", i+1, r)
		}
	}
	if runs[0].RetryAt == nil || !runs[0].RetryAt.Equal(due.Add(46*time.Second)) {
		t.Errorf("first retry at %v", runs[0].RetryAt)
	}
	if len(alerts.alerts) != 1 || alerts.runs[0] != runs[2].ID || !strings.Contains(alerts.alerts[0], "alipay-bills") ||
		!strings.Contains(alerts.alerts[0], "503") || !strings.Contains(alerts.alerts[0], "渠道返回 503") {
		t.Fatalf("alerts: %v", alerts.alerts)
	}
	got, _ := s.GetFlow(admin, f.ID)
	if got.FailureStreak != 3 || got.LastStatus != models.RunFailed {
		t.Fatalf("flow: streak %d, last %s", got.FailureStreak, got.LastStatus)
	}

	// A permanent failure is not retried.
	e.Register(models.FlowReconcile, HandlerFunc(func(ctx context.Context, run *Run) (Counts, error) {
		return Counts{}, Permanent(Fail("no statement configured", "未配置对账单"))
	}))
	p := createFlow(t, s, models.FlowInput{Name: "recon", Kind: models.FlowReconcile, Enabled: true})
	run, err := e.RunNow(admin, p.ID, web)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := e.WaitRun(context.Background(), run.ID); r.Status != models.RunFailed || r.RetryAt != nil || len(alerts.alerts) != 2 {
		t.Fatalf("permanent failure: %+v, alerts %v", r, alerts.alerts)
	}
}

func TestFlowBackoffGrowsAndIsCapped(t *testing.T) {
	base := time.Minute
	for attempt, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 20: MaxBackoff} {
		if lo, hi := Backoff(base, attempt, 0), Backoff(base, attempt, 0.999999); lo != want/2 || hi >= want || hi < want*99/100 {
			t.Errorf("attempt %d: [%v, %v], want [%v, %v)", attempt, lo, hi, want/2, want)
		}
	}
}

func TestFlowRunNowDisabledAndTimezone(t *testing.T) {
	s, c := fixture(t)
	if _, err := s.CreateMerchant(models.SystemActor, models.MerchantInput{Code: "SHOP_BJ", Name: "北京店"}); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, s, c, "engine")
	var ran []*Run
	e.Register(models.FlowReconcile, HandlerFunc(func(ctx context.Context, run *Run) (Counts, error) {
		ran = append(ran, run)
		var p struct{ Date string }
		if err := run.Params(&p); err != nil || p.Date != "yesterday" {
			return Counts{}, Permanent(fmt.Errorf("params %+v: %v", p, err))
		}
		return Counts{Discrepancies: 2}, nil
	}))
	c.Set(time.Date(2026, 3, 1, 0, 30, 0, 0, time.UTC)) // 08:30 in Shanghai
	daily := createFlow(t, s, models.FlowInput{Name: "recon-daily", Kind: models.FlowReconcile, Schedule: "0 9 * * *", Params: `{"date":"yesterday"}`, Enabled: true})
	if want := time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC); !daily.NextRunAt.Equal(want) {
		t.Fatalf("09:00 Shanghai is due at %v, want %v", daily.NextRunAt, want)
	}
	c.Set(time.Date(2026, 3, 1, 0, 59, 59, 0, time.UTC))
	poll(t, e)
	drain(e)
	if len(ran) != 0 {
		t.Fatal("ran before 09:00 Shanghai")
	}
	c.Set(time.Date(2026, 3, 1, 1, 0, 5, 0, time.UTC))
	poll(t, e)
	drain(e)
	if len(ran) != 1 || ran[0].Occurrence.In(daily.Location()).Format("15:04") != "09:00" {
		t.Fatalf("ran: %d", len(ran))
	}

	// Disabled flows do not run, on schedule or on demand.
	off := createFlow(t, s, models.FlowInput{Name: "recon-off", Kind: models.FlowReconcile, Schedule: "* * * * *", Params: `{"date":"yesterday"}`, Enabled: true})
	if _, err := s.SetFlowEnabled(web, admin, off.ID, false); err != nil {
		t.Fatal(err)
	}
	c.Add(10 * time.Minute)
	poll(t, e)
	drain(e)
	if runs := runsOf(t, s, off.ID); len(runs) != 0 || len(ran) != 1 {
		t.Fatalf("a disabled flow ran: %+v", runs)
	}
	if _, err := e.RunNow(admin, off.ID, web); err != ErrDisabled {
		t.Fatalf("run now on a disabled flow: %v", err)
	}

	// Run now: within scope only, audited, recorded as manual.
	if _, err := e.RunNow(models.Scope{Merchants: []string{"SHOP_BJ"}}, daily.ID, web); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("run now outside scope: %v", err)
	}
	run, err := e.RunNow(models.Scope{Merchants: []string{"SHOP_SH"}}, daily.ID, web)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.WaitRun(context.Background(), run.ID)
	if err != nil || got.Status != models.RunSucceeded || got.Trigger != models.TriggerManual || got.TriggeredBy != "alice" ||
		got.Occurrence != nil || got.Discrepancies != 2 {
		t.Fatalf("manual run: %+v, %v", got, err)
	}
	page, _ := s.ListAudit(models.AuditFilter{Action: models.ActFlowRun})
	if len(page.Rows) != 1 || page.Rows[0].Actor != "alice" || page.Rows[0].ObjectID != fmt.Sprint(daily.ID) {
		t.Fatalf("audit of run now: %+v", page.Rows)
	}
	if sched, _ := s.GetFlow(admin, daily.ID); !sched.NextRunAt.Equal(time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)) {
		t.Fatalf("run now moved the schedule: %v", sched.NextRunAt)
	}
	other := createFlow(t, s, models.FlowInput{Name: "folder", Kind: models.FlowFolderImport, Enabled: true})
	if _, err := e.RunNow(admin, other.ID, web); err != ErrNoHandler {
		t.Fatalf("run now without a handler: %v", err)
	}
}

func TestFlowStopWaitsForRunningFlows(t *testing.T) {
	s, c := fixture(t)
	e := newEngine(t, s, c, "engine")
	started, release := make(chan struct{}), make(chan struct{})
	e.Register(models.FlowReconcile, HandlerFunc(func(ctx context.Context, run *Run) (Counts, error) {
		close(started)
		<-release
		return Counts{RowsRead: 1}, nil
	}))
	f := createFlow(t, s, models.FlowInput{Name: "recon", Kind: models.FlowReconcile, Enabled: true})
	run, err := e.RunNow(admin, f.ID, web)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- e.Stop(context.Background()) }()
	waitFor(t, "stop to begin", e.isStopping)
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned while a flow was running: %v", err)
	default:
	}
	if _, err := e.RunNow(admin, f.ID, web); err != ErrStopped {
		t.Fatalf("run now while stopping: %v", err)
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	if got, _ := s.GetRun(admin, run.ID); got.Status != models.RunSucceeded {
		t.Fatalf("run after a graceful stop: %+v", got)
	}
}

func TestFlowStopInterruptsAtDeadlineAndHandsOver(t *testing.T) {
	s, c := fixture(t)
	a := newEngine(t, s, c, "engine-a")
	a.StopGrace = 20 * time.Millisecond
	b := newEngine(t, reopen(t, s, c), c, "engine-b")
	started, stuckStarted, unstick := make(chan struct{}), make(chan struct{}), make(chan struct{})
	a.Register(models.FlowBillSync, HandlerFunc(func(ctx context.Context, run *Run) (Counts, error) {
		if err := run.Checkpoint("file=2", Counts{RowsRead: 20}); err != nil {
			return Counts{}, err
		}
		close(started)
		<-ctx.Done() // a good handler stops when told
		return Counts{}, ctx.Err()
	}))
	a.Register(models.FlowFolderImport, HandlerFunc(func(ctx context.Context, run *Run) (Counts, error) {
		close(stuckStarted)
		<-unstick // a handler that ignores cancellation
		return Counts{}, nil
	}))
	var resumed []string
	var mu sync.Mutex
	resume := HandlerFunc(func(ctx context.Context, run *Run) (Counts, error) {
		mu.Lock()
		resumed = append(resumed, run.Flow.Name+":"+run.Resume)
		mu.Unlock()
		return Counts{}, nil
	})
	b.Register(models.FlowBillSync, resume)
	b.Register(models.FlowFolderImport, resume)
	good := createFlow(t, s, models.FlowInput{Name: "bills", Kind: models.FlowBillSync, Enabled: true, MaxAttempts: 1})
	stuck := createFlow(t, s, models.FlowInput{Name: "drop", Kind: models.FlowFolderImport, Enabled: true, MaxAttempts: 1})
	r1, err := a.RunNow(admin, good.ID, web)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := a.RunNow(admin, stuck.ID, web)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	<-stuckStarted
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the deadline has passed
	if err := a.Stop(ctx); err == nil {
		t.Fatal("Stop interrupted runs and said nothing")
	}
	for _, id := range []uint64{r1.ID, r2.ID} {
		got, _ := s.GetRun(admin, id)
		if got.Status != models.RunRetrying || got.RetryAt == nil || !strings.Contains(got.ErrorText().EN, "shutting down") {
			t.Fatalf("run %d after the deadline: %+v", id, got)
		}
	}
	noneRunning(t, s)
	if got, _ := s.GetRun(admin, r1.ID); got.Checkpoint != "file=2" || got.RowsRead != 20 {
		t.Fatalf("interrupted run lost its checkpoint: %+v", got)
	}
	// Another engine resumes both at once, though each flow allows a single attempt.
	poll(t, b)
	drain(b)
	if len(resumed) != 2 || !strings.Contains(strings.Join(resumed, ","), "bills:file=2") {
		t.Fatalf("resumed: %v", resumed)
	}
	// The stuck handler returning late changes nothing.
	close(unstick)
	drain(a)
	if got, _ := s.GetRun(admin, r2.ID); got.Status != models.RunFailed {
		t.Fatalf("late return of a stuck handler: %+v", got)
	}
	noneRunning(t, s)
}

func TestFlowStartPollsUntilStopped(t *testing.T) {
	s, c := fixture(t)
	e := newEngine(t, s, c, "engine")
	e.PollEvery = time.Millisecond
	var mu sync.Mutex
	var ran []time.Time
	e.Register(models.FlowRollupCheck, HandlerFunc(func(ctx context.Context, run *Run) (Counts, error) {
		mu.Lock()
		ran = append(ran, *run.Occurrence)
		mu.Unlock()
		return Counts{}, nil
	}))
	createFlow(t, s, models.FlowInput{Name: "rollups", Kind: models.FlowRollupCheck, Schedule: "*/5 * * * *", Enabled: true})
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err == nil {
		t.Fatal("started twice")
	}
	c.Set(time.Date(2026, 3, 1, 8, 5, 1, 0, time.UTC))
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(ran) }
	waitFor(t, "the 08:05 run", func() bool { return count() == 1 })
	c.Set(time.Date(2026, 3, 1, 8, 10, 1, 0, time.UTC))
	waitFor(t, "the 08:10 run", func() bool { return count() == 2 })
	if err := e.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Set(time.Date(2026, 3, 1, 8, 15, 1, 0, time.UTC))
	if err := e.Poll(context.Background()); err != nil || count() != 2 {
		t.Fatalf("a stopped engine ran: %d, %v", count(), err)
	}
	noneRunning(t, s)
}
