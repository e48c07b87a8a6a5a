package web_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"payfuse/channels/alipay"
	"payfuse/channels/testkeys"
	"payfuse/channels/wechat"
	"payfuse/flows"
	"payfuse/models"
	"payfuse/models/faultproxy"
	"payfuse/views"
	"payfuse/web"
)

// The fault tests: the database stopping under load (MariaDB, through a
// proxy that drops its connections), the server killed with SIGKILL and
// stopped with SIGTERM in the middle of work (a child process running the
// server as `payfuse serve` does), and a full SQLite database. Each checks
// what a user or a payment channel would see, then that the ledger holds
// exactly what was sent: no record lost, none twice. docs/RELIABILITY.md
// has the figures and how to run them longer.

const faultPass = "fault operator pass"

// faultWorld is a server over store with one merchant (SHOP_SH) holding a
// WeChat Pay account (its merchant id matches bigBill's) and an Alipay
// account, an operator, and an API token that may import statements.
type faultWorld struct {
	*notifyFixture
	token string
}

func newFaultWorld(t *testing.T, store *models.Store, key []byte, logs *syncBuffer) *faultWorld {
	t.Helper()
	srv, err := web.New(web.Config{Addr: "127.0.0.1:0", MasterKey: key, Logger: slog.New(slog.NewTextHandler(logs, nil))}, store)
	if err != nil {
		t.Fatal(err)
	}
	f := &notifyFixture{t: t, srv: srv, store: store, logs: logs}
	f.wxKey, f.apKey = notifySigners()
	m, err := store.CreateMerchant(models.Actor{Name: "setup"}, models.MerchantInput{Code: "SHOP_SH", Name: "Shanghai"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f.wxVals = testkeys.Credentials("wechat", now)
	f.wxVals["mch_id"] = []byte(testBillMchID)
	f.wxVals["platform_public_key"] = testkeys.PublicKeyPEM(&f.wxKey.PublicKey)
	f.wx = f.account(m.ID, "wechat", f.wxVals)
	f.apVals = testkeys.Credentials("alipay", now)
	for _, k := range []string{"app_cert", "alipay_cert", "alipay_root_cert"} {
		delete(f.apVals, k)
	}
	f.apVals["alipay_public_key"] = testkeys.PublicKeyPEM(&f.apKey.PublicKey)
	f.ap = f.account(m.ID, "alipay", f.apVals)
	models.MustCreateUser(t, store, "faultop", faultPass, models.RoleOperator, "SHOP_SH")
	_, token := mustToken(t, store, nil, "faults", []string{"SHOP_SH"}, models.PermImportsWrite, models.PermLedgerRead)
	return &faultWorld{notifyFixture: f, token: token}
}

// note is one payment a channel notifies. Its notification is built at the
// first delivery; a retry sends the same event again (WeChat Pay signs it
// afresh: a new timestamp and nonce), as the channels do.
type note struct {
	ref    string
	amount int64
	alipay bool
	wxBody []byte
	apForm url.Values
}

// notes are n payments, WeChat Pay and Alipay in turn, of distinct amounts.
func faultNotes(n int) []note {
	out := make([]note, n)
	for i := range out {
		out[i] = note{ref: fmt.Sprintf("42000077%020d", i), amount: int64(101 + i), alipay: i%2 == 1}
		if out[i].alipay {
			out[i].ref = fmt.Sprintf("2026030622%018d", i)
		}
	}
	return out
}

// answer is what a channel got back for one delivery attempt.
type answer struct {
	n          note
	start, end time.Time
	status     int
	body       string
	err        error // no HTTP answer at all (connection refused or reset)
	taken      bool
}

// deliver posts n once. WeChat Pay takes a 2xx as delivered; Alipay the
// bare body "success".
func (w *faultWorld) deliver(hc *http.Client, base string, n *note) answer {
	var req *http.Request
	switch {
	case n.alipay:
		if n.apForm == nil {
			n.apForm = alipay.BuildTestNotification(w.apKey, w.alipayPayment(n.ref, fmt.Sprintf("%d.%02d", n.amount/100, n.amount%100)))
		}
		req, _ = http.NewRequest("POST", base+"/notify/alipay/"+id(w.ap.ID), strings.NewReader(n.apForm.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	case n.wxBody == nil:
		var hdr http.Header
		hdr, n.wxBody = w.wxNotification(w.wxPayment(n.ref, n.amount), time.Now())
		req, _ = http.NewRequest("POST", base+"/notify/wechat/"+id(w.wx.ID), bytes.NewReader(n.wxBody))
		req.Header = hdr
	default:
		req, _ = http.NewRequest("POST", base+"/notify/wechat/"+id(w.wx.ID), bytes.NewReader(n.wxBody))
		req.Header = wechat.SignTestNotification(w.wxKey, string(w.wxVals["platform_public_key_id"]), n.wxBody, time.Now())
	}
	a := answer{n: *n, start: time.Now()}
	res, err := hc.Do(req)
	a.end = time.Now()
	if err != nil {
		a.err = err
		return a
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	a.status, a.body = res.StatusCode, string(b)
	if n.alipay {
		a.taken = a.body == "success"
	} else {
		a.taken = a.status >= 200 && a.status < 300
	}
	return a
}

// retryable says what is wrong with a refusal as the channel's retry logic
// reads it, or "": WeChat Pay wants a non-2xx with {"code":"FAIL","message"};
// Alipay anything but "success" (the code answers "failure").
func retryable(a answer) string {
	if a.err != nil || a.taken {
		return ""
	}
	if a.n.alipay {
		if a.body != "failure" {
			return fmt.Sprintf("alipay refusal %d %q, want the text failure", a.status, a.body)
		}
		return ""
	}
	var ans struct{ Code, Message string }
	if json.Unmarshal([]byte(a.body), &ans) != nil || ans.Code != "FAIL" || ans.Message == "" {
		return fmt.Sprintf("wechat refusal %d %q, want {\"code\":\"FAIL\",\"message\":…}", a.status, a.body)
	}
	return ""
}

// sendAll delivers every note from senders goroutines, each one again and
// again until taken (as the channels retry), to the address base() names at
// the time. Every answer goes to seen. It returns how many are taken so far
// and a channel closed when all are, or when ctx ends.
func (w *faultWorld) sendAll(ctx context.Context, base func() string, notes []note, senders int, seen func(answer)) (*atomic.Int64, chan struct{}) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	var taken, next atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(notes) {
					return
				}
				for ctx.Err() == nil {
					a := w.deliver(hc, base(), &notes[i])
					seen(a)
					if a.taken {
						taken.Add(1)
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		hc.CloseIdleConnections()
		close(done)
	}()
	return &taken, done
}

// importBill posts a statement through the API, trace told when the request
// has been written whole. It returns the status and body, or the error.
func (w *faultWorld) importBill(hc *http.Client, base string, bill []byte, written func()) (int, string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("account_id", id(w.wx.ID))
	fw, _ := mw.CreateFormFile("file", "bill.csv")
	fw.Write(bill)
	mw.Close()
	req, _ := http.NewRequest("POST", base+"/api/v1/imports", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+w.token)
	if written != nil {
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { written() }}))
	}
	res, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), nil
}

// importUntilTaken retries an import until the API says it is in (201) or
// was already (200), as an integrator would.
func (w *faultWorld) importUntilTaken(ctx context.Context, base func() string, bill []byte, seen func(status int, body string, err error)) error {
	hc := &http.Client{Timeout: 60 * time.Second}
	defer hc.CloseIdleConnections()
	for ctx.Err() == nil {
		status, body, err := w.importBill(hc, base(), bill, nil)
		seen(status, body, err)
		if err == nil && (status == http.StatusCreated || status == http.StatusOK) {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return ctx.Err()
}

// wantLedger fails the test unless the ledger holds exactly the notes and
// rows bill rows (one yuan each): each record once, with one source, the
// bill taken once, and the daily rollups equal to the ledger.
func wantLedger(t *testing.T, store *models.Store, notes []note, billRows int) {
	t.Helper()
	wantRows, wantSum := int64(len(notes)+billRows), int64(billRows)*100
	for _, n := range notes {
		wantSum += n.amount
	}
	var rows, sum, sources, imports int64
	if err := store.DB.Model(&models.Transaction{}).Select("COUNT(*), COALESCE(SUM(amount), 0)").Row().Scan(&rows, &sum); err != nil {
		t.Fatal(err)
	}
	store.DB.Model(&models.TransactionSource{}).Count(&sources)
	store.DB.Model(&models.Import{}).Where("status = ?", models.ImportTaken).Count(&imports)
	if rows != wantRows || sum != wantSum || sources != wantRows || imports != 1 {
		t.Errorf("ledger: %d records summing %d with %d sources, %d imports; want %d records summing %d, one source each, 1 import",
			rows, sum, sources, imports, wantRows, wantSum)
	}
	for _, n := range notes {
		var got []models.Transaction
		store.DB.Where("channel_ref = ?", n.ref).Find(&got)
		if len(got) != 1 || got[0].Amount != n.amount {
			t.Errorf("notification %s (%d fen): ledger has %+v", n.ref, n.amount, got)
			break
		}
	}
	end := time.Now().AddDate(0, 0, 2).Format(time.DateOnly)
	chk, err := store.CheckRollups(models.SystemActor, models.Scope{All: true}, "2026-01-01", end, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(chk.Diffs) > 0 {
		t.Errorf("daily rollups differ from the ledger: %+v", chk.Diffs)
	}
}

// httpBrowser is a signed-in English browser over real HTTP.
type httpBrowser struct {
	hc   *http.Client
	base string
}

func signInOverHTTP(t *testing.T, base, user, pass string) *httpBrowser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &httpBrowser{base: base, hc: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	status, body, err := b.do("GET", "/login", nil)
	m := csrfRE.FindStringSubmatch(body)
	if err != nil || status != http.StatusOK || m == nil {
		t.Fatalf("sign-in page: %d %v", status, err)
	}
	status, _, err = b.do("POST", "/login", url.Values{"username": {user}, "password": {pass}, "_csrf": {m[1]}})
	if err != nil || status != http.StatusSeeOther {
		t.Fatalf("sign in %s: %d %v", user, status, err)
	}
	return b
}

func (b *httpBrowser) do(method, path string, form url.Values) (int, string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	req.Header.Set("Accept-Language", "en")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := b.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(raw), nil
}

// faultOutage is how long the database stays stopped: a few seconds in the
// suite, 30 s for the figures in docs/RELIABILITY.md (PAYFUSE_FAULT_OUTAGE=30s).
func faultOutage(t *testing.T) time.Duration {
	if v := os.Getenv("PAYFUSE_FAULT_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("PAYFUSE_FAULT_OUTAGE=%q: %v", v, err)
		}
		return d
	}
	return 3 * time.Second
}

// TestDatabaseOutageUnderLoad stops MariaDB for the server (a proxy between
// them drops every connection and refuses new ones) while a signed-in
// operator browses, WeChat Pay and Alipay notifications arrive from eight
// senders, and an integrator imports a statement through the API. While it
// is away every page answers within 2 s with the friendly 503 page in the
// user's language, every notification gets an answer its channel retries,
// the import fails cleanly; nothing panics. When it is back everything works
// again by itself, with no restart, and the ledger holds exactly what was sent.
func TestDatabaseOutageUnderLoad(t *testing.T) {
	if os.Getenv(models.TestMySQLEnv) == "" {
		t.Skip("needs MariaDB (set PAYFUSE_TEST_MYSQL): an embedded SQLite database cannot stop apart from the server")
	}
	outage := faultOutage(t)
	direct := models.OpenTest(t)
	raw := models.TestDSN(t, direct)
	u, _ := url.Parse(raw)
	proxy, err := faultproxy.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	via, _ := proxy.Via(raw)
	dsn, err := models.ParseDSN(via)
	if err != nil {
		t.Fatal(err)
	}
	db, err := models.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	store := models.NewStore(db, dsn.Dialect)
	t.Cleanup(func() { store.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	logs := &syncBuffer{}
	w := newFaultWorld(t, store, key, logs)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // stops the server, the senders and the browser if the test ends early
	served := make(chan error, 1)
	go func() { served <- w.srv.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	op := signInOverHTTP(t, base, "faultop", faultPass)

	var (
		mu                    sync.Mutex
		stopAt, resumeAt      time.Time
		answers               []answer
		pages                 []answer // n unused: status, body and times of GET /ledger
		imports               []string
		recovered             time.Duration
		pagesDone, importDone = make(chan struct{}), make(chan error, 1)
	)
	// asked is whether a request was made while the database was stopped and
	// at least 2 s before it came back: its answer must say so, within 2 s
	// (a later one may legitimately be answered after the recovery). Call
	// with mu held.
	asked := func(a answer) bool {
		return !stopAt.IsZero() && a.start.After(stopAt) && a.start.Before(resumeAt.Add(-2*time.Second))
	}
	notes := faultNotes(160)
	const billRows = 3000
	taken, sent := w.sendAll(ctx, func() string { return base }, notes, 8, func(a answer) {
		mu.Lock()
		answers = append(answers, a)
		mu.Unlock()
	})
	go func() { // the operator reloads the ledger until it is back after the outage
		defer close(pagesDone)
		for ctx.Err() == nil {
			a := answer{start: time.Now()}
			a.status, a.body, a.err = op.do("GET", "/ledger", nil)
			a.end = time.Now()
			mu.Lock()
			pages = append(pages, a)
			back := !resumeAt.IsZero() && a.status == http.StatusOK
			if back {
				recovered = a.end.Sub(resumeAt)
			}
			mu.Unlock()
			if back {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	waitFor(t, "the first notifications", func() bool { return taken.Load() >= 30 })
	go func() {
		importDone <- w.importUntilTaken(ctx, func() string { return base }, bigBill(billRows), func(status int, body string, err error) {
			mu.Lock()
			imports = append(imports, fmt.Sprintf("%d %s %v", status, body, err))
			mu.Unlock()
		})
	}()
	time.Sleep(150 * time.Millisecond) // the import is under way (if it is in already, it must still be in once)
	proxy.Stop()
	mu.Lock()
	stopAt = time.Now()
	mu.Unlock()
	time.Sleep(outage)
	if err := proxy.Resume(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	resumeAt = time.Now()
	mu.Unlock()

	deadline := time.After(60 * time.Second)
	select {
	case err := <-importDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-deadline:
		t.Fatal("the import was not taken 60 s after the database came back")
	}
	importBack := time.Since(resumeAt)
	for _, ch := range []<-chan struct{}{sent, pagesDone} {
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("not recovered 60 s after the database came back: %d of %d notifications taken", taken.Load(), len(notes))
		}
	}
	allTaken := time.Since(resumeAt)
	cancel()
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	title := views.Translate(views.LangEN, "error.503.title")
	var pageTimes, noteTimes []time.Duration // of the answers to requests made during the outage
	for _, p := range pages {
		took := p.end.Sub(p.start)
		switch {
		case p.err != nil:
			t.Errorf("GET /ledger: no answer: %v", p.err)
		case p.status == http.StatusOK:
		case p.status == http.StatusServiceUnavailable && strings.Contains(p.body, title):
		default:
			t.Errorf("GET /ledger answered %d after %v, want the page or the friendly 503", p.status, took)
		}
		if asked(p) {
			pageTimes = append(pageTimes, took)
			if p.status != http.StatusServiceUnavailable || took > 2*time.Second {
				t.Errorf("GET /ledger %v into the outage: %d after %v, want the friendly 503 within 2 s", p.start.Sub(stopAt), p.status, took)
			}
		}
	}
	for _, a := range answers {
		if msg := retryable(a); msg != "" {
			t.Error(msg)
		}
		if asked(a) {
			took := a.end.Sub(a.start)
			noteTimes = append(noteTimes, took)
			if a.taken || a.err != nil || a.status != http.StatusServiceUnavailable || took > 2*time.Second {
				t.Errorf("notification %v into the outage: answered after %v: taken %v, %d %q %v", a.start.Sub(stopAt), took, a.taken, a.status, a.body, a.err)
			}
		}
	}
	if len(pageTimes) == 0 || len(noteTimes) == 0 {
		t.Fatalf("the outage saw %d page loads and %d notifications: it did not test anything", len(pageTimes), len(noteTimes))
	}
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("the server panicked:\n%s", logs.String())
	}
	slices.Sort(pageTimes)
	slices.Sort(noteTimes)
	t.Logf("outage %v: %d page loads answered 503 in median %v, max %v; %d notification deliveries refused in median %v, max %v; "+
		"after the database came back: the ledger page in %v, the import taken in %v (%d attempts in all), every notification in %v",
		outage, len(pageTimes), pageTimes[len(pageTimes)/2], pageTimes[len(pageTimes)-1], len(noteTimes), noteTimes[len(noteTimes)/2],
		noteTimes[len(noteTimes)-1], recovered, importBack, len(imports), allTaken)
	// The API answers an outage 503 database_unavailable (nothing changed, retry).
	for _, line := range imports {
		if !strings.HasPrefix(line, "201 ") && !strings.HasPrefix(line, "200 ") &&
			!(strings.HasPrefix(line, "503 ") && strings.Contains(line, `"code":"database_unavailable"`)) {
			t.Errorf("import attempt answered %s, want the data or a clean error", line)
		}
	}
	wantLedger(t, direct, notes, billRows)
}

// TestImportIntoAFullDatabasePage: an upload that runs SQLite out of space
// (max_page_count stands in for a full disk) ends on the import page with
// "nothing was added"; the ledger is as it was and the database passes its
// integrity check. A request whose write does not fit gets the "database
// full" page (507) in the user's language, not a bare 500.
func TestImportIntoAFullDatabasePage(t *testing.T) {
	if os.Getenv(models.TestMySQLEnv) != "" {
		t.Skip("SQLite only (its max_page_count stands in for a full disk)")
	}
	store := models.OpenTest(t)
	key := make([]byte, 32)
	rand.Read(key)
	w := newFaultWorld(t, store, key, &syncBuffer{})
	op := newClient(t, w.srv)
	op.header.Set("Accept-Language", "en")
	op.login("faultop", faultPass)

	var pages int64
	store.DB.Raw("PRAGMA page_count").Scan(&pages)
	sqlDB, _ := store.DB.DB()
	func() { // every pooled connection gets the cap (max_page_count is per connection)
		ctx := context.Background()
		for i := 0; i < sqlDB.Stats().MaxOpenConnections; i++ {
			c, err := sqlDB.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages+16)) // 64 KiB to spare
		}
	}()
	r := op.follow(op.upload(w.wx.ID, "bill.csv", bigBill(1000)))
	if !strings.Contains(r.Body, views.Translate(views.LangEN, "imports.failed")) {
		t.Fatalf("upload into a full database ended on %d: %s", r.StatusCode, clip(r.Body))
	}
	var n int64
	store.DB.Model(&models.Transaction{}).Count(&n)
	var check string
	store.DB.Raw("PRAGMA integrity_check").Scan(&check)
	if n != 0 || check != "ok" {
		t.Fatalf("after the failed import: %d records, integrity %q", n, check)
	}

	// A write that does not fit, on a page of its own (no route writes that much).
	w.srv.App.Get("/fault-test/full", func(c *fiber.Ctx) error {
		return store.DB.Exec("CREATE TABLE fault_test_blob AS SELECT zeroblob(1000000) AS b").Error
	})
	for _, lang := range views.Languages {
		c := newClient(t, w.srv)
		c.header.Set("Accept-Language", lang)
		r := c.get("/fault-test/full")
		if want := views.Translate(lang, "error.full.title"); r.StatusCode != http.StatusInsufficientStorage || !strings.Contains(r.Body, want) {
			t.Errorf("%s: a write into the full database: %d, want 507 with %q", lang, r.StatusCode, want)
		}
	}
}

// serverChild is the server running in a child process (the test binary
// running TestFaultServerChild), as `payfuse serve` runs it.
type serverChild struct {
	cmd    *exec.Cmd
	stdout *syncBuffer // the test framework's output, and the lines below
	stderr *syncBuffer // the server's log
	exited chan struct{}
	err    error // after exited
}

// startServerChild starts a server on addr over the test's database (dsn)
// with the master key; flowID, when not 0, is a flow the child starts with a
// handler that checkpoints and then runs until cancelled.
func startServerChild(t *testing.T, dsn string, key []byte, addr string, flowID uint64) *serverChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestFaultServerChild$", "-test.v")
	cmd.Env = append(os.Environ(), "PAYFUSE_FAULT_CHILD_DSN="+dsn, "PAYFUSE_FAULT_CHILD_KEY="+hex.EncodeToString(key),
		"PAYFUSE_FAULT_CHILD_ADDR="+addr, "PAYFUSE_FAULT_CHILD_FLOW="+strconv.FormatUint(flowID, 10))
	c := &serverChild{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintln(c.stdout, sc.Text())
		}
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.exited
		if t.Failed() {
			t.Logf("server child's output:\n%s\nits log:\n%s", c.stdout.String(), c.stderr.String())
		}
	})
	c.waitLine(t, "listening", 30*time.Second)
	return c
}

// waitLine waits until the child has printed s (at any time so far).
func (c *serverChild) waitLine(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !strings.Contains(c.stdout.String(), s); time.Sleep(20 * time.Millisecond) {
		select {
		case <-c.exited:
			if !strings.Contains(c.stdout.String(), s) {
				t.Fatalf("the server child exited (%v) before printing %q", c.err, s)
			}
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server child did not print %q within %v", s, timeout)
		}
	}
}

// freeAddr is a loopback address nobody listens on, for a server that
// restarts on the same address.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// childShutdownGrace is the child's grace for a SIGTERM: shorter than the
// default 10 s so the test is quick, long enough for the import in flight.
const childShutdownGrace = 5 * time.Second

// TestFaultServerChild is the server process of the SIGKILL and SIGTERM
// tests: it serves as main.go's serve command does (stopping on SIGTERM or
// SIGINT through signal.NotifyContext).
func TestFaultServerChild(t *testing.T) {
	raw := os.Getenv("PAYFUSE_FAULT_CHILD_DSN")
	if raw == "" {
		t.Skip("the server process of the SIGKILL and SIGTERM tests; run by them")
	}
	dsn, err := models.ParseDSN(raw)
	if err != nil {
		t.Fatal(err)
	}
	db, err := models.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	store := models.NewStore(db, dsn.Dialect)
	defer store.Close()
	key, _ := hex.DecodeString(os.Getenv("PAYFUSE_FAULT_CHILD_KEY"))
	srv, err := web.New(web.Config{Addr: os.Getenv("PAYFUSE_FAULT_CHILD_ADDR"), MasterKey: key,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}, store)
	if err != nil {
		t.Fatal(err)
	}
	srv.ShutdownGrace = childShutdownGrace
	if flowID, _ := strconv.ParseUint(os.Getenv("PAYFUSE_FAULT_CHILD_FLOW"), 10, 64); flowID != 0 {
		// A long flow (a bill download, say): it checkpoints, then works
		// until the engine cancels it.
		srv.H.Flows.Register(models.FlowRollupCheck, flows.HandlerFunc(func(ctx context.Context, run *flows.Run) (flows.Counts, error) {
			if err := run.Checkpoint("step=1", flows.Counts{RowsRead: 7}); err != nil {
				return flows.Counts{}, err
			}
			fmt.Println("flow running")
			<-ctx.Done()
			return flows.Counts{RowsRead: 7}, ctx.Err()
		}))
		if _, err := srv.H.Flows.RunNow(models.Scope{All: true}, flowID, models.Actor{Name: "fault-test"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		for i := 0; i < 200; i++ { // tell the parent once the listener is up
			if c, err := net.Dial("tcp", os.Getenv("PAYFUSE_FAULT_CHILD_ADDR")); err == nil {
				c.Close()
				fmt.Println("listening")
				return
			}
			time.Sleep(25 * time.Millisecond)
		}
	}()
	if err := srv.Listen(ctx); err != nil {
		t.Fatalf("serve: %v", err)
	}
	fmt.Println("stopped cleanly")
}

// TestServerKilledDuringNotificationsAndImport kills the server with
// SIGKILL while eight senders deliver notifications and a statement import
// is in flight, then starts it again on the same database. The senders and
// the integrator retry what was not acknowledged, as the channels do; in
// the end the ledger holds every notification and the whole file exactly
// once, and a notification acknowledged before the kill was not lost.
func TestServerKilledDuringNotificationsAndImport(t *testing.T) {
	store := models.OpenTest(t)
	key := make([]byte, 32)
	rand.Read(key)
	w := newFaultWorld(t, store, key, &syncBuffer{})
	dsn, addr := models.TestDSN(t, store), freeAddr(t)
	first := startServerChild(t, dsn, key, addr, 0)
	base := func() string { return "http://" + addr }

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	notes := faultNotes(120)
	var mu sync.Mutex
	var ackedBeforeKill int
	var killed atomic.Bool
	taken, sent := w.sendAll(ctx, base, notes, 8, func(a answer) {
		if a.taken && !killed.Load() {
			mu.Lock()
			ackedBeforeKill++
			mu.Unlock()
		}
		if msg := retryable(a); msg != "" {
			t.Error(msg)
		}
	})
	waitFor(t, "the first notifications", func() bool { return taken.Load() >= 20 })

	const billRows = 3000
	bill := bigBill(billRows)
	written := make(chan struct{})
	var once sync.Once
	firstImport := make(chan string, 1)
	go func() {
		hc := &http.Client{Timeout: 60 * time.Second}
		status, body, err := w.importBill(hc, base(), bill, func() { once.Do(func() { close(written) }) })
		once.Do(func() { close(written) })
		firstImport <- fmt.Sprintf("%d %.80s %v", status, body, err)
	}()
	<-written
	waitImportTransaction(t, store, w.wx.ID)
	killed.Store(true)
	first.cmd.Process.Kill() // SIGKILL: no shutdown, no rollback, no lease release
	<-first.exited
	var mid string
	select {
	case mid = <-firstImport:
	case <-time.After(5 * time.Second):
		t.Fatal("the import request did not end when its server was killed")
	}
	if !strings.HasPrefix(mid, "0 ") {
		t.Errorf("the import was answered before the kill (%s): the kill did not land in the middle of it", mid)
	}
	var inLedger int64
	store.DB.Model(&models.Transaction{}).Where("sources LIKE ?", "%"+models.SourceStatement+"%").Count(&inLedger)
	if inLedger != 0 {
		t.Errorf("%d rows of the killed import are in the ledger", inLedger)
	}
	t.Logf("killed with %d of %d notifications acknowledged, the import in flight (%s)", taken.Load(), len(notes), mid)

	startServerChild(t, dsn, key, addr, 0)
	if err := w.importUntilTaken(ctx, base, bill, func(int, string, error) {}); err != nil {
		t.Fatalf("the import after the restart: %v", err)
	}
	select {
	case <-sent:
	case <-ctx.Done():
		t.Fatalf("only %d of %d notifications taken after the restart", taken.Load(), len(notes))
	}
	mu.Lock()
	t.Logf("%d notifications were acknowledged before the kill", ackedBeforeKill)
	mu.Unlock()
	wantLedger(t, store, notes, billRows)
}

// waitImportTransaction waits until another process is inside a statement
// import's transaction for account: the account's row (on SQLite, the
// database's write lock), which every ingest holds for its whole
// transaction, has been held for 150 ms without a break — longer than a
// notification holds it.
func waitImportTransaction(t *testing.T, store *models.Store, account uint64) {
	t.Helper()
	held := func() bool {
		busy := false
		store.DB.Connection(func(c *gorm.DB) error {
			if store.Dialect == models.MySQL {
				busy = models.IsBusy(c.Transaction(func(tx *gorm.DB) error {
					return tx.Exec("SELECT id FROM channel_accounts WHERE id = ? FOR UPDATE NOWAIT", account).Error
				}))
				return nil
			}
			c.Exec("PRAGMA busy_timeout = 0")
			defer c.Exec("PRAGMA busy_timeout = 10000")
			if err := c.Exec("BEGIN IMMEDIATE").Error; err != nil {
				busy = models.IsBusy(err)
				return nil
			}
			return c.Exec("ROLLBACK").Error
		})
		return busy
	}
	var since time.Time
	waitFor(t, "the import to hold its account's lock", func() bool {
		switch {
		case !held():
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		}
		return !since.IsZero() && time.Since(since) >= 150*time.Millisecond
	})
}

// TestServerStopsGracefullyOnSIGTERM sends SIGTERM to the server while a
// statement import is in flight and a flow is running. The server stops
// taking connections at once; the import finishes and is answered; the flow
// is cancelled at the end of the grace, keeps its checkpoint, is marked
// interrupted (to resume at the next start) and gives up its lease; the
// process exits cleanly within the grace.
func TestServerStopsGracefullyOnSIGTERM(t *testing.T) {
	store := models.OpenTest(t)
	key := make([]byte, 32)
	rand.Read(key)
	w := newFaultWorld(t, store, key, &syncBuffer{})
	flow, err := store.CreateFlow(models.SystemActor, models.Scope{All: true}, models.FlowInput{
		Name: "nightly-check", Kind: models.FlowRollupCheck, MerchantCode: "SHOP_SH", Enabled: true, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	child := startServerChild(t, models.TestDSN(t, store), key, addr, flow.ID)
	child.waitLine(t, "flow running", 30*time.Second)

	// Hold the account's row (on SQLite, the database's write lock) so the
	// import is certainly in flight, waiting for it, when SIGTERM comes.
	hold, held, released := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(released)
		store.Tx(func(tx *gorm.DB) error {
			if err := tx.Exec("UPDATE channel_accounts SET enabled = enabled WHERE id = ?", w.wx.ID).Error; err != nil {
				t.Error(err)
			}
			close(held)
			<-hold
			return errors.New("roll back")
		})
	}()
	<-held
	const billRows = 500
	written := make(chan struct{})
	var once sync.Once
	type result struct {
		status int
		body   string
		err    error
	}
	imported := make(chan result, 1)
	go func() {
		hc := &http.Client{Timeout: 60 * time.Second}
		status, body, err := w.importBill(hc, "http://"+addr, bigBill(billRows), func() { once.Do(func() { close(written) }) })
		imported <- result{status, body, err}
	}()
	<-written
	time.Sleep(300 * time.Millisecond) // the server has it, and waits for the lock
	select {
	case r := <-imported:
		t.Fatalf("the import was answered while the account was locked: %d %.200s %v", r.status, r.body, r.err)
	default:
	}
	sigAt := time.Now()
	if err := child.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// No new connections from now on.
	waitFor(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(hold) // the import goes on
	<-released
	select {
	case r := <-imported:
		if r.err != nil || r.status != http.StatusCreated || !strings.Contains(r.body, fmt.Sprintf(`"inserted":%d`, billRows)) {
			t.Fatalf("the import in flight at SIGTERM: %d %.200s %v", r.status, r.body, r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the import in flight at SIGTERM was not answered")
	}
	select {
	case <-child.exited:
	case <-time.After(childShutdownGrace + flows.DefaultStopGrace + 10*time.Second):
		t.Fatal("the server did not exit after SIGTERM")
	}
	took := time.Since(sigAt)
	if child.err != nil {
		t.Fatalf("the server exited with %v after SIGTERM:\n%s", child.err, child.stderr.String())
	}
	if !strings.Contains(child.stderr.String(), "shutting down") {
		t.Errorf("no shutdown in the log:\n%s", child.stderr.String())
	}
	page, err := store.ListRuns(models.Scope{All: true}, models.RunFilter{FlowID: flow.ID})
	if err != nil || len(page.Rows) != 1 {
		t.Fatalf("runs of the flow: %+v %v", page, err)
	}
	run := page.Rows[0]
	if run.Status != models.RunRetrying || run.Checkpoint != "step=1" || run.RowsRead != 7 || !strings.Contains(run.ErrorText().EN, "shutting down") {
		t.Errorf("the flow run after SIGTERM: status %s, checkpoint %q, rows read %d, error %q; want retrying from its checkpoint",
			run.Status, run.Checkpoint, run.RowsRead, run.ErrorText().EN)
	}
	lease, err := store.GetLease(models.FlowLeaseName(flow.ID))
	if err != nil || lease.ExpiresAt.After(time.Now()) {
		t.Errorf("the flow's lease after SIGTERM: %+v %v, want it released", lease, err)
	}
	var rows int64
	store.DB.Model(&models.Transaction{}).Count(&rows)
	if rows != billRows {
		t.Errorf("%d records after the import finished during the shutdown, want %d", rows, billRows)
	}
	t.Logf("exited %v after SIGTERM (grace %v)", took, childShutdownGrace)
}

// waitFor polls cond every 20 ms for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}
