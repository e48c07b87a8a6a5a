package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"

	"payfuse/flows"
	"payfuse/flows/kinds"
	"payfuse/handlers"
	"payfuse/models"
	"payfuse/static"
)

// Server is the configured console: the Fiber app, its handlers and routes.
type Server struct {
	App    *fiber.App
	H      *handlers.Handlers
	Routes []Route
	cfg    Config
	log    *slog.Logger
	ops    *Ops // the metrics registry, /metrics access and the profiler (metrics.go)
	// ShutdownGrace bounds a graceful stop (zero: DefaultShutdownGrace);
	// flows still running then get flows.DefaultStopGrace more to checkpoint.
	ShutdownGrace time.Duration
}

// New builds the console over store.
func New(cfg Config, store *models.Store) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	sessions, err := handlers.NewSessionManager(cfg.MasterKey, cfg.SecureCookies)
	if err != nil {
		return nil, err
	}
	if store.Vault == nil {
		if store.Vault, err = models.NewVault(cfg.MasterKey); err != nil {
			return nil, err
		}
	}
	if cfg.LoginFailuresPerAddress <= 0 {
		cfg.LoginFailuresPerAddress = 30
	}
	if cfg.LoginFailureWindow <= 0 {
		cfg.LoginFailureWindow = 15 * time.Minute
	}
	ops, err := newOps(cfg, store, log)
	if err != nil {
		return nil, err
	}
	engine := flows.New(store)
	engine.Logger = log
	engine.Alerter = kinds.StoreAlerter{Store: store}
	kinds.Register(engine, store, cfg.Flows)
	h := &handlers.Handlers{
		Store: store, Sessions: sessions, Log: log, Flows: engine, WebhookAllow: cfg.Flows.Webhooks.Allow,
		Limiter:    handlers.NewLimiter(cfg.LoginFailuresPerAddress, cfg.LoginFailureWindow),
		APILimiter: handlers.NewRateLimiter(handlers.DefaultAPIRate, time.Minute),
	}
	s := &Server{H: h, cfg: cfg, log: log, ops: ops}
	fc := fiber.Config{
		AppName:               "PayFuse",
		ErrorHandler:          s.handleError,
		DisableStartupMessage: true,
		BodyLimit:             4 << 20,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           2 * time.Minute,
		Immutable:             true, // strings from requests may outlive them (limiter keys, logs)
		EnableIPValidation:    true,
	}
	if len(cfg.TrustedProxies) > 0 {
		// Fiber believes X-Forwarded-Proto/-Host only from these; the client
		// address is clientIPs' (Fiber's ProxyHeader would take the header's
		// first address, which the client writes).
		fc.EnableTrustedProxyCheck = true
		fc.TrustedProxies = cfg.TrustedProxies
	}
	clientIP, err := newClientIPs(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	app := fiber.New(fc)
	app.Server().HeaderReceived = h.UploadRequestConfig // statement uploads only: larger body, longer read
	s.App = app

	app.Use(requestid.New())
	app.Use(clientIP.middleware)
	app.Use(ops.observe)
	app.Use(s.logRequests)
	app.Use(recover.New(recover.Config{EnableStackTrace: true, StackTraceHandler: func(c *fiber.Ctx, e any) {
		log.Error("panic", "panic", fmt.Sprint(e), "request_id", c.Locals("requestid"), "stack", string(debug.Stack()))
	}}))
	app.Use(s.securityHeaders)
	app.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(static.FS), MaxAge: 365 * 24 * 3600}))
	app.Use(func(c *fiber.Ctx) error {
		if handlers.IsAPIPath(c.Path()) || noSessionPath(c.Path()) {
			return c.Next() // the REST API authenticates by bearer token, probes and metrics not at all: no session, no cookies
		}
		return h.LoadIdentity(c)
	})

	app.Use(refuseInvalidText)

	s.Routes = Routes(h, ops)
	for _, r := range s.Routes {
		app.Add(r.Method, r.Path, ops.label(r), s.guard(r), r.Handler)
	}
	h.CanAccess = s.canAccess
	return s, nil
}

// canAccess reports whether role may GET path, by the routes table.
func (s *Server) canAccess(role models.Role, path string) bool {
	for _, r := range s.Routes {
		if r.Method == fiber.MethodGet && r.Path == path {
			return r.Access.Allows(role)
		}
	}
	return false
}

// Listen serves on cfg.Addr until ctx ends, then shuts down gracefully:
// requests in flight and running flows get up to ShutdownGrace (10 s) to finish.
func (s *Server) Listen(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go s.purgeSessions(ctx)
	if err := s.H.Flows.Start(ctx); err != nil {
		return fmt.Errorf("flow engine: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.App.Listener(ln) }()
	var err error
	shutdown := false
	select {
	case err = <-errc:
	case <-ctx.Done():
		s.log.Info("shutting down")
		shutdown = true
	}
	// Requests in flight and running flows share one grace period, so the
	// whole stop fits a process manager's (Docker waits 10 s, Kubernetes
	// 30 s): the flows take no new work from now on, finish within the grace
	// or are then cancelled — they checkpoint, are marked interrupted and
	// give up their leases (flows.Engine.Stop) — while the listener closes
	// and the requests in flight finish.
	grace := s.ShutdownGrace
	if grace <= 0 {
		grace = DefaultShutdownGrace
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	flowsStopped := make(chan error, 1)
	go func() { flowsStopped <- s.H.Flows.Stop(stopCtx) }()
	if shutdown {
		if err = s.App.ShutdownWithTimeout(grace); errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("shutdown: requests still in flight after %v were cut off (what they had not committed is rolled back)", grace)
		}
	}
	if serr := <-flowsStopped; serr != nil {
		s.log.Warn("flow engine did not stop cleanly", "err", serr)
	}
	s.log.Info("stopped")
	return err
}

// DefaultShutdownGrace is how long Serve lets requests in flight and
// running flows finish after its context ends.
const DefaultShutdownGrace = 10 * time.Second

func (s *Server) purgeSessions(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.H.Store.PurgeExpiredSessions(); err != nil {
				s.log.Warn("session purge failed", "err", err)
			} else if n > 0 {
				s.log.Info("expired sessions purged", "count", n)
			}
			// Notifications purge their nonces as they come; this catches quiet spells.
			if _, err := s.H.Store.PurgeNotifyNonces(time.Now()); err != nil {
				s.log.Warn("notification nonce purge failed", "err", err)
			}
			if _, err := s.H.Store.PurgeIdempotencyKeys(time.Now()); err != nil {
				s.log.Warn("idempotency key purge failed", "err", err)
			}
		}
	}
}

// logRequests logs one line per request. Errors from the chain are drawn by
// the error handler here, so the logged status is the one the client got.
func (s *Server) logRequests(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	if err != nil {
		if herr := s.handleError(c, err); herr != nil {
			c.Status(fiber.StatusInternalServerError)
		}
	}
	attrs := []any{
		"method", c.Method(), "path", c.Path(), "status", c.Response().StatusCode(),
		"duration_ms", float64(time.Since(start).Microseconds()) / 1000, "ip", handlers.ClientIP(c),
		"request_id", c.Locals("requestid"),
	}
	if id := handlers.IdentityOf(c); id.User != nil {
		attrs = append(attrs, "user", id.User.Username)
	}
	if auth := handlers.APIAuthOf(c); auth != nil {
		attrs = append(attrs, "token", auth.Token.Name)
	}
	if !strings.HasPrefix(c.Path(), "/static/") && !(noSessionPath(c.Path()) && c.Response().StatusCode() < 400) { // probes and scrapes: only failures
		s.log.Info("request", attrs...)
	}
	return nil
}

// contentSecurityPolicy allows only PayFuse's own files: no inline script,
// no framing, forms only to itself.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func (s *Server) securityHeaders(c *fiber.Ctx) error {
	c.Set("Content-Security-Policy", contentSecurityPolicy)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "same-origin")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
	c.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	if s.cfg.SecureCookies {
		c.Set(fiber.HeaderStrictTransportSecurity, "max-age=31536000")
	}
	if !strings.HasPrefix(c.Path(), "/static/") {
		c.Set(fiber.HeaderCacheControl, "no-store")
	}
	return c.Next()
}

// errUnauthenticated marks an API request without a valid session.
var errUnauthenticated = fiber.NewError(fiber.StatusUnauthorized, "sign in required")

// errCSRF marks a state change without a valid CSRF token or from another site.
var errCSRF = &fiber.Error{Code: fiber.StatusForbidden, Message: "csrf"}

// guard enforces a route's access rule, the forced password change, the
// two-factor enrolment its role requires, CSRF, and the step-up check.
func (s *Server) guard(r Route) fiber.Handler {
	if r.Webhook {
		return func(c *fiber.Ctx) error { return c.Next() }
	}
	if r.Access == Bearer {
		// A token, not the session: no role, CSRF or step-up checks apply.
		return s.H.APIGuard(r.Perm)
	}
	if r.Access == Monitor {
		return s.ops.allowScrape // an allowed address or the metrics token, never a session
	}
	return func(c *fiber.Ctx) error {
		id := handlers.IdentityOf(c)
		var role models.Role
		if id.User != nil {
			role = id.User.Role
		}
		if !r.Access.Allows(role) {
			if id.User != nil {
				return fiber.ErrForbidden
			}
			if r.API {
				return errUnauthenticated
			}
			next := c.OriginalURL()
			if c.Method() != fiber.MethodGet {
				next = "/"
			}
			loginURL := "/login?next=" + urlQueryEscape(next)
			if c.Get("HX-Request") == "true" {
				c.Set("HX-Redirect", loginURL)
				return c.SendStatus(fiber.StatusUnauthorized)
			}
			return c.Redirect(loginURL, fiber.StatusSeeOther)
		}
		if id.User != nil && id.User.MustChangePassword && !r.DuringPasswordChange {
			return c.Redirect("/account", fiber.StatusSeeOther)
		}
		if id.User != nil && !r.DuringEnrolment && r.Access != Public {
			must, err := s.H.Store.MustEnrol(id.User)
			if err != nil {
				return err
			}
			if must {
				return sendTo(c, "/account/2fa")
			}
		}
		if !isSafeMethod(c.Method()) {
			if err := checkCSRF(c, id.CSRF); err != nil {
				s.log.Warn("csrf refused", "path", c.Path(), "ip", handlers.ClientIP(c), "reason", err.Error(), "request_id", c.Locals("requestid"))
				return errCSRF
			}
		}
		if r.StepUp && id.User != nil && !s.H.Store.StepUpFresh(id.Session) {
			return sendTo(c, stepUpURL(c))
		}
		return c.Next()
	}
}

// sendTo redirects a page request, or tells htmx to load the page instead of
// swapping a fragment.
func sendTo(c *fiber.Ctx, to string) error {
	if c.Get("HX-Request") == "true" {
		c.Set("HX-Redirect", to)
		return c.SendStatus(fiber.StatusForbidden)
	}
	return c.Redirect(to, fiber.StatusSeeOther)
}

// stepUpURL is the step-up form that brings the user back afterwards: a GET
// to the page it asked for; a POST (never replayed: its form may hold
// secrets) to the same-site page its form was on, to be submitted again.
func stepUpURL(c *fiber.Ctx) string {
	if isSafeMethod(c.Method()) {
		return "/account/step-up?next=" + urlQueryEscape(c.OriginalURL())
	}
	back := "/"
	if ref, err := url.Parse(c.Get(fiber.HeaderReferer)); err == nil && ref.Host == string(c.Request().URI().Host()) && ref.Path != "" {
		back = handlers.SafeNext(ref.RequestURI())
	}
	return "/account/step-up?resubmit=1&next=" + urlQueryEscape(back)
}

func isSafeMethod(m string) bool {
	return m == fiber.MethodGet || m == fiber.MethodHead || m == fiber.MethodOptions
}

// handleError draws every error: a page in the user's language (or JSON for
// API routes) that never shows internal text; 5xx are logged with the request id.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	if handlers.IsAPIPath(c.Path()) {
		return s.H.WriteAPIError(c, err) // the API's one error shape
	}
	code := fiber.StatusInternalServerError
	var fe *fiber.Error
	if errors.As(err, &fe) {
		code = fe.Code
	}
	rid, _ := c.Locals("requestid").(string)
	if code >= 500 {
		s.log.Error("request failed", "err", err.Error(), "method", c.Method(), "path", c.Path(), "request_id", rid)
	}
	key := errorKey(code, err == error(errCSRF))
	if dcode, dkey, ok := databaseFault(c, err); ok {
		// Busy, full or unreachable (dbfaults.go): nothing changed; a friendly page, never a hang.
		code, key = dcode, dkey
	}
	c.Response().ResetBody()
	if strings.HasPrefix(c.Path(), "/api/") || c.Path() == "/healthz" || strings.Contains(c.Get(fiber.HeaderAccept), "application/json") && !strings.Contains(c.Get(fiber.HeaderAccept), "text/html") {
		return c.Status(code).JSON(fiber.Map{"error": fiber.Map{"code": key, "message": http.StatusText(code), "request_id": rid}})
	}
	f := s.H.Frame(c)
	if f.User == nil {
		f.Lang = visitorLang(c) // also when the session could not be read (the database is away)
	}
	if rerr := s.H.RenderFrame(c, code, f, errorPage(code, key, rid, f.User != nil)); rerr != nil {
		s.log.Error("error page failed", "err", rerr.Error(), "request_id", rid)
		c.Response().ResetBody()
		return c.Status(code).SendString(http.StatusText(code))
	}
	return nil
}

// refuseInvalidText answers 400 to a request whose query or form values are
// not UTF-8: nothing the console stores may hold them (MySQL refuses them
// outright, SQLite would keep bytes no page can show). Notifications are
// left to their channels' verifiers.
func refuseInvalidText(c *fiber.Ctx) error {
	if strings.HasPrefix(c.Path(), "/notify/") {
		return c.Next()
	}
	bad := false
	check := func(_, v []byte) {
		if !utf8.Valid(v) {
			bad = true
		}
	}
	c.Request().URI().QueryArgs().VisitAll(check)
	c.Request().PostArgs().VisitAll(check)
	// A small multipart form is parsed here (the handler reuses the parse);
	// a statement upload is left to its handler, which streams it and reads
	// only numeric fields besides the file.
	if strings.HasPrefix(string(c.Request().Header.ContentType()), fiber.MIMEMultipartForm) && c.Request().Header.ContentLength() >= 0 && c.Request().Header.ContentLength() < 1<<20 {
		if form, err := c.MultipartForm(); err == nil {
			for _, vs := range form.Value {
				for _, v := range vs {
					check(nil, []byte(v))
				}
			}
		}
	}
	if bad {
		return fiber.NewError(fiber.StatusBadRequest, "text that is not UTF-8")
	}
	return c.Next()
}
