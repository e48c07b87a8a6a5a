package web_test

import (
	"bytes"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels/testkeys"
	"payfuse/flows/webhook"
	"payfuse/models"
	"payfuse/web"
)

// testClock is a store clock the test moves; it starts at the real time, so
// codes computed from it are ordinary TOTP codes.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func withClock(store *models.Store) *testClock {
	// Start on a step boundary, so the three codes of the window are fresh.
	now := time.Now().UTC().Truncate(models.TOTPPeriod)
	c := &testClock{t: now}
	store.Now = c.Now
	return c
}

func auditCount(t *testing.T, store *models.Store, action string) int {
	t.Helper()
	page, err := store.ListAudit(models.AuditFilter{Action: action, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Rows)
}

var recoveryRE = regexp.MustCompile(`<li>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</li>`)

// TestTwoFactorSignIn: an admin is sent to enrolment after the password, enrols
// through the page (QR code image, manual key, first code), gets recovery codes
// once; the next sign-in asks for a code on a second page bound to the
// pre-login cookie, and the session id is new after it.
func TestTwoFactorSignIn(t *testing.T) {
	srv, store := newServer(t)
	clk := withClock(store)
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	c := newClient(t, srv)
	c.header.Set("Accept-Language", "en")

	// First sign-in: no second factor yet, so the admin is sent to enrolment,
	// and every admin page sends them back there; sign-out still works.
	if loc := c.signIn("boss", "bosses password"); loc != "/account/2fa" {
		t.Fatalf("first sign-in went to %q, want the enrolment", loc)
	}
	for _, p := range []string{"/", "/users", "/channels", "/audit", "/account/step-up"} {
		if r := c.get(p); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/account/2fa" {
			t.Errorf("%s before enrolling: %d → %q", p, r.StatusCode, r.Header.Get("Location"))
		}
	}
	if r := c.get("/account"); r.StatusCode != http.StatusOK {
		t.Errorf("/account while enrolling: %d", r.StatusCode)
	}
	page := c.get("/account/2fa")
	if !strings.Contains(page.Body, `src="/account/2fa/qr.png"`) || !manualKeyRE.MatchString(page.Body) {
		t.Fatal("the enrolment page lacks the QR code or the manual key")
	}
	secret := strings.ReplaceAll(manualKeyRE.FindStringSubmatch(page.Body)[1], " ", "")
	if strings.Contains(page.Body, "secret="+secret) || strings.Contains(page.Body, "otpauth://") {
		t.Fatal("the page carries the secret in a URL")
	}
	qr := c.get("/account/2fa/qr.png")
	if qr.StatusCode != http.StatusOK || qr.Header.Get("Content-Type") != "image/png" || !strings.Contains(qr.Header.Get("Cache-Control"), "no-store") {
		t.Fatalf("QR code: %d %s %s", qr.StatusCode, qr.Header.Get("Content-Type"), qr.Header.Get("Cache-Control"))
	}
	if _, err := png.Decode(bytes.NewReader([]byte(qr.Body))); err != nil {
		t.Fatalf("QR code is not a PNG: %v", err)
	}
	if again := c.get("/account/2fa"); !strings.Contains(again.Body, manualKeyRE.FindStringSubmatch(page.Body)[1]) {
		t.Fatal("a reload of the enrolment page shows another key")
	}
	rememberTOTP(store, "boss", secret)
	if r := c.post("/account/2fa/enable", url.Values{"code": {"123456"}}); r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "wrong, expired or already used") {
		t.Fatalf("wrong first code: %d", r.StatusCode)
	}
	r := c.post("/account/2fa/enable", url.Values{"code": {c.totpCode("boss")}})
	codes := recoveryRE.FindAllStringSubmatch(r.Body, -1)
	if r.StatusCode != http.StatusOK || len(codes) != models.RecoveryCodeCount {
		t.Fatalf("enrol: %d, %d recovery codes shown", r.StatusCode, len(codes))
	}
	if r := c.get("/users"); r.StatusCode != http.StatusOK {
		t.Fatalf("/users after enrolling: %d", r.StatusCode)
	}
	if r := c.get("/account/2fa"); !strings.Contains(r.Body, `data-recovery-left>10<`) || manualKeyRE.MatchString(r.Body) {
		t.Fatal("the page of an enrolled user shows a key or the wrong count of recovery codes")
	}
	if auditCount(t, store, models.ActTwoFactorEnrol) != 1 {
		t.Fatal("enrolment not audited")
	}
	c.post("/logout", nil)

	// Second sign-in: the password leads to the code page, not a session.
	r = c.post("/login", url.Values{"username": {"boss"}, "password": {"bosses password"}, "next": {"/users"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login/2fa?next=%2Fusers" {
		t.Fatalf("password step: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	pending := c.cookies["payfuse_session"]
	if r := c.get("/users"); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login") {
		t.Fatalf("the pre-login cookie opens pages: %d", r.StatusCode)
	}
	if r := c.get("/login/2fa?next=%2Fusers"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `action="/login/2fa"`) {
		t.Fatalf("code page: %d", r.StatusCode)
	}
	if r := c.post("/login/2fa", url.Values{"code": {"000000"}, "next": {"/users"}}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong code: %d", r.StatusCode)
	}
	// Another browser without the pending sign-in cannot use the right code.
	other := newClient(t, srv)
	other.get("/login")
	if r := other.post("/login/2fa", url.Values{"code": {c.totpCode("boss")}}); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login?") {
		t.Fatalf("code without the password step: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	good := c.totpCode("boss")
	r = c.post("/login/2fa", url.Values{"code": {good}, "next": {"/users"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/users" {
		t.Fatalf("second step: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	session := c.cookies["payfuse_session"]
	if session == pending {
		t.Fatal("the session cookie did not change after the second step")
	}
	if r := c.get("/users"); r.StatusCode != http.StatusOK {
		t.Fatalf("signed in: /users %d", r.StatusCode)
	}
	// The pre-login cookie is spent: replaying it with a fresh code gets no session.
	replay := newClient(t, srv)
	replay.cookies = map[string]string{"payfuse_session": pending}
	clk.Add(models.TOTPPeriod)
	if r := replay.post("/login/2fa", url.Values{"code": {c.totpCode("boss")}}); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login?") {
		t.Fatalf("replayed pre-login cookie: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	// The code just used is refused in another sign-in (once only).
	c2 := newClient(t, srv)
	c2.post("/login", url.Values{"username": {"boss"}, "password": {"bosses password"}})
	if r := c2.post("/login/2fa", url.Values{"code": {good}}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed code: %d", r.StatusCode)
	}
	// A recovery code signs in, once.
	recovery := codes[4][1]
	if r := c2.post("/login/2fa", url.Values{"code": {recovery}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("recovery code: %d", r.StatusCode)
	}
	c3 := newClient(t, srv)
	c3.post("/login", url.Values{"username": {"boss"}, "password": {"bosses password"}})
	if r := c3.post("/login/2fa", url.Values{"code": {recovery}}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("recovery code used twice: %d", r.StatusCode)
	}
	if auditCount(t, store, models.ActTwoFactorRecovery) != 1 {
		t.Fatal("recovery code use not audited")
	}
	if r := c2.get("/account/2fa"); !strings.Contains(r.Body, `data-recovery-left>9<`) {
		t.Fatal("the page does not count the used recovery code")
	}
}

// TestStepUpGuardsDangerousActions walks every route marked StepUp: refused
// (sent to the step-up form, nothing done) without a fresh check, let through
// with one, refused again 10 minutes later.
func TestStepUpGuardsDangerousActions(t *testing.T) {
	srv, store := newServer(t)
	clk := withClock(store)
	setup := models.Actor{Name: "setup"}
	sh, _ := store.CreateMerchant(setup, models.MerchantInput{Code: "SHOP_SH", Name: "Shanghai"})
	acct, _, err := store.SaveAccount(setup, 0, models.AccountInput{MerchantID: sh.ID, Channel: "unionpay", Enabled: true, Values: testkeys.Credentials("unionpay", time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	ep, _, err := store.CreateWebhookEndpoint(setup, models.Scope{All: true},
		models.WebhookInput{MerchantCode: "SHOP_SH", Name: "sh-hook", URL: "https://hooks.example.com/sh", Enabled: true}, webhook.AllowList{})
	if err != nil {
		t.Fatal(err)
	}
	victim := models.MustCreateUser(t, store, "victim", "victims password", models.RoleOperator, "SHOP_SH")
	vc := newClient(t, srv)
	vc.signIn("victim", "victims password")
	vc.enrolTOTP("victim") // so that resetting their 2FA has something to reset
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	c := newClient(t, srv)
	c.signIn("boss", "bosses password")
	c.enrolTOTP("boss")
	c.header.Set("Accept-Language", "en")

	params := strings.NewReplacer("/channels/:id", "/channels/"+id(acct.ID), "/flows/webhooks/:id", "/flows/webhooks/"+id(ep.ID), "/users/:id", "/users/"+id(victim.ID))
	var routes []web.Route
	for _, r := range srv.Routes {
		if r.StepUp {
			routes = append(routes, r)
		}
	}
	// The actions the issue names, at least.
	want := []string{"POST /channels/:id", "POST /channels/:id/delete", "POST /flows/webhooks/:id/rotate", "POST /users/:id",
		"POST /users/:id/reset-password", "POST /users/:id/2fa/reset", "GET /channels/:id/edit"}
	for _, w := range want {
		found := false
		for _, r := range routes {
			found = found || r.Method+" "+r.Path == w
		}
		if !found {
			t.Errorf("%s is not marked StepUp", w)
		}
	}
	// Deleting the account goes last: the other channel routes need it.
	for i, r := range routes {
		if r.Path == "/channels/:id/delete" {
			routes = append(append(routes[:i:i], routes[i+1:]...), r)
			break
		}
	}

	refused := func(when string) {
		t.Helper()
		var total int64
		store.DB.Model(&models.AuditLog{}).Count(&total)
		for _, rt := range routes {
			path := params.Replace(rt.Path)
			var r resp
			if rt.Method == "GET" {
				r = c.get(path)
				if want := "/account/step-up?next=" + url.QueryEscape(path); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != want {
					t.Errorf("%s %s %s: %d → %q, want %q", when, rt.Method, path, r.StatusCode, r.Header.Get("Location"), want)
				}
				continue
			}
			form := url.Values{"_csrf": {c.csrf()}, "reason": {"test"}, "role": {"finance"}}
			r = c.do("POST", path, form, "Referer", "http://example.com/users/"+id(victim.ID)+"?tab=access")
			if want := "/account/step-up?resubmit=1&next=" + url.QueryEscape("/users/"+id(victim.ID)+"?tab=access"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != want {
				t.Errorf("%s %s %s: %d → %q, want %q", when, rt.Method, path, r.StatusCode, r.Header.Get("Location"), want)
			}
		}
		var after int64
		store.DB.Model(&models.AuditLog{}).Count(&after)
		if after != total {
			t.Errorf("%s: refused requests changed something (%d audit records became %d)", when, total, after)
		}
		// htmx requests are told to load the step-up page.
		r := c.do("POST", params.Replace("/flows/webhooks/:id/rotate"), url.Values{"_csrf": {c.csrf()}}, "HX-Request", "true")
		if r.Header.Get("HX-Redirect") == "" || !strings.HasPrefix(r.Header.Get("HX-Redirect"), "/account/step-up") {
			t.Errorf("%s: htmx request not redirected to the step-up: %d %v", when, r.StatusCode, r.Header)
		}
	}
	refused("without a check")

	// The step-up form: a wrong code fails (and is audited), the right one passes
	// and brings the user back where they were going.
	next := params.Replace("/channels/:id/edit")
	form := c.get("/account/step-up?next=" + url.QueryEscape(next))
	if !strings.Contains(form.Body, `name="code"`) || !strings.Contains(form.Body, `name="password"`) {
		t.Fatal("the step-up form of a user with 2FA lacks the password or the code")
	}
	if r := c.post("/account/step-up", url.Values{"password": {"bosses password"}, "code": {"000000"}, "next": {next}}); r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("step-up with a wrong code: %d", r.StatusCode)
	}
	if r := c.post("/account/step-up", url.Values{"password": {"not the password"}, "code": {c.totpCode("boss")}, "next": {next}}); r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("step-up with a wrong password: %d", r.StatusCode)
	}
	r := c.post("/account/step-up", url.Values{"password": {"bosses password"}, "code": {c.totpCode("boss")}, "next": {next}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != next {
		t.Fatalf("step-up: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	if auditCount(t, store, models.ActStepUp) != 1 || auditCount(t, store, models.ActStepUpFailure) != 2 {
		t.Fatal("step-ups not audited")
	}
	if r := c.get(next); r.StatusCode != http.StatusOK {
		t.Fatalf("edit form after the step-up: %d", r.StatusCode)
	}

	// Let through with a fresh check (each route does its work, or refuses its
	// input, but none sends the user to the step-up again).
	clk.Add(models.StepUpTTL - time.Minute)
	for _, rt := range routes {
		path := params.Replace(rt.Path)
		var r resp
		if rt.Method == "GET" {
			r = c.get(path)
		} else {
			r = c.post(path, url.Values{"reason": {"lost phone"}, "role": {"finance"}, "merchants": {"SHOP_SH"}})
		}
		if r.StatusCode == http.StatusForbidden || strings.HasPrefix(r.Header.Get("Location"), "/account/step-up") || r.StatusCode >= 500 {
			t.Errorf("fresh %s %s: %d → %q", rt.Method, path, r.StatusCode, r.Header.Get("Location"))
		}
	}
	if u, _ := store.GetUser(victim.ID); u.Role != models.RoleFinance || u.TwoFactor {
		t.Errorf("the role change or the 2FA reset did not happen: role %s, 2FA %v", u.Role, u.TwoFactor)
	}
	if _, err := store.GetAccount(models.Scope{All: true}, acct.ID); err == nil {
		t.Error("the account delete did not happen")
	}
	if auditCount(t, store, models.ActTwoFactorReset) != 1 || auditCount(t, store, models.ActWebhookRotate) != 1 {
		t.Error("the reset or the rotation is not audited")
	}

	// Ten minutes after the check, refused again.
	clk.Add(time.Minute)
	refused("10 minutes after the check")

	// A POST stopped for the check: after it, back to the form with a message.
	r = c.post("/account/step-up", url.Values{"password": {"bosses password"}, "code": {c.totpCode("boss")}, "next": {"/users/" + id(victim.ID)}, "resubmit": {"1"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/users/"+id(victim.ID) {
		t.Fatalf("step-up for a post: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	if b := c.get("/users/" + id(victim.ID)).Body; !strings.Contains(b, "submit the form again") {
		t.Error("no message asking to submit the form again")
	}
}

// TestStepUpWithoutSecondFactor: a user without 2FA (an operator, where it is
// not required) steps up with the password alone.
func TestStepUpWithoutSecondFactor(t *testing.T) {
	srv, store := newServer(t)
	setup := models.Actor{Name: "setup"}
	store.CreateMerchant(setup, models.MerchantInput{Code: "SHOP_SH", Name: "Shanghai"})
	ep, _, err := store.CreateWebhookEndpoint(setup, models.Scope{All: true},
		models.WebhookInput{MerchantCode: "SHOP_SH", Name: "sh-hook", URL: "https://hooks.example.com/sh", Enabled: true}, webhook.AllowList{})
	if err != nil {
		t.Fatal(err)
	}
	models.MustCreateUser(t, store, "opal", "opals password!", models.RoleOperator, "SHOP_SH")
	c := newClient(t, srv)
	if loc := c.signIn("opal", "opals password!"); loc != "/" {
		t.Fatalf("an operator was sent to %q", loc)
	}
	rotate := "/flows/webhooks/" + id(ep.ID) + "/rotate"
	if r := c.post(rotate, nil); !strings.HasPrefix(r.Header.Get("Location"), "/account/step-up") {
		t.Fatalf("rotate without a check: %d", r.StatusCode)
	}
	if b := c.get("/account/step-up?next=%2F").Body; strings.Contains(b, `name="code"`) {
		t.Fatal("the step-up asks a user without 2FA for a code")
	}
	if r := c.post("/account/step-up", url.Values{"password": {"opals password!"}, "next": {"/"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("password step-up: %d", r.StatusCode)
	}
	if r := c.post(rotate, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("rotate after the check: %d", r.StatusCode)
	}
}

// TestTwoFactorPolicyForEveryone: an admin requires 2FA for everyone (a
// step-up action); an operator is then sent to enrolment after sign-in.
func TestTwoFactorPolicyForEveryone(t *testing.T) {
	srv, store := newServer(t)
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	models.MustCreateUser(t, store, "opal", "opals password!", models.RoleOperator, "SHOP_SH")
	op := loggedIn(t, srv, "opal", "opals password!")
	if r := op.get("/ledger"); r.StatusCode != http.StatusOK {
		t.Fatalf("operator before the policy: %d", r.StatusCode)
	}
	admin := loggedIn(t, srv, "boss", "bosses password")
	if b := admin.get("/users").Body; !strings.Contains(b, `action="/users/2fa-policy"`) {
		t.Fatal("the users page lacks the policy form")
	}
	if r := admin.post("/users/2fa-policy", url.Values{"required": {"1"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("policy: %d", r.StatusCode)
	}
	if auditCount(t, store, models.ActTwoFactorPolicy) != 1 {
		t.Fatal("policy change not audited")
	}
	// The operator's live session is sent to enrolment too.
	if r := op.get("/ledger"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/account/2fa" {
		t.Fatalf("operator after the policy: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	fresh := newClient(t, srv)
	if loc := fresh.signIn("opal", "opals password!"); loc != "/account/2fa" {
		t.Fatalf("operator sign-in after the policy went to %q", loc)
	}
	fresh.enrolTOTP("opal")
	if r := fresh.get("/ledger"); r.StatusCode != http.StatusOK {
		t.Fatalf("operator after enrolling: %d", r.StatusCode)
	}
	// Disabling takes a current code; with the policy on, the user is sent back to enrol.
	if r := fresh.post("/account/2fa/disable", url.Values{"code": {"000000"}}); r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("disable with a wrong code: %d", r.StatusCode)
	}
	if r := fresh.post("/account/2fa/disable", url.Values{"code": {fresh.totpCode("opal")}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", r.StatusCode)
	}
	if auditCount(t, store, models.ActTwoFactorDisable) != 1 {
		t.Fatal("disable not audited")
	}
	if r := fresh.get("/ledger"); r.Header.Get("Location") != "/account/2fa" {
		t.Fatalf("after disabling under the policy: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
}

// TestLockoutAcrossBothSignInSteps: wrong passwords and wrong codes add up to
// the lockout, through the pages.
func TestLockoutAcrossBothSignInSteps(t *testing.T) {
	srv, store := newServer(t, func(c *web.Config) { c.LoginFailuresPerAddress = 100 })
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	loggedIn(t, srv, "boss", "bosses password") // enrols
	c := newClient(t, srv)
	for i := 0; i < models.LockThreshold; i++ {
		if i%2 == 0 {
			c.post("/login", url.Values{"username": {"boss"}, "password": {"wrong password!"}})
			continue
		}
		if r := c.post("/login", url.Values{"username": {"boss"}, "password": {"bosses password"}}); !strings.HasPrefix(r.Header.Get("Location"), "/login/2fa") {
			t.Fatalf("failure %d: the right password was refused: %d", i, r.StatusCode)
		}
		if r := c.post("/login/2fa", url.Values{"code": {"000000"}}); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong code: %d", r.StatusCode)
		}
	}
	if r := c.post("/login", url.Values{"username": {"boss"}, "password": {"bosses password"}}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after %d mixed failures: %d, want the account locked", models.LockThreshold, r.StatusCode)
	}
	if auditCount(t, store, models.ActUserLocked) != 1 {
		t.Fatal("lock not audited")
	}
}
