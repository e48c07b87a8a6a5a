package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"payfuse/models"
)

func TestUserManagementScenarios(t *testing.T) {
	srv, store := newServer(t)
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	admin := loggedIn(t, srv, "boss", "bosses password")
	admin.header.Set("Accept-Language", "en")

	// Create: field errors come back next to the fields, nothing is stored.
	r := admin.post("/users", url.Values{"username": {"X!"}, "password": {"short"}, "role": {"operator"}, "merchants": {"ok_1, bad!code"}})
	if r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("invalid create: %d", r.StatusCode)
	}
	for _, msg := range []string{"3–64 characters", "at least 12 characters", "Merchant codes are"} {
		if !strings.Contains(r.Body, msg) {
			t.Errorf("invalid create: the page lacks %q", msg)
		}
	}
	if n, _ := store.CountUsers(); n != 1 {
		t.Fatal("an invalid form stored a user")
	}
	r = admin.post("/users", url.Values{"username": {"Opal"}, "password": {"opals first pass"}, "role": {"operator"}, "merchants": {"shop_sh,SHOP_BJ"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %d", r.StatusCode)
	}
	loc := r.Header.Get("Location")
	id, _ := strconv.ParseUint(strings.TrimPrefix(loc, "/users/"), 10, 64)
	detail := admin.get(loc)
	if !strings.Contains(detail.Body, "User opal created") || !strings.Contains(detail.Body, "SHOP_BJ, SHOP_SH") {
		t.Fatal("the detail page does not confirm the new user and scope")
	}
	// List with search and role filter.
	if b := admin.get("/users?q=OP&role=operator").Body; !strings.Contains(b, "hover:underline\">opal</a>") || strings.Contains(b, "hover:underline\">boss</a>") {
		t.Error("search did not find just opal")
	}
	if b := admin.get("/users?q=zzz").Body; !strings.Contains(b, "No users match") {
		t.Error("empty search has no empty state")
	}

	// The new user signs in; the admin resets the password: old sessions end, the new one is shown once.
	op := newClient(t, srv)
	op.login("opal", "opals first pass")
	r = admin.post(loc+"/reset-password", nil)
	m := regexp.MustCompile(`id="issued-password"[^>]*>([^<]+)<`).FindStringSubmatch(r.Body)
	if r.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("reset: %d, password shown: %v", r.StatusCode, m != nil)
	}
	if r := op.get("/"); r.StatusCode != http.StatusSeeOther {
		t.Fatal("the user's session survived the reset")
	}
	op = newClient(t, srv)
	if r := op.post("/login", url.Values{"username": {"opal"}, "password": {strings.TrimSpace(m[1])}}); r.Header.Get("Location") != "/account" {
		t.Fatalf("sign-in with the reset password went to %q, want /account", r.Header.Get("Location"))
	}
	if strings.Contains(admin.get(loc).Body, strings.TrimSpace(m[1])) {
		t.Fatal("the issued password is shown again")
	}

	// Sessions: the admin sees and ends one.
	sessions, _ := store.ListSessions(id)
	if len(sessions) != 1 {
		t.Fatalf("%d sessions", len(sessions))
	}
	if !strings.Contains(admin.get(loc).Body, "/sessions/"+strconv.FormatUint(sessions[0].ID, 10)+"/revoke") {
		t.Fatal("the user page does not offer to end the session")
	}
	admin.post(loc+"/sessions/"+strconv.FormatUint(sessions[0].ID, 10)+"/revoke", nil)
	if r := op.get("/account"); r.StatusCode != http.StatusSeeOther {
		t.Fatal("the ended session still works")
	}

	// Disable ends sessions and blocks sign-in; enable restores it.
	op = newClient(t, srv)
	op.post("/login", url.Values{"username": {"opal"}, "password": {strings.TrimSpace(m[1])}})
	admin.post(loc+"/disable", nil)
	if r := op.get("/account"); r.StatusCode != http.StatusSeeOther {
		t.Fatal("a disabled user's session still works")
	}
	if r := newClient(t, srv).post("/login", url.Values{"username": {"opal"}, "password": {strings.TrimSpace(m[1])}}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("disabled user signed in: %d", r.StatusCode)
	}
	admin.post(loc+"/enable", nil)
	if r := newClient(t, srv).post("/login", url.Values{"username": {"opal"}, "password": {strings.TrimSpace(m[1])}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("enabled user cannot sign in: %d", r.StatusCode)
	}

	// Role change with a bad scope is refused with a message; a good one is saved.
	if r := admin.post(loc, url.Values{"role": {"finance"}, "merchants": {"no spaces allowed!"}}); r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad scope: %d", r.StatusCode)
	}
	admin.post(loc, url.Values{"role": {"finance"}, "merchants": {"SHOP_GZ"}})
	u, _ := store.GetUser(id)
	if u.Role != models.RoleFinance || strings.Join(u.Merchants, ",") != "SHOP_GZ" {
		t.Fatalf("after update: %s %v", u.Role, u.Merchants)
	}
	// An admin cannot lock themselves out.
	me, _ := store.GetUserByUsername("boss")
	admin.post("/users/"+strconv.FormatUint(me.ID, 10), url.Values{"role": {"operator"}})
	if me2, _ := store.GetUser(me.ID); me2.Role != models.RoleAdmin {
		t.Fatal("the admin demoted themselves")
	}

	// The audit log shows all of it, filterable, without passwords.
	audit := admin.get("/audit?actor=boss").Body
	for _, want := range []string{"User created</span>", "Password reset</span>", "User disabled</span>", "User enabled</span>", "Access changed</span>", "Session ended</span>"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit log lacks %q", want)
		}
	}
	if strings.Contains(audit, "opals first pass") || strings.Contains(audit, strings.TrimSpace(m[1])) || strings.Contains(audit, "$argon2id") {
		t.Error("the audit log shows a password")
	}
	failed := admin.get("/audit?action=login.failure").Body
	if !strings.Contains(failed, "Sign-in failed</span>") || strings.Contains(failed, "User created</span>") {
		t.Error("action filter")
	}
	if b := admin.get("/audit?from=yesterday").Body; !strings.Contains(b, "YYYY-MM-DD") {
		t.Error("a bad date is not explained")
	}
}

func TestAuditPagingAcrossManyRecords(t *testing.T) {
	srv, store := newServer(t)
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	for i := 0; i < 120; i++ {
		store.Audit(models.Actor{Name: "bulk"}, models.AuditEvent{Action: models.ActLocaleChange, Detail: "entry " + strconv.Itoa(i)})
	}
	admin := loggedIn(t, srv, "boss", "bosses password")
	next := "/audit?actor=bulk"
	seen := 0
	for pages := 0; next != "" && pages < 10; pages++ {
		b := admin.get(next).Body
		seen += strings.Count(b, "entry ")
		m := regexp.MustCompile(`href="(/audit\?[^"]*before=[^"]*)" class="btn-secondary" rel="next"`).FindStringSubmatch(b)
		next = ""
		if m != nil {
			next = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if seen != 120 {
		t.Fatalf("paged through %d entries, want 120", seen)
	}
}
