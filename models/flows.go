package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/robfig/cron/v3"
	"gorm.io/gorm"

	"payfuse/channels"
)

// Flow kinds. The store and the engine do not interpret them: the engine
// runs a flow with the handler registered for its kind.
const (
	FlowBillSync     = "bill_sync"
	FlowFolderImport = "folder_import"
	FlowReconcile    = "reconcile"
	FlowRollupCheck  = "rollup_check"
	FlowTriggerEval  = "trigger_eval"
)

// FlowKinds lists every flow kind in display order.
var FlowKinds = []string{FlowBillSync, FlowFolderImport, FlowReconcile, FlowRollupCheck, FlowTriggerEval}

// What started a run.
const (
	TriggerSchedule = "schedule" // a scheduled occurrence
	TriggerManual   = "manual"   // "run now" by a user or the CLI
	TriggerEvent    = "event"    // an event rule
	TriggerRetry    = "retry"    // the next attempt after a failure
)

// Run statuses. A run is retrying when it failed and a next attempt is
// scheduled (at RetryAt); when that attempt starts, the run becomes failed
// and the attempt is a run of its own.
const (
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
	RunRetrying  = "retrying"
)

// RunStatuses lists every run status in display order.
var RunStatuses = []string{RunRunning, RunSucceeded, RunFailed, RunRetrying}

// Audit actions of flows. Runs the engine starts by itself are recorded as
// runs, not in the audit log; a run a user asks for is both.
const (
	ActFlowCreate  = "flow.create"
	ActFlowUpdate  = "flow.update"
	ActFlowEnable  = "flow.enable"
	ActFlowDisable = "flow.disable"
	ActFlowRun     = "flow.run"
)

// Limits of a flow's settings and of what a run keeps.
const (
	DefaultFlowAttempts = 3
	MaxFlowAttempts     = 10
	DefaultRetryBase    = 60           // seconds before the second attempt
	MaxRetryBase        = 6 * 60 * 60  // seconds
	MaxFlowParams       = 16 << 10     // bytes of JSON
	MaxRunLog           = 8 << 10      // bytes of a run's log; older lines are dropped
	MaxRunCheckpoint    = 64 << 10     // bytes of a run's checkpoint
	maxRunErrorRunes    = 500          // per language
	flowLeasePrefix     = "flow:"      // lease names of flows
	staleRunsScanLimit  = 1000         // running runs looked at per poll
	flowsDueScanLimit   = 1000         // flows looked at per poll
	runLogDropped       = "…\n"        // marks where a run's log lost its oldest lines
	scheduleNeverFrom   = "2024-01-01" // a schedule must fire within five years of this date
)

// Errors the flow store returns to the engine.
var (
	// ErrNotDue: the flow has nothing to run now (another engine took it, or it is disabled).
	ErrNotDue = errors.New("flow: nothing due")
	// ErrRunLost: the run is no longer running under this owner (it ended, or another engine took it over).
	ErrRunLost = errors.New("flow: the run has ended or was taken over by another engine")
	// ErrFlowDisabled: a disabled flow runs neither on schedule nor on demand.
	ErrFlowDisabled = errors.New("flow.err_disabled")
)

// Flow is a configured business process: what it does (Kind, Params), for
// whom (a merchant, optionally one channel account), and when (a cron
// schedule read in the merchant's time zone).
type Flow struct {
	ID               uint64 `gorm:"primaryKey"`
	Name             string // unique and never changed: the CLI runs a flow by name
	Kind             string
	MerchantCode     string
	AccountID        *uint64 // nil: all the merchant's accounts
	Params           string  // JSON object of kind-specific settings
	Schedule         string  // 5-field cron expression; "" runs only on demand or by events
	Timezone         string  // the merchant's, when the schedule was last computed
	Enabled          bool
	NextRunAt        *time.Time // UTC; the scheduled occurrence due next, nil when none
	MaxAttempts      int
	RetryBaseSeconds int
	FailureStreak    int // failed attempts since the last success
	LastRunID        *uint64
	LastStatus       string
	LastRunAt        *time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
	CreatedBy        string
	UpdatedBy        string
}

// RetryBase is the delay before the second attempt; each further attempt doubles it.
func (f *Flow) RetryBase() time.Duration { return time.Duration(f.RetryBaseSeconds) * time.Second }

// Location is the time zone the schedule is read in.
func (f *Flow) Location() *time.Location { return zoneOrDefault(f.Timezone) }

// LeaseName names the lease an engine holds while it runs the flow.
func (f *Flow) LeaseName() string { return FlowLeaseName(f.ID) }

// DecodeParams unmarshals the flow's settings into v.
func (f *Flow) DecodeParams(v any) error {
	if strings.TrimSpace(f.Params) == "" {
		return nil
	}
	return json.Unmarshal([]byte(f.Params), v)
}

// FlowLeaseName names the lease of flow id.
func FlowLeaseName(id uint64) string { return flowLeasePrefix + idStr(id) }

// RunCounts are what a run did to the ledger.
type RunCounts struct {
	RowsRead      int
	RowsNew       int
	RowsMerged    int
	Discrepancies int
}

// FlowRun is one attempt of a flow: why it started, when, how it ended,
// what it counted, and a short log.
type FlowRun struct {
	ID           uint64 `gorm:"primaryKey"`
	FlowID       uint64
	MerchantCode string
	Trigger      string     `gorm:"column:run_trigger"`
	TriggeredBy  string     // the user of a manual run
	Occurrence   *time.Time // the scheduled time a scheduled run (and its retries) is for
	Attempt      int
	PrevRunID    *uint64 // the failed attempt this one retries
	Status       string
	RetryAt      *time.Time // when a retrying run's next attempt is due
	StartedAt    time.Time
	EndedAt      *time.Time
	RunCounts    `gorm:"embedded"`
	Error        string // JSON channels.Text, "" when none
	Log          string
	Checkpoint   string // the handler's saved position; the next attempt resumes from it
	Owner        string // the engine that ran it
}

// ErrorText is why the run failed, in both languages.
func (r *FlowRun) ErrorText() channels.Text {
	var t channels.Text
	if r.Error != "" {
		json.Unmarshal([]byte(r.Error), &t)
	}
	return t
}

// Duration is how long the run took (so far, when it is running).
func (r *FlowRun) Duration(now time.Time) time.Duration {
	if r.EndedAt != nil {
		return r.EndedAt.Sub(r.StartedAt)
	}
	return now.Sub(r.StartedAt)
}

// FlowLease is a named lock with an expiry: the engine that holds a flow's
// lease is the only one running that flow. It renews the lease while it
// runs; when it dies the lease expires and another engine takes over.
type FlowLease struct {
	Name      string `gorm:"primaryKey"`
	Owner     string
	ExpiresAt time.Time
	Fence     uint64 // grows with every take, renewal and release
	TakenAt   time.Time
}

// --- schedules ---

// cronParser reads the classic five fields: minute hour day-of-month month day-of-week.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// Schedule is a parsed cron expression read in a time zone.
type Schedule struct {
	Expr string
	Loc  *time.Location
	spec cron.Schedule
}

// ScheduleError says what is wrong with a cron expression, in both languages.
type ScheduleError struct{ Message channels.Text }

func (e *ScheduleError) Error() string { return "schedule: " + e.Message.EN }

func scheduleError(en, zh string, args ...any) *ScheduleError {
	return &ScheduleError{channels.Text{EN: fmt.Sprintf(en, args...), ZH: fmt.Sprintf(zh, args...)}}
}

// ParseSchedule reads a five-field cron expression ("0 9 * * *": at 09:00
// every day) in loc (UTC when nil). The time zone comes from the merchant,
// so TZ= prefixes are refused, as are @descriptors and expressions that
// never fire (31 February).
func ParseSchedule(expr string, loc *time.Location) (*Schedule, error) {
	expr = strings.Join(strings.Fields(expr), " ")
	if loc == nil {
		loc = time.UTC
	}
	switch {
	case expr == "":
		return nil, scheduleError("the schedule is empty", "计划为空")
	case strings.Contains(strings.ToUpper(expr), "TZ="):
		return nil, scheduleError("leave out TZ=: the schedule runs in the merchant's time zone",
			"请去掉 TZ=：计划按商户的时区执行")
	case strings.HasPrefix(expr, "@"):
		return nil, scheduleError(`write the five fields (minute hour day month weekday), e.g. "0 9 * * *" for 09:00 every day`,
			`请写出五个字段（分 时 日 月 周），例如 "0 9 * * *" 表示每天 09:00`)
	}
	if n := len(strings.Fields(expr)); n != 5 {
		return nil, scheduleError(`the schedule needs five fields (minute hour day month weekday), e.g. "0 9 * * *"; it has %d`,
			`计划需要五个字段（分 时 日 月 周），例如 "0 9 * * *"；现在有 %d 个`, n)
	}
	spec, err := cronParser.Parse(expr)
	if err != nil {
		return nil, scheduleError("not a valid cron expression: %v", "不是有效的 cron 表达式：%v", err)
	}
	s := &Schedule{Expr: expr, Loc: loc, spec: spec}
	from, _ := time.Parse(time.DateOnly, scheduleNeverFrom)
	if s.Next(from).IsZero() {
		return nil, scheduleError("the schedule never fires (is the date impossible, like 31 February?)",
			"该计划永远不会触发（日期是否不存在，比如 2 月 31 日？）")
	}
	return s, nil
}

// Next is the first occurrence strictly after t, in UTC; zero when there is
// none within five years.
func (s *Schedule) Next(t time.Time) time.Time {
	n := s.spec.Next(t.In(s.Loc))
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

// Latest is the latest occurrence in [first, now], where first is an
// occurrence not after now (the one that was due). It finds it without
// walking every occurrence of a long downtime.
func (s *Schedule) Latest(first, now time.Time) time.Time {
	start := first.UTC()
	for _, back := range []time.Duration{time.Hour, 49 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour} {
		from := now.Add(-back)
		if !from.After(first) {
			break
		}
		if t := s.Next(from); !t.IsZero() && !t.After(now) {
			start = t
			break
		}
	}
	last := start
	for {
		t := s.Next(last)
		if t.IsZero() || t.After(now) {
			return last
		}
		last = t
	}
}

// NextOccurrences lists the next n occurrences of expr after from in loc,
// in UTC, for the flow form's preview.
func NextOccurrences(expr string, loc *time.Location, from time.Time, n int) ([]time.Time, error) {
	s, err := ParseSchedule(expr, loc)
	if err != nil {
		return nil, err
	}
	out := make([]time.Time, 0, n)
	for t := from; len(out) < n; {
		t = s.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out, nil
}

func zoneOrDefault(name string) *time.Location {
	if name != "" && name != "Local" {
		if loc, err := time.LoadLocation(name); err == nil {
			return loc
		}
	}
	loc, _ := time.LoadLocation(DefaultTimezone)
	return loc
}

// merchantZone is the time zone of merchant code (the default when unknown).
func merchantZone(tx *gorm.DB, code string) (*time.Location, string) {
	var m Merchant
	if err := tx.Select("timezone").Where("code = ?", code).First(&m).Error; err != nil || m.Timezone == "" {
		return zoneOrDefault(DefaultTimezone), DefaultTimezone
	}
	return zoneOrDefault(m.Timezone), m.Timezone
}

// nextRunAt is when an enabled flow with schedule sched is next due after now.
func nextRunAt(sched *Schedule, enabled bool, now time.Time) *time.Time {
	if sched == nil || !enabled {
		return nil
	}
	if t := sched.Next(now); !t.IsZero() {
		return &t
	}
	return nil
}

// --- flows: create, change, read ---

// FlowInput is what a form or the CLI gives for a flow. Name, Kind and
// MerchantCode are fixed once the flow exists; UpdateFlow ignores them.
type FlowInput struct {
	Name             string
	Kind             string
	MerchantCode     string
	AccountID        uint64 // 0: all the merchant's accounts
	Params           string // JSON object; "" means {}
	Schedule         string // "" runs only on demand or by events
	Enabled          bool   // on create only; SetFlowEnabled changes it later
	MaxAttempts      int    // 0 means DefaultFlowAttempts
	RetryBaseSeconds int    // 0 means DefaultRetryBase
}

var flowNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,63}$`)

// ValidFlowName reports whether s has the shape of a flow name: lower-case
// letters, digits, dot, dash and underscore, 2 to 64 long.
func ValidFlowName(s string) bool { return flowNameRE.MatchString(s) }

func (in *FlowInput) normalize() {
	in.Name = strings.ToLower(strings.TrimSpace(in.Name))
	in.Kind = strings.TrimSpace(in.Kind)
	in.MerchantCode = strings.ToUpper(strings.TrimSpace(in.MerchantCode))
	in.Params = strings.TrimSpace(in.Params)
	in.Schedule = strings.Join(strings.Fields(in.Schedule), " ")
	if in.Params == "" {
		in.Params = "{}"
	}
	if in.MaxAttempts == 0 {
		in.MaxAttempts = DefaultFlowAttempts
	}
	if in.RetryBaseSeconds == 0 {
		in.RetryBaseSeconds = DefaultRetryBase
	}
}

// check validates in (already normalised) inside tx and returns the parsed
// schedule (nil when there is none) and the merchant's time zone. Field
// errors are translation keys.
func (s *Store) checkFlow(tx *gorm.DB, scope Scope, in *FlowInput) (*Schedule, string, FieldErrors, error) {
	errs := FieldErrors{}
	if !ValidFlowName(in.Name) {
		errs["name"] = "flow.err_name"
	}
	if !slices.Contains(FlowKinds, in.Kind) {
		errs["kind"] = "flow.err_kind"
	}
	var m Merchant
	if !scope.Allows(in.MerchantCode) {
		errs["merchant"] = "flow.err_merchant"
	} else if err := tx.Where("code = ?", in.MerchantCode).First(&m).Error; err != nil {
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, "", nil, fmt.Errorf("store: unable to read merchant: %w", err)
		}
		errs["merchant"] = "flow.err_merchant"
	}
	if in.AccountID != 0 {
		var n int64
		if err := tx.Model(&ChannelAccount{}).Where("id = ? AND merchant_code = ?", in.AccountID, in.MerchantCode).Count(&n).Error; err != nil {
			return nil, "", nil, fmt.Errorf("store: unable to read channel account: %w", err)
		}
		if n == 0 {
			errs["account"] = "flow.err_account"
		}
	}
	var obj map[string]any
	if len(in.Params) > MaxFlowParams || json.Unmarshal([]byte(in.Params), &obj) != nil || obj == nil {
		errs["params"] = "flow.err_params"
	}
	var sched *Schedule
	if in.Schedule != "" {
		var err error
		if sched, err = ParseSchedule(in.Schedule, m.Location()); err != nil {
			errs["schedule"] = "flow.err_schedule"
		}
	}
	if in.MaxAttempts < 1 || in.MaxAttempts > MaxFlowAttempts {
		errs["max_attempts"] = "flow.err_attempts"
	}
	if in.RetryBaseSeconds < 1 || in.RetryBaseSeconds > MaxRetryBase {
		errs["retry_base"] = "flow.err_retry_base"
	}
	if len(errs) > 0 {
		return nil, "", errs, nil
	}
	return sched, m.Timezone, nil, nil
}

func flowView(f *Flow) map[string]any {
	var params any
	if json.Unmarshal([]byte(f.Params), &params) != nil {
		params = f.Params
	}
	v := map[string]any{"name": f.Name, "kind": f.Kind, "merchant": f.MerchantCode, "params": params,
		"schedule": f.Schedule, "timezone": f.Timezone, "enabled": f.Enabled, "max_attempts": f.MaxAttempts,
		"retry_base_seconds": f.RetryBaseSeconds}
	if f.AccountID != nil {
		v["account_id"] = *f.AccountID
	}
	return v
}

// CreateFlow stores a new flow, audited. When it is enabled and has a
// schedule, its first run is the schedule's next occurrence after now.
// Bad input is a FieldErrors of translation keys and changes nothing.
func (s *Store) CreateFlow(a Actor, scope Scope, in FlowInput) (*Flow, error) {
	in.normalize()
	now := s.now()
	var out *Flow
	err := s.Tx(func(tx *gorm.DB) error {
		sched, tz, errs, err := s.checkFlow(tx, scope, &in)
		if err != nil {
			return err
		}
		if errs != nil {
			return errs
		}
		f := &Flow{Name: in.Name, Kind: in.Kind, MerchantCode: in.MerchantCode, Params: in.Params, Schedule: in.Schedule,
			Timezone: tz, Enabled: in.Enabled, NextRunAt: nextRunAt(sched, in.Enabled, now), MaxAttempts: in.MaxAttempts,
			RetryBaseSeconds: in.RetryBaseSeconds, CreatedAt: now, UpdatedAt: now, CreatedBy: truncate(a.Name, 64), UpdatedBy: truncate(a.Name, 64)}
		if in.AccountID != 0 {
			id := in.AccountID
			f.AccountID = &id
		}
		if err := tx.Create(f).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return FieldErrors{"name": "flow.err_name_taken"}
			}
			return fmt.Errorf("store: unable to create flow: %w", err)
		}
		out = f
		return writeAudit(tx, a, now, AuditEvent{Action: ActFlowCreate, ObjectType: "flow", ObjectID: idStr(f.ID),
			MerchantCode: f.MerchantCode, Detail: f.Name, After: flowView(f)})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateFlow changes a flow's account, params, schedule and retry policy,
// audited. Name, kind and merchant never change: runs and the CLI refer to
// them. A changed schedule (or merchant time zone) moves the next run to the
// new schedule's next occurrence after now.
func (s *Store) UpdateFlow(a Actor, scope Scope, id uint64, in FlowInput) (*Flow, error) {
	now := s.now()
	var out *Flow
	err := s.Tx(func(tx *gorm.DB) error {
		var f Flow
		if err := s.forUpdate(tx).Scopes(scope.Filter("merchant_code")).First(&f, id).Error; err != nil {
			return notFound(err)
		}
		in.Name, in.Kind, in.MerchantCode = f.Name, f.Kind, f.MerchantCode
		in.normalize()
		sched, tz, errs, err := s.checkFlow(tx, scope, &in)
		if err != nil {
			return err
		}
		if errs != nil {
			return errs
		}
		before := flowView(&f)
		if in.Schedule != f.Schedule || tz != f.Timezone {
			f.NextRunAt = nextRunAt(sched, f.Enabled, now)
		}
		f.AccountID = nil
		if in.AccountID != 0 {
			acct := in.AccountID
			f.AccountID = &acct
		}
		f.Params, f.Schedule, f.Timezone, f.MaxAttempts, f.RetryBaseSeconds = in.Params, in.Schedule, tz, in.MaxAttempts, in.RetryBaseSeconds
		f.UpdatedAt, f.UpdatedBy = now, truncate(a.Name, 64)
		if err := tx.Model(&Flow{}).Where("id = ?", id).Updates(map[string]any{
			"account_id": f.AccountID, "params": f.Params, "schedule": f.Schedule, "timezone": f.Timezone,
			"max_attempts": f.MaxAttempts, "retry_base_seconds": f.RetryBaseSeconds, "next_run_at": f.NextRunAt,
			"updated_at": f.UpdatedAt, "updated_by": f.UpdatedBy,
		}).Error; err != nil {
			return fmt.Errorf("store: unable to update flow: %w", err)
		}
		out = &f
		return writeAudit(tx, a, now, AuditEvent{Action: ActFlowUpdate, ObjectType: "flow", ObjectID: idStr(id),
			MerchantCode: f.MerchantCode, Detail: f.Name, Before: before, After: flowView(&f)})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetFlowEnabled enables or disables a flow, audited. Enabling schedules the
// next occurrence after now (occurrences missed while disabled do not run);
// disabling clears the next run and cancels pending retries. A run in
// progress finishes.
func (s *Store) SetFlowEnabled(a Actor, scope Scope, id uint64, enabled bool) (*Flow, error) {
	now := s.now()
	var out *Flow
	err := s.Tx(func(tx *gorm.DB) error {
		var f Flow
		if err := s.forUpdate(tx).Scopes(scope.Filter("merchant_code")).First(&f, id).Error; err != nil {
			return notFound(err)
		}
		out = &f
		if f.Enabled == enabled {
			return nil
		}
		f.Enabled, f.UpdatedAt, f.UpdatedBy = enabled, now, truncate(a.Name, 64)
		f.NextRunAt = nil
		action := ActFlowDisable
		if enabled {
			action = ActFlowEnable
			loc, tz := merchantZone(tx, f.MerchantCode)
			f.Timezone = tz
			if f.Schedule != "" {
				sched, err := ParseSchedule(f.Schedule, loc)
				if err != nil {
					return FieldErrors{"schedule": "flow.err_schedule"}
				}
				f.NextRunAt = nextRunAt(sched, true, now)
			}
		} else {
			cancelled := channels.Text{EN: "not retried: the flow was disabled", ZH: "未重试：流程已停用"}
			if err := tx.Model(&FlowRun{}).Where("flow_id = ? AND status = ?", id, RunRetrying).
				Updates(map[string]any{"status": RunFailed, "retry_at": nil, "error": textJSON(cancelled)}).Error; err != nil {
				return fmt.Errorf("store: unable to cancel the flow's retries: %w", err)
			}
			if f.LastStatus == RunRetrying {
				f.LastStatus = RunFailed
			}
		}
		if err := tx.Model(&Flow{}).Where("id = ?", id).Updates(map[string]any{
			"enabled": f.Enabled, "next_run_at": f.NextRunAt, "timezone": f.Timezone, "last_status": f.LastStatus,
			"updated_at": f.UpdatedAt, "updated_by": f.UpdatedBy,
		}).Error; err != nil {
			return fmt.Errorf("store: unable to change flow: %w", err)
		}
		return writeAudit(tx, a, now, AuditEvent{Action: action, ObjectType: "flow", ObjectID: idStr(id), MerchantCode: f.MerchantCode,
			Detail: f.Name, Before: map[string]any{"enabled": !enabled}, After: map[string]any{"enabled": enabled}})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetFlow returns the flow with id when its merchant is in scope, else ErrNotFound.
func (s *Store) GetFlow(scope Scope, id uint64) (*Flow, error) {
	var f Flow
	if err := s.DB.Scopes(scope.Filter("merchant_code")).First(&f, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &f, nil
}

// GetFlowByName returns the flow with that name when its merchant is in scope.
func (s *Store) GetFlowByName(scope Scope, name string) (*Flow, error) {
	var f Flow
	err := s.DB.Scopes(scope.Filter("merchant_code")).Where("name = ?", strings.ToLower(strings.TrimSpace(name))).First(&f).Error
	if err != nil {
		return nil, notFound(err)
	}
	return &f, nil
}

// FlowFilter selects flows for the list page; zero fields do not filter.
type FlowFilter struct {
	MerchantCode string
	Kind         string
	Query        string // in the name
	LastStatus   string
}

// ListFlows returns the flows in scope, by merchant and name (at most 1000).
func (s *Store) ListFlows(scope Scope, f FlowFilter) ([]Flow, error) {
	q := s.DB.Model(&Flow{}).Scopes(scope.Filter("merchant_code"))
	if f.MerchantCode != "" {
		q = q.Where("merchant_code = ?", strings.ToUpper(f.MerchantCode))
	}
	if f.Kind != "" {
		q = q.Where("kind = ?", f.Kind)
	}
	if f.Query != "" {
		q = q.Where("name LIKE ?", "%"+escapeLike(strings.ToLower(f.Query))+"%")
	}
	if f.LastStatus != "" {
		q = q.Where("last_status = ?", f.LastStatus)
	}
	var out []Flow
	if err := q.Order("merchant_code, name").Limit(1000).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("store: unable to list flows: %w", err)
	}
	return out, nil
}

// RunFilter selects runs; zero fields do not filter.
type RunFilter struct {
	FlowID uint64
	Status string
	Before uint64 // keyset cursor: runs with id < Before
	Limit  int
}

// RunPage is one page of runs, newest first.
type RunPage struct {
	Rows       []FlowRun
	NextBefore uint64 // 0 when there is no older page
}

// ListRuns returns runs of flows in scope, newest first, one page at a time.
func (s *Store) ListRuns(scope Scope, f RunFilter) (RunPage, error) {
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	q := s.DB.Model(&FlowRun{}).Scopes(scope.Filter("merchant_code"))
	if f.FlowID != 0 {
		q = q.Where("flow_id = ?", f.FlowID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Before > 0 {
		q = q.Where("id < ?", f.Before)
	}
	var rows []FlowRun
	if err := q.Order("id DESC").Limit(f.Limit + 1).Find(&rows).Error; err != nil {
		return RunPage{}, fmt.Errorf("store: unable to list flow runs: %w", err)
	}
	page := RunPage{Rows: rows}
	if len(rows) > f.Limit {
		page.Rows = rows[:f.Limit]
		page.NextBefore = page.Rows[f.Limit-1].ID
	}
	return page, nil
}

// GetRun returns the run with id when its merchant is in scope, else ErrNotFound.
func (s *Store) GetRun(scope Scope, id uint64) (*FlowRun, error) {
	var r FlowRun
	if err := s.DB.Scopes(scope.Filter("merchant_code")).First(&r, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &r, nil
}

// --- the engine's primitives ---

// TakeLease gives the lease name to owner until now+ttl when it is free
// (never taken, released, or expired). Exactly one of several concurrent
// takers wins: the conditional UPDATE lets one through, and when the row
// does not exist yet the primary key lets one INSERT through.
func (s *Store) TakeLease(name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	now = now.UTC()
	res := s.DB.Model(&FlowLease{}).Where("name = ? AND expires_at <= ?", name, now).Updates(map[string]any{
		"owner": owner, "expires_at": now.Add(ttl), "fence": gorm.Expr("fence + 1"), "taken_at": now,
	})
	if res.Error != nil {
		return false, fmt.Errorf("store: unable to take lease %s: %w", name, res.Error)
	}
	if res.RowsAffected == 1 {
		return true, nil
	}
	err := s.DB.Create(&FlowLease{Name: name, Owner: owner, ExpiresAt: now.Add(ttl), Fence: 1, TakenAt: now}).Error
	switch {
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("store: unable to take lease %s: %w", name, err)
	}
	return true, nil
}

// RenewLease extends owner's lease to now+ttl. False means owner no longer
// holds it: another engine took it after it expired. (An expired lease
// nobody took is still owner's to renew.)
func (s *Store) RenewLease(name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	now = now.UTC()
	res := s.DB.Model(&FlowLease{}).Where("name = ? AND owner = ?", name, owner).
		Updates(map[string]any{"expires_at": now.Add(ttl), "fence": gorm.Expr("fence + 1")})
	if res.Error != nil {
		return false, fmt.Errorf("store: unable to renew lease %s: %w", name, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// ReleaseLease frees owner's lease at once; it does nothing when another owner holds it.
func (s *Store) ReleaseLease(name, owner string) error {
	err := s.DB.Model(&FlowLease{}).Where("name = ? AND owner = ?", name, owner).
		Updates(map[string]any{"expires_at": time.Unix(0, 0).UTC(), "fence": gorm.Expr("fence + 1")}).Error
	if err != nil {
		return fmt.Errorf("store: unable to release lease %s: %w", name, err)
	}
	return nil
}

// GetLease returns a lease as stored.
func (s *Store) GetLease(name string) (*FlowLease, error) {
	var l FlowLease
	if err := s.DB.Where("name = ?", name).First(&l).Error; err != nil {
		return nil, notFound(err)
	}
	return &l, nil
}

// FlowsDue returns the ids of enabled flows of the given kinds that have
// work due at now: a scheduled occurrence or a retry. The caller takes the
// flow's lease before ClaimRun.
func (s *Store) FlowsDue(now time.Time, kinds []string) ([]uint64, error) {
	if len(kinds) == 0 {
		return nil, nil
	}
	now = now.UTC()
	var ids []uint64
	if err := s.DB.Model(&Flow{}).Where("enabled = ? AND next_run_at IS NOT NULL AND next_run_at <= ? AND kind IN ?", true, now, kinds).
		Order("next_run_at, id").Limit(flowsDueScanLimit).Pluck("id", &ids).Error; err != nil {
		return nil, fmt.Errorf("store: unable to find due flows: %w", err)
	}
	var retries []uint64
	if err := s.DB.Model(&FlowRun{}).Joins("JOIN flows ON flows.id = flow_runs.flow_id").
		Where("flow_runs.status = ? AND flow_runs.retry_at <= ? AND flows.enabled = ? AND flows.kind IN ?", RunRetrying, now, true, kinds).
		Distinct().Limit(flowsDueScanLimit).Pluck("flow_runs.flow_id", &retries).Error; err != nil {
		return nil, fmt.Errorf("store: unable to find due retries: %w", err)
	}
	for _, id := range retries {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// StaleRuns returns running runs whose flow lease has expired or is gone:
// the engine running them stopped renewing (it died or lost the database).
func (s *Store) StaleRuns(now time.Time) ([]FlowRun, error) {
	var running []FlowRun
	if err := s.DB.Where("status = ?", RunRunning).Order("id").Limit(staleRunsScanLimit).Find(&running).Error; err != nil {
		return nil, fmt.Errorf("store: unable to list running flow runs: %w", err)
	}
	if len(running) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(running))
	for _, r := range running {
		names = append(names, FlowLeaseName(r.FlowID))
	}
	var leases []FlowLease
	if err := s.DB.Where("name IN ?", names).Find(&leases).Error; err != nil {
		return nil, fmt.Errorf("store: unable to read flow leases: %w", err)
	}
	live := map[string]bool{}
	for _, l := range leases {
		if l.ExpiresAt.After(now) {
			live[l.Name] = true
		}
	}
	var out []FlowRun
	for _, r := range running {
		if !live[FlowLeaseName(r.FlowID)] {
			out = append(out, r)
		}
	}
	return out, nil
}

// RunningRuns returns a flow's runs that are marked running. Called by the
// holder of the flow's lease, every one that is not its own is an orphan.
func (s *Store) RunningRuns(flowID uint64) ([]FlowRun, error) {
	var out []FlowRun
	if err := s.DB.Where("flow_id = ? AND status = ?", flowID, RunRunning).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("store: unable to list the flow's running runs: %w", err)
	}
	return out, nil
}

// ClaimRun starts the work due on a flow whose lease the caller holds: a due
// retry first, else the due scheduled occurrence. After downtime the
// occurrence is the latest one missed (one catch-up run, not one per missed
// occurrence) and the next run moves to the first occurrence after now.
// The flow row is locked, the run inserted and the schedule advanced in one
// transaction; the unique (flow, occurrence, attempt) index is the second
// guard. It returns ErrNotDue when there is nothing to run.
func (s *Store) ClaimRun(flowID uint64, owner string, now time.Time) (*Flow, *FlowRun, error) {
	now = now.UTC()
	var f Flow
	var run *FlowRun
	err := s.Tx(func(tx *gorm.DB) error {
		if err := s.forUpdate(tx).First(&f, flowID).Error; err != nil {
			return notFound(err)
		}
		if !f.Enabled {
			return nil
		}
		var prev FlowRun
		err := tx.Where("flow_id = ? AND status = ? AND retry_at <= ?", flowID, RunRetrying, now).Order("retry_at, id").First(&prev).Error
		switch {
		case err == nil:
			res := tx.Model(&FlowRun{}).Where("id = ? AND status = ?", prev.ID, RunRetrying).Update("status", RunFailed)
			if res.Error != nil {
				return fmt.Errorf("store: unable to claim retry of run %d: %w", prev.ID, res.Error)
			}
			if res.RowsAffected != 1 {
				return nil
			}
			prevID := prev.ID
			run = &FlowRun{FlowID: f.ID, MerchantCode: f.MerchantCode, Trigger: TriggerRetry, TriggeredBy: prev.TriggeredBy,
				Occurrence: prev.Occurrence, Attempt: prev.Attempt + 1, PrevRunID: &prevID, Status: RunRunning,
				StartedAt: now, Checkpoint: prev.Checkpoint, Owner: owner}
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return fmt.Errorf("store: unable to look for due retries: %w", err)
		default:
			if f.NextRunAt == nil || f.NextRunAt.After(now) {
				return nil
			}
			loc, tz := merchantZone(tx, f.MerchantCode)
			sched, err := ParseSchedule(f.Schedule, loc)
			var next *time.Time
			var occ time.Time
			if err == nil {
				occ = sched.Latest(f.NextRunAt.UTC(), now)
				next = nextRunAt(sched, true, now)
			}
			if err := tx.Model(&Flow{}).Where("id = ?", f.ID).UpdateColumns(map[string]any{"next_run_at": next, "timezone": tz}).Error; err != nil {
				return fmt.Errorf("store: unable to advance flow %d: %w", f.ID, err)
			}
			f.NextRunAt, f.Timezone = next, tz
			if sched == nil {
				return nil // a stored schedule that no longer parses stops scheduling
			}
			run = &FlowRun{FlowID: f.ID, MerchantCode: f.MerchantCode, Trigger: TriggerSchedule, Occurrence: &occ, Attempt: 1,
				Status: RunRunning, StartedAt: now, Owner: owner}
		}
		return s.insertRun(tx, &f, &run)
	})
	if err != nil {
		return nil, nil, err
	}
	if run == nil {
		return nil, nil, ErrNotDue
	}
	return &f, run, nil
}

// insertRun stores *run as the flow's latest. When the unique index says
// this attempt of this occurrence already exists, *run becomes nil and the
// rest of the transaction (an advanced schedule) still commits.
func (s *Store) insertRun(tx *gorm.DB, f *Flow, run **FlowRun) error {
	r := *run
	if err := tx.Create(r).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			*run = nil
			return nil
		}
		return fmt.Errorf("store: unable to record flow run: %w", err)
	}
	id := r.ID
	f.LastRunID, f.LastStatus, f.LastRunAt = &id, RunRunning, &r.StartedAt
	if err := tx.Model(&Flow{}).Where("id = ?", f.ID).UpdateColumns(map[string]any{
		"last_run_id": id, "last_status": RunRunning, "last_run_at": r.StartedAt,
	}).Error; err != nil {
		return fmt.Errorf("store: unable to update flow %d: %w", f.ID, err)
	}
	return nil
}

// StartManualRun records a run a user asked for ("run now") on a flow in
// scope whose lease the caller (owner) holds, audited in the same transaction.
func (s *Store) StartManualRun(a Actor, scope Scope, flowID uint64, owner string, now time.Time) (*Flow, *FlowRun, error) {
	now = now.UTC()
	var f Flow
	var run *FlowRun
	err := s.Tx(func(tx *gorm.DB) error {
		if err := s.forUpdate(tx).Scopes(scope.Filter("merchant_code")).First(&f, flowID).Error; err != nil {
			return notFound(err)
		}
		if !f.Enabled {
			return ErrFlowDisabled
		}
		run = &FlowRun{FlowID: f.ID, MerchantCode: f.MerchantCode, Trigger: TriggerManual, TriggeredBy: truncate(a.Name, 64),
			Attempt: 1, Status: RunRunning, StartedAt: now, Owner: owner}
		if err := s.insertRun(tx, &f, &run); err != nil {
			return err
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActFlowRun, ObjectType: "flow", ObjectID: idStr(f.ID),
			MerchantCode: f.MerchantCode, Detail: fmt.Sprintf("%s: run %d", f.Name, run.ID)})
	})
	if err != nil {
		return nil, nil, err
	}
	return &f, run, nil
}

// StartEventRun records a run of flow started by an event (reason says
// which), owned by owner — the engine's side of Engine.RunEvent. Runs are
// their own record; an event is not a person's change, so it is not audited.
func (s *Store) StartEventRun(flowID uint64, reason, owner string, now time.Time) (*Flow, *FlowRun, error) {
	now = now.UTC()
	var f Flow
	var run *FlowRun
	err := s.Tx(func(tx *gorm.DB) error {
		if err := s.forUpdate(tx).First(&f, flowID).Error; err != nil {
			return notFound(err)
		}
		if !f.Enabled {
			return ErrFlowDisabled
		}
		run = &FlowRun{FlowID: f.ID, MerchantCode: f.MerchantCode, Trigger: TriggerEvent, TriggeredBy: truncate(reason, 64),
			Attempt: 1, Status: RunRunning, StartedAt: now, Owner: owner}
		return s.insertRun(tx, &f, &run)
	})
	if err != nil {
		return nil, nil, err
	}
	return &f, run, nil
}

// SaveCheckpoint stores a running run's progress: counts, log and the
// handler's position, so that a retry or a takeover resumes from it. It
// returns ErrRunLost when the run is no longer owner's.
func (s *Store) SaveCheckpoint(runID uint64, owner string, c RunCounts, log, checkpoint string) error {
	if len(checkpoint) > MaxRunCheckpoint {
		return fmt.Errorf("store: checkpoint of run %d is %d bytes; at most %d", runID, len(checkpoint), MaxRunCheckpoint)
	}
	res := s.DB.Model(&FlowRun{}).Where("id = ? AND status = ? AND owner = ?", runID, RunRunning, owner).Updates(map[string]any{
		"rows_read": c.RowsRead, "rows_new": c.RowsNew, "rows_merged": c.RowsMerged, "discrepancies": c.Discrepancies,
		"log": TrimRunLog(log), "checkpoint": checkpoint,
	})
	if res.Error != nil {
		return fmt.Errorf("store: unable to save checkpoint of run %d: %w", runID, res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	// MySQL counts changed rows only: an unchanged checkpoint matches nothing.
	var n int64
	if err := s.DB.Model(&FlowRun{}).Where("id = ? AND status = ? AND owner = ?", runID, RunRunning, owner).Count(&n).Error; err != nil {
		return fmt.Errorf("store: unable to read run %d: %w", runID, err)
	}
	if n == 0 {
		return ErrRunLost
	}
	return nil
}

// RunOutcome is how a run ended. Nil pointers keep what is stored (a
// takeover does not know the dead run's counts).
type RunOutcome struct {
	Status     string // succeeded, failed or retrying
	At         time.Time
	Error      channels.Text
	RetryAt    *time.Time // when Status is retrying
	Counts     *RunCounts
	Log        *string
	Checkpoint *string
}

// FinishRun ends a running run and updates its flow's latest result and
// failure streak, in one transaction. owner "" finishes whoever's run (a
// takeover of a dead engine's run); otherwise only owner's. It returns
// ErrRunLost when the run is no longer running (under owner).
func (s *Store) FinishRun(runID uint64, owner string, out RunOutcome) (*FlowRun, error) {
	switch out.Status {
	case RunSucceeded, RunFailed:
		out.RetryAt = nil
	case RunRetrying:
		if out.RetryAt == nil {
			return nil, fmt.Errorf("store: a retrying run needs a retry time")
		}
	default:
		return nil, fmt.Errorf("store: a run cannot end as %q", out.Status)
	}
	at := out.At.UTC()
	var run FlowRun
	err := s.Tx(func(tx *gorm.DB) error {
		if err := tx.Select("id", "flow_id").First(&run, runID).Error; err != nil {
			return notFound(err)
		}
		// The flow row first, as ClaimRun locks it: the two queue rather than deadlock.
		var f Flow
		if err := s.forUpdate(tx).Select("id", "enabled", "last_run_id", "failure_streak").First(&f, run.FlowID).Error; err != nil {
			return notFound(err)
		}
		if out.Status == RunRetrying && !f.Enabled {
			// Disabled while it ran: SetFlowEnabled cancelled the retries, this one too.
			out.Status, out.RetryAt = RunFailed, nil
		}
		set := map[string]any{"status": out.Status, "ended_at": at, "retry_at": out.RetryAt, "error": textJSON(out.Error)}
		if out.Counts != nil {
			set["rows_read"], set["rows_new"], set["rows_merged"], set["discrepancies"] =
				out.Counts.RowsRead, out.Counts.RowsNew, out.Counts.RowsMerged, out.Counts.Discrepancies
		}
		if out.Log != nil {
			set["log"] = TrimRunLog(*out.Log)
		}
		if out.Checkpoint != nil && len(*out.Checkpoint) <= MaxRunCheckpoint {
			set["checkpoint"] = *out.Checkpoint
		}
		q := tx.Model(&FlowRun{}).Where("id = ? AND status = ?", runID, RunRunning)
		if owner != "" {
			q = q.Where("owner = ?", owner)
		}
		res := q.Updates(set)
		if res.Error != nil {
			return fmt.Errorf("store: unable to finish run %d: %w", runID, res.Error)
		}
		if res.RowsAffected != 1 {
			return ErrRunLost
		}
		streak := 0
		if out.Status != RunSucceeded {
			streak = f.FailureStreak + 1
		}
		flowSet := map[string]any{"failure_streak": streak}
		if f.LastRunID != nil && *f.LastRunID == runID {
			flowSet["last_status"], flowSet["last_run_at"] = out.Status, at
		}
		if err := tx.Model(&Flow{}).Where("id = ?", f.ID).UpdateColumns(flowSet).Error; err != nil {
			return fmt.Errorf("store: unable to update flow %d: %w", f.ID, err)
		}
		return tx.First(&run, runID).Error
	})
	if err != nil {
		return nil, err
	}
	return &run, nil
}

// TrimRunLog keeps a run's log within MaxRunLog bytes, dropping the oldest
// whole lines (the end of a log says how the run ended).
func TrimRunLog(log string) string {
	if len(log) <= MaxRunLog {
		return log
	}
	cut := len(log) - MaxRunLog + len(runLogDropped)
	if i := strings.IndexByte(log[cut:], '\n'); i >= 0 && i < len(log)-cut-1 {
		cut += i + 1
	}
	for cut < len(log) && !utf8.RuneStart(log[cut]) {
		cut++
	}
	return runLogDropped + log[cut:]
}

// textJSON stores a bilingual message, each language cut to a short length.
func textJSON(t channels.Text) string {
	if t.EN == "" && t.ZH == "" {
		return ""
	}
	t.EN, t.ZH = truncateRunes(t.EN, maxRunErrorRunes), truncateRunes(t.ZH, maxRunErrorRunes)
	raw, _ := json.Marshal(t)
	return string(raw)
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
