package web_test

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"

	"payfuse/models"
	"payfuse/web"
)

// TestEveryRouteEnforcesItsRole walks the routes table: without a session a
// page redirects to sign-in (an API answers 401), the wrong role gets 403, the
// right role gets neither.
func TestEveryRouteEnforcesItsRole(t *testing.T) {
	srv, store := newServer(t)
	users := map[models.Role]string{}
	for _, r := range models.Roles {
		name := "role-" + string(r)
		models.MustCreateUser(t, store, name, "password for "+name, r, "SHOP_SH")
		users[r] = name
	}
	victim := models.MustCreateUser(t, store, "victim", "victims password", models.RoleOperator, "SHOP_SH")
	vc := loggedIn(t, srv, "victim", "victims password")
	_ = vc
	sessions, _ := store.ListSessions(victim.ID)
	params := strings.NewReplacer(":id", strconv.FormatUint(victim.ID, 10), ":sid", strconv.FormatUint(sessions[0].ID, 10))

	routes := append([]web.Route(nil), srv.Routes...)
	// Sign-out ends the client's own session: take it last.
	sort.SliceStable(routes, func(i, j int) bool { return routes[j].Path == "/logout" && routes[i].Path != "/logout" })

	anon := newClient(t, srv)
	clients := map[models.Role]*client{}
	for r, name := range users {
		clients[r] = loggedIn(t, srv, name, "password for "+name)
	}
	for _, rt := range routes {
		if rt.Access == web.Bearer || rt.Access == web.Monitor {
			continue // API token and metrics routes: no session passes them (TestAPIRoutesAreTheTokens, TestMetricsAccess)
		}
		path := params.Replace(rt.Path)
		name := rt.Method + " " + rt.Path
		if rt.Access != web.Public {
			var res resp
			if rt.Method == "GET" {
				res = anon.get(path)
			} else {
				res = anon.post(path, nil)
			}
			switch {
			case rt.API && res.StatusCode != http.StatusUnauthorized:
				t.Errorf("%s anonymous: status %d, want 401", name, res.StatusCode)
			case !rt.API && (res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login")):
				t.Errorf("%s anonymous: status %d to %q, want a redirect to /login", name, res.StatusCode, res.Header.Get("Location"))
			}
		}
		for _, role := range models.Roles {
			c := clients[role]
			var res resp
			if rt.Method == "GET" {
				res = c.get(path)
			} else {
				res = c.post(path, nil)
			}
			allowed := rt.Access.Allows(role)
			if !allowed && res.StatusCode != http.StatusForbidden {
				t.Errorf("%s as %s: status %d, want 403", name, role, res.StatusCode)
			}
			if allowed && (res.StatusCode == http.StatusForbidden || res.StatusCode == http.StatusUnauthorized) {
				t.Errorf("%s as %s: status %d, want access", name, role, res.StatusCode)
			}
		}
	}

	// Nothing is registered outside the table.
	declared := map[string]bool{}
	for _, rt := range srv.Routes {
		declared[rt.Method+" "+rt.Path] = true
	}
	for _, r := range srv.App.GetRoutes(true) {
		if r.Method == "HEAD" || strings.HasPrefix(r.Path, "/static") {
			continue
		}
		if !declared[r.Method+" "+r.Path] {
			t.Errorf("route %s %s is registered outside the routes table", r.Method, r.Path)
		}
	}
}

func TestNavigationOffersOnlyAllowedAreas(t *testing.T) {
	srv, store := newServer(t)
	models.MustCreateUser(t, store, "fin", "finance password", models.RoleFinance, "SHOP_SH")
	c := loggedIn(t, srv, "fin", "finance password")
	body := c.get("/").Body
	for _, p := range []string{`href="/ledger"`, `href="/reports"`, `href="/flows"`, `href="/reconcile"`, `href="/alerts"`} {
		if !strings.Contains(body, p) {
			t.Errorf("finance navigation lacks %s", p)
		}
	}
	for _, p := range []string{`href="/users"`, `href="/audit"`, `href="/channels"`} {
		if strings.Contains(body, p) {
			t.Errorf("finance navigation offers %s", p)
		}
	}
}

func TestForeignIDsAreNotFound(t *testing.T) {
	srv, store := newServer(t)
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	c := loggedIn(t, srv, "boss", "bosses password")
	for _, p := range []string{"/users/999999", "/users/abc", "/users/0", "/users/-1"} {
		if r := c.get(p); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.StatusCode)
		}
	}
	if r := c.post("/users/999999/disable", url.Values{}); r.StatusCode != http.StatusNotFound {
		t.Errorf("disable unknown user: %d", r.StatusCode)
	}
}

// TestAdminAreasStayAdminOnly pins the table itself: user management and the
// audit log are for admins whatever else changes.
func TestAdminAreasStayAdminOnly(t *testing.T) {
	srv, _ := newServer(t)
	for _, rt := range srv.Routes {
		if strings.HasPrefix(rt.Path, "/users") || strings.HasPrefix(rt.Path, "/audit") {
			if rt.Access != web.Admin {
				t.Errorf("%s %s is open to %v, want admins only", rt.Method, rt.Path, rt.Access)
			}
		}
	}
}
