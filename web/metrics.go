package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"payfuse/models"
)

// MinMetricsToken is the shortest metrics token New accepts.
const MinMetricsToken = 16

// maxProfileSeconds bounds a CPU profile or trace: the server's write
// timeout (60 s) ends longer ones before they are sent.
const maxProfileSeconds = 50

// Ops is the server's operations side: the Prometheus registry of this
// server (its own, not the global one, so several servers can live in one
// process), the request-latency histogram, the /metrics access rule, and
// the profiler.
type Ops struct {
	reg      *prometheus.Registry
	requests *prometheus.HistogramVec
	scrape   fiber.Handler
	allow    []netip.Prefix
	token    [sha256.Size]byte // SHA-256 of the metrics token
	hasToken bool
	pprof    bool
	log      *slog.Logger
}

// newOps builds the registry: the request histogram, the store's counters
// (models.Metrics, made here when the store has none yet; a second server
// over the same store shares them), the store's connection pool, and the Go
// runtime and process collectors.
func newOps(cfg Config, store *models.Store, log *slog.Logger) (*Ops, error) {
	o := &Ops{reg: prometheus.NewRegistry(), pprof: cfg.Pprof, log: log}
	allow := cfg.MetricsAllow
	if allow == nil {
		allow = []string{"127.0.0.0/8", "::1/128"}
	}
	for _, a := range allow {
		a = strings.TrimSpace(a)
		if a == "" || (a == "none" && len(allow) == 1) {
			continue
		}
		p, err := parsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("metrics allow-list: %q is not an address or CIDR", a)
		}
		o.allow = append(o.allow, p)
	}
	if cfg.MetricsToken != "" {
		if len(cfg.MetricsToken) < MinMetricsToken {
			return nil, fmt.Errorf("metrics token: use at least %d characters", MinMetricsToken)
		}
		o.token, o.hasToken = sha256.Sum256([]byte(cfg.MetricsToken)), true
	}
	o.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "payfuse_http_request_duration_seconds",
		Help:    "Time from a request's arrival to its handler's return, by route pattern, method and status class.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "method", "status"})
	if store.Metrics == nil {
		store.Metrics = models.NewMetrics()
	}
	sqlDB, err := store.DB.DB()
	if err != nil {
		return nil, err
	}
	for _, c := range []prometheus.Collector{
		o.requests,
		store.Metrics,
		collectors.NewDBStatsCollector(sqlDB, "payfuse"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := o.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	o.scrape = adaptor.HTTPHandler(promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	return o, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// observe times every request into the histogram. It runs outside the
// request logger, which has drawn any error by then, so the status is the
// one the client got. The route label is the routes table's pattern
// (/ledger/:id), never the raw path: a path no route matched is "unmatched".
// The method is one Fiber knows (it refuses others before any middleware).
func (o *Ops) observe(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	status := c.Response().StatusCode()
	if err != nil {
		status = fiber.StatusInternalServerError
		if fe, ok := err.(*fiber.Error); ok {
			status = fe.Code
		}
	}
	route, _ := c.Locals(routeKey).(string)
	switch {
	case route != "":
	case strings.HasPrefix(c.Path(), "/static/"):
		route = "/static/*"
	default:
		route = "unmatched"
	}
	o.requests.WithLabelValues(route, c.Method(), strconv.Itoa(status/100)+"xx").Observe(time.Since(start).Seconds())
	return err
}

// routeKey holds the pattern of the table route a request reached.
const routeKey = "payfuse.route"

// label marks a request as having reached the table route r, for observe.
// (Fiber's own c.Route() cannot tell a table route from a middleware
// registered on the same path.)
func (o *Ops) label(r Route) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Locals(routeKey, r.Path)
		return c.Next()
	}
}

// allowScrape is the access rule of Monitor routes: the metrics bearer token
// from anywhere, or a connection from an allowed address that did not come
// through a proxy. Anything else is 403.
//
// The address is the connection's own peer, never X-Forwarded-For: a
// request relayed by a proxy on an allowed address (a reverse proxy on the
// same host) carries a forwarding header and needs the token.
func (o *Ops) allowScrape(c *fiber.Ctx) error {
	if o.tokenOK(c.Get(fiber.HeaderAuthorization)) || o.addressOK(c) {
		return c.Next()
	}
	o.log.Warn("metrics refused", "ip", c.Context().RemoteIP().String(), "request_id", c.Locals("requestid"))
	c.Type("txt", "utf-8")
	return c.Status(fiber.StatusForbidden).SendString("403 forbidden: /metrics is open to the allowed addresses (--metrics-allow) and to the metrics token (--metrics-token)\n")
}

func (o *Ops) tokenOK(header string) bool {
	scheme, tok, ok := strings.Cut(header, " ")
	if !o.hasToken || !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], o.token[:]) == 1
}

func (o *Ops) addressOK(c *fiber.Ctx) bool {
	for _, h := range []string{fiber.HeaderXForwardedFor, "Forwarded", "X-Real-Ip"} {
		if c.Get(h) != "" {
			return false
		}
	}
	peer, ok := netip.AddrFromSlice(c.Context().RemoteIP())
	if !ok {
		return false
	}
	peer = peer.Unmap()
	for _, p := range o.allow {
		if p.Contains(peer) {
			return true
		}
	}
	return false
}

// Metrics serves the registry in the Prometheus text format.
func (o *Ops) Metrics(c *fiber.Ctx) error { return o.scrape(c) }

// pprofProfiles are the profiles /debug/pprof/NAME serves. The command line
// (pprof's "cmdline") is left out: it may carry a database password.
var pprofProfiles = map[string]http.Handler{
	"":             http.HandlerFunc(pprof.Index),
	"profile":      http.HandlerFunc(pprof.Profile),
	"trace":        http.HandlerFunc(pprof.Trace),
	"symbol":       http.HandlerFunc(pprof.Symbol),
	"allocs":       pprof.Handler("allocs"),
	"block":        pprof.Handler("block"),
	"goroutine":    pprof.Handler("goroutine"),
	"heap":         pprof.Handler("heap"),
	"mutex":        pprof.Handler("mutex"),
	"threadcreate": pprof.Handler("threadcreate"),
}

// Pprof serves the Go profiler under /debug/pprof/ when serve --pprof turned
// it on (the routes table lets only admins reach it); otherwise 404.
func (o *Ops) Pprof(c *fiber.Ctx) error {
	if !o.pprof {
		return fiber.ErrNotFound
	}
	name := strings.Trim(c.Params("*"), "/")
	h, ok := pprofProfiles[name]
	if !ok {
		return fiber.ErrNotFound
	}
	if name == "" && !strings.HasSuffix(c.Path(), "/") {
		return c.Redirect("/debug/pprof/", fiber.StatusFound) // the index's links are relative
	}
	if secs := c.QueryInt("seconds", 0); (name == "profile" || name == "trace") && secs > maxProfileSeconds {
		return fiber.NewError(fiber.StatusBadRequest, fmt.Sprintf("seconds: at most %d", maxProfileSeconds))
	}
	return adaptor.HTTPHandler(h)(c)
}

// noSessionPath reports whether path is a probe or the metrics scrape: they
// neither read nor set the session cookie.
func noSessionPath(path string) bool {
	switch strings.TrimSuffix(strings.ToLower(path), "/") {
	case "/healthz", "/readyz", "/metrics":
		return true
	}
	return false
}
