// Package handlers holds PayFuse's HTTP handlers: one file per resource,
// methods on Handlers, which carries the dependencies. Handlers parse input,
// call the store and render views; they never talk SQL.
package handlers

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"

	"payfuse/flows"
	"payfuse/flows/webhook"
	"payfuse/models"
	"payfuse/views"
)

// Handlers carries what every handler needs.
type Handlers struct {
	Store    *models.Store
	Sessions *SessionManager
	Log      *slog.Logger
	Limiter  *Limiter
	// APILimiter limits each API token's request rate (nil: no limit).
	APILimiter *RateLimiter
	// Flows runs flows on demand ("run now"); Serve runs their schedules.
	Flows *flows.Engine
	// WebhookAllow is the platform allow-list of webhook destinations (the
	// one the trigger_eval flow sends with): new endpoints are checked against it.
	WebhookAllow webhook.AllowList
	// CanAccess reports whether a role may GET a path; the router fills it from
	// its routes table so the navigation offers only what the role may open.
	CanAccess func(role models.Role, path string) bool
}

const identityKey = "payfuse.identity"

// IdentityOf returns the identity the session middleware attached.
func IdentityOf(c *fiber.Ctx) *Identity {
	if id, ok := c.Locals(identityKey).(*Identity); ok {
		return id
	}
	return &Identity{Lang: views.LangZH}
}

// actor describes the current user for the audit log.
func actor(c *fiber.Ctx) models.Actor {
	a := models.Actor{IP: ClientIP(c), RequestID: requestID(c)}
	if id := IdentityOf(c); id.User != nil {
		a.UserID, a.Name = id.User.ID, id.User.Username
	}
	return a
}

func requestID(c *fiber.Ctx) string {
	if v, ok := c.Locals("requestid").(string); ok {
		return v
	}
	return ""
}

// navItems is the sidebar, in order; each entry shows only to roles whose
// route table entry allows them to open it.
var navItems = []views.NavItem{
	{Path: "/", Label: "nav.dashboard", Icon: "home"},
	{Path: "/merchants", Label: "nav.merchants", Icon: "store"},
	{Path: "/channels", Label: "nav.channels", Icon: "link"},
	{Path: "/ledger", Label: "nav.ledger", Icon: "list"},
	{Path: "/imports", Label: "nav.imports", Icon: "upload"},
	{Path: "/reconcile", Label: "nav.reconcile", Icon: "scale"},
	{Path: "/flows", Label: "nav.flows", Icon: "flow"},
	{Path: "/kpis", Label: "nav.kpis", Icon: "gauge"},
	{Path: "/reports", Label: "nav.reports", Icon: "report"},
	{Path: "/alerts", Label: "nav.alerts", Icon: "bell"},
	{Path: "/api-tokens", Label: "apitokens.nav", Icon: "key"},
	{Path: "/users", Label: "nav.users", Icon: "users"},
	{Path: "/audit", Label: "nav.audit", Icon: "shield"},
}

// Frame builds the page frame for the current request.
func (h *Handlers) Frame(c *fiber.Ctx) *views.Frame {
	id := IdentityOf(c)
	f := &views.Frame{Lang: id.Lang, CSRF: id.CSRF, User: id.User, Path: c.Path(), RequestID: requestID(c)}
	if id.User != nil && h.CanAccess != nil {
		for _, item := range navItems {
			if h.CanAccess(id.User.Role, item.Path) {
				if item.Path == "/alerts" {
					item.Badge, _ = h.Store.CountOpenAlerts(id.User.Scope())
				}
				f.Nav = append(f.Nav, item)
			}
		}
	}
	if fl := h.Sessions.takeFlash(c); fl != nil {
		text := views.Translate(id.Lang, fl.Key)
		if fl.Arg != "" && strings.Contains(text, "%") {
			text = strings.Replace(text, "%s", fl.Arg, 1)
		}
		f.Flash = &views.Flash{Kind: fl.Kind, Text: text}
	}
	return f
}

// Render writes a templ component as the response with an explicit status.
// On a render error it returns the error, and the error handler draws a clean
// page in its place.
func (h *Handlers) Render(c *fiber.Ctx, status int, comp templ.Component) error {
	return h.RenderFrame(c, status, h.Frame(c), comp)
}

// RenderFrame renders with a frame the caller prepared.
func (h *Handlers) RenderFrame(c *fiber.Ctx, status int, f *views.Frame, comp templ.Component) error {
	ctx := views.WithFrame(context.Background(), f)
	c.Status(status)
	c.Type("html", "utf-8")
	if err := comp.Render(ctx, c.Response().BodyWriter()); err != nil {
		c.Response().ResetBody()
		return err
	}
	return nil
}

// flash stores a one-time message for the next page.
func (h *Handlers) flash(c *fiber.Ctx, kind, key string, arg ...string) {
	p := flashPayload{Kind: kind, Key: key}
	if len(arg) > 0 {
		p.Arg = arg[0]
	}
	h.Sessions.setFlash(c, p)
}

// redirect answers a form post with 303 See Other (so a reload does not post again).
func redirect(c *fiber.Ctx, to string) error {
	return c.Redirect(to, fiber.StatusSeeOther)
}

// paramID reads a positive numeric path parameter; anything else is a 404.
func paramID(c *fiber.Ctx, name string) (uint64, error) {
	id := parseID(c.Params(name))
	if id == 0 {
		return 0, fiber.ErrNotFound
	}
	return id, nil
}

// parseID reads a database id from a path, form or query value: a positive
// number within the signed 64-bit range the databases store ids in (the
// SQLite driver refuses larger ones with an error, not a miss). Anything
// else is 0, which no row has.
func parseID(s string) uint64 {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id > math.MaxInt64 {
		return 0
	}
	return id
}

// storeErr turns store errors into HTTP errors: not found stays 404.
func storeErr(err error) error {
	if errors.Is(err, models.ErrNotFound) {
		return fiber.ErrNotFound
	}
	return err
}

// SafeNext returns next when it is a local path (never another host), else "/".
func SafeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return next
}

// formList collects a form field that may repeat.
func formList(c *fiber.Ctx, name string) []string {
	var out []string
	c.Request().PostArgs().VisitAll(func(k, v []byte) {
		if string(k) == name {
			out = append(out, string(v))
		}
	})
	if len(out) == 0 {
		if v := c.FormValue(name); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// pageLinks builds a list's previous/next links: base plus the non-empty
// filters, plus page when past the first.
func pageLinks(base string, filters map[string]string, page, size int, total int64) (prev, next string) {
	link := func(p int) string {
		v := url.Values{}
		for k, val := range filters {
			if val != "" {
				v.Set(k, val)
			}
		}
		if p > 1 {
			v.Set("page", strconv.Itoa(p))
		}
		if len(v) == 0 {
			return base
		}
		return base + "?" + v.Encode()
	}
	if page > 1 {
		prev = link(page - 1)
	}
	if int64(page*size) < total {
		next = link(page + 1)
	}
	return prev, next
}
