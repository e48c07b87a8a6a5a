// Package flows is PayFuse's flow engine: it runs each configured flow on
// its schedule, on demand and on retry, with the handler registered for the
// flow's kind, and records every run.
//
// Several engines (several `payfuse serve` processes) may share one
// database; each scheduled occurrence still runs exactly once. An engine
// runs a flow only while it holds the flow's lease (a row in flow_leases
// taken with a conditional UPDATE or INSERT that only one taker wins),
// renews it while the handler works, and releases it when the run has
// ended. Claiming a run advances the flow's schedule in the same
// transaction, under the flow row's lock, and a unique index on (flow,
// occurrence, attempt) backs that up. An engine that dies stops renewing;
// once its lease has expired another engine takes the lease, marks the dead
// run failed ("interrupted") and retries it from its last checkpoint.
//
// Lease expiry is judged by the taking engine's clock, so the servers'
// clocks must agree to well within LeaseTTL minus RenewEvery (40 s by
// default); NTP does far better.
package flows

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"payfuse/channels"
	"payfuse/models"
)

// Defaults of an Engine's timing.
const (
	DefaultPollEvery = 10 * time.Second
	DefaultLeaseTTL  = 60 * time.Second // a dead engine's flows resume after at most this long
	DefaultStopGrace = 5 * time.Second
	DefaultMaxActive = 8
)

// Why a run's context was cancelled.
var (
	errShutdown  = errors.New("flows: the engine is shutting down")
	errLeaseLost = errors.New("flows: the flow's lease was lost")
)

// Messages of runs the engine ended rather than their handler.
var (
	textShutdown = channels.Text{
		EN: "interrupted: PayFuse was shutting down; the next attempt resumes from the last checkpoint",
		ZH: "已中断：PayFuse 正在停止；下次尝试将从上次的检查点继续"}
	textLeaseLost = channels.Text{
		EN: "interrupted: this PayFuse lost the flow's lease (database unreachable?) and another took the flow over",
		ZH: "已中断：此 PayFuse 失去了该流程的租约（数据库无法访问？），已由其他实例接管"}
)

func textOrphan(owner string) channels.Text {
	return channels.Text{
		EN: fmt.Sprintf("interrupted: the PayFuse running it (%s) stopped renewing its lease; taken over", owner),
		ZH: fmt.Sprintf("已中断：运行它的 PayFuse（%s）未再续租；已被接管", owner)}
}

// Engine polls the database for flows due to run and runs them. Set its
// fields before Start; zero values take the defaults.
type Engine struct {
	Store *models.Store
	// ID names this engine in leases and runs: host, process id and a random part.
	ID string
	// Now is the clock the schedules are read by; tests move it instead of sleeping.
	Now func() time.Time
	// PollEvery is how often Start's loop looks for due work.
	PollEvery time.Duration
	// LeaseTTL is how long a lease holds without renewal; RenewEvery (default
	// a third of it) is how often a running flow renews it.
	LeaseTTL   time.Duration
	RenewEvery time.Duration
	// StopGrace is how long Stop waits, after its deadline has cancelled the
	// running handlers, for them to return before it marks their runs itself.
	StopGrace time.Duration
	// MaxActive bounds the runs this engine has going at once.
	MaxActive int
	Alerter   Alerter
	Logger    *slog.Logger
	// Rand returns numbers in [0, 1) for the retry jitter.
	Rand func() float64

	mu         sync.Mutex
	handlers   map[string]Handler
	active     map[uint64]*activeRun // by flow id
	stopping   bool
	loopCancel context.CancelFunc
	loopDone   chan struct{}
	runCtx     context.Context
	cancelRuns context.CancelCauseFunc
	wg         sync.WaitGroup
	pollMu     sync.Mutex
}

// activeRun is a flow this engine has reserved, and the run it is running.
type activeRun struct {
	flowID uint64
	lease  string
	done   chan struct{}
	flow   *models.Flow
	row    *models.FlowRun
	run    *Run
}

// New returns an engine over store with the default timing and no handlers.
func New(store *models.Store) *Engine {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Engine{Store: store, ID: newEngineID(), Now: store.Now, Alerter: NopAlerter{},
		handlers: map[string]Handler{}, active: map[uint64]*activeRun{}, runCtx: ctx, cancelRuns: cancel}
}

func newEngineID() string {
	host, _ := os.Hostname()
	if len(host) > 40 {
		host = host[:40]
	}
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

func (e *Engine) now() time.Time {
	if e.Now == nil {
		return time.Now().UTC()
	}
	return e.Now().UTC()
}

func (e *Engine) log() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

func (e *Engine) leaseTTL() time.Duration {
	if e.LeaseTTL <= 0 {
		return DefaultLeaseTTL
	}
	return e.LeaseTTL
}

func (e *Engine) renewEvery() time.Duration {
	if e.RenewEvery > 0 {
		return e.RenewEvery
	}
	return e.leaseTTL() / 3
}

func (e *Engine) jitter() float64 {
	if e.Rand == nil {
		return mrand.Float64()
	}
	return e.Rand()
}

// Register sets the handler of a flow kind. The engine takes only flows of
// kinds it has a handler for, so engines with different handlers can share a database.
func (e *Engine) Register(kind string, h Handler) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.handlers[kind] = h
}

func (e *Engine) handler(kind string) Handler {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.handlers[kind]
}

func (e *Engine) kinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.handlers))
	for k := range e.handlers {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Start polls for due work every PollEvery until ctx is done or Stop is
// called, beginning at once. Runs go on in the background; Stop ends them.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.stopping {
		e.mu.Unlock()
		return ErrStopped
	}
	if e.loopDone != nil {
		e.mu.Unlock()
		return errors.New("flows: the engine is already started")
	}
	loopCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	e.loopCancel, e.loopDone = cancel, done
	e.mu.Unlock()
	every := e.PollEvery
	if every <= 0 {
		every = DefaultPollEvery
	}
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if err := e.Poll(loopCtx); err != nil {
				e.log().Warn("flows: poll failed", "engine", e.ID, "err", err)
			}
			select {
			case <-loopCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Stop stops taking new work and waits for the running flows to end. When
// ctx is done first, it cancels their handlers, gives them StopGrace to
// return, and marks any run still going as interrupted itself, so that no
// run is left "running": an interrupted run is retried at once (by another
// engine, or by this one after a restart) from its last checkpoint, without
// counting against its attempts. The error says when runs were interrupted.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	e.stopping = true
	cancel, done := e.loopCancel, e.loopDone
	e.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	all := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(all)
	}()
	select {
	case <-all:
		return nil
	case <-ctx.Done():
	}
	e.cancelRuns(errShutdown)
	grace := e.StopGrace
	if grace <= 0 {
		grace = DefaultStopGrace
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-all:
		return errors.New("flows: stopped before the running flows ended; they were interrupted and will resume")
	case <-t.C:
	}
	// Handlers that ignore cancellation: end their runs here.
	e.mu.Lock()
	var stuck []*activeRun
	for _, ar := range e.active {
		if ar.row != nil {
			stuck = append(stuck, ar)
		}
	}
	e.mu.Unlock()
	for _, ar := range stuck {
		log, counts, state := ar.run.snapshot()
		err := e.fail(ar.flow, ar.row, e.ID, textShutdown, failHandOver, models.RunOutcome{Counts: &counts, Log: &log, Checkpoint: &state})
		if err != nil && !errors.Is(err, models.ErrRunLost) {
			e.log().Error("flows: unable to mark an interrupted run", "run", ar.row.ID, "err", err)
		}
		if err := e.Store.ReleaseLease(ar.lease, e.ID); err != nil {
			e.log().Warn("flows: unable to release lease", "lease", ar.lease, "err", err)
		}
	}
	return fmt.Errorf("flows: %d run(s) did not stop in time; they were marked interrupted and will resume", len(stuck))
}

// Poll looks once for due work and starts it: runs of dead engines are
// taken over, due retries and scheduled occurrences are claimed. Start calls
// it every PollEvery; tests and one-shot commands may call it directly. It
// returns once the runs have started, not ended.
func (e *Engine) Poll(ctx context.Context) error {
	e.pollMu.Lock()
	defer e.pollMu.Unlock()
	if e.isStopping() {
		return nil
	}
	now := e.now()
	stale, err := e.Store.StaleRuns(now)
	if err != nil {
		return err
	}
	var ids []uint64
	for _, r := range stale {
		if !slices.Contains(ids, r.FlowID) {
			ids = append(ids, r.FlowID)
		}
	}
	due, err := e.Store.FlowsDue(now, e.kinds())
	if err != nil {
		return err
	}
	for _, id := range due {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	var errs []error
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		if err := e.tryFlow(id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) isStopping() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopping
}

// reserve marks flowID as this engine's to work on. The WaitGroup counts
// reservations, so Stop waits for a claim in progress too.
func (e *Engine) reserve(flowID uint64) (*activeRun, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.stopping:
		return nil, ErrStopped
	case e.active[flowID] != nil:
		return nil, ErrBusy
	}
	max := e.MaxActive
	if max <= 0 {
		max = DefaultMaxActive
	}
	if len(e.active) >= max {
		return nil, ErrFull
	}
	ar := &activeRun{flowID: flowID, lease: models.FlowLeaseName(flowID), done: make(chan struct{})}
	e.active[flowID] = ar
	e.wg.Add(1)
	return ar, nil
}

func (e *Engine) unreserve(ar *activeRun) {
	e.mu.Lock()
	delete(e.active, ar.flowID)
	e.mu.Unlock()
	close(ar.done)
	e.wg.Done()
}

// tryFlow takes a flow's lease and starts what is due on it, if anything.
func (e *Engine) tryFlow(id uint64) error {
	ar, err := e.reserve(id)
	if err != nil {
		return nil // busy here or stopping: a later poll (or another engine) sees to it
	}
	launched := false
	defer func() {
		if !launched {
			e.unreserve(ar)
		}
	}()
	got, err := e.Store.TakeLease(ar.lease, e.ID, e.now(), e.leaseTTL())
	if err != nil || !got {
		return err
	}
	defer func() {
		if !launched {
			if err := e.Store.ReleaseLease(ar.lease, e.ID); err != nil {
				e.log().Warn("flows: unable to release lease", "lease", ar.lease, "err", err)
			}
		}
	}()
	flow, err := e.Store.GetFlow(models.Scope{All: true}, id)
	if err != nil {
		return err
	}
	if err := e.recoverOrphans(flow); err != nil {
		return err
	}
	h := e.handler(flow.Kind)
	if h == nil || e.runCtx.Err() != nil {
		return nil
	}
	flow, row, err := e.Store.ClaimRun(id, e.ID, e.now())
	switch {
	case errors.Is(err, models.ErrNotDue), errors.Is(err, models.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	launched = true
	e.launch(ar, flow, row, h)
	return nil
}

// recoverOrphans ends the flow's runs still marked running. The caller
// holds the flow's lease and runs nothing of the flow, so their engine has
// lost the lease: it died, or it cannot reach the database.
func (e *Engine) recoverOrphans(flow *models.Flow) error {
	runs, err := e.Store.RunningRuns(flow.ID)
	if err != nil {
		return err
	}
	for i := range runs {
		r := &runs[i]
		e.log().Warn("flows: taking over a run whose engine stopped renewing its lease", "run", r.ID, "flow", flow.Name, "owner", r.Owner)
		if err := e.fail(flow, r, "", textOrphan(r.Owner), failAttempt, models.RunOutcome{}); err != nil && !errors.Is(err, models.ErrRunLost) {
			return err
		}
	}
	return nil
}

// RunNow starts a run of the flow in scope now, on behalf of actor
// (audited), and returns it while it runs; WaitRun waits for its end. It
// refuses with ErrBusy when the flow is running (here or on another
// engine), ErrDisabled, ErrNoHandler, ErrFull or ErrStopped;
// models.ErrNotFound when the flow is not in scope. The run goes on when the
// caller's request ends.
func (e *Engine) RunNow(scope models.Scope, flowID uint64, actor models.Actor) (*models.FlowRun, error) {
	return e.start(scope, flowID, func() (*models.Flow, *models.FlowRun, error) {
		return e.Store.StartManualRun(actor, scope, flowID, e.ID, e.now())
	})
}

// RunEvent starts a run of the flow because something happened (reason,
// e.g. "notification"), as RunNow does but recorded with the event trigger
// and not audited as a person's action. A flow that is running already is
// left alone (ErrBusy): that run, or the next, sees the event too.
func (e *Engine) RunEvent(flowID uint64, reason string) (*models.FlowRun, error) {
	return e.start(models.Scope{All: true}, flowID, func() (*models.Flow, *models.FlowRun, error) {
		return e.Store.StartEventRun(flowID, reason, e.ID, e.now())
	})
}

func (e *Engine) start(scope models.Scope, flowID uint64, begin func() (*models.Flow, *models.FlowRun, error)) (*models.FlowRun, error) {
	flow, err := e.Store.GetFlow(scope, flowID)
	if err != nil {
		return nil, err
	}
	if !flow.Enabled {
		return nil, ErrDisabled
	}
	h := e.handler(flow.Kind)
	if h == nil {
		return nil, ErrNoHandler
	}
	ar, err := e.reserve(flowID)
	if err != nil {
		return nil, err
	}
	launched := false
	defer func() {
		if !launched {
			e.unreserve(ar)
		}
	}()
	got, err := e.Store.TakeLease(ar.lease, e.ID, e.now(), e.leaseTTL())
	if err != nil {
		return nil, err
	}
	if !got {
		return nil, ErrBusy
	}
	defer func() {
		if !launched {
			if err := e.Store.ReleaseLease(ar.lease, e.ID); err != nil {
				e.log().Warn("flows: unable to release lease", "lease", ar.lease, "err", err)
			}
		}
	}()
	if err := e.recoverOrphans(flow); err != nil {
		return nil, err
	}
	flow, row, err := begin()
	switch {
	case errors.Is(err, models.ErrFlowDisabled):
		return nil, ErrDisabled
	case err != nil:
		return nil, err
	}
	launched = true
	started := *row
	e.launch(ar, flow, row, h)
	return &started, nil
}

// WaitRun waits until run id, if this engine is running it, has ended, and
// returns it as stored.
func (e *Engine) WaitRun(ctx context.Context, id uint64) (*models.FlowRun, error) {
	var done chan struct{}
	e.mu.Lock()
	for _, ar := range e.active {
		if ar.row != nil && ar.row.ID == id {
			done = ar.done
		}
	}
	e.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return e.Store.GetRun(models.Scope{All: true}, id)
}

// launch runs row in the background; the reservation and the lease end with it.
func (e *Engine) launch(ar *activeRun, flow *models.Flow, row *models.FlowRun, h Handler) {
	run := &Run{Flow: flow, ID: row.ID, Trigger: row.Trigger, Attempt: row.Attempt, Occurrence: row.Occurrence,
		Resume: row.Checkpoint, engine: e, state: row.Checkpoint}
	e.mu.Lock()
	ar.flow, ar.row, ar.run = flow, row, run
	e.mu.Unlock()
	go e.execute(ar, h)
}

func (e *Engine) execute(ar *activeRun, h Handler) {
	defer e.unreserve(ar)
	flow, row, run := ar.flow, ar.row, ar.run
	ctx, cancel := context.WithCancelCause(e.runCtx)
	defer cancel(nil)
	stopRenew, renewed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(renewed)
		e.renew(ar.lease, cancel, stopRenew)
	}()
	counts, err := e.call(ctx, h, run)
	close(stopRenew)
	<-renewed

	log, saved, state := run.snapshot()
	if err != nil && counts == (Counts{}) {
		counts = saved
	}
	out := models.RunOutcome{Counts: &counts, Log: &log, Checkpoint: &state}
	cause := context.Cause(ctx)
	switch {
	case err == nil:
		out.Status, out.At = models.RunSucceeded, e.now()
		_, err = e.Store.FinishRun(row.ID, e.ID, out)
		e.countRun(flow, out.Status, err)
	case errors.Is(cause, errShutdown):
		err = e.fail(flow, row, e.ID, textShutdown, failHandOver, out)
	case errors.Is(cause, errLeaseLost):
		err = e.fail(flow, row, e.ID, textLeaseLost, failAttempt, out)
	case isPermanent(err):
		err = e.fail(flow, row, e.ID, textOf(err), failPermanent, out)
	default:
		err = e.fail(flow, row, e.ID, textOf(err), failBackoff, out)
	}
	if err != nil && !errors.Is(err, models.ErrRunLost) {
		e.log().Error("flows: unable to record the end of a run", "run", row.ID, "flow", flow.Name, "err", err)
	}
	if err := e.Store.ReleaseLease(ar.lease, e.ID); err != nil {
		e.log().Warn("flows: unable to release lease", "lease", ar.lease, "err", err)
	}
}

// call runs the handler; a panic fails the attempt instead of the process.
func (e *Engine) call(ctx context.Context, h Handler, run *Run) (c Counts, err error) {
	defer func() {
		if p := recover(); p != nil {
			e.log().Error("flows: handler panicked", "flow", run.Flow.Name, "run", run.ID, "panic", p, "stack", string(debug.Stack()))
			err = Fail("internal error in the flow's handler: %v", "流程处理程序内部错误：%v", p)
		}
	}()
	return h.Run(ctx, run)
}

// renew keeps the lease while the run goes on. When another engine has
// taken the lease (this one could not renew it in time), the handler is
// cancelled: the run is no longer this engine's.
func (e *Engine) renew(lease string, cancel context.CancelCauseFunc, stop <-chan struct{}) {
	t := time.NewTicker(e.renewEvery())
	defer t.Stop()
	expires := e.now().Add(e.leaseTTL())
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := e.now()
		ok, err := e.Store.RenewLease(lease, e.ID, now, e.leaseTTL())
		switch {
		case err == nil && ok:
			expires = now.Add(e.leaseTTL())
		case err == nil:
			cancel(errLeaseLost)
			return
		default:
			e.log().Warn("flows: unable to renew lease", "lease", lease, "err", err)
			if !now.Before(expires) {
				cancel(errLeaseLost)
				return
			}
		}
	}
}

// How a failed attempt counts.
type failMode int

const (
	failBackoff   failMode = iota // the handler failed: retry after a backoff while attempts remain
	failAttempt                   // the engine went away: retry at once while attempts remain
	failHandOver                  // shutdown: retry at once, not counted against the attempts
	failPermanent                 // retrying cannot help: fail now
)

// fail ends a running run (owner "" for a dead engine's) as retrying or,
// when no attempt is left, failed, and then raises the alert. It returns
// models.ErrRunLost when the run had already ended.
func (e *Engine) fail(flow *models.Flow, run *models.FlowRun, owner string, msg channels.Text, mode failMode, out models.RunOutcome) error {
	now := e.now()
	out.At, out.Error = now, msg
	final := mode == failPermanent || !flow.Enabled || (mode != failHandOver && run.Attempt >= flow.MaxAttempts)
	if final {
		out.Status = models.RunFailed
	} else {
		at := now
		if mode == failBackoff {
			at = now.Add(Backoff(flow.RetryBase(), run.Attempt, e.jitter()))
		}
		out.Status, out.RetryAt = models.RunRetrying, &at
	}
	ended, err := e.Store.FinishRun(run.ID, owner, out)
	if err != nil {
		return err
	}
	e.countRun(flow, ended.Status, nil)
	if final {
		e.alert(flow, ended, msg)
	}
	return nil
}

func (e *Engine) alert(flow *models.Flow, run *models.FlowRun, msg channels.Text) {
	a := e.Alerter
	if a == nil {
		return
	}
	text := channels.Text{
		EN: fmt.Sprintf("Flow %s failed (attempt %d of %d): %s", flow.Name, run.Attempt, flow.MaxAttempts, msg.EN),
		ZH: fmt.Sprintf("流程 %s 运行失败（第 %d 次尝试，共 %d 次）：%s", flow.Name, run.Attempt, flow.MaxAttempts, msg.ZH),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Alert(ctx, flow, run, text); err != nil {
		e.log().Error("flows: unable to raise an alert", "flow", flow.Name, "run", run.ID, "err", err)
	}
}
