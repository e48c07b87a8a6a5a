package web_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"payfuse/models"
	"payfuse/web"
)

// BenchmarkDashboard10M measures the dashboard's server time — the whole
// request through the console's middleware (session, access check), the
// handler's queries and the templ render — on the MariaDB ledger that
// BenchmarkLedgerPage10M (models/ledger_query_bench_test.go) seeds in
// payfuse_bench (or PAYFUSE_BENCH_DB): 10 merchants × 3 channel accounts,
// 2025-03-01 … 2026-03-01, PAYFUSE_BENCH_ROWS transactions. Seed it first:
//
//	PAYFUSE_TEST_MYSQL=mysql://root@127.0.0.1:3306/payfuse_test PAYFUSE_BENCH_ROWS=10000000 \
//	  go test ./models -run X -bench LedgerPage10M -benchtime 1x -timeout 3h
//
// The seed writes raw INSERTs, so it has no daily rollups: the first run
// fills them once with one INSERT … SELECT over the transactions (the same
// sums the ledger's writers keep; again whenever they no longer count every
// seeded payment). Then, with the console's clock on the
// seeded year's last day:
//
//	PAYFUSE_TEST_MYSQL=mysql://root@127.0.0.1:3306/payfuse_test \
//	  go test ./web -run X -bench Dashboard10M -benchtime 1x -timeout 1h
//
// It prints p50/p99/max per case (PAYFUSE_BENCH_REPS requests each, 200 by
// default) and reports the worst p99 of the cases up to 90 days (the target:
// p99 ≤ 50 ms) as worst-p99-ms; a year's range is shown beside them. The user is an
// operator of all ten merchants; "store-only" cases time Store.Dashboard
// alone for an administrator (scope all: no merchant filter at all).
func BenchmarkDashboard10M(b *testing.B) {
	raw := os.Getenv(models.TestMySQLEnv)
	if raw == "" {
		b.Skip("set " + models.TestMySQLEnv + " and seed payfuse_bench with BenchmarkLedgerPage10M first")
	}
	store := dashboardBenchStore(b, raw)
	var rows int64
	if err := store.DB.Raw("SELECT COALESCE(MAX(id), 0) FROM transactions").Scan(&rows).Error; err != nil {
		b.Fatal(err)
	}
	if rows == 0 {
		b.Skip("payfuse_bench has no transactions: seed it with BenchmarkLedgerPage10M first")
	}
	dashboardBenchRollups(b, store)
	var last string
	if err := store.DB.Raw("SELECT MAX(biz_date) FROM daily_rollups").Scan(&last).Error; err != nil {
		b.Fatal(err)
	}
	lastDay, err := time.ParseInLocation(time.DateOnly, last, time.FixedZone("CST", 8*3600))
	if err != nil {
		b.Fatal(err)
	}
	clock := lastDay.Add(12 * time.Hour)
	store.Now = func() time.Time { return clock }

	key := make([]byte, 32)
	rand.Read(key)
	srv, err := web.New(web.Config{Addr: "127.0.0.1:0", MasterKey: key, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, store)
	if err != nil {
		b.Fatal(err)
	}
	var merchants []string
	if err := store.DB.Model(&models.Merchant{}).Where("code LIKE ?", "BENCH_M%").Order("code").Pluck("code", &merchants).Error; err != nil || len(merchants) == 0 {
		b.Fatalf("bench merchants: %v (%d)", err, len(merchants))
	}
	const user, pass = "bench-dashboard", "bench dashboard password"
	if _, err := store.GetUserByUsername(user); errors.Is(err, models.ErrNotFound) {
		if _, err := store.CreateUser(models.SystemActor, models.NewUser{Username: user, Password: pass, Role: string(models.RoleOperator), Merchants: merchants}); err != nil {
			b.Fatal(err)
		}
	}
	c := &benchClient{b: b, srv: srv, cookies: map[string]string{}}
	c.login(user, pass)

	reps := 200
	if v, err := strconv.Atoi(os.Getenv("PAYFUSE_BENCH_REPS")); err == nil && v > 0 {
		reps = v
	}
	type benchCase struct {
		name string
		path string                            // a request through the console
		run  func() (*models.Dashboard, error) // or the store alone
		// extra cases go beyond the target's (ranges up to 90 days): shown, not in worst-p99-ms
		extra bool
	}
	days := func(n int) models.DashboardFilter {
		return models.DashboardFilter{From: lastDay.AddDate(0, 0, 1-n).Format(time.DateOnly), To: last}
	}
	all := models.Scope{All: true}
	cases := []benchCase{
		{name: "all 7d", path: "/?range=7d"},
		{name: "all 30d", path: "/?range=30d"},
		{name: "all 90d", path: "/?range=90d"},
		{name: "one 90d", path: "/?range=90d&merchant=" + merchants[len(merchants)/2]},
		{name: "one today", path: "/?range=today&merchant=" + merchants[0]},
		{name: "store-only admin 90d", run: func() (*models.Dashboard, error) { return store.Dashboard(all, days(90)) }},
		{name: "all custom 366d", path: "/?range=custom&from=" + lastDay.AddDate(0, 0, -365).Format(time.DateOnly) + "&to=" + last, extra: true},
		{name: "store-only admin 366d", run: func() (*models.Dashboard, error) { return store.Dashboard(all, days(366)) }, extra: true},
	}
	var lines []string
	worst := 0.0
	for i := 0; i < b.N; i++ {
		for _, bc := range cases {
			once := func() (string, int) {
				if bc.run != nil {
					d, err := bc.run()
					if err != nil {
						b.Fatalf("%s: %v", bc.name, err)
					}
					return strconv.FormatInt(d.Totals.Payments, 10), 0
				}
				code, body := c.get(bc.path)
				if code != http.StatusOK || !strings.Contains(body, `id="dashboard-data"`) {
					b.Fatalf("GET %s: %d, charts drawn: %v", bc.path, code, strings.Contains(body, `id="dashboard-data"`))
				}
				return "", len(body)
			}
			for range 3 {
				once() // warm the connection pool and the caches
			}
			times := make([]time.Duration, reps)
			var payments string
			var size int
			for r := range reps {
				t0 := time.Now()
				payments, size = once()
				times[r] = time.Since(t0)
			}
			slices.Sort(times)
			p := func(q float64) float64 {
				return float64(times[min(len(times)-1, int(q*float64(len(times))))].Microseconds()) / 1000
			}
			if !bc.extra {
				worst = max(worst, p(0.99))
			}
			what := fmt.Sprintf("html=%dKB", size/1024)
			if bc.run != nil {
				what = "payments=" + payments
			}
			lines = append(lines, fmt.Sprintf("%-22s %-18s p50=%7.2fms p99=%7.2fms max=%7.2fms", bc.name, what, p(0.50), p(0.99), p(1)))
		}
	}
	var rollups int64
	store.DB.Raw("SELECT COUNT(*) FROM daily_rollups").Scan(&rollups)
	fmt.Printf("dashboard on %d ledger rows, %d daily rollup rows (MariaDB), today = %s, %d requests per case:\n%s\n",
		rows, rollups, last, reps, strings.Join(lines, "\n"))
	b.ReportMetric(worst, "worst-p99-ms")
}

// dashboardBenchStore opens (and migrates) the benchmark's own database.
func dashboardBenchStore(b *testing.B, raw string) *models.Store {
	dsn, err := models.ParseDSN(raw)
	if err != nil || dsn.Dialect != models.MySQL {
		b.Fatalf("%s=%q: want a mysql:// URL", models.TestMySQLEnv, raw)
	}
	cfg := dsn.MySQL.Clone()
	cfg.DBName = "payfuse_bench"
	if v := os.Getenv("PAYFUSE_BENCH_DB"); v != "" {
		cfg.DBName = v
	}
	dsn.MySQL = cfg
	db, err := models.Open(dsn)
	if err != nil {
		b.Skipf("open %s (seed it with BenchmarkLedgerPage10M first): %v", cfg.DBName, err)
	}
	if err := models.Migrate(db, models.MySQL); err != nil {
		b.Fatal(err)
	}
	s := models.NewStore(db, models.MySQL)
	b.Cleanup(func() { s.Close() })
	return s
}

// dashboardBenchRollups fills the daily rollups from the seeded transactions
// unless they already count every payment: the seed bypasses the ingest path
// that keeps them (and a seed that grew since the last fill leaves them short).
func dashboardBenchRollups(b *testing.B, s *models.Store) {
	var have, want int64
	if err := s.DB.Raw("SELECT COALESCE(SUM(payments), 0) FROM daily_rollups").Scan(&have).Error; err != nil {
		b.Fatal(err)
	}
	if err := s.DB.Raw("SELECT COUNT(*) FROM transactions WHERE kind = 'payment'").Scan(&want).Error; err != nil {
		b.Fatal(err)
	}
	if have == want {
		return
	}
	fmt.Printf("filling daily_rollups from the transactions (they count %d payments of %d) …\n", have, want)
	t0 := time.Now()
	if err := s.DB.Exec("DELETE FROM daily_rollups").Error; err != nil {
		b.Fatal(err)
	}
	err := s.DB.Exec(`INSERT INTO daily_rollups (merchant_code, account_id, channel, method, biz_date, payments, payments_succeeded,
		payments_failed, payments_pending, amount_succeeded, refunds, refund_amount, fees, updated_at)
		SELECT merchant_code, account_id, channel, method, biz_date,
			SUM(CASE WHEN kind = 'payment' THEN 1 ELSE 0 END),
			SUM(CASE WHEN kind = 'payment' AND status = 'succeeded' THEN 1 ELSE 0 END),
			SUM(CASE WHEN kind = 'payment' AND status = 'failed' THEN 1 ELSE 0 END),
			SUM(CASE WHEN kind = 'payment' AND status IN ('pending', 'processing') THEN 1 ELSE 0 END),
			SUM(CASE WHEN kind = 'payment' AND status = 'succeeded' THEN amount ELSE 0 END),
			SUM(CASE WHEN kind = 'refund' AND status = 'succeeded' THEN 1 ELSE 0 END),
			SUM(CASE WHEN kind = 'refund' AND status = 'succeeded' THEN amount ELSE 0 END),
			SUM(CASE WHEN kind = 'payment' AND status = 'succeeded' THEN fee WHEN kind = 'refund' AND status = 'succeeded' THEN -fee ELSE 0 END),
			?
		FROM transactions GROUP BY merchant_code, account_id, channel, method, biz_date`, time.Now().UTC()).Error
	if err != nil {
		b.Fatalf("fill daily_rollups: %v", err)
	}
	if err := s.DB.Exec("ANALYZE TABLE daily_rollups").Error; err != nil {
		b.Fatal(err)
	}
	var n int64
	s.DB.Raw("SELECT COUNT(*) FROM daily_rollups").Scan(&n)
	fmt.Printf("filled %d daily rollup rows in %s\n", n, time.Since(t0).Round(time.Second))
}

// benchClient signs in and fetches pages through app.Test, like the tests'
// client, for a benchmark.
type benchClient struct {
	b       *testing.B
	srv     *web.Server
	cookies map[string]string
}

func (c *benchClient) do(method, path string, form url.Values) (*http.Response, string) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range c.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	res, err := c.srv.App.Test(req, -1)
	if err != nil {
		c.b.Fatalf("%s %s: %v", method, path, err)
	}
	for _, ck := range res.Cookies() {
		if ck.MaxAge < 0 || ck.Value == "" {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func (c *benchClient) get(path string) (int, string) {
	res, body := c.do("GET", path, nil)
	return res.StatusCode, body
}

func (c *benchClient) login(user, pass string) {
	_, page := c.do("GET", "/login", nil)
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		c.b.Fatal("no CSRF token on the sign-in page")
	}
	res, _ := c.do("POST", "/login", url.Values{"_csrf": {m[1]}, "username": {user}, "password": {pass}})
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || strings.Contains(loc, "2fa") || strings.HasPrefix(loc, "/account") || strings.HasPrefix(loc, "/login") {
		c.b.Fatalf("sign in %s: %d to %q (an operator should need no second factor here)", user, res.StatusCode, loc)
	}
}
