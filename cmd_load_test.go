package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"payfuse/models"
	"payfuse/web"
)

// loadServer is a console serving demo data in this process: the demo
// merchants and channel accounts as serve --demo makes them, a little demo
// history, and an operator and a finance user.
type loadServer struct {
	url, db, keyFile string
	store            *models.Store
}

func startLoadServer(t *testing.T) *loadServer {
	t.Helper()
	s := &loadServer{db: testDB(t), keyFile: filepath.Join(t.TempDir(), "master.key")}
	key, err := models.CreateMasterKey(s.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	dsn, err := models.ParseDSN(s.db)
	if err != nil {
		t.Fatal(err)
	}
	gdb, err := models.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := models.Migrate(gdb, dsn.Dialect); err != nil {
		t.Fatal(err)
	}
	s.store = models.NewStore(gdb, dsn.Dialect)
	t.Cleanup(func() { s.store.Close() })
	if s.store.Vault, err = models.NewVault(key); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := createDemoData(s.store, io.Discard, quiet); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.GenerateDemoHistory(models.SystemActor, models.DemoOptions{Transactions: 1500, Days: 14, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	models.MustCreateUser(t, s.store, "load-operator", "load operator password", models.RoleOperator, models.DemoMerchants...)
	models.MustCreateUser(t, s.store, "load-finance", "load finance password", models.RoleFinance, models.DemoMerchants...)
	srv, err := web.New(web.Config{Addr: "127.0.0.1:0", MasterKey: key, Logger: quiet}, s.store)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	s.url = "http://" + ln.Addr().String()
	return s
}

func (s *loadServer) count(t *testing.T, where string, args ...any) int64 {
	t.Helper()
	var n int64
	q := s.store.DB.Model(&models.Transaction{})
	if where != "" {
		q = q.Where(where, args...)
	}
	if err := q.Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func (s *loadServer) load(t *testing.T, args ...string) loadResult {
	t.Helper()
	code, out, errs := runCLI(t, "", append([]string{"--db", s.db, "--master-key-file", s.keyFile, "load", "--url", s.url, "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("load: exit %d\n%s", code, errs)
	}
	var res loadResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("load output is not JSON: %v\n%s", err, out)
	}
	return res
}

// TestLoadDrivesEveryPageAndNotifications runs the generator for two seconds
// at two users against a console with demo data: every page kind of the mix
// and the notification stream are exercised without an error, the
// notifications it says were taken are new rows in the ledger, and the
// server's memory is sampled.
func TestLoadDrivesEveryPageAndNotifications(t *testing.T) {
	s := startLoadServer(t)
	before := s.count(t, "")
	res := s.load(t, "--user", "load-finance", "--password", "load finance password",
		"--users", "2", "--duration", "2s", "--warmup", "0s", "--notify-rate", "10",
		"--mix", "ledger=1,deep=1,detail=1,dashboard=1,kpi=1,report=1", "--deep-pages", "3", "--history-days", "14",
		"--pid", strconv.Itoa(os.Getpid()), "--rss-every", "500ms")
	if len(res.Levels) != 1 || res.Levels[0].Users != 2 {
		t.Fatalf("levels %+v", res.Levels)
	}
	lr := res.Levels[0]
	got := map[string]kindResult{}
	for _, k := range lr.Kinds {
		got[k.Kind] = k
	}
	t.Logf("2 users, 2 s: %d pages, %d notifications: %+v", lr.Requests, res.NotificationsSent, lr.Kinds)
	for _, kind := range loadKinds {
		k := got[kind]
		if k.Count == 0 || k.Errors != 0 || k.P50 <= 0 || k.P99 < k.P50 || k.Max < k.P99 {
			t.Errorf("%s: %+v, want requests, no errors and ordered percentiles", kind, k)
		}
	}
	if lr.Errors != 0 || len(lr.ErrorSamples) > 0 || lr.Requests == 0 || lr.Throughput <= 0 {
		t.Errorf("level: %d requests, %.1f req/s, %d errors %v", lr.Requests, lr.Throughput, lr.Errors, lr.ErrorSamples)
	}
	if res.NotificationsSent == 0 || res.NotificationsAccepted != res.NotificationsSent {
		t.Errorf("notifications: %d sent, %d taken", res.NotificationsSent, res.NotificationsAccepted)
	}
	if after := s.count(t, ""); after-before != res.NotificationsAccepted {
		t.Errorf("ledger grew by %d rows, but %d notifications were taken", after-before, res.NotificationsAccepted)
	}
	if n := s.count(t, "sources = ? AND merchant_order_no LIKE ?", models.SourceNotification, "LD%"); n != res.NotificationsAccepted {
		t.Errorf("%d notification-only LD… rows, want %d", n, res.NotificationsAccepted)
	}
	if len(lr.RSS) < 2 || lr.RSS[0].KiB <= 0 {
		t.Errorf("memory samples %+v, want at least the first and the last", lr.RSS)
	}

	// An operator may not open the reports: its virtual users leave them
	// out, say so, and make no errors of it.
	res = s.load(t, "--user", "load-operator", "--password", "load operator password",
		"--users", "1", "--duration", "300ms", "--warmup", "0s", "--mix", "ledger=1,report=1")
	if len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0], "report (not allowed for load-operator)") {
		t.Errorf("skipped %q", res.Skipped)
	}
	for _, k := range res.Levels[0].Kinds {
		if k.Kind != kindLedger || k.Errors != 0 {
			t.Errorf("operator run: %+v", k)
		}
	}
}

// TestLoadRefusals covers flags a run cannot start with; none needs a server.
func TestLoadRefusals(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--password", "x", "--users", "10,0"}, `--users: "0" is not a number of users`},
		{[]string{"--password", "x", "--mix", "ledger=1,search=2"}, `--mix: "search=2": want ACTION=WEIGHT`},
		{[]string{"--password", "x", "--mix", "ledger=0"}, "every weight is zero"},
		{[]string{"--password", "x", "--notify-rate", "fast"}, `--notify-rate: "fast"`},
		{[]string{"--user", "a", "--user", "b", "--password", "x"}, "2 --user and 1 --password"},
		{[]string{"--password", "x", "--url", "localhost:8080"}, "want http://HOST:PORT"},
		{[]string{"--password", "x", "--deep-pages", "1"}, "--deep-pages must be at least 2"},
	} {
		code, _, errs := runCLI(t, "", append([]string{"load"}, c.args...)...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q; want %q", c.args, code, errs, c.want)
		}
	}
}

// TestLoadPercentiles checks the nearest-rank percentiles the report prints.
func TestLoadPercentiles(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 200; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]float64{0.5: 100, 0.95: 190, 0.99: 198, 1: 200} {
		if got := percentile(lat, q); got != want {
			t.Errorf("p%g = %g ms, want %g", q*100, got, want)
		}
	}
	if percentile(nil, 0.5) != 0 || percentile(lat[:1], 0.99) != 1 {
		t.Error("edge cases")
	}
}
