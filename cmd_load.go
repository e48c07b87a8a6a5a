package main

// payfuse load: a load generator for a running console. Each virtual user
// signs in like a browser (its own session cookie and CSRF token) and then
// walks a weighted mix of the pages staff use all day, with no pause between
// pages unless --think says otherwise, while a separate stream posts signed
// WeChat Pay and Alipay notifications for the demo merchants' accounts.

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"payfuse/channels"
	"payfuse/channels/alipay"
	"payfuse/channels/testkeys"
	"payfuse/channels/wechat"
	"payfuse/models"
	"payfuse/views"
)

// loadActions are what a virtual user does, in the order --mix lists them:
// a ledger page with random filters; a walk down the ledger's "older" links;
// a record's detail page; the dashboard; a KPI weights preview; a report.
var loadActions = []string{"ledger", "deep", "detail", "dashboard", "kpi", "report"}

// defaultLoadMix is how often each action is picked.
const defaultLoadMix = "ledger=30,deep=15,detail=20,dashboard=15,kpi=10,report=10"

// Page kinds the results are reported by. "ledger" is every first ledger
// page (a deep walk starts with one), "ledger_deep" every page reached by
// following an "older" link.
const (
	kindLedger    = "ledger"
	kindDeep      = "ledger_deep"
	kindDetail    = "detail"
	kindDashboard = "dashboard"
	kindKPI       = "kpi_preview"
	kindReport    = "report"
	kindNotify    = "notify"
)

var loadKinds = []string{kindLedger, kindDeep, kindDetail, kindDashboard, kindKPI, kindReport, kindNotify}

// actionPath is the page whose answer tells whether a sign-in may use an action.
var actionPath = map[string]string{"ledger": "/ledger", "deep": "/ledger", "detail": "/ledger", "dashboard": "/", "kpi": "/kpis", "report": "/reports"}

type loadCred struct{ user, password string }

// loadOptions are the flags of payfuse load.
type loadOptions struct {
	base        string
	creds       []loadCred
	totpSecret  string
	levels      []int
	duration    time.Duration
	warmup      time.Duration
	think       time.Duration
	timeout     time.Duration
	rssEvery    time.Duration
	notifyRate  float64
	mix         []float64 // by loadActions index
	deepPages   int
	historyDays int
	pid         int
	seed        int64
	json        bool
}

func cmdLoad(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("load", "payfuse load --url URL --user NAME --password PW [--user NAME --password PW …] [--users 10,50,200] [--duration 60s] [--warmup 10s] [--notify-rate N/s] [--mix "+defaultLoadMix+"] [--pid PID] [--json]", g, stderr)
	base := fs.String("url", envOr("PAYFUSE_LOAD_URL", "http://127.0.0.1:8080"), "the running console's address (env PAYFUSE_LOAD_URL)")
	var users, passwords stringList
	fs.Var(&users, "user", "user to sign in as (repeat for several; virtual users take them in turn; default demo-operator).\nOperators cannot open /reports: add a finance user to cover the report pages")
	fs.Var(&passwords, "password", "password of the --user in the same position (env PAYFUSE_LOAD_PASSWORD for a single user)")
	totpSecret := fs.String("totp-secret", envOr("PAYFUSE_LOAD_TOTP_SECRET", ""), "base32 two-factor key, for a user (an admin) whose sign-in asks for a code;\nsuch a user signs in once and its virtual users share that session (a code is accepted once) (env PAYFUSE_LOAD_TOTP_SECRET)")
	levels := fs.String("users", "10", "concurrent virtual users; a comma list runs each level in turn (10,50,200)")
	duration := fs.Duration("duration", 60*time.Second, "how long each level is measured")
	warmup := fs.Duration("warmup", 10*time.Second, "load before each level's measurement starts (not counted)")
	think := fs.Duration("think", 0, "pause of a virtual user between two actions")
	timeout := fs.Duration("timeout", 30*time.Second, "longest wait for one answer (a request that takes longer is an error)")
	notifyRate := fs.String("notify-rate", "0", "signed notifications a second (e.g. 20 or 20/s), spread over the demo merchants' WeChat Pay and Alipay accounts; 0: none.\nNeeds --db (and --master-key-file) of the server: see the notes above")
	mix := fs.String("mix", defaultLoadMix, "weights of the actions "+strings.Join(loadActions, ", ")+" (an action left out is not done)")
	deepPages := fs.Int("deep-pages", 10, "a deep walk follows the ledger's older link 1 to N-1 times")
	historyDays := fs.Int("history-days", models.DemoDefaultDays, "days back the date filters and report dates pick from (as demo-data --days)")
	pid := fs.Int("pid", 0, "the server's process id: its resident memory (VmRSS) is sampled during each level")
	rssEvery := fs.Duration("rss-every", 10*time.Second, "how often --pid's memory is sampled")
	seed := fs.Int64("seed", 1, "seed of the virtual users' choices (the same seed makes the same choices against the same data)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: payfuse load --url URL --user NAME --password PW [flags]\n\n%s\nFlags:\n", loadNotes)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("load: unexpected argument %q", fs.Arg(0))
	}
	o := loadOptions{base: strings.TrimRight(*base, "/"), totpSecret: strings.TrimSpace(*totpSecret), duration: *duration, warmup: *warmup,
		think: *think, timeout: *timeout, rssEvery: *rssEvery, deepPages: *deepPages, historyDays: *historyDays, pid: *pid, seed: *seed, json: *asJSON}
	if u, err := url.Parse(o.base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("load: --url %q: want http://HOST:PORT", *base)
	}
	if len(users) == 0 {
		users = stringList{"demo-operator"}
	}
	if len(passwords) == 0 && len(users) == 1 {
		if pw := os.Getenv("PAYFUSE_LOAD_PASSWORD"); pw != "" {
			passwords = stringList{pw}
		}
	}
	if len(passwords) != len(users) {
		return fmt.Errorf("load: %d --user and %d --password: give one password for each user (the demo passwords are printed by serve --demo)", len(users), len(passwords))
	}
	for i := range users {
		o.creds = append(o.creds, loadCred{users[i], passwords[i]})
	}
	var err error
	if o.levels, err = parseLevels(*levels); err != nil {
		return fmt.Errorf("load: --users: %w", err)
	}
	if o.mix, err = parseMix(*mix); err != nil {
		return fmt.Errorf("load: --mix: %w", err)
	}
	if o.notifyRate, err = parseRate(*notifyRate); err != nil {
		return fmt.Errorf("load: --notify-rate: %w", err)
	}
	switch {
	case o.duration <= 0:
		return errors.New("load: --duration must be above zero")
	case o.warmup < 0 || o.think < 0:
		return errors.New("load: --warmup and --think cannot be negative")
	case o.timeout <= 0 || o.rssEvery <= 0:
		return errors.New("load: --timeout and --rss-every must be above zero")
	case o.deepPages < 2:
		return errors.New("load: --deep-pages must be at least 2")
	case o.historyDays < 1 || o.historyDays > models.DemoMaxDays:
		return fmt.Errorf("load: --history-days must be between 1 and %d", models.DemoMaxDays)
	}
	if o.pid != 0 {
		if _, err := readRSS(o.pid); err != nil {
			return fmt.Errorf("load: --pid %d: %w", o.pid, err)
		}
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := newLoadRun(o, stderr)
	defer r.transport.CloseIdleConnections()
	if o.notifyRate > 0 {
		if r.notifier, err = prepareNotifier(g, o, r, stderr); err != nil {
			return fmt.Errorf("load: notifications: %w", err)
		}
	}
	res, err := r.run(ctx)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if o.json {
		return printJSON(stdout, res)
	}
	printLoadResult(stdout, res)
	return nil
}

const loadNotes = `Drives a running console over HTTP: each virtual user signs in (its own
session and CSRF token) and then, without pause (--think), picks actions by
--mix: ledger lists with random filters (merchant, channel, method, kind,
status, date range, amount range, search), deep walks down the ledger's
"older" links, record details (ids from the lists), the dashboard (today, 7d,
30d, 90d), KPI weight previews (POST /kpis/preview with random weights, as
htmx sends it) and daily or monthly reports. A new virtual user does each
action once first, then draws them by weight. Each level of --users is warmed
up, then measured for --duration; the results are requests per second and
p50/p95/p99/max latency and errors per page kind. Any answer other than the
page (a redirect, 4xx, 5xx, a refused filter) is an error.

Notifications (--notify-rate) are new payments, signed as WeChat Pay and
Alipay sign them, posted to /notify/{channel}/{account} of the demo merchants'
enabled accounts. The channels' private keys of the demo credentials are not
kept anywhere (demo data keeps only their public halves), so the generator
opens the server's database (--db, --master-key-file, as given to serve) to
read the accounts' ids and keys, and replaces the channel side's public key of
those demo accounts (WeChat Pay public key; Alipay public key certificate, or
public key) with one it has just made: each change is audited as "cli".
Accounts of other merchants are never touched.
`

// parseLevels reads "10,50,200".
func parseLevels(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 || n > 10000 {
			return nil, fmt.Errorf("%q is not a number of users between 1 and 10000", strings.TrimSpace(part))
		}
		out = append(out, n)
	}
	return out, nil
}

// parseMix reads "ledger=30,deep=15,…" into weights by loadActions index.
func parseMix(s string) ([]float64, error) {
	w := make([]float64, len(loadActions))
	total := 0.0
	for _, part := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		i := slices.Index(loadActions, strings.TrimSpace(name))
		if !ok || i < 0 {
			return nil, fmt.Errorf("%q: want ACTION=WEIGHT with ACTION one of %s", part, strings.Join(loadActions, ", "))
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("%q: the weight is not a number of zero or more", part)
		}
		w[i] = f
		total += f
	}
	if total == 0 {
		return nil, errors.New("every weight is zero")
	}
	return w, nil
}

// parseRate reads "20", "20/s" or "0.5/s".
func parseRate(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "/s"), 64)
	if err != nil || f < 0 || f > 100000 || math.IsNaN(f) {
		return 0, fmt.Errorf("%q: want notifications a second, like 20 or 20/s", s)
	}
	return f, nil
}

// --- results ---

// loadResult is what payfuse load prints.
type loadResult struct {
	URL                   string        `json:"url"`
	Users                 []string      `json:"sign_ins"`
	Mix                   string        `json:"mix"`
	ThinkMS               float64       `json:"think_ms"`
	NotifyRate            float64       `json:"notify_rate"`
	Skipped               []string      `json:"skipped,omitempty"` // actions a sign-in may not use
	Levels                []levelResult `json:"levels"`
	NotificationsSent     int64         `json:"notifications_sent"`     // warm-ups included
	NotificationsAccepted int64         `json:"notifications_accepted"` // answered as taken, warm-ups included
	Interrupted           bool          `json:"interrupted,omitempty"`
}

type levelResult struct {
	Users        int          `json:"users"`
	WarmupS      float64      `json:"warmup_s"`
	Seconds      float64      `json:"seconds"`        // measured
	Requests     int          `json:"requests"`       // pages, notifications apart
	Errors       int          `json:"errors"`         // pages, notifications apart
	Throughput   float64      `json:"throughput_rps"` // pages a second
	NotifyPerS   float64      `json:"notifications_per_s"`
	ServerCPU    float64      `json:"server_cpu_cores,omitempty"` // --pid's CPU time / measured time
	LoadCPU      float64      `json:"load_cpu_cores"`             // the generator's own
	Kinds        []kindResult `json:"kinds"`
	RSS          []rssSample  `json:"rss,omitempty"`
	ErrorSamples []string     `json:"error_samples,omitempty"`
	// Slowest are the slowest requests of the level (which filters, which
	// page), to find the query behind a high p99.
	Slowest []slowRequest `json:"slowest,omitempty"`
}

type slowRequest struct {
	Kind string  `json:"kind"`
	Path string  `json:"path"`
	MS   float64 `json:"ms"`
}

type kindResult struct {
	Kind   string  `json:"kind"`
	Count  int     `json:"count"`
	Errors int     `json:"errors"`
	P50    float64 `json:"p50_ms"`
	P95    float64 `json:"p95_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
}

type rssSample struct {
	AtS float64 `json:"at_s"` // since the level's warm-up started
	KiB int64   `json:"kib"`
}

// recorder collects one goroutine's latencies (no locks on the hot path).
type recorder struct {
	lat     map[string][]time.Duration
	errs    map[string]int
	sample  []string
	slowest []slowRequest // the slowSize slowest, slowest first
}

// slowSize is how many of the slowest requests a level reports.
const slowSize = 8

// keepSlow files a request among the slowest when it is one.
func (r *recorder) keepSlow(s slowRequest) {
	if len(r.slowest) == slowSize && s.MS <= r.slowest[slowSize-1].MS {
		return
	}
	i, _ := slices.BinarySearchFunc(r.slowest, s.MS, func(e slowRequest, ms float64) int {
		if e.MS >= ms {
			return -1
		}
		return 1
	})
	r.slowest = slices.Insert(r.slowest, i, s)
	if len(r.slowest) > slowSize {
		r.slowest = r.slowest[:slowSize]
	}
}

func newRecorder() *recorder {
	return &recorder{lat: map[string][]time.Duration{}, errs: map[string]int{}}
}

func (r *recorder) add(kind, path string, d time.Duration, err error) {
	r.lat[kind] = append(r.lat[kind], d)
	r.keepSlow(slowRequest{Kind: kind, Path: path, MS: ms(d)})
	if err != nil {
		r.errs[kind]++
		if len(r.sample) < 5 {
			r.sample = append(r.sample, kind+": "+err.Error())
		}
	}
}

func (r *recorder) merge(o *recorder) {
	for k, v := range o.lat {
		r.lat[k] = append(r.lat[k], v...)
	}
	for k, v := range o.errs {
		r.errs[k] += v
	}
	for _, s := range o.sample {
		if len(r.sample) < 20 {
			r.sample = append(r.sample, s)
		}
	}
	for _, s := range o.slowest {
		r.keepSlow(s)
	}
}

// percentile is the nearest-rank q-quantile of sorted durations, in ms.
func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = min(max(i, 0), len(sorted)-1)
	return ms(sorted[i])
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())/10) / 100 }

func (r *recorder) level(users int, warmup, measured time.Duration) levelResult {
	lr := levelResult{Users: users, WarmupS: warmup.Seconds(), Seconds: math.Round(measured.Seconds()*100) / 100, ErrorSamples: r.sample, Slowest: r.slowest}
	for _, k := range loadKinds {
		lat := r.lat[k]
		if len(lat) == 0 {
			continue
		}
		slices.Sort(lat)
		kr := kindResult{Kind: k, Count: len(lat), Errors: r.errs[k], P50: percentile(lat, 0.50), P95: percentile(lat, 0.95),
			P99: percentile(lat, 0.99), Max: ms(lat[len(lat)-1])}
		lr.Kinds = append(lr.Kinds, kr)
		if k == kindNotify {
			lr.NotifyPerS = math.Round(float64(kr.Count)/measured.Seconds()*10) / 10
			continue
		}
		lr.Requests += kr.Count
		lr.Errors += kr.Errors
	}
	lr.Throughput = math.Round(float64(lr.Requests)/measured.Seconds()*10) / 10
	return lr
}

func printLoadResult(w io.Writer, res *loadResult) {
	fmt.Fprintf(w, "PayFuse load against %s — sign-ins %s; mix %s; think %gms; notifications %g/s\n",
		res.URL, strings.Join(res.Users, ", "), res.Mix, res.ThinkMS, res.NotifyRate)
	for _, s := range res.Skipped {
		fmt.Fprintf(w, "  skipped: %s\n", s)
	}
	for _, lr := range res.Levels {
		fmt.Fprintf(w, "\n%d users: measured %.1f s after %.0f s warm-up; %d requests, %.1f req/s, %d errors",
			lr.Users, lr.Seconds, lr.WarmupS, lr.Requests, lr.Throughput, lr.Errors)
		if res.NotifyRate > 0 {
			fmt.Fprintf(w, "; notifications %.1f/s", lr.NotifyPerS)
		}
		fmt.Fprintf(w, "\n  CPU cores used: this generator %.2f", lr.LoadCPU)
		if lr.ServerCPU > 0 {
			fmt.Fprintf(w, ", server %.2f", lr.ServerCPU)
		}
		fmt.Fprintf(w, "\n  %-12s %8s %7s %9s %9s %9s %9s\n", "kind", "requests", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms")
		for _, k := range lr.Kinds {
			fmt.Fprintf(w, "  %-12s %8d %7d %9.1f %9.1f %9.1f %9.1f\n", k.Kind, k.Count, k.Errors, k.P50, k.P95, k.P99, k.Max)
		}
		if len(lr.RSS) > 0 {
			parts := make([]string, len(lr.RSS))
			lo, hi := lr.RSS[0].KiB, lr.RSS[0].KiB
			for i, s := range lr.RSS {
				parts[i] = fmt.Sprintf("%.0fs %.1f", s.AtS, float64(s.KiB)/1024)
				lo, hi = min(lo, s.KiB), max(hi, s.KiB)
			}
			fmt.Fprintf(w, "  server RSS MiB: %s (min %.1f, max %.1f)\n", strings.Join(parts, ", "), float64(lo)/1024, float64(hi)/1024)
		}
		for _, s := range lr.Slowest {
			fmt.Fprintf(w, "  slow: %9.1f ms  %-11s %s\n", s.MS, s.Kind, s.Path)
		}
		for _, s := range lr.ErrorSamples {
			fmt.Fprintf(w, "  error: %s\n", s)
		}
	}
	fmt.Fprintf(w, "\nnotifications: %d sent, %d taken (warm-ups included)\n", res.NotificationsSent, res.NotificationsAccepted)
	if res.Interrupted {
		fmt.Fprintln(w, "interrupted: the last level is partial")
	}
}

// readRSS reads a process's resident set size (VmRSS) in KiB.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, errors.New("no VmRSS line in its status")
}

// cpuSeconds is a process's CPU time (user and system) so far; 0 for pid 0
// or a process that cannot be read.
func cpuSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from after its ")".
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ, 100 on Linux
}

// ownCPUSeconds is this process's CPU time so far.
func ownCPUSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// --- the run ---

type loadRun struct {
	o         loadOptions
	stderr    io.Writer
	transport *http.Transport
	notifier  *notifier

	vus       []*vu
	sessions  map[int]*http.Client // sign-ins with a second factor share one session
	csrf      map[int]string
	allowed   map[int][]float64 // cumulative action weights per sign-in
	merchants []string          // merchant codes in scope (from the ledger's filter)
	skipped   []string
	loc       *time.Location
}

func newLoadRun(o loadOptions, stderr io.Writer) *loadRun {
	maxUsers := slices.Max(o.levels)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = maxUsers + 256
	tr.MaxIdleConnsPerHost = maxUsers + 256
	return &loadRun{o: o, stderr: stderr, transport: tr, sessions: map[int]*http.Client{}, csrf: map[int]string{},
		allowed: map[int][]float64{}, loc: views.DisplayZone}
}

// window is the measured part of a level: requests that start inside it count.
type window struct{ start, end time.Time }

func (w window) in(t time.Time) bool { return !t.Before(w.start) && t.Before(w.end) }

func (r *loadRun) run(ctx context.Context) (*loadResult, error) {
	res := &loadResult{URL: r.o.base, ThinkMS: float64(r.o.think.Milliseconds()), NotifyRate: r.o.notifyRate}
	var mix []string
	for i, a := range loadActions {
		if r.o.mix[i] > 0 {
			mix = append(mix, fmt.Sprintf("%s=%g", a, r.o.mix[i]))
		}
	}
	res.Mix = strings.Join(mix, ",")
	for _, c := range r.o.creds {
		res.Users = append(res.Users, c.user)
	}
	for _, users := range r.o.levels {
		if err := r.signIn(ctx, users); err != nil {
			return nil, err
		}
		if len(res.Skipped) == 0 {
			res.Skipped = r.skipped
		}
		fmt.Fprintf(r.stderr, "load: %d users: warming up %s, measuring %s\n", users, r.o.warmup, r.o.duration)
		lr, err := r.level(ctx, users)
		if err != nil {
			return nil, err
		}
		res.Levels = append(res.Levels, lr)
		if ctx.Err() != nil {
			res.Interrupted = true
			break
		}
	}
	if r.notifier != nil {
		res.NotificationsSent, res.NotificationsAccepted = r.notifier.sent.Load(), r.notifier.accepted.Load()
	}
	return res, nil
}

// level runs users virtual users (and the notification stream) through the
// warm-up and the measured window.
func (r *loadRun) level(ctx context.Context, users int) (levelResult, error) {
	began := time.Now()
	w := window{start: began.Add(r.o.warmup)}
	w.end = w.start.Add(r.o.duration)
	lctx, cancel := context.WithDeadline(ctx, w.end)
	defer cancel()

	var rss []rssSample
	var rssDone chan struct{}
	if r.o.pid != 0 {
		rssDone = make(chan struct{})
		go func() {
			defer close(rssDone)
			tick := time.NewTicker(r.o.rssEvery)
			defer tick.Stop()
			for {
				if kib, err := readRSS(r.o.pid); err == nil {
					rss = append(rss, rssSample{AtS: math.Round(time.Since(began).Seconds()*10) / 10, KiB: kib})
				}
				select {
				case <-lctx.Done():
					// The last sample, at the level's end (unless the ticker just took it).
					at := math.Round(time.Since(began).Seconds()*10) / 10
					if kib, err := readRSS(r.o.pid); err == nil && (len(rss) == 0 || at-rss[len(rss)-1].AtS >= 1) {
						rss = append(rss, rssSample{AtS: at, KiB: kib})
					}
					return
				case <-tick.C:
				}
			}
		}()
	}

	// CPU time of the server (with --pid) and of this process over the
	// measured window: on a shared machine, what each got.
	cpuDone := make(chan [2]float64, 1)
	go func() {
		select {
		case <-time.After(time.Until(w.start)):
		case <-lctx.Done():
		}
		s0, l0 := cpuSeconds(r.o.pid), ownCPUSeconds()
		t0 := time.Now()
		<-lctx.Done()
		el := time.Since(t0).Seconds()
		if el <= 0 {
			cpuDone <- [2]float64{}
			return
		}
		cpuDone <- [2]float64{(cpuSeconds(r.o.pid) - s0) / el, (ownCPUSeconds() - l0) / el}
	}()

	recs := make([]*recorder, users+1)
	var wg sync.WaitGroup
	for i := 0; i < users; i++ {
		v := r.vus[i]
		recs[i] = newRecorder()
		v.rec = recs[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.loop(lctx, w)
		}()
	}
	if r.notifier != nil {
		recs[users] = newRecorder()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.notifier.stream(lctx, w, recs[users])
		}()
	}
	wg.Wait()
	measured := r.o.duration
	if ctx.Err() != nil { // interrupted: what was measured so far
		measured = max(time.Since(w.start), time.Millisecond)
	}
	if rssDone != nil {
		<-rssDone
	}
	all := newRecorder()
	for _, rec := range recs {
		if rec != nil {
			all.merge(rec)
		}
	}
	lr := all.level(users, r.o.warmup, measured)
	lr.RSS = rss
	cpu := <-cpuDone
	if r.o.pid != 0 {
		lr.ServerCPU = math.Round(cpu[0]*100) / 100
	}
	lr.LoadCPU = math.Round(cpu[1]*100) / 100
	return lr, nil
}

// signIn makes sure there are users virtual users, signed in; the first of
// each sign-in also finds which actions its role may use and, once, the
// merchants in scope.
func (r *loadRun) signIn(ctx context.Context, users int) error {
	start := len(r.vus)
	if start >= users {
		return nil
	}
	t0 := time.Now()
	for i := start; i < users; i++ {
		v := &vu{r: r, id: i, cred: i % len(r.o.creds), rng: rand.New(rand.NewPCG(uint64(r.o.seed), uint64(i)))}
		r.vus = append(r.vus, v)
	}
	// The first virtual user of each sign-in goes alone: it probes the pages.
	for c := range r.o.creds {
		if c < start || c >= users {
			continue
		}
		v := r.vus[c]
		if err := v.signIn(ctx); err != nil {
			return err
		}
		if err := r.probe(v); err != nil {
			return err
		}
	}
	// The rest four at a time (a password hash costs the server ~50 ms of CPU).
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := max(start, len(r.o.creds)); i < users; i++ {
		v := r.vus[i]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := v.signIn(ctx); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	for i := start; i < users; i++ {
		v := r.vus[i]
		v.cum = r.allowed[v.cred]
		for a := range loadActions {
			if v.cum[a] > 0 && (a == 0 || v.cum[a] > v.cum[a-1]) {
				v.first = append(v.first, a)
			}
		}
		v.rng.Shuffle(len(v.first), func(i, j int) { v.first[i], v.first[j] = v.first[j], v.first[i] })
	}
	fmt.Fprintf(r.stderr, "load: signed in %d virtual users in %s\n", users-start, time.Since(t0).Round(time.Millisecond))
	return nil
}

var merchantSelectRE = regexp.MustCompile(`(?s)name="merchant"[^>]*>(.*?)</select>`)
var optionRE = regexp.MustCompile(`<option value="([A-Z0-9_]+)"`)

// probe finds which actions a sign-in's role may use (their page answers
// 200) and the merchants in scope.
func (r *loadRun) probe(v *vu) error {
	cum := make([]float64, len(loadActions))
	total := 0.0
	var refused []string
	for i, a := range loadActions {
		ok := true
		if r.o.mix[i] > 0 {
			status, body, _, err := v.do(context.Background(), "GET", actionPath[a], nil, false)
			if err != nil {
				return fmt.Errorf("%s: GET %s: %w", r.o.creds[v.cred].user, actionPath[a], err)
			}
			ok = status == http.StatusOK
			if a == "ledger" && ok && r.merchants == nil {
				r.merchants = []string{}
				if m := merchantSelectRE.FindSubmatch(body); m != nil {
					for _, o := range optionRE.FindAllSubmatch(m[1], -1) {
						r.merchants = append(r.merchants, string(o[1]))
					}
				}
			}
		}
		if ok {
			total += r.o.mix[i]
		} else {
			refused = append(refused, a)
		}
		cum[i] = total
	}
	if total == 0 {
		return fmt.Errorf("%s may use none of the actions in --mix", r.o.creds[v.cred].user)
	}
	if len(refused) > 0 {
		r.skipped = append(r.skipped, fmt.Sprintf("%s (not allowed for %s)", strings.Join(refused, ", "), r.o.creds[v.cred].user))
		fmt.Fprintf(r.stderr, "load: %s may not use %s: its virtual users leave them out\n", r.o.creds[v.cred].user, strings.Join(refused, ", "))
	}
	r.allowed[v.cred] = cum
	return nil
}

// --- a virtual user ---

type vu struct {
	r      *loadRun
	id     int
	cred   int
	client *http.Client
	csrf   string
	rng    *rand.Rand
	cum    []float64 // cumulative weights of the actions it may use
	first  []int     // actions still to do once before drawing by weight
	ids    []uint64  // ledger record ids seen (a ring)
	refs   []string  // channel references seen (search terms)
	rec    *recorder
}

var (
	csrfRE      = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)
	rowRE       = regexp.MustCompile(`data-href="/ledger/(\d+)"`)
	rowRefRE    = regexp.MustCompile(`data-ledger-row="([^"]+)"`)
	nextRE      = regexp.MustCompile(`href="(/ledger\?[^"]*)"[^>]*rel="next"`)
	errNotTaken = errors.New("refused")
)

// signIn signs the virtual user in through the sign-in form (and the code
// form when its user has a second factor).
func (v *vu) signIn(ctx context.Context) error {
	r := v.r
	if c, ok := r.sessions[v.cred]; ok { // a shared two-factor session
		v.client, v.csrf = c, r.csrf[v.cred]
		return nil
	}
	jar, _ := cookiejar.New(nil)
	v.client = &http.Client{Transport: r.transport, Jar: jar, Timeout: r.o.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cred := r.o.creds[v.cred]
	status, body, _, err := v.do(ctx, "GET", "/login", nil, false)
	if err != nil || status != http.StatusOK {
		return fmt.Errorf("sign-in page: %d %v", status, err)
	}
	v.csrf = firstMatch(csrfRE, body)
	status, _, loc, err := v.do(ctx, "POST", "/login", url.Values{"username": {cred.user}, "password": {cred.password}, "next": {"/"}}, false)
	if err != nil {
		return fmt.Errorf("sign-in of %s: %w", cred.user, err)
	}
	if status != http.StatusSeeOther && status != http.StatusFound {
		return fmt.Errorf("sign-in of %s refused (status %d): check --user and --password", cred.user, status)
	}
	if strings.HasPrefix(loc, "/login/2fa") {
		if r.o.totpSecret == "" {
			return fmt.Errorf("%s signs in with a second factor: give --totp-secret", cred.user)
		}
		code, err := models.TOTPCode(r.o.totpSecret, models.TOTPStep(time.Now()), models.TOTPDigits)
		if err != nil {
			return fmt.Errorf("--totp-secret: %w", err)
		}
		status, _, loc, err = v.do(ctx, "POST", "/login/2fa", url.Values{"code": {code}, "next": {"/"}}, false)
		if err != nil || (status != http.StatusSeeOther && status != http.StatusFound) {
			return fmt.Errorf("second sign-in step of %s refused (status %d, %v): is --totp-secret the user's key?", cred.user, status, err)
		}
		defer func() { r.sessions[v.cred], r.csrf[v.cred] = v.client, v.csrf }()
	}
	switch loc {
	case "/account":
		return fmt.Errorf("%s must change the password first: sign in once in a browser", cred.user)
	case "/account/2fa":
		return fmt.Errorf("%s must set up two-factor sign-in first: sign in once in a browser", cred.user)
	}
	// The session's own CSRF token, from any page.
	status, body, _, err = v.do(ctx, "GET", "/account", nil, false)
	if err != nil || status != http.StatusOK {
		return fmt.Errorf("after sign-in of %s: /account answered %d %v", cred.user, status, err)
	}
	if v.csrf = firstMatch(csrfRE, body); v.csrf == "" {
		return fmt.Errorf("after sign-in of %s: no CSRF token on /account", cred.user)
	}
	return nil
}

func firstMatch(re *regexp.Regexp, b []byte) string {
	if m := re.FindSubmatch(b); m != nil {
		return html.UnescapeString(string(m[1]))
	}
	return ""
}

// do sends one request and reads the whole answer.
func (v *vu) do(ctx context.Context, method, path string, form url.Values, hx bool) (int, []byte, string, error) {
	var body io.Reader
	if form != nil {
		if method == "POST" {
			form.Set("_csrf", v.csrf)
		}
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, v.r.o.base+path, body)
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("User-Agent", "payfuse-load")
	req.Header.Set("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.8")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if hx {
		req.Header.Set("HX-Request", "true")
		req.Header.Set("X-CSRF-Token", v.csrf)
	}
	res, err := v.client.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, res.Header.Get("Location"), err
}

// page fetches a page of a kind, records it when it started in the
// measured window, and returns its body when it is the page asked for.
func (v *vu) page(kind, method, path string, form url.Values, hx bool, w window, check func([]byte) error) ([]byte, bool) {
	t0 := time.Now()
	status, body, loc, err := v.do(context.Background(), method, path, form, hx)
	d := time.Since(t0)
	switch {
	case err != nil:
	case status == http.StatusSeeOther || status == http.StatusFound:
		err = fmt.Errorf("%s %s: redirected to %s", method, path, loc)
	case status != http.StatusOK:
		err = fmt.Errorf("%s %s: status %d", method, path, status)
	case check != nil:
		if cerr := check(body); cerr != nil {
			err = fmt.Errorf("%s %s: %w", method, path, cerr)
		}
	}
	if w.in(t0) {
		v.rec.add(kind, method+" "+path, d, err)
	}
	if err == nil {
		if m := csrfRE.FindSubmatch(body); m != nil { // a session given a new id keeps working
			v.csrf = html.UnescapeString(string(m[1]))
		}
	}
	return body, err == nil
}

// loop runs actions until the level ends: first each action it may use
// once, in a random order (so a short run still sees every page), then
// actions drawn by their weights.
func (v *vu) loop(ctx context.Context, w window) {
	for ctx.Err() == nil {
		var i int
		if len(v.first) > 0 {
			i, v.first = v.first[0], v.first[1:]
		} else {
			x := v.rng.Float64() * v.cum[len(v.cum)-1]
			i, _ = slices.BinarySearchFunc(v.cum, x, func(c, x float64) int {
				if c <= x {
					return -1
				}
				return 1
			})
		}
		switch loadActions[i] {
		case "ledger":
			v.ledger(w)
		case "deep":
			v.deep(ctx, w)
		case "detail":
			v.detail(w)
		case "dashboard":
			v.dashboard(w)
		case "kpi":
			v.kpi(w)
		case "report":
			v.report(w)
		}
		if v.r.o.think > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(v.r.o.think):
			}
		}
	}
}

// ledgerCheck refuses a ledger answer that is not a list: a refused filter
// shows its messages (role="alert") instead of rows.
func ledgerCheck(b []byte) error {
	if strings.Contains(string(b), `role="alert" class="mb-3 rounded-md border border-red-200`) {
		return errors.New("the filter was refused")
	}
	return nil
}

// harvest keeps record ids and references a ledger page shows, for detail
// pages and searches, and returns its "older" link.
func (v *vu) harvest(body []byte) string {
	for _, m := range rowRE.FindAllSubmatch(body, -1) {
		if id, err := strconv.ParseUint(string(m[1]), 10, 64); err == nil {
			if len(v.ids) < 256 {
				v.ids = append(v.ids, id)
			} else {
				v.ids[v.rng.IntN(len(v.ids))] = id
			}
		}
	}
	for _, m := range rowRefRE.FindAllSubmatch(body, -1) {
		if ref := html.UnescapeString(string(m[1])); len(v.refs) < 256 {
			v.refs = append(v.refs, ref)
		} else {
			v.refs[v.rng.IntN(len(v.refs))] = ref
		}
	}
	return firstMatch(nextRE, body)
}

func (v *vu) pick(list []string) string { return list[v.rng.IntN(len(list))] }

func (v *vu) chance(p float64) bool { return v.rng.Float64() < p }

// today is the business date in Beijing, where the demo merchants are.
func (v *vu) today() time.Time {
	t := time.Now().In(v.r.loc)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, v.r.loc)
}

// ledgerFilter is a random filter as people set it on the ledger page.
func (v *vu) ledgerFilter() url.Values {
	q := url.Values{}
	if len(v.refs) > 0 && v.chance(0.10) {
		// The search box: a reference seen on a page, or (a fifth of the
		// time) one that is not there.
		ref := v.pick(v.refs)
		if v.chance(0.2) {
			ref = fmt.Sprintf("LD%014d", v.rng.Int64N(1e14))
		}
		q.Set("q", ref)
		if v.chance(0.7) {
			return q
		}
	}
	if len(v.r.merchants) > 0 && v.chance(0.5) {
		q.Set("merchant", v.pick(v.r.merchants))
	}
	if v.chance(0.4) {
		q.Set("channel", v.pick([]string{"wechat", "alipay", "unionpay"}))
	}
	if v.chance(0.2) {
		q.Set("method", v.pick(models.Methods))
	}
	if v.chance(0.15) {
		q.Set("kind", v.pick([]string{channels.KindPayment, channels.KindRefund}))
	}
	if v.chance(0.25) {
		q.Set("status", v.pick(models.LedgerStatuses))
	}
	if v.chance(0.35) {
		today := v.today()
		span := []int{0, 1, 6, 29}[v.rng.IntN(4)]
		from := today.AddDate(0, 0, -v.rng.IntN(v.r.o.historyDays))
		to := from.AddDate(0, 0, span)
		if to.After(today) {
			to = today
		}
		q.Set("from", from.Format(time.DateOnly))
		q.Set("to", to.Format(time.DateOnly))
	}
	if v.chance(0.15) {
		lo := []int64{1, 100, 1000, 5000, 10000, 50000}[v.rng.IntN(6)]
		hi := lo * []int64{2, 5, 20}[v.rng.IntN(3)]
		if v.chance(0.8) {
			q.Set("min", models.Yuan(lo))
		}
		q.Set("max", models.Yuan(hi))
	}
	return q
}

func ledgerPath(q url.Values) string {
	if len(q) == 0 {
		return "/ledger"
	}
	return "/ledger?" + q.Encode()
}

// ledger opens the ledger with a random filter: a whole page, or (as the
// filter form does once the page is open) the table through htmx.
func (v *vu) ledger(w window) {
	body, ok := v.page(kindLedger, "GET", ledgerPath(v.ledgerFilter()), nil, v.chance(0.5), w, ledgerCheck)
	if ok {
		v.harvest(body)
	}
}

// deep opens the ledger unfiltered or with one filter the indexes serve in
// order, then follows its "older" link (htmx, as the pager does) several
// pages deep.
func (v *vu) deep(ctx context.Context, w window) {
	q := url.Values{}
	switch v.rng.IntN(6) {
	case 0:
		if len(v.r.merchants) > 0 {
			q.Set("merchant", v.pick(v.r.merchants))
		}
	case 1:
		q.Set("channel", v.pick([]string{"wechat", "alipay"}))
	case 2:
		q.Set("status", channels.StatusSucceeded)
	case 3:
		q.Set("method", v.pick(models.Methods))
	}
	body, ok := v.page(kindLedger, "GET", ledgerPath(q), nil, false, w, ledgerCheck)
	if !ok {
		return
	}
	next := v.harvest(body)
	for n := 1 + v.rng.IntN(v.r.o.deepPages-1); n > 0 && next != "" && ctx.Err() == nil; n-- {
		if body, ok = v.page(kindDeep, "GET", next, nil, true, w, ledgerCheck); !ok {
			return
		}
		next = v.harvest(body)
	}
}

// detail opens a record seen on a ledger page (a ledger page first when
// none was seen yet).
func (v *vu) detail(w window) {
	if len(v.ids) == 0 {
		v.ledger(w)
		if len(v.ids) == 0 {
			return
		}
	}
	v.page(kindDetail, "GET", "/ledger/"+strconv.FormatUint(v.ids[v.rng.IntN(len(v.ids))], 10), nil, false, w, nil)
}

func (v *vu) merchantOrAll() string {
	if len(v.r.merchants) == 0 || v.chance(0.4) {
		return ""
	}
	return v.pick(v.r.merchants)
}

func (v *vu) dashboard(w window) {
	q := url.Values{"range": {v.pick([]string{"today", "7d", "30d", "90d"})}}
	if m := v.merchantOrAll(); m != "" {
		q.Set("merchant", m)
	}
	v.page(kindDashboard, "GET", "/?"+q.Encode(), nil, false, w, nil)
}

// kpi posts the weights form as htmx does after a slider moves: random
// weights (0–10 in steps of 0.5, at least one above zero), sometimes a
// target instead of min–max.
func (v *vu) kpi(w window) {
	form := url.Values{"range": {v.pick([]string{"7d", "30d", "90d"})}, "name": {"Load test draft"}, "from": {""}, "to": {""}, "method": {""}}
	if len(v.r.merchants) > 0 {
		form.Set("merchant", v.pick(v.r.merchants))
	}
	if v.chance(0.2) {
		form.Set("method", v.pick(models.Methods))
	}
	positive := false
	for _, d := range models.KPIDefs {
		wt := float64(v.rng.IntN(21)) / 2
		positive = positive || wt > 0
		form.Set("w."+d.Key, strconv.FormatFloat(wt, 'f', -1, 64))
		form.Set("n."+d.Key, models.NormMinMax)
	}
	if !positive {
		form.Set("w."+models.KPIDefs[0].Key, "1")
	}
	if v.chance(0.3) {
		form.Set("n."+models.KPISuccessRate, models.NormTarget)
		form.Set("t."+models.KPISuccessRate, strconv.Itoa(90+v.rng.IntN(10)))
	}
	v.page(kindKPI, "POST", "/kpis/preview", form, true, w, func(b []byte) error {
		if !strings.Contains(string(b), `id="kpi-board"`) {
			return errors.New("no scoreboard in the answer")
		}
		return nil
	})
}

// report opens a daily report of a day in the history, or a monthly report
// of one of the last three months.
func (v *vu) report(w window) {
	q := url.Values{}
	if m := v.merchantOrAll(); m != "" {
		q.Set("merchant", m)
	}
	today := v.today()
	if v.chance(0.7) {
		q.Set("period", models.ReportDaily)
		q.Set("date", today.AddDate(0, 0, -1-v.rng.IntN(v.r.o.historyDays)).Format(time.DateOnly))
	} else {
		q.Set("period", models.ReportMonthly)
		q.Set("month", time.Date(today.Year(), today.Month()-time.Month(v.rng.IntN(3)), 1, 0, 0, 0, 0, v.r.loc).Format("2006-01"))
	}
	if v.chance(0.3) {
		q.Set("by_method", "1")
	}
	v.page(kindReport, "GET", "/reports?"+q.Encode(), nil, false, w, nil)
}

// --- notifications ---

// notifyAccount is a demo account notifications are signed for.
type notifyAccount struct {
	id               uint64
	channel          string
	merchant         string
	mchID, serial    string // WeChat Pay
	apiv3            []byte
	appID, sellerPID string // Alipay
}

type notifier struct {
	accounts []notifyAccount
	wxKey    *rsa.PrivateKey
	apKey    *rsa.PrivateKey
	client   *http.Client
	base     string
	rate     float64
	run      int64 // digits that keep this run's references apart from other runs'
	seq      atomic.Int64
	sent     atomic.Int64
	accepted atomic.Int64
	rngMu    sync.Mutex
	rng      *rand.Rand
}

// prepareNotifier opens the server's database, finds the demo merchants'
// enabled WeChat Pay and Alipay accounts, and replaces the channel side's
// public key of each with the public half of a key made now (see loadNotes).
func prepareNotifier(g *globals, o loadOptions, r *loadRun, stderr io.Writer) (*notifier, error) {
	dsn, err := models.ParseDSN(g.db)
	if err != nil {
		return nil, err
	}
	if dsn.Dialect == models.SQLite {
		if _, err := os.Stat(dsn.Path); err != nil {
			return nil, fmt.Errorf("--db %s: %w (give the server's --db)", g.db, err)
		}
		if g.masterKeyFile == "" {
			if _, err := os.Stat(dsn.Path + ".key"); err != nil {
				return nil, fmt.Errorf("no master key beside %s: give the server's --master-key-file", dsn.Path)
			}
		}
	}
	store, err := g.openWithVault(io.Discard)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	t0 := time.Now()
	var wg sync.WaitGroup
	n := &notifier{base: o.base, rate: o.notifyRate, run: time.Now().UnixNano() % 1e9, rng: rand.New(rand.NewPCG(uint64(o.seed), 1<<40))}
	wg.Add(2)
	go func() { defer wg.Done(); n.wxKey = testkeys.RSAKey(testkeys.Bits) }()
	go func() { defer wg.Done(); n.apKey = testkeys.RSAKey(testkeys.Bits) }()
	wg.Wait()
	now := time.Now()
	all := models.Scope{All: true}
	for _, code := range models.DemoMerchants {
		m, err := store.GetMerchantByCode(all, code)
		if errors.Is(err, models.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		accts, err := store.ListAccounts(all, models.AccountFilter{MerchantID: m.ID})
		if err != nil {
			return nil, err
		}
		for _, a := range accts {
			if !a.Enabled || (a.Channel != wechat.Code && a.Channel != alipay.Code) {
				continue
			}
			_, creds, err := store.NotificationAccount(a.Channel, a.ID)
			if err != nil {
				return nil, fmt.Errorf("%s %s account %d: %w", code, a.Channel, a.ID, err)
			}
			na := notifyAccount{id: a.ID, channel: a.Channel, merchant: code}
			values := map[string][]byte{}
			if a.Channel == wechat.Code {
				na.mchID, na.serial, na.apiv3 = string(creds["mch_id"]), string(creds["platform_public_key_id"]), creds["apiv3_key"]
				if na.serial == "" {
					fmt.Fprintf(stderr, "load: %s WeChat Pay account %d has no WeChat Pay public key id: no notifications for it\n", code, a.ID)
					continue
				}
				values["platform_public_key"] = testkeys.PublicKeyPEM(&n.wxKey.PublicKey)
			} else {
				na.appID, na.sellerPID = string(creds["app_id"]), string(creds["pid"])
				if len(creds["alipay_cert"]) > 0 {
					values["alipay_cert"] = testkeys.CertPEM(n.apKey, "PayFuse load generator test Alipay public key certificate", now.Add(-time.Hour), now.AddDate(1, 0, 0))
				} else {
					values["alipay_public_key"] = testkeys.PublicKeyPEM(&n.apKey.PublicKey)
				}
			}
			_, _, err = store.SaveAccount(models.CLIActor(), a.ID, models.AccountInput{MerchantID: a.MerchantID, Channel: a.Channel,
				DisplayName: a.DisplayName, Methods: a.MethodList(), FeeRateBP: a.FeeRateBP, Enabled: a.Enabled, Values: values})
			if err != nil {
				return nil, fmt.Errorf("%s %s account %d: unable to set the load generator's key: %w", code, a.Channel, a.ID, err)
			}
			n.accounts = append(n.accounts, na)
		}
	}
	if len(n.accounts) == 0 {
		return nil, fmt.Errorf("no enabled WeChat Pay or Alipay account of the demo merchants %s in %s", strings.Join(models.DemoMerchants, ", "), dsn)
	}
	n.client = &http.Client{Transport: r.transport, Timeout: o.timeout}
	fmt.Fprintf(stderr, "load: notifications for %d demo accounts; their channel-side public keys now belong to this run (%s)\n", len(n.accounts), time.Since(t0).Round(time.Millisecond))
	return n, nil
}

// stream posts notifications at n.rate a second on a fixed schedule until
// ctx ends. Latency counts from when a notification was due, so a server
// that falls behind shows it.
func (n *notifier) stream(ctx context.Context, w window, rec *recorder) {
	// Enough senders that each may wait a second for its answer without the
	// stream falling behind its schedule.
	senders := min(max(8, int(math.Ceil(n.rate))), 512)
	type job struct{ due time.Time }
	jobs := make(chan job, senders)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				path, err := n.post(j.due)
				d := time.Since(j.due)
				if w.in(j.due) {
					mu.Lock()
					rec.add(kindNotify, path, d, err)
					mu.Unlock()
				}
			}
		}()
	}
	start := time.Now()
	every := time.Duration(float64(time.Second) / n.rate)
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * every)
		t := time.NewTimer(time.Until(due))
		select {
		case <-ctx.Done():
			t.Stop()
			close(jobs)
			wg.Wait()
			return
		case <-t.C:
		}
		select {
		case jobs <- job{due}:
		case <-ctx.Done():
			close(jobs)
			wg.Wait()
			return
		}
	}
}

// post signs and sends one notification of a new payment; it returns the
// request line for the slowest list.
func (n *notifier) post(now time.Time) (string, error) {
	path, err := n.send(now)
	return "POST " + path, err
}

// send does post's work and returns the path it posted to.
func (n *notifier) send(now time.Time) (path string, err error) {
	n.rngMu.Lock()
	a := n.accounts[n.rng.IntN(len(n.accounts))]
	amount := 100 + n.rng.Int64N(50000)
	method := models.Methods[n.rng.IntN(len(models.Methods))]
	n.rngMu.Unlock()
	seq := n.seq.Add(1)
	paid := now.Add(-3 * time.Second).Truncate(time.Second)
	var req *http.Request
	if a.channel == wechat.Code {
		ref := fmt.Sprintf("42%09d%017d", n.run, seq)
		rec := channels.Record{Channel: wechat.Code, Kind: channels.KindPayment, ChannelRef: ref, MerchantOrderNo: "LD" + ref[2:],
			Method: method, Status: channels.StatusSucceeded, Amount: amount, Currency: "CNY", AccountRef: a.mchID, PaidAt: paid}
		hdr, body := wechat.BuildTestNotification(n.wxKey, a.serial, a.apiv3, rec, time.Now())
		path = "/notify/wechat/" + strconv.FormatUint(a.id, 10)
		if req, err = http.NewRequest("POST", n.base+path, strings.NewReader(string(body))); err != nil {
			return path, err
		}
		req.Header = hdr
	} else {
		bj := time.FixedZone("CST", 8*3600)
		ref := now.In(bj).Format("20060102") + fmt.Sprintf("22%09d%09d", n.run, seq)
		at := now.In(bj)
		form := alipay.BuildTestNotification(n.apKey, map[string]string{
			"notify_time": at.Format(time.DateTime), "notify_type": "trade_status_sync", "notify_id": "ld" + ref,
			"app_id": a.appID, "auth_app_id": a.appID, "charset": "utf-8", "version": "1.0",
			"trade_no": ref, "out_trade_no": "LD" + ref, "buyer_id": "2088602123451234", "buyer_logon_id": "138****0001", "seller_id": a.sellerPID,
			"trade_status": "TRADE_SUCCESS", "total_amount": models.Yuan(amount), "receipt_amount": models.Yuan(amount), "buyer_pay_amount": models.Yuan(amount),
			"subject": "负载测试 load test", "gmt_create": paid.Add(-5 * time.Second).In(bj).Format(time.DateTime), "gmt_payment": paid.In(bj).Format(time.DateTime),
		})
		path = "/notify/alipay/" + strconv.FormatUint(a.id, 10)
		if req, err = http.NewRequest("POST", n.base+path, strings.NewReader(form.Encode())); err != nil {
			return path, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	}
	n.sent.Add(1)
	res, err := n.client.Do(req)
	if err != nil {
		return path, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	taken := (a.channel == wechat.Code && res.StatusCode == http.StatusNoContent) ||
		(a.channel == alipay.Code && res.StatusCode == http.StatusOK && string(b) == "success")
	if !taken {
		return path, fmt.Errorf("%s account %d: %w: status %d %s", a.channel, a.id, errNotTaken, res.StatusCode, strings.TrimSpace(string(b)))
	}
	n.accepted.Add(1)
	return path, nil
}
