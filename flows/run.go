package flows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"payfuse/channels"
	"payfuse/models"
)

// Counts are what a run did to the ledger: rows read, new, merged, and discrepancies found.
type Counts = models.RunCounts

// Handler runs one attempt of a flow of the kind it is registered for. It
// should stop soon after ctx is done (shutdown, or the lease was lost),
// returning ctx's error; work it has checkpointed is resumed by the next
// attempt. A returned error fails the attempt: *Error carries a message for
// the user in both languages; Permanent(err) stops the retries.
type Handler interface {
	Run(ctx context.Context, run *Run) (Counts, error)
}

// HandlerFunc lets a function be a Handler.
type HandlerFunc func(ctx context.Context, run *Run) (Counts, error)

// Run calls f.
func (f HandlerFunc) Run(ctx context.Context, run *Run) (Counts, error) { return f(ctx, run) }

// Alerter is told when a flow has failed its last attempt. Alerts (the
// inbox, webhooks) are built elsewhere; the engine only calls this.
type Alerter interface {
	Alert(ctx context.Context, flow *models.Flow, run *models.FlowRun, message channels.Text) error
}

// NopAlerter drops alerts; it is the engine's default.
type NopAlerter struct{}

// Alert does nothing.
func (NopAlerter) Alert(context.Context, *models.Flow, *models.FlowRun, channels.Text) error {
	return nil
}

// Run is one attempt of a flow as its handler sees it: which flow, why and
// for which occurrence it runs, where an earlier attempt got to, and a way
// to log and to checkpoint.
type Run struct {
	Flow       *models.Flow // as it was when the run started
	ID         uint64
	Trigger    string     // models.TriggerSchedule, TriggerManual, TriggerEvent or TriggerRetry
	Attempt    int        // 1 for the first
	Occurrence *time.Time // the scheduled time (UTC) a scheduled run and its retries are for; nil otherwise
	Resume     string     // the checkpoint an earlier attempt saved; "" when starting afresh

	engine *Engine
	mu     sync.Mutex
	log    strings.Builder
	counts Counts
	state  string
}

// Params unmarshals the flow's kind-specific settings into v.
func (r *Run) Params(v any) error { return r.Flow.DecodeParams(v) }

// Now is the engine's clock.
func (r *Run) Now() time.Time { return r.engine.now() }

// Logf adds a line to the run's short log, stamped with the time in the
// merchant's time zone. The log keeps its newest lines within models.MaxRunLog bytes.
func (r *Run) Logf(format string, args ...any) {
	line := r.engine.now().In(r.Flow.Location()).Format("15:04:05 ") + strings.TrimRight(fmt.Sprintf(format, args...), "\n") + "\n"
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log.WriteString(line)
	if r.log.Len() > 2*models.MaxRunLog {
		trimmed := models.TrimRunLog(r.log.String())
		r.log.Reset()
		r.log.WriteString(trimmed)
	}
}

// Checkpoint saves the run's progress (the handler's own state, opaque to
// the engine, at most models.MaxRunCheckpoint bytes) with the counts so far
// and the log. If this attempt dies, the next one gets state as Resume. An
// error wrapping models.ErrRunLost means another engine has taken the run
// over: the handler should stop.
func (r *Run) Checkpoint(state string, c Counts) error {
	r.mu.Lock()
	r.state, r.counts = state, c
	log := r.log.String()
	r.mu.Unlock()
	if err := r.engine.Store.SaveCheckpoint(r.ID, r.engine.ID, c, log, state); err != nil {
		return fmt.Errorf("flows: checkpoint of run %d: %w", r.ID, err)
	}
	return nil
}

// snapshot returns the log, counts and checkpoint held in memory.
func (r *Run) snapshot() (string, Counts, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String(), r.counts, r.state
}

// Error is a failure the user reads, in both languages. Handlers return it
// (Fail) for failures they can explain; the engine also uses it for its own
// refusals (ErrBusy, ErrDisabled, ...).
type Error struct {
	Message   channels.Text
	Permanent bool  // retrying cannot help
	Err       error // the cause, if any
}

func (e *Error) Error() string { return e.Message.EN }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Fail builds a retryable failure with its message in English and Chinese
// (fmt verbs are filled in both).
func Fail(en, zh string, args ...any) *Error {
	return &Error{Message: channels.Text{EN: fmt.Sprintf(en, args...), ZH: fmt.Sprintf(zh, args...)}}
}

// Permanent marks err as one that retrying cannot fix (bad settings, say):
// the run fails at once and the alert goes out.
func Permanent(err error) error {
	var fe *Error
	if errors.As(err, &fe) {
		c := *fe
		c.Permanent = true
		return &c
	}
	return &Error{Message: textOf(err), Permanent: true, Err: err}
}

// Refusals of the engine.
var (
	ErrBusy = &Error{Message: channels.Text{
		EN: "the flow is running now; try again when this run has ended",
		ZH: "该流程正在运行，请在本次运行结束后再试"}}
	ErrDisabled = &Error{Message: channels.Text{
		EN: "the flow is disabled; enable it first",
		ZH: "该流程已停用，请先启用"}}
	ErrNoHandler = &Error{Message: channels.Text{
		EN: "this PayFuse cannot run flows of this kind",
		ZH: "此 PayFuse 无法运行这种类型的流程"}}
	ErrFull = &Error{Message: channels.Text{
		EN: "this PayFuse is running as many flows as it may; try again in a minute",
		ZH: "此 PayFuse 正在运行的流程已达上限，请稍后再试"}}
	ErrStopped = &Error{Message: channels.Text{
		EN: "PayFuse is shutting down; try again in a minute",
		ZH: "PayFuse 正在停止，请稍后再试"}}
)

// textOf is the user's message for a failed attempt.
func textOf(err error) channels.Text {
	var fe *Error
	var be *channels.BillError
	switch {
	case errors.As(err, &fe):
		return fe.Message
	case errors.As(err, &be):
		t := be.Message
		if be.Line > 0 {
			t = channels.Text{EN: fmt.Sprintf("line %d: %s", be.Line, t.EN), ZH: fmt.Sprintf("第 %d 行：%s", be.Line, t.ZH)}
		}
		return t
	case errors.Is(err, context.DeadlineExceeded):
		return channels.Text{EN: "timed out", ZH: "超时"}
	}
	return channels.Text{EN: err.Error(), ZH: "运行出错：" + err.Error()}
}

func isPermanent(err error) bool {
	var fe *Error
	return errors.As(err, &fe) && fe.Permanent
}

// MaxBackoff caps the delay between two attempts.
const MaxBackoff = 6 * time.Hour

// Backoff is the delay after failed attempt number attempt (1 for the
// first): base doubled for each earlier attempt, capped at MaxBackoff, then
// jittered into [d/2, d) by r in [0, 1) so that flows failing together (a
// channel outage) do not retry together.
func Backoff(base time.Duration, attempt int, r float64) time.Duration {
	if base <= 0 {
		base = time.Second
	}
	d := base
	for i := 1; i < attempt && d < MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, MaxBackoff)
	return d/2 + time.Duration(r*float64(d/2))
}
