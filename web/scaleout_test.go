package web_test

// Several `payfuse serve` processes behind one load balancer, on one
// database: what docs/SCALING.md and docs/OPERATIONS.md promise about them.
// Each server here has its own models.Store (its own connection pool) on the
// same database, SQLite file or MariaDB, and the same master key, as separate
// processes would.

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/flows"
	"payfuse/models"
	"payfuse/web"
)

// fleet is n servers sharing one database and one master key.
type fleet struct {
	servers []*web.Server
	stores  []*models.Store
}

func newFleet(t *testing.T, n int, mut ...func(*web.Config)) *fleet {
	t.Helper()
	first := models.OpenTest(t)
	dsn, err := models.ParseDSN(models.TestDSN(t, first))
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	f := &fleet{}
	for i := range n {
		store := first
		if i > 0 {
			db, err := models.Open(dsn)
			if err != nil {
				t.Fatal(err)
			}
			if err := models.Migrate(db, dsn.Dialect); err != nil { // every process migrates at start: a no-op here
				t.Fatal(err)
			}
			store = models.NewStore(db, dsn.Dialect)
			t.Cleanup(func() { store.Close() })
		}
		cfg := web.Config{Addr: "127.0.0.1:0", MasterKey: key, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		for _, m := range mut {
			m(&cfg)
		}
		srv, err := web.New(cfg, store)
		if err != nil {
			t.Fatal(err)
		}
		f.servers = append(f.servers, srv)
		f.stores = append(f.stores, store)
	}
	return f
}

// on points the browser at server i, as a load balancer without sticky
// sessions might for its next request.
func (c *client) on(srv *web.Server) *client { c.srv = srv; return c }

// TestScaleOutSessionsAndCSRF: a session opened on server 1 works on servers
// 2 and 3; a language chosen on server 3 (a POST carrying the CSRF token
// server 1 put in its page) shows on server 2; sign-out on server 2 ends the
// session everywhere, so the old cookie replayed on server 1 is sent to
// sign in; a sign-in form fetched from server 1 can be posted to server 3.
func TestScaleOutSessionsAndCSRF(t *testing.T) {
	f := newFleet(t, 3)
	s1, s2, s3 := f.servers[0], f.servers[1], f.servers[2]
	if _, err := f.stores[0].CreateMerchant(models.SystemActor, models.MerchantInput{Code: "SHOP_SH", Name: "Shanghai"}); err != nil {
		t.Fatal(err)
	}
	models.MustCreateUser(t, f.stores[0], "opsh", "operator sh pass", models.RoleOperator, "SHOP_SH")

	c := newClient(t, s1)
	c.login("opsh", "operator sh pass")
	for i, srv := range f.servers {
		r := c.on(srv).get("/account")
		if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "opsh") {
			t.Fatalf("server %d does not know the session opened on server 1: %d", i+1, r.StatusCode)
		}
	}

	// A token from server 1's page works on server 3; a wrong one does not.
	token := c.on(s1).csrf()
	if r := c.on(s3).do("POST", "/lang", url.Values{"lang": {"en"}, "next": {"/account"}, "_csrf": {token}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST on server 3 with server 1's CSRF token: %d", r.StatusCode)
	}
	if r := c.on(s2).do("POST", "/lang", url.Values{"lang": {"zh-CN"}, "_csrf": {token + "x"}}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("a wrong CSRF token on server 2: %d, want 403", r.StatusCode)
	}
	c.cookies = map[string]string{"payfuse_session": c.cookies["payfuse_session"]} // drop the language cookie: the profile must carry it
	if r := c.on(s2).get("/account"); !strings.Contains(r.Body, `lang="en"`) {
		t.Fatalf("server 2 does not show the language chosen on server 3")
	}

	// Sign-out on server 2 ends the session for every server.
	old := c.cookies["payfuse_session"]
	if r := c.on(s2).post("/logout", nil); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Fatalf("logout on server 2: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	replay := newClient(t, s1)
	replay.cookies["payfuse_session"] = old
	for i, srv := range []*web.Server{s1, s3} {
		if r := replay.on(srv).get("/account"); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login") {
			t.Fatalf("the signed-out session still opens /account on server %d: %d", []int{1, 3}[i], r.StatusCode)
		}
	}

	// Before sign-in: the form (and its token, sealed in the cookie) from
	// server 1, posted to server 3.
	anon := newClient(t, s1)
	anonToken := anon.csrf()
	r := anon.on(s3).do("POST", "/login", url.Values{"username": {"opsh"}, "password": {"operator sh pass"}, "_csrf": {anonToken}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in form from server 1 posted to server 3: %d", r.StatusCode)
	}
	if r := anon.on(s2).get("/account"); r.StatusCode != http.StatusOK {
		t.Fatalf("the session opened on server 3 does not work on server 2: %d", r.StatusCode)
	}
}

// TestScaleOutSignInLimits: the account lockout lives in the database, so
// wrong passwords spread over three servers add up to one count and lock
// the account on all of them; the per-address throttle lives in each process, so an address
// refused by one server is still heard by another (docs/OPERATIONS.md says
// what that means behind a load balancer). The servers trust the test's
// peer as their proxy, so X-Forwarded-For names each client's address.
func TestScaleOutSignInLimits(t *testing.T) {
	f := newFleet(t, 3, func(c *web.Config) {
		c.TrustedProxies = []string{"0.0.0.0"}
		c.LoginFailuresPerAddress = 2
		c.LoginFailureWindow = time.Hour
	})
	models.MustCreateUser(t, f.stores[0], "fin", "finance password", models.RoleFinance)
	models.MustCreateUser(t, f.stores[0], "other", "other's password", models.RoleFinance)

	// Per process: two failures from one address on server 1, then 429 there only.
	c := newClient(t, f.servers[0])
	c.header.Set("X-Forwarded-For", "198.51.100.1")
	for range 2 {
		c.post("/login", url.Values{"username": {"other"}, "password": {"not the password"}})
	}
	if r := c.post("/login", url.Values{"username": {"other"}, "password": {"not the password"}}); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third attempt on server 1: %d, want 429", r.StatusCode)
	}
	if r := c.on(f.servers[1]).post("/login", url.Values{"username": {"other"}, "password": {"other's password"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("server 2 throttled an address only server 1 saw fail: %d", r.StatusCode)
	}

	// In the database: the account's failure count is one row that every
	// server adds to. Seven failures are already counted (set directly, to
	// spare seven slow password hashes); one more on each server makes the
	// tenth, which locks the account for all of them.
	fin, err := f.stores[0].GetUserByUsername("fin")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.stores[0].DB.Model(&models.User{}).Where("id = ?", fin.ID).
		Updates(map[string]any{"failed_logins": models.LockThreshold - 3, "failed_window_start": time.Now().UTC()}).Error; err != nil {
		t.Fatal(err)
	}
	for i, srv := range f.servers {
		b := newClient(t, srv)
		b.header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1))
		if r := b.post("/login", url.Values{"username": {"fin"}, "password": {"wrong password"}}); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure on server %d: %d", i+1, r.StatusCode)
		}
	}
	b := newClient(t, f.servers[0])
	b.header.Set("X-Forwarded-For", "192.0.2.10")
	if r := b.post("/login", url.Values{"username": {"fin"}, "password": {"finance password"}}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the locked account, right password, on server 1: %d, want 401", r.StatusCode)
	}
	u, err := f.stores[2].GetUserByUsername("fin")
	if err != nil || u.LockedUntil == nil {
		t.Fatalf("the account is not locked in the database: %v", err)
	}
}

// TestScaleOutFlowRunsOnce: the flow engines of three servers poll the same
// database, twice each and all at once, as their tickers would; a flow due
// every minute runs exactly once per minute, by whichever engine took its
// lease, and every run ends succeeded.
func TestScaleOutFlowRunsOnce(t *testing.T) {
	f := newFleet(t, 3)
	clk := &fakeClock{t: time.Date(2026, 3, 1, 8, 0, 30, 0, time.UTC)}
	for _, s := range f.stores {
		s.Now = clk.Now
	}
	if _, err := f.stores[0].CreateMerchant(models.SystemActor, models.MerchantInput{Code: "SHOP_SH", Name: "Shanghai"}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ran := map[string]int{}      // occurrence -> handler calls
	byEngine := map[string]int{} // engine -> runs
	for i, srv := range f.servers {
		e := srv.H.Flows
		e.Now = clk.Now
		engine := fmt.Sprintf("server %d", i+1)
		e.Register(models.FlowTriggerEval, flows.HandlerFunc(func(ctx context.Context, run *flows.Run) (flows.Counts, error) {
			time.Sleep(time.Millisecond) // long enough for the others' polls to find the lease taken
			mu.Lock()
			ran[run.Occurrence.Format("15:04")]++
			byEngine[engine]++
			mu.Unlock()
			return flows.Counts{RowsRead: 1}, nil
		}))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			e.Stop(ctx)
		})
	}
	flow, err := f.stores[0].CreateFlow(models.Actor{Name: "setup"}, models.Scope{All: true},
		models.FlowInput{Name: "every-minute", Kind: models.FlowTriggerEval, MerchantCode: "SHOP_SH", Schedule: "* * * * *", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}

	const minutes = 5
	for m := 1; m <= minutes; m++ {
		clk.Add(time.Minute)
		var wg sync.WaitGroup
		for _, srv := range f.servers {
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := srv.H.Flows.Poll(context.Background()); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		wg.Wait()
		deadline := time.Now().Add(10 * time.Second)
		for {
			page, err := f.stores[1].ListRuns(models.Scope{All: true}, models.RunFilter{FlowID: flow.ID, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			done := 0
			for _, r := range page.Rows {
				if r.Status == models.RunSucceeded {
					done++
				}
			}
			if done == m {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("minute %d: %d runs succeeded, want %d", m, done, m)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	page, err := f.stores[2].ListRuns(models.Scope{All: true}, models.RunFilter{FlowID: flow.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(page.Rows) != minutes || len(ran) != minutes {
		t.Fatalf("%d runs recorded, %d occurrences run (%v); want %d of each", len(page.Rows), len(ran), ran, minutes)
	}
	for occ, n := range ran {
		if n != 1 {
			t.Errorf("occurrence %s ran %d times", occ, n)
		}
	}
	t.Logf("runs per engine: %v", byEngine)
}

// TestBehindTLSProxy pins what docs/OPERATIONS.md tells a proxy to send.
// With --trusted-proxies naming the proxy, the client address (audit log,
// sign-in throttle) is the rightmost X-Forwarded-For address that is not a
// trusted proxy, so a proxy may append to the header; without the flag the
// header is ignored. A POST's Origin must match the Host (or X-Forwarded-Host) the
// proxy passes on: a proxy that rewrites Host to the upstream address gets
// every form refused.
func TestBehindTLSProxy(t *testing.T) {
	// app.Test connects from 0.0.0.0: that is the proxy here.
	f := newFleet(t, 1, func(c *web.Config) { c.TrustedProxies = []string{"0.0.0.0"}; c.SecureCookies = true })
	srv, store := f.servers[0], f.stores[0]
	models.MustCreateUser(t, store, "fin", "finance password", models.RoleFinance)
	lastLoginIP := func() string {
		var ip string
		store.DB.Model(&models.AuditLog{}).Where("action = ?", models.ActLoginSuccess).Order("id DESC").Limit(1).Pluck("ip", &ip)
		return ip
	}
	signIn := func(c *client, host string, hdr ...string) resp {
		t.Helper()
		token := c.csrf()
		return c.doHost(host, "POST", "/login", url.Values{"username": {"fin"}, "password": {"finance password"}, "_csrf": {token}}, hdr...)
	}

	c := newClient(t, srv)
	c.header.Set("X-Forwarded-For", "203.0.113.7")
	if r := signIn(c, ""); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in through the proxy: %d", r.StatusCode)
	}
	if ip := lastLoginIP(); ip != "203.0.113.7" {
		t.Fatalf("audited address %q, want the client's 203.0.113.7", ip)
	}
	if ck := c.cookies["__Host-payfuse_session"]; ck == "" {
		t.Fatalf("with --secure-cookies the session cookie is __Host-payfuse_session; got %v", c.cookies)
	}

	// A proxy that appends: the client's own claim comes first and is not
	// believed; the address the proxy saw (the rightmost untrusted) is.
	c = newClient(t, srv)
	c.header.Set("X-Forwarded-For", "198.51.100.99, 203.0.113.7")
	signIn(c, "")
	if ip := lastLoginIP(); ip != "203.0.113.7" {
		t.Fatalf("audited address %q, want 203.0.113.7 (what the proxy appended), not the client's own claim", ip)
	}

	// Origin against Host: https://pay.example.com behind a proxy.
	const origin = "https://pay.example.com"
	for _, tc := range []struct {
		name, host string
		hdr        []string
		status     int
	}{
		{"Host passed on", "pay.example.com", []string{"Origin", origin}, http.StatusSeeOther},
		{"X-Forwarded-Host from the proxy", "127.0.0.1:8080", []string{"X-Forwarded-Host", "pay.example.com", "Origin", origin}, http.StatusSeeOther},
		{"Host rewritten to the upstream", "127.0.0.1:8080", []string{"Origin", origin}, http.StatusForbidden},
	} {
		c := newClient(t, srv)
		if r := signIn(c, tc.host, tc.hdr...); r.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, r.StatusCode, tc.status)
		}
	}

	// Without --trusted-proxies the header is the client's word: ignored.
	plain, err := web.New(web.Config{Addr: "127.0.0.1:0", MasterKey: make([]byte, 32), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, store)
	if err != nil {
		t.Fatal(err)
	}
	c = newClient(t, plain)
	c.header.Set("X-Forwarded-For", "203.0.113.7")
	if r := signIn(c, ""); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in without a proxy: %d", r.StatusCode)
	}
	if ip := lastLoginIP(); ip != "0.0.0.0" {
		t.Fatalf("without --trusted-proxies the audited address is %q, want the peer's 0.0.0.0", ip)
	}
}

// doHost is do with the request's Host set to host ("" = the default).
func (c *client) doHost(host, method, path string, form url.Values, hdr ...string) resp {
	c.t.Helper()
	c.host = host
	defer func() { c.host = "" }()
	return c.do(method, path, form, hdr...)
}

// fakeClock is a settable time source shared by the servers' stores and engines.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
