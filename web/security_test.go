package web_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/models"
	"payfuse/web"
)

func TestCSRFIsRequiredOnEveryStateChange(t *testing.T) {
	srv, store := newServer(t)
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	newUser := url.Values{"username": {"eve"}, "password": {"eves password!!"}, "role": {"operator"}}

	// The sign-in form itself needs the pre-login token.
	anon := newClient(t, srv)
	anon.get("/login")
	if r := anon.do("POST", "/login", url.Values{"username": {"boss"}, "password": {"bosses password"}}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("login without token: %d, want 403", r.StatusCode)
	}
	c := loggedIn(t, srv, "boss", "bosses password")
	token := c.csrf()
	cases := []struct {
		name string
		form url.Values
		hdr  []string
		want int
	}{
		{"no token", newUser, nil, http.StatusForbidden},
		{"wrong token", withToken(newUser, "x"+token[1:]), nil, http.StatusForbidden},
		{"pre-login token of another browser", withToken(newUser, newClient(t, srv).csrf()), nil, http.StatusForbidden},
		{"cross-site fetch", withToken(newUser, token), []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"same-site but other origin", withToken(newUser, token), []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"foreign Origin", withToken(newUser, token), []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"htmx header token", newUser, []string{"X-CSRF-Token", token, "Sec-Fetch-Site", "same-origin", "Origin", "http://example.com"}, http.StatusSeeOther},
	}
	for _, tc := range cases {
		r := c.do("POST", "/users", tc.form, tc.hdr...)
		if r.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, r.StatusCode, tc.want)
		}
		if tc.want == http.StatusForbidden && !strings.Contains(r.Body, "Form expired") && !strings.Contains(r.Body, "表单已过期") {
			t.Errorf("%s: the 403 page does not explain the expired form", tc.name)
		}
	}
	if _, err := store.GetUserByUsername("eve"); err != nil {
		t.Fatal("the request with a valid header token did not create the user")
	}
	n, _ := store.CountUsers()
	if n != 2 {
		t.Fatalf("%d users; refused requests changed something", n)
	}
}

func withToken(v url.Values, token string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = vs
	}
	out.Set("_csrf", token)
	return out
}

func TestNoStateChangeOnGET(t *testing.T) {
	srv, _ := newServer(t)
	for _, rt := range srv.Routes {
		if rt.Method != "GET" {
			continue
		}
		for _, verb := range []string{"/logout", "/revoke", "/disable", "/enable", "/reset", "/delete", "/create"} {
			if strings.Contains(rt.Path, verb) {
				t.Errorf("GET %s looks like a state change", rt.Path)
			}
		}
	}
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	srv, _ := newServer(t)
	c := newClient(t, srv)
	for _, p := range []string{"/login", "/", "/no-such-page", "/users"} {
		r := c.get(p)
		csp := r.Header.Get("Content-Security-Policy")
		if csp == "" || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "no-store"} {
			if got := r.Header.Get(h); got != want {
				t.Errorf("%s: %s = %q, want %q", p, h, got, want)
			}
		}
	}
	r := c.get("/login")
	if strings.Contains(r.Body, "<script>") || strings.Contains(r.Body, " style=\"") || strings.Contains(r.Body, "onclick=") {
		t.Error("the page has inline script or style that the CSP would block")
	}
	css := c.get("/static/app.css")
	if css.StatusCode != 200 || !strings.Contains(css.Header.Get("Cache-Control"), "max-age") {
		t.Errorf("static CSS: %d, cache %q", css.StatusCode, css.Header.Get("Cache-Control"))
	}
	if r := c.get("/static/static.go"); r.StatusCode != http.StatusNotFound {
		t.Errorf("source file served from /static: %d", r.StatusCode)
	}
}

func TestErrorsNeverShowInternalText(t *testing.T) {
	var logs syncBuffer
	srv, store := newServer(t, func(c *web.Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	srv.App.Get("/test-error", func(c *fiber.Ctx) error { return errors.New("dial tcp 10.0.0.5:3306: password=hunter2") })
	srv.App.Get("/test-panic", func(c *fiber.Ctx) error { panic("secret internal state") })
	c := loggedIn(t, srv, "boss", "bosses password")
	for _, p := range []string{"/test-error", "/test-panic"} {
		r := c.get(p)
		if r.StatusCode != http.StatusInternalServerError {
			t.Errorf("%s: %d, want 500", p, r.StatusCode)
		}
		if strings.Contains(r.Body, "hunter2") || strings.Contains(r.Body, "secret internal") || strings.Contains(r.Body, "10.0.0.5") {
			t.Errorf("%s: internal text reached the user", p)
		}
		rid := r.Header.Get("X-Request-Id")
		if rid == "" || !strings.Contains(r.Body, rid) {
			t.Errorf("%s: the page does not show the request id %q", p, rid)
		}
		// The log keeps what the page hides, under the same request id.
		logged := false
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "request_id="+rid) && strings.Contains(line, "level=ERROR") &&
				(strings.Contains(line, "10.0.0.5") || strings.Contains(line, "secret internal state")) {
				logged = true
			}
		}
		if !logged {
			t.Errorf("%s: the error is not logged with request id %s:\n%s", p, rid, logs.String())
		}
	}
	r := c.get("/nothing-here")
	if r.StatusCode != http.StatusNotFound || !strings.Contains(r.Body, "404") {
		t.Errorf("unknown page: %d", r.StatusCode)
	}
	r = c.do("GET", "/healthz", nil)
	if r.StatusCode != 200 || !strings.Contains(r.Body, `"ok"`) {
		t.Errorf("healthz: %d %s", r.StatusCode, r.Body)
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	for _, secure := range []bool{false, true} {
		srv, store := newServer(t, func(c *web.Config) { c.SecureCookies = secure })
		models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
		c := newClient(t, srv)
		anonValue := ""
		token := c.csrf()
		for k, v := range c.cookies {
			if strings.Contains(k, "session") {
				anonValue = v
			}
		}
		r := c.do("POST", "/login", url.Values{"username": {"boss"}, "password": {"bosses password"}, "_csrf": {token}})
		var sess *http.Cookie
		for _, ck := range r.Cookies() {
			if strings.HasSuffix(ck.Name, "payfuse_session") {
				sess = ck
			}
		}
		if sess == nil {
			t.Fatalf("secure=%v: login set no session cookie", secure)
		}
		if !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Path != "/" || sess.Domain != "" {
			t.Errorf("secure=%v: cookie %+v", secure, sess)
		}
		if secure != sess.Secure || secure != strings.HasPrefix(sess.Name, "__Host-") {
			t.Errorf("secure=%v: Secure=%v name=%s", secure, sess.Secure, sess.Name)
		}
		if sess.Value == anonValue {
			t.Error("the session cookie did not change at sign-in")
		}
		// Fixation: the pre-login cookie does not become a session.
		old := newClient(t, srv)
		old.cookies[sess.Name] = anonValue
		if r := old.get("/"); r.StatusCode != http.StatusSeeOther {
			t.Errorf("the pre-login cookie opened a page: %d", r.StatusCode)
		}
		// A tampered cookie is ignored.
		bad := newClient(t, srv)
		bad.cookies[sess.Name] = sess.Value[:len(sess.Value)-4] + "AAAA"
		if r := bad.get("/"); r.StatusCode != http.StatusSeeOther {
			t.Errorf("a tampered cookie opened a page: %d", r.StatusCode)
		}
	}
}

func TestLogoutRevokesServerSide(t *testing.T) {
	srv, store := newServer(t)
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	c := loggedIn(t, srv, "boss", "bosses password")
	stolen := map[string]string{}
	for k, v := range c.cookies {
		stolen[k] = v
	}
	if r := c.post("/logout", nil); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	replay := newClient(t, srv)
	replay.cookies = stolen
	if r := replay.get("/"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("the cookie from before logout still works: %d", r.StatusCode)
	}
}

func TestPrivilegeChangeGivesSessionNewID(t *testing.T) {
	srv, store := newServer(t)
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	op := models.MustCreateUser(t, store, "opal", "opals password!", models.RoleOperator, "SHOP_SH")
	admin := loggedIn(t, srv, "boss", "bosses password")
	opc := loggedIn(t, srv, "opal", "opals password!")
	before := map[string]string{}
	for k, v := range opc.cookies {
		before[k] = v
	}
	r := admin.post("/users/"+strconv.FormatUint(op.ID, 10), url.Values{"role": {"finance"}, "merchants": {"SHOP_SH"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("role change: %d", r.StatusCode)
	}
	r = opc.get("/reports") // finance area now
	if r.StatusCode != http.StatusOK {
		t.Fatalf("after the role change /reports: %d", r.StatusCode)
	}
	if opc.cookies["payfuse_session"] == before["payfuse_session"] {
		t.Fatal("the session kept its id across a privilege change")
	}
	old := newClient(t, srv)
	old.cookies = before
	if r := old.get("/"); r.StatusCode != http.StatusSeeOther {
		t.Fatal("the pre-change session id still works")
	}
	if r := opc.get("/channels"); r.StatusCode != http.StatusForbidden {
		t.Fatalf("old role's area still open: %d", r.StatusCode)
	}
}

func TestLoginThrottledPerAddress(t *testing.T) {
	srv, store := newServer(t, func(c *web.Config) { c.LoginFailuresPerAddress = 3; c.LoginFailureWindow = time.Hour })
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	c := newClient(t, srv)
	for i, name := range []string{"a-user", "b-user", "c-user"} {
		r := c.post("/login", url.Values{"username": {name}, "password": {"wrong password"}})
		if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.Body, "Invalid username or password") && !strings.Contains(r.Body, "用户名或密码错误") {
			t.Fatalf("failure %d: %d", i, r.StatusCode)
		}
	}
	r := c.post("/login", url.Values{"username": {"boss"}, "password": {"bosses password"}})
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("after 3 failures from one address: %d (Retry-After %q)", r.StatusCode, r.Header.Get("Retry-After"))
	}
}

func TestLoginMessagesAreGeneric(t *testing.T) {
	srv, store := newServer(t)
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	u := models.MustCreateUser(t, store, "gone", "gones password!", models.RoleOperator)
	store.SetUserDisabled(models.SystemActor, u.ID, true)
	c := newClient(t, srv)
	c.header.Set("Accept-Language", "en")
	var bodies []string
	for _, creds := range [][2]string{{"boss", "wrong password"}, {"nobody", "whatever password"}, {"gone", "gones password!"}} {
		r := c.post("/login", url.Values{"username": {creds[0]}, "password": {creds[1]}})
		i := strings.Index(r.Body, `role="alert"`)
		if i < 0 {
			t.Fatalf("%s: no error shown", creds[0])
		}
		bodies = append(bodies, r.Body[i:i+120])
	}
	if bodies[0] != bodies[1] || bodies[1] != bodies[2] {
		t.Fatalf("sign-in errors differ:\n%s", strings.Join(bodies, "\n"))
	}
}

func TestForcedPasswordChange(t *testing.T) {
	srv, store := newServer(t)
	_, err := store.CreateUser(models.SystemActor, models.NewUser{Username: "admin", Password: "generated password", Role: "admin", MustChangePassword: true})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, srv)
	r := c.post("/login", url.Values{"username": {"admin"}, "password": {"generated password"}})
	if r.Header.Get("Location") != "/account" {
		t.Fatalf("first sign-in went to %q, want /account", r.Header.Get("Location"))
	}
	for _, p := range []string{"/", "/users", "/audit"} {
		if r := c.get(p); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/account" {
			t.Errorf("%s before the change: %d → %q", p, r.StatusCode, r.Header.Get("Location"))
		}
	}
	r = c.post("/account/password", url.Values{"current": {"generated password"}, "new": {"my own password 1"}, "confirm": {"my own password 2"}})
	if r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("mismatched confirmation: %d", r.StatusCode)
	}
	r = c.post("/account/password", url.Values{"current": {"generated password"}, "new": {"short"}, "confirm": {"short"}})
	if r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("short password: %d", r.StatusCode)
	}
	r = c.post("/account/password", url.Values{"current": {"generated password"}, "new": {"my own password 1"}, "confirm": {"my own password 1"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("change: %d", r.StatusCode)
	}
	// Then an admin must enrol a second factor before anything else.
	if r := c.get("/users"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/account/2fa" {
		t.Fatalf("after the change /users: %d → %q, want the enrolment", r.StatusCode, r.Header.Get("Location"))
	}
	c.enrolTOTP("admin")
	if r := c.get("/users"); r.StatusCode != http.StatusOK {
		t.Fatalf("after the change /users: %d", r.StatusCode)
	}
	rows, _ := store.ListAudit(models.AuditFilter{Action: models.ActPasswordChange})
	if len(rows.Rows) != 1 {
		t.Fatal("password change not audited")
	}
}

func TestLanguageNegotiationAndSwitch(t *testing.T) {
	srv, store := newServer(t)
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	en := newClient(t, srv)
	en.header.Set("Accept-Language", "en-GB,en;q=0.9")
	if b := en.get("/login").Body; !strings.Contains(b, "Sign in to PayFuse") || !strings.Contains(b, `lang="en"`) {
		t.Error("English browser did not get English")
	}
	zh := newClient(t, srv)
	zh.header.Set("Accept-Language", "zh-TW,zh;q=0.9")
	if b := zh.get("/login").Body; !strings.Contains(b, "登录 PayFuse") {
		t.Error("Chinese browser did not get Chinese")
	}
	// The choice beats the header, and a signed-in user's choice is kept on their account.
	en.login("boss", "bosses password")
	if r := en.post("/lang", url.Values{"lang": {"zh-CN"}, "next": {"/users"}}); r.Header.Get("Location") != "/users" {
		t.Fatalf("switch redirected to %q", r.Header.Get("Location"))
	}
	if b := en.get("/users").Body; !strings.Contains(b, "用户管理") {
		t.Error("after switching, the page is not in Chinese")
	}
	u, _ := store.GetUserByUsername("boss")
	if u.Locale != "zh-CN" {
		t.Errorf("locale on the account = %q", u.Locale)
	}
	if r := en.post("/lang", url.Values{"lang": {"fr"}}); r.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown language: %d", r.StatusCode)
	}
	if r := en.post("/lang", url.Values{"lang": {"en"}, "next": {"//evil.example/x"}}); r.Header.Get("Location") != "/" {
		t.Errorf("open redirect: %q", r.Header.Get("Location"))
	}
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
