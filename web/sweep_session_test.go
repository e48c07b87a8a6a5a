package web_test

import (
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"testing"
	"time"

	"payfuse/models"
	"payfuse/web"
)

// copyCookies is what a thief who copied a browser's cookies holds.
func copyCookies(c *client) map[string]string {
	out := map[string]string{}
	for k, v := range c.cookies {
		out[k] = v
	}
	return out
}

// signedIn reports whether cookies open a page that needs a session.
func signedIn(t *testing.T, srv *web.Server, cookies map[string]string) bool {
	t.Helper()
	c := newClient(t, srv)
	for k, v := range cookies {
		c.cookies[k] = v
	}
	r := c.get("/account")
	return r.StatusCode == http.StatusOK
}

// TestSweepSessionsEndWhenTheyShould adds to security_test.go and
// users_test.go the cases where a copied session cookie must stop working:
// the CSRF token a visitor had before signing in is not the session's; the
// user's own password change ends their other sessions and gives this one a
// new id; a disabled user's cookies stay dead when the account is enabled
// again; a cookie from before a sign-out stays dead after the next sign-in;
// an admin's "end all sessions" ends them all; a session idle past its
// limit, or older than its absolute limit, ends; and a cookie sealed under
// another master key opens nothing.
func TestSweepSessionsEndWhenTheyShould(t *testing.T) {
	srv, store := newServer(t)
	clk := withClock(store)
	boss := models.MustCreateUser(t, store, "boss", sweepAdminPass, models.RoleAdmin)
	_ = boss
	op := models.MustCreateUser(t, store, "opal", "opals password!", models.RoleOperator, "SHOP_SH")
	admin := loggedIn(t, srv, "boss", sweepAdminPass)
	// opal signs in with the password alone (no step-up check: none of
	// this needs one, and each check hashes the password again).
	opal := func() *client {
		c := newClient(t, srv)
		c.signIn("opal", "opals password!")
		return c
	}

	t.Run("fixation: the planted cookie and its CSRF token", func(t *testing.T) {
		attacker := newClient(t, srv)
		token := attacker.csrf() // the attacker's pre-login cookie and its token
		planted := copyCookies(attacker)
		victim := newClient(t, srv)
		for k, v := range planted {
			victim.cookies[k] = v
		}
		if r := victim.post("/login", url.Values{"username": {"opal"}, "password": {"opals password!"}}); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-in with a planted cookie: %d", r.StatusCode)
		}
		if victim.cookies["payfuse_session"] == planted["payfuse_session"] {
			t.Error("the session kept the planted cookie")
		}
		if signedIn(t, srv, planted) {
			t.Error("the planted cookie is signed in")
		}
		// The token the attacker knows does not pass for the victim's session.
		form := url.Values{"lang": {"en"}, "_csrf": {token}}
		if r := victim.do("POST", "/lang", form); r.StatusCode != http.StatusForbidden {
			t.Errorf("the pre-login CSRF token passed for the session: %d", r.StatusCode)
		}
		if victim.csrf() == token {
			t.Error("the session's CSRF token is the pre-login one")
		}
	})

	t.Run("own password change", func(t *testing.T) {
		here := opal()
		elsewhere := opal()
		before := copyCookies(here)
		r := here.post("/account/password", url.Values{"current": {"opals password!"}, "new": {"opals new password"}, "confirm": {"opals new password"}})
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("password change: %d", r.StatusCode)
		}
		if signedIn(t, srv, before) {
			t.Error("the cookie from before the change still works")
		}
		if signedIn(t, srv, copyCookies(elsewhere)) {
			t.Error("another browser's session survived the password change")
		}
		if !signedIn(t, srv, copyCookies(here)) {
			t.Error("the browser that changed the password was signed out")
		}
		if err := store.SetPassword(models.SystemActor, op.ID, "opals password!", false); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("disabled, then enabled again", func(t *testing.T) {
		c := opal()
		stolen := copyCookies(c)
		if r := admin.post("/users/"+id(op.ID)+"/disable", nil); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("disable: %d", r.StatusCode)
		}
		if signedIn(t, srv, stolen) {
			t.Error("a disabled user's cookie works")
		}
		if r := admin.post("/users/"+id(op.ID)+"/enable", nil); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("enable: %d", r.StatusCode)
		}
		if signedIn(t, srv, stolen) {
			t.Error("the cookie from before the account was disabled works again after it was enabled")
		}
	})

	t.Run("after sign-out and a new sign-in", func(t *testing.T) {
		c := opal()
		old := copyCookies(c)
		c.post("/logout", nil)
		c.signIn("opal", "opals password!")
		if signedIn(t, srv, old) {
			t.Error("the cookie from before the sign-out works after the next sign-in")
		}
		if !signedIn(t, srv, copyCookies(c)) {
			t.Error("the new sign-in does not work")
		}
	})

	t.Run("an admin ends all sessions", func(t *testing.T) {
		a, b := opal(), opal()
		if r := admin.post("/users/"+id(op.ID)+"/sessions/revoke-all", nil); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("revoke all: %d", r.StatusCode)
		}
		if signedIn(t, srv, copyCookies(a)) || signedIn(t, srv, copyCookies(b)) {
			t.Error("a session survived the admin ending them all")
		}
	})

	t.Run("idle and absolute limits", func(t *testing.T) {
		c := opal()
		clk.Add(models.SessionIdle + time.Minute)
		if signedIn(t, srv, copyCookies(c)) {
			t.Error("a session idle past its limit works")
		}
		c = opal()
		for elapsed := time.Duration(0); elapsed < models.SessionAbsolute; elapsed += models.SessionIdle / 2 {
			clk.Add(models.SessionIdle / 2)
			c.get("/account") // busy all along
		}
		clk.Add(time.Minute)
		if signedIn(t, srv, copyCookies(c)) {
			t.Error("a busy session outlived its absolute limit")
		}
	})

	t.Run("another master key", func(t *testing.T) {
		c := opal()
		key := make([]byte, 32)
		rand.Read(key)
		other, err := web.New(web.Config{Addr: "127.0.0.1:0", MasterKey: key, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, store)
		if err != nil {
			t.Fatal(err)
		}
		if signedIn(t, other, copyCookies(c)) {
			t.Error("a cookie sealed under the old master key opens a session after the key changed")
		}
		if !signedIn(t, srv, copyCookies(c)) {
			t.Error("the session does not work under its own key")
		}
	})
}
