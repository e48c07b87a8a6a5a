package web_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"payfuse/models"
	"payfuse/web"
)

// chromiumPath is where Debian installs Chromium; CI installs it there too.
const chromiumPath = "/usr/bin/chromium"

const (
	// e2eTimeout bounds the whole browser session; the browser is killed when it ends.
	e2eTimeout = 90 * time.Second
	// stepTimeout bounds one step, so a stuck step fails with a page dump
	// while the browser still answers.
	stepTimeout = 15 * time.Second
)

// TestBrowserFoundation drives the real console in Chromium through the first
// things people do: sign in, create an operator, sign out, the operator's forced
// password change, what the operator's role lets them see, and the language switch.
//
// It runs only with PAYFUSE_E2E=1. With PAYFUSE_E2E_SHOTS=<dir> it also saves a
// full-page PNG of each key page there, for a human to look at.
func TestBrowserFoundation(t *testing.T) {
	if os.Getenv("PAYFUSE_E2E") != "1" {
		t.Skip("browser test: set PAYFUSE_E2E=1 (needs Debian's chromium at /usr/bin/chromium)")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("PAYFUSE_E2E=1 but Chromium is not usable at %s: %v", chromiumPath, err)
	}

	base := startServer(t)
	b := newBrowser(t, base)

	// Anonymous visitors land on the sign-in form.
	b.navigate("open /", "/", 200)
	b.wantPath("/login")
	b.wait("sign-in form", `form[action="/login"] input[name="username"]`)
	b.wantHTMLLang("en")
	b.shot("01-login")

	b.login("admin", "correct horse battery", "/")
	b.wait("dashboard sidebar", `aside nav`)
	if links := b.sidebarLinks(); !slices.Contains(links, "/users") {
		b.failf("admin sidebar", "want a link to /users, sidebar links are %q", links)
	}
	b.shot("02-dashboard-admin")

	b.navigate("open the users list", "/users", 200)
	b.wait("users list", `main table`)
	if text := b.text("users list", `main`); !strings.Contains(text, "admin") {
		b.failf("users list", "want the admin account listed, main shows %q", clip(text))
	}
	b.shot("03-users-list")
	b.noSidewaysScroll("users list")

	// The admin creates an operator for one merchant.
	b.navigate("open the new-user form", "/users/new", 200)
	b.wait("new-user form", `form[action="/users"] input[name="username"]`)
	b.do("fill the new-user form",
		chromedp.SendKeys(chromedp.CSS(`form[action="/users"] input[name="username"]`), "opal"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/users"] input[name="password"]`), "operator password 1"),
		chromedp.SetValue(chromedp.CSS(`form[action="/users"] select[name="role"]`), "operator"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/users"] input[name="merchants"]`), "SHOP_SH"),
	)
	b.shot("04-user-new")
	b.submit("create the user", `form[action="/users"] button[type="submit"]`, 200)
	if p := b.path(); !regexp.MustCompile(`^/users/[0-9]+$`).MatchString(p) {
		b.failf("create the user", "want to land on /users/<id>, got %s", p)
	}
	if flash := b.flash("user created"); !strings.Contains(flash, "opal") {
		b.failf("user created", "want a success message naming opal, got %q", flash)
	}
	if role := b.value("user detail", `select[name="role"]`); role != "operator" {
		b.failf("user detail", "role shows %q, want operator", role)
	}
	if m := b.value("user detail", `input[name="merchants"]`); m != "SHOP_SH" {
		b.failf("user detail", "merchants show %q, want SHOP_SH", m)
	}
	b.shot("05-user-detail")

	// Sign out from the user menu.
	b.do("open the user menu", chromedp.Click(chromedp.CSS(`[data-toggle="user-menu"]`)))
	b.wait("user menu", `form[action="/logout"] button[type="submit"]`)
	b.submit("sign out", `form[action="/logout"] button[type="submit"]`, 200)
	b.wantPath("/login")
	b.wait("sign-in form after sign-out", `form[action="/login"] input[name="username"]`)

	// The operator must replace the password the admin chose.
	b.login("opal", "operator password 1", "/account")
	b.wait("password form", `form[action="/account/password"] input[name="current"]`)
	if alert := b.text("forced change notice", `[role="alert"]`); alert == "" {
		b.failf("forced change notice", "want a notice that the password must be changed")
	}
	b.shot("06-account-forced")
	b.noSidewaysScroll("account page")
	b.do("fill the password form",
		chromedp.SendKeys(chromedp.CSS(`form[action="/account/password"] input[name="current"]`), "operator password 1"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/account/password"] input[name="new"]`), "operator password 22"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/account/password"] input[name="confirm"]`), "operator password 22"),
	)
	b.submit("change the password", `form[action="/account/password"] button[type="submit"]`, 200)
	b.wantPath("/account")
	if flash := b.flash("password changed"); !strings.Contains(flash, "Password changed") {
		b.failf("password changed", "want a success message, got %q", flash)
	}
	if n := evaluate[int](b, "forced notice gone", `document.querySelectorAll('[role="alert"]').length`); n != 0 {
		b.failf("forced notice gone", "the must-change notice is still shown after the change")
	}

	// The operator's sidebar offers only what the role may use.
	b.navigate("operator dashboard", "/", 200)
	b.wantPath("/")
	b.wait("operator sidebar", `aside nav`)
	links := b.sidebarLinks()
	for _, forbidden := range []string{"/users", "/audit"} {
		if slices.Contains(links, forbidden) {
			b.failf("operator sidebar", "operator sees a link to %s; sidebar links are %q", forbidden, links)
		}
	}
	if !slices.Contains(links, "/ledger") {
		b.failf("operator sidebar", "want a link to /ledger, sidebar links are %q", links)
	}

	// Admin pages answer 403 to an operator, as a page and to a script.
	b.navigate("operator opens /users", "/users", 403)
	b.wantPath("/users")
	if text := b.text("403 page", `main`); !strings.Contains(text, "403") {
		b.failf("403 page", "want the 403 error page, main shows %q", clip(text))
	}
	b.shot("07-forbidden")
	if status := evaluate[int](b, "fetch /users", `fetch("/users", {credentials: "same-origin"}).then(r => r.status)`, chromedp.EvalAwaitPromise); status != 403 {
		b.failf("fetch /users", "status %d, want 403", status)
	}

	// The language switch submits on change (static/app.js) and sticks.
	// SetValue fires the input and change events itself, as a user's pick
	// does; firing change again would submit the form twice.
	b.navigate("back to the dashboard", "/", 200)
	b.wait("language switch", `form[action="/lang"] select#lang-select`)
	b.response("switch to Chinese", 200, chromedp.SetValue(chromedp.CSS(`select#lang-select`), "zh-CN"))
	b.wantPath("/")
	b.wantHTMLLang("zh-CN")
	b.wait("Chinese sidebar", `aside nav`)
	nav := b.text("Chinese sidebar", `aside nav`)
	for _, label := range []string{"仪表盘", "交易流水"} {
		if !strings.Contains(nav, label) {
			b.failf("Chinese sidebar", "want %q in the sidebar, it shows %q", label, clip(nav))
		}
	}
	b.shot("08-dashboard-operator-zh")
	b.navigate("another page after the switch", "/ledger", 200)
	b.wantHTMLLang("zh-CN")

	b.checkConsole()
}

// noSidewaysScroll fails when the page is wider than the window: tables must
// stay inside their cards.
func (b *browser) noSidewaysScroll(step string) {
	b.t.Helper()
	if w := evaluate[[]int](b, step, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		b.failf(step, "the page is %d px wide in a %d px window", w[0], w[1])
	}
}

// startServer runs the console on a free local port over a fresh database
// holding one admin, enrolled in two-factor sign-in with a secret the tests
// know (and whatever setup adds), and returns its base URL.
func startServer(t *testing.T, setup ...func(*models.Store)) string {
	t.Helper()
	return startServerWith(t, nil, setup...)
}

// startServerWith is startServer with a say in the server's configuration.
func startServerWith(t *testing.T, configure func(*web.Config), setup ...func(*models.Store)) string {
	t.Helper()
	store := models.OpenTest(t)
	models.MustCreateUser(t, store, "admin", "correct horse battery", models.RoleAdmin)

	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	cfg := web.Config{
		Addr: "127.0.0.1:0", MasterKey: key,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if configure != nil {
		configure(&cfg)
	}
	srv, err := web.New(cfg, store)
	if err != nil {
		t.Fatalf("web.New: %v", err)
	}
	for _, f := range setup { // after New, which gives the store its vault
		f(store)
	}
	enrolForTest(t, store, "admin")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("server did not shut down within 15s")
		}
	})
	base := "http://" + ln.Addr().String()
	serverStores.Store(base, store)
	t.Cleanup(func() { serverStores.Delete(base) })
	return base
}

// serverStores maps a test server's base URL to its store, so the browser can
// compute the codes its users' authenticators would show.
var serverStores sync.Map

// enrolForTest gives a user a second factor through the store, as the
// enrolment page would, confirming it with the code of the previous time step
// (so the current and next codes stay usable), and remembers the secret.
func enrolForTest(t *testing.T, store *models.Store, username string) {
	t.Helper()
	u, err := store.GetUserByUsername(username)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := store.PendingTOTP(u.ID)
	if err != nil {
		t.Fatal(err)
	}
	code, err := models.TOTPCode(secret, models.TOTPStep(store.Now())-1, models.TOTPDigits)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.ConfirmTOTP(models.SystemActor, u.ID, code); err != nil {
		t.Fatalf("enrol %s: %v", username, err)
	}
	rememberTOTP(store, username, secret)
}

// browser is one Chromium tab pointed at the console. Its methods fail the
// test with the page's address and text, so a failure says what a user saw.
type browser struct {
	t     *testing.T
	ctx   context.Context // the tab; steps derive their own deadline from it
	base  string
	shots string // folder for screenshots, "" for none

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	profile := t.TempDir() // made before the browser's cleanup, so removed after it
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.Env("LANGUAGE=en_US", "LANG=en_US.UTF-8"),
		// Wide enough for the desktop layout: the sidebar stays in view.
		chromedp.WindowSize(1280, 900),
	}
	root, cancelRoot := context.WithTimeout(context.Background(), e2eTimeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(root, opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for Chromium to exit
		cancelRoot()
	})

	b := &browser{t: t, ctx: tabCtx, base: base, shots: os.Getenv("PAYFUSE_E2E_SHOTS")}
	if b.shots != "" {
		if err := os.MkdirAll(b.shots, 0o755); err != nil {
			t.Fatalf("PAYFUSE_E2E_SHOTS: %v", err)
		}
	}

	// The first call starts Chromium; its context is the tab's, which has
	// the overall deadline, so a hung browser cannot outlive the test.
	// The server picks the language from Accept-Language until the user
	// chooses one: ask for English so the first pages are predictable.
	if err := chromedp.Do(tabCtx,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
				Headers: network.Headers{"Accept-Language": "en-US,en;q=0.9"},
			})
			return err
		}),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, emulation.SetLocaleOverride, emulation.SetLocaleOverrideParams{Locale: "en_US"})
			return err
		}),
	); err != nil {
		t.Fatalf("start Chromium (%s): %v", chromiumPath, err)
	}

	messages := chromedp.Console(tabCtx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	return b
}

// step returns a context for one step: the step timeout, within the overall one.
func (b *browser) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, stepTimeout)
}

// do runs actions that cause no navigation.
func (b *browser) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.failf(step, "%v", err)
	}
}

// response runs actions that load a new page, waits for it to load and
// checks the HTTP status of the page the browser ends on (after redirects).
func (b *browser) response(step string, wantStatus int64, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, actions...)
	if err != nil {
		b.failf(step, "%v", err)
	}
	if resp == nil {
		b.failf(step, "no HTTP response for the page")
	}
	if resp.Status != wantStatus {
		b.failf(step, "HTTP %d for %s, want %d", resp.Status, resp.URL, wantStatus)
	}
}

// navigate opens path and checks the final page's status.
func (b *browser) navigate(step, path string, wantStatus int64) {
	b.t.Helper()
	b.response(step, wantStatus, chromedp.Navigate(b.base+path))
}

// submit clicks a form's submit button and checks the page it leads to.
func (b *browser) submit(step, button string, wantStatus int64) {
	b.t.Helper()
	b.response(step, wantStatus, chromedp.Click(chromedp.CSS(button)))
}

// login signs in on the sign-in page the browser is on and checks where it
// lands. A user with a second factor the tests know (the admin) types the
// code their authenticator would show, then passes a step-up check, so the
// tests can go straight to dangerous actions (the two-factor browser test
// signs in by hand instead).
func (b *browser) login(username, password, wantPath string) {
	b.t.Helper()
	if b.signIn(username, password) {
		b.stepUp(username, password, wantPath)
	}
	b.wantPath(wantPath)
}

// signIn fills in the sign-in form and, when the console asks for a code,
// the code; it reports whether it asked.
func (b *browser) signIn(username, password string) bool {
	b.t.Helper()
	step := "sign in as " + username
	b.wait(step, `form[action="/login"] input[name="username"]`)
	b.do(step,
		chromedp.SendKeys(chromedp.CSS(`form[action="/login"] input[name="username"]`), username),
		chromedp.SendKeys(chromedp.CSS(`form[action="/login"] input[name="password"]`), password),
	)
	b.submit(step, `form[action="/login"] button[type="submit"]`, 200)
	if b.path() != "/login/2fa" {
		return false
	}
	b.wait(step+": code", `form[action="/login/2fa"] input[name="code"]`)
	b.do(step+": code", chromedp.SendKeys(chromedp.CSS(`form[action="/login/2fa"] input[name="code"]`), b.totpCode(username)))
	b.submit(step+": code", `form[action="/login/2fa"] button[type="submit"]`, 200)
	return true
}

// stepUp passes the step-up check through its form and lands on next.
func (b *browser) stepUp(username, password, next string) {
	b.t.Helper()
	step := "step-up as " + username
	b.navigate(step, "/account/step-up?next="+url.QueryEscape(next), 200)
	b.fillStepUp(username, password)
	b.submit(step, `form[action="/account/step-up"] button[type="submit"]`, 200)
}

// fillStepUp types the password and the code into the step-up form on the page.
func (b *browser) fillStepUp(username, password string) {
	b.t.Helper()
	step := "step-up form"
	b.wait(step, `form[action="/account/step-up"] input[name="password"]`)
	b.do(step,
		chromedp.SendKeys(chromedp.CSS(`form[action="/account/step-up"] input[name="password"]`), password),
		chromedp.SendKeys(chromedp.CSS(`form[action="/account/step-up"] input[name="code"]`), b.totpCode(username)),
	)
}

// totpCode is a code the console accepts now for the user (see nextTOTP).
func (b *browser) totpCode(username string) string {
	b.t.Helper()
	v, ok := serverStores.Load(b.base)
	if !ok {
		b.failf("authenticator code", "no store known for %s", b.base)
	}
	return nextTOTP(b.t, v.(*models.Store), username)
}

// wait waits until the element is visible.
func (b *browser) wait(step, sel string) {
	b.t.Helper()
	b.do(step, chromedp.WaitVisible(chromedp.CSS(sel)))
}

// text is the visible text of the first element matching sel.
func (b *browser) text(step, sel string) string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.failf(step, "read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// value is the value of the form field matching sel.
func (b *browser) value(step, sel string) string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		b.failf(step, "read %s: %v", sel, err)
	}
	return s
}

// flash is the text of the page's success message.
func (b *browser) flash(step string) string {
	b.t.Helper()
	b.wait(step, `main [role="status"]`)
	return b.text(step, `main [role="status"]`)
}

func evaluate[T any](b *browser, step, js string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, opts...))
	if err != nil {
		b.failf(step, "evaluate %s: %v", js, err)
	}
	return v
}

func (b *browser) path() string {
	b.t.Helper()
	return evaluate[string](b, "read the address", `location.pathname`)
}

func (b *browser) wantPath(want string) {
	b.t.Helper()
	if got := b.path(); got != want {
		b.failf("address", "on %s, want %s", got, want)
	}
}

func (b *browser) wantHTMLLang(want string) {
	b.t.Helper()
	if got := evaluate[string](b, "page language", `document.documentElement.lang`); got != want {
		b.failf("page language", `<html lang=%q>, want %q`, got, want)
	}
}

// sidebarLinks lists the href of every link in the sidebar.
func (b *browser) sidebarLinks() []string {
	b.t.Helper()
	return evaluate[[]string](b, "sidebar links",
		`Array.from(document.querySelectorAll("aside nav a[href]"), a => a.getAttribute("href"))`)
}

// shot saves a full-page PNG when PAYFUSE_E2E_SHOTS names a folder.
func (b *browser) shot(name string) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	ctx, cancel := b.step()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644)
	}
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err) // for review only; never fails the test
	}
}

// failf stops the test, saying which step failed, where the browser was and
// what the page showed.
func (b *browser) failf(step, format string, args ...any) {
	b.t.Helper()
	b.t.Fatalf("%s: %s\n%s", step, fmt.Sprintf(format, args...), b.pageDump())
}

// pageDump describes the current page; it uses a fresh short deadline, so it
// works after a step timed out (not after the overall deadline).
func (b *browser) pageDump() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	type pageInfo struct {
		Href string `json:"href"`
		Text string `json:"text"`
	}
	d, err := chromedp.Run(ctx, chromedp.Evaluate[pageInfo](
		`({href: location.href, text: document.body ? document.body.innerText : ""})`))
	if err != nil {
		return "(page not readable: " + err.Error() + ")"
	}
	out := "page: " + d.Href + "\n--- page text ---\n" + clip(d.Text) + "\n---"
	if msgs := b.consoleLines(); len(msgs) > 0 {
		out += "\nbrowser console:\n" + strings.Join(msgs, "\n")
	}
	return out
}

func (b *browser) consoleLines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := make([]string, 0, len(b.console))
	for _, m := range b.console {
		lines = append(lines, fmt.Sprintf("  [%s] %s (%s)", m.Type, m.String(), m.URL))
	}
	return lines
}

// checkConsole fails on script errors and Content-Security-Policy refusals
// (the console allows no inline script or style); other messages, such as the
// 403 the test asked for, are only logged.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.console {
		line := fmt.Sprintf("[%s] %s (%s)", m.Type, m.String(), m.URL)
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			b.t.Errorf("browser console: %s", line)
		} else {
			b.t.Logf("browser console: %s", line)
		}
	}
}

// clip keeps failure messages readable.
func clip(s string) string {
	const max = 1500
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
