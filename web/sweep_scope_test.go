package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"payfuse/models"
	"payfuse/web"
)

// TestSweepConsole runs the console sweeps over one sweep world (built
// once: it is the slow part): first merchant scope, which changes nothing,
// then the probes, which store probes everywhere they can.
//
// Merchant scope extends the role matrix of routes_test.go: SHOP_SH's
// operator and finance user ask every route for SHOP_BJ's objects by id, and
// every page for SHOP_BJ by its query parameters. (Admins have every
// merchant in scope by design, models.ScopeFor; their access is the role
// matrix's.)
func TestSweepConsole(t *testing.T) {
	start := time.Now()
	w := newSweepWorld(t)
	t.Logf("world built in %s", time.Since(start).Round(time.Millisecond))
	clients := map[models.Role]*client{
		models.RoleOperator: loggedIn(t, w.srv, "opsh", sweepOpPass),
		models.RoleFinance:  loggedIn(t, w.srv, "finsh", sweepFinPass),
	}
	// One admin sign-in: each spends an authenticator code.
	admin := loggedIn(t, w.srv, "boss", sweepAdminPass)
	admin.header.Set("Accept-Language", "en")
	t.Run("merchant scope", func(t *testing.T) {
		t.Run("foreign ids on every route", func(t *testing.T) { w.foreignIDs(t, clients, admin) })
		t.Run("foreign merchant in queries", func(t *testing.T) { w.foreignQueries(t, clients, admin) })
	})
	t.Run("probes", func(t *testing.T) { w.probeEverything(t, admin) })
	t.Logf("done in %s", time.Since(start).Round(time.Millisecond))
}

// foreignIDs walks the routes table: every route that names an object by
// id is asked, by each client, for the same kind of object of SHOP_BJ. A
// route the role may not use answers 403 (as TestEveryRouteEnforcesItsRole
// proves for all routes); one it may use answers 404, exactly as for an id
// that does not exist, and changes nothing: no audit record, no row of
// SHOP_BJ's touched. The same GET routes with SHOP_SH's own objects answer
// 200, so the ids are real; ids that name nothing (not numbers, zero, past
// the signed 64-bit range) answer 404 too.
func (w *sweepWorld) foreignIDs(t *testing.T, clients map[models.Role]*client, admin *client) {
	start := time.Now()
	before := w.snapshotBJ(t)
	audits := w.auditCount(t)
	tried := 0
	badIDsTried := map[string]bool{}
	for _, rt := range w.srv.Routes {
		if !consoleRoute(rt) || len(sweepParams(rt.Path)) == 0 || rt.Access == web.Public {
			continue
		}
		own, unknown := w.pathFor(rt, "SHOP_SH")
		if unknown != "" {
			t.Errorf("%s %s: the sweep has no object for %s; add one to newSweepWorld and sweepKind", rt.Method, rt.Path, unknown)
			continue
		}
		foreign, _ := w.pathFor(rt, "SHOP_BJ")
		for _, role := range []models.Role{models.RoleOperator, models.RoleFinance} {
			c := clients[role]
			name := rt.Method + " " + foreign + " as " + string(role)
			var res resp
			if rt.Method == "GET" {
				res = c.get(foreign)
			} else {
				res = c.post(foreign, url.Values{"reason": {"sweep reason"}, "note": {"sweep note"}})
			}
			tried++
			switch {
			case !rt.Access.Allows(role):
				if res.StatusCode != http.StatusForbidden {
					t.Errorf("%s: %d, want 403", name, res.StatusCode)
				}
			case strings.HasPrefix(rt.Path, "/kpis/versions/"):
				// The KPI pages show the user's own merchant when asked for
				// another: no 404, but nothing of SHOP_BJ either.
				if res.StatusCode >= 500 {
					t.Errorf("%s: %d", name, res.StatusCode)
				}
			case res.StatusCode != http.StatusNotFound:
				t.Errorf("%s: %d, want 404 (as for an id that does not exist)", name, res.StatusCode)
			}
			for _, m := range sweepMarkers {
				if strings.Contains(res.Body, m) {
					t.Errorf("%s: the answer shows %q of SHOP_BJ", name, m)
				}
			}
			// Ids no object has, including ones past the database's signed
			// 64-bit range: not found, never a server error (once per route).
			if rt.Access.Allows(role) && !strings.HasPrefix(rt.Path, "/kpis/versions/") && !badIDsTried[rt.Method+rt.Path] {
				badIDsTried[rt.Method+rt.Path] = true
				for _, bad := range []string{"abc", "0", "999999999", "9223372036854775808", "18446744073709551615"} {
					p, _ := w.pathWith(rt, "SHOP_SH", bad)
					var r resp
					if rt.Method == "GET" {
						r = c.get(p)
					} else {
						r = c.post(p, nil)
					}
					if r.StatusCode != http.StatusNotFound {
						t.Errorf("%s %s as %s: %d, want 404\n%s", rt.Method, p, role, r.StatusCode, w.logged(r.Header.Get("X-Request-Id")))
					}
				}
			}
			if rt.Method == "GET" && rt.Access.Allows(role) && !strings.HasSuffix(rt.Path, ".png") {
				if r := c.get(own); r.StatusCode != http.StatusOK {
					t.Errorf("GET %s as %s (own merchant): %d, want 200", own, role, r.StatusCode)
				}
			}
		}
	}
	if n := w.auditCount(t); n != audits {
		var acts []string
		w.store.DB.Model(&models.AuditLog{}).Where("id > ?", audits).Order("id").Pluck("action", &acts)
		t.Errorf("requests for another merchant's objects were audited as changes: %v", acts)
	}
	if after := w.snapshotBJ(t); after != before {
		t.Errorf("SHOP_BJ's rows changed:\nbefore %s\nafter  %s", before, after)
	}
	// The markers are real: an admin, whose scope is every merchant, sees
	// them on SHOP_BJ's pages.
	for _, p := range []string{"/merchants/" + w.ids["SHOP_BJ"]["merchant"], "/channels/" + w.ids["SHOP_BJ"]["channel"]} {
		if r := admin.get(p); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, sweepMarkers[0]) && !strings.Contains(r.Body, sweepMarkers[1]) {
			t.Errorf("admin GET %s: %d, no SHOP_BJ marker: the sweep's markers are wrong", p, r.StatusCode)
		}
	}
	t.Logf("%d foreign-id requests in %s", tried, time.Since(start).Round(time.Millisecond))
}

// foreignQueries asks every console page the clients may open for SHOP_BJ
// by the query parameters pages filter by (merchant code or id, "all
// merchants", an account id): no page shows SHOP_BJ's data.
func (w *sweepWorld) foreignQueries(t *testing.T, clients map[models.Role]*client, admin *client) {
	bj := w.ids["SHOP_BJ"]
	queries := []url.Values{
		{"merchant": {"SHOP_BJ"}},
		{"merchant": {bj["merchant"]}, "account": {bj["mapped_channel"]}},
		{"merchant": {"*"}},
		{"merchant": {"SHOP_SH"}, "account": {bj["channel"]}},
	}
	// The same queries by an admin (every merchant in scope) do show SHOP_BJ
	// on some pages: the markers are what those pages would leak.
	seen := 0
	for _, p := range []string{"/ledger?merchant=SHOP_BJ", "/flows/triggers?merchant=SHOP_BJ", "/channels?merchant=SHOP_BJ", "/imports", "/kpis?merchant=SHOP_BJ"} {
		if r := admin.get(p); slices.ContainsFunc(sweepMarkers, func(m string) bool { return strings.Contains(r.Body, m) }) {
			seen++
		}
	}
	if seen < 4 {
		t.Errorf("an admin sees SHOP_BJ's markers on %d of 5 pages: the sweep's markers are wrong", seen)
	}
	for role, c := range clients {
		for _, rt := range w.srv.Routes {
			if rt.Method != "GET" || !consoleRoute(rt) || !rt.Access.Allows(role) || rt.Access == web.Public || strings.HasSuffix(rt.Path, ".png") {
				continue
			}
			base, unknown := w.pathFor(rt, "SHOP_SH")
			if unknown != "" {
				continue // TestSweepForeignIDsOnEveryRoute reports it
			}
			for _, q := range queries {
				sep := "?"
				if strings.Contains(base, "?") {
					sep = "&"
				}
				// The query's own merchant wins over the path's added one.
				p := base + sep + q.Encode()
				if strings.HasPrefix(rt.Path, "/kpis/versions/") {
					p = strings.Replace(base, "merchant=SHOP_SH", q.Encode(), 1)
				}
				r := c.get(p)
				if r.StatusCode >= 500 {
					t.Errorf("GET %s as %s: %d", p, role, r.StatusCode)
				}
				for _, m := range sweepMarkers {
					if strings.Contains(r.Body, m) {
						t.Errorf("GET %s as %s shows %q of SHOP_BJ", p, role, m)
					}
				}
				if slices.Contains([]string{"/ledger/export", "/reports/export"}, rt.Path) && strings.Contains(r.Body, "SHOP_BJ") {
					t.Errorf("GET %s as %s exports SHOP_BJ rows", p, role)
				}
			}
		}
	}
}

func (w *sweepWorld) auditCount(t *testing.T) uint64 {
	t.Helper()
	var last uint64
	if err := w.store.DB.Model(&models.AuditLog{}).Select("COALESCE(MAX(id), 0)").Scan(&last).Error; err != nil {
		t.Fatal(err)
	}
	return last
}

// snapshotBJ is a fingerprint of SHOP_BJ's rows in the tables the :id
// routes change.
func (w *sweepWorld) snapshotBJ(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []struct{ table, cols string }{
		{"merchants", "id, name, status"},
		{"channel_accounts", "id, display_name, enabled, updated_at"},
		{"transactions", "id, status, amount, fee, method, conflict"},
		{"recon_items", "id, resolved, resolution, note"},
		{"trigger_rules", "id, enabled, updated_at"},
		{"webhook_endpoints", "id, enabled, updated_at"},
		{"flows", "id, enabled, updated_at"},
		{"flow_runs", "id, status"},
		{"alerts", "id, status"},
		{"api_tokens", "id, revoked_at"},
	} {
		where := "merchant_code = 'SHOP_BJ'"
		switch q.table {
		case "merchants":
			where = "code = 'SHOP_BJ'"
		case "api_tokens":
			where = "merchants = 'SHOP_BJ'"
		}
		rows, err := w.store.DB.Raw("SELECT " + q.cols + " FROM " + q.table + " WHERE " + where + " ORDER BY id").Rows()
		if err != nil {
			t.Fatalf("snapshot %s: %v", q.table, err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		n := 0
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			n++
			for _, v := range vals {
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				b.WriteString(strings.TrimSpace(strings.ReplaceAll(fmt.Sprint(v), "\n", " ")))
				b.WriteByte('|')
			}
		}
		rows.Close()
		b.WriteString(q.table + ":" + id(uint64(n)) + ";")
	}
	return b.String()
}
