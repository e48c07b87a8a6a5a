package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"payfuse/flows/webhook"
)

var testSecret = []byte("whsec-test-secret-never-shown")

// received is what a fake receiver was sent.
type received struct {
	mu     sync.Mutex
	reqs   []*http.Request
	bodies [][]byte
}

func (r *received) record(req *http.Request) []byte {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	r.bodies = append(r.bodies, body)
	return body
}

func (r *received) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func delivery(url string) webhook.Delivery {
	return webhook.Delivery{
		ID:      webhook.NewDeliveryID(),
		URL:     url,
		Event:   "payment.large",
		Secret:  testSecret,
		Payload: []byte(`{"event":"payment.large","amount":123456,"currency":"CNY"}`),
	}
}

// loopbackAllowed admits 127.0.0.1 over plain http, as an admin would for
// an internal receiver.
var loopbackAllowed = webhook.AllowList{Nets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, HTTP: true}

// checkTexts fails when an attempt's texts give away the secret, the
// signature or the URL's path.
func checkTexts(t *testing.T, a webhook.Attempt, d webhook.Delivery) {
	t.Helper()
	all := a.Error.EN + "\n" + a.Error.ZH + "\n" + a.Response
	path := d.URL[strings.Index(d.URL, "://")+3:]
	if i := strings.IndexByte(path, '/'); i >= 0 {
		path = path[i:]
	}
	sig := webhook.Sign(d.Secret, a.Timestamp, d.Payload)
	for _, leak := range []string{string(d.Secret), sig[len("sha256="):]} {
		if len(leak) > 0 && strings.Contains(all, leak) {
			t.Errorf("the attempt's texts contain a secret: %q", all)
		}
	}
	if len(path) > 1 && strings.Contains(a.Error.EN+a.Error.ZH, path) {
		t.Errorf("the attempt's error quotes the URL path %q: %q", path, all)
	}
	if a.Outcome != webhook.Delivered && (a.Error.EN == "" || a.Error.ZH == "") {
		t.Errorf("a failed attempt without a message in both languages: %+v", a)
	}
}

func TestDeliverSigned(t *testing.T) {
	var got received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.record(r)
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	dns := &fakeDNS{names: map[string][]netip.Addr{"alerts.corp.example": addrs("127.0.0.1")}}

	for _, tc := range []struct {
		name string
		g    webhook.Guard
		url  string
	}{
		{"allow-listed address", webhook.Guard{Allow: loopbackAllowed}, srv.URL + "/hooks/payfuse"},
		{"allow-listed name", webhook.Guard{Allow: webhook.AllowList{Hosts: []string{"alerts.corp.example"}, HTTP: true}, Resolver: dns},
			"http://alerts.corp.example:" + port + "/hooks/payfuse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := delivery(tc.url)
			before := time.Now().Unix()
			a := webhook.NewSender(tc.g, 5*time.Second).Send(context.Background(), d)
			if a.Outcome != webhook.Delivered || a.StatusCode != 200 || a.Reason != "" {
				t.Fatalf("Send = %+v, want delivered", a)
			}
			if a.Response != `{"ok":true}` || a.DeliveryID != d.ID || a.Timestamp < before || a.Start.Location() != time.UTC {
				t.Errorf("attempt record: %+v", a)
			}
			checkTexts(t, a, d)
			req, body := got.reqs[len(got.reqs)-1], got.bodies[len(got.bodies)-1]
			if req.Method != http.MethodPost || req.URL.Path != "/hooks/payfuse" || string(body) != string(d.Payload) {
				t.Errorf("received %s %s %s", req.Method, req.URL.Path, body)
			}
			for h, want := range map[string]string{
				"Content-Type":        "application/json",
				"User-Agent":          "PayFuse-Webhook/1",
				"X-PayFuse-Event":     "payment.large",
				"X-PayFuse-Delivery":  d.ID,
				"X-PayFuse-Timestamp": strconv.FormatInt(a.Timestamp, 10),
				"X-PayFuse-Signature": webhook.Sign(testSecret, a.Timestamp, body),
			} {
				if v := req.Header.Get(h); v != want {
					t.Errorf("header %s = %q, want %q", h, v, want)
				}
			}
			if err := webhook.VerifyRequest(testSecret, req.Header, body, time.Now()); err != nil {
				t.Errorf("the receiver's check failed: %v", err)
			}
			ts, sig := req.Header.Get(webhook.HeaderTimestamp), req.Header.Get(webhook.HeaderSignature)
			alteredTS := strconv.FormatInt(a.Timestamp+1, 10)
			for _, bad := range []struct {
				what, ts, sig string
				body          []byte
				secret        []byte
				now           time.Time
				reason        string
			}{
				{"altered body", ts, sig, []byte(strings.Replace(string(body), "123456", "923456", 1)), testSecret, time.Now(), webhook.ReasonBadSignature},
				{"altered timestamp", alteredTS, sig, body, testSecret, time.Now(), webhook.ReasonBadSignature},
				{"other secret", ts, sig, body, []byte("another secret"), time.Now(), webhook.ReasonBadSignature},
				{"replayed later", ts, sig, body, testSecret, time.Now().Add(6 * time.Minute), webhook.ReasonStaleTimestamp},
			} {
				var se *webhook.SignatureError
				if err := webhook.Verify(bad.secret, bad.ts, bad.sig, bad.body, bad.now, 0); !errors.As(err, &se) || se.Reason != bad.reason {
					t.Errorf("%s: Verify = %v, want %s", bad.what, err, bad.reason)
				}
			}
		})
	}
	if got.len() != 2 {
		t.Errorf("the receiver got %d requests, want 2", got.len())
	}
}

func TestRefusedReceiverGetsNothing(t *testing.T) {
	tw := newTripwire(t)
	dns := &fakeDNS{names: map[string][]netip.Addr{"hooks.example.com": addrs("127.0.0.1")}}
	s := webhook.NewSender(webhook.Guard{Resolver: dns}, 5*time.Second)
	for _, u := range []string{
		"https://127.0.0.1:" + tw.port() + "/hook",
		"https://[::ffff:127.0.0.1]:" + tw.port() + "/hook",
		"https://hooks.example.com:" + tw.port() + "/hook",
		"http://127.0.0.1:" + tw.port() + "/hook",
	} {
		d := delivery(u)
		a := s.Send(context.Background(), d)
		if a.Outcome != webhook.Failed || a.StatusCode != 0 {
			t.Errorf("Send(%s) = %+v, want failed for good", u, a)
		}
		checkTexts(t, a, d)
	}
	if n := tw.Count(t); n != 0 {
		t.Errorf("%d connections reached the refused receiver", n)
	}
}

// TestDNSRebinding: the name is public when the form checks it and
// loopback when the webhook is sent. The send is refused at connect time.
func TestDNSRebinding(t *testing.T) {
	tw := newTripwire(t)
	dns := &fakeDNS{}
	dns.hook = func(host string) ([]netip.Addr, bool) {
		if host != "hooks.rebind.example" {
			return nil, false
		}
		if dns.calls.Load() == 1 {
			return addrs("93.184.216.34"), true
		}
		return addrs("127.0.0.1"), true
	}
	g := webhook.Guard{Resolver: dns}
	u := "https://hooks.rebind.example:" + tw.port() + "/hook"
	if err := g.Check(context.Background(), u); err != nil {
		t.Fatalf("Check at save time = %v, want nil (the name is public then)", err)
	}
	a := webhook.NewSender(g, 5*time.Second).Send(context.Background(), delivery(u))
	if a.Outcome != webhook.Failed || a.Reason != webhook.ReasonLoopback ||
		!strings.Contains(a.Error.EN, "hooks.rebind.example resolves to 127.0.0.1") {
		t.Errorf("Send after rebinding = %+v, want refused as loopback", a)
	}
	if dns.calls.Load() != 2 {
		t.Errorf("the name was resolved %d times, want 2 (save, connect)", dns.calls.Load())
	}
	if n := tw.Count(t); n != 0 {
		t.Errorf("%d connections reached 127.0.0.1", n)
	}
}

func TestRedirectsNotFollowed(t *testing.T) {
	tw := newTripwire(t)
	var finalHits received
	mux := http.NewServeMux()
	mux.HandleFunc("/to-metadata", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/iam/", http.StatusFound)
	})
	mux.HandleFunc("/to-internal", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://internal.example.com:"+tw.port()+"/admin", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/to-loopback", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:"+tw.port()+"/admin", http.StatusPermanentRedirect)
	})
	mux.HandleFunc("/final", func(w http.ResponseWriter, r *http.Request) { finalHits.record(r) })
	mux.HandleFunc("/to-allowed", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/final", http.StatusMovedPermanently)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	dns := &fakeDNS{names: map[string][]netip.Addr{
		"receiver.example.com": addrs("127.0.0.1"),
		"internal.example.com": addrs("127.0.0.1"),
	}}
	g := webhook.Guard{Allow: webhook.AllowList{Hosts: []string{"receiver.example.com"}, HTTP: true}, Resolver: dns}
	s := webhook.NewSender(g, 5*time.Second)
	for path, code := range map[string]int{"/to-metadata": 302, "/to-internal": 307, "/to-loopback": 308, "/to-allowed": 301} {
		d := delivery("http://receiver.example.com:" + port + path)
		a := s.Send(context.Background(), d)
		if a.Outcome != webhook.Failed || a.Reason != webhook.ReasonRedirect || a.StatusCode != code {
			t.Errorf("Send(%s) = %+v, want a permanent redirect failure", path, a)
		}
		checkTexts(t, a, d)
	}
	// The guarded client on its own does not follow either.
	resp, err := g.Client(0).Get("http://receiver.example.com:" + port + "/to-internal")
	if err != nil || resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("Client().Get = %v, %v; want the 307 itself", resp, err)
	} else {
		resp.Body.Close()
	}
	// ... and refuses a URL the guard refuses, even without Send.
	if _, err := g.Client(0).Get("http://169.254.169.254/latest/meta-data/"); !webhook.IsRefused(err) {
		t.Errorf("Client().Get(metadata) = %v, want refused", err)
	}
	if finalHits.len() != 0 {
		t.Errorf("a redirect was followed to /final")
	}
	if n := tw.Count(t); n != 0 {
		t.Errorf("%d connections followed a redirect to the tripwire", n)
	}
}

func TestStatusOutcomes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		if code == 429 {
			w.Header().Set("Retry-After", "120")
		}
		if code == 503 {
			w.Header().Set("Retry-After", "86400")
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "answer %d", code)
	}))
	defer srv.Close()
	s := webhook.NewSender(webhook.Guard{Allow: loopbackAllowed}, 5*time.Second)
	tests := []struct {
		code       int
		outcome    webhook.Outcome
		retryAfter time.Duration
	}{
		{200, webhook.Delivered, 0}, {201, webhook.Delivered, 0}, {202, webhook.Delivered, 0}, {204, webhook.Delivered, 0},
		{400, webhook.Failed, 0}, {401, webhook.Failed, 0}, {403, webhook.Failed, 0}, {404, webhook.Failed, 0},
		{405, webhook.Failed, 0}, {410, webhook.Failed, 0}, {413, webhook.Failed, 0}, {422, webhook.Failed, 0},
		{408, webhook.Retry, 0}, {429, webhook.Retry, 2 * time.Minute},
		{500, webhook.Retry, 0}, {502, webhook.Retry, 0}, {503, webhook.Retry, webhook.MaxRetryDelay}, {504, webhook.Retry, 0},
	}
	for _, tc := range tests {
		d := delivery(srv.URL + "/" + strconv.Itoa(tc.code))
		a := s.Send(context.Background(), d)
		if a.Outcome != tc.outcome || a.StatusCode != tc.code || a.RetryAfter != tc.retryAfter {
			t.Errorf("answer %d: %+v, want %s (Retry-After %s)", tc.code, a, tc.outcome, tc.retryAfter)
		}
		if tc.code != 204 && a.Response != fmt.Sprintf("answer %d", tc.code) {
			t.Errorf("answer %d: response snippet %q", tc.code, a.Response)
		}
		if tc.outcome != webhook.Delivered && (a.Reason != webhook.ReasonStatus || !strings.Contains(a.Error.EN, strconv.Itoa(tc.code))) {
			t.Errorf("answer %d: reason %s, error %q", tc.code, a.Reason, a.Error.EN)
		}
		checkTexts(t, a, d)
	}
}

func TestTimeoutIsRetried(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	d := delivery(srv.URL + "/slow/tok-5551")
	a := webhook.NewSender(webhook.Guard{Allow: loopbackAllowed}, 50*time.Millisecond).Send(context.Background(), d)
	if a.Outcome != webhook.Retry || a.Reason != webhook.ReasonTimeout || a.StatusCode != 0 {
		t.Errorf("a receiver that never answers: %+v, want a timeout to retry", a)
	}
	checkTexts(t, a, d)
}

func TestNetworkFailuresAreRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	dns := &fakeDNS{names: map[string][]netip.Addr{}}
	s := webhook.NewSender(webhook.Guard{Allow: loopbackAllowed, Resolver: dns}, 5*time.Second)

	d := delivery("http://127.0.0.1:" + closedPort + "/hooks/tok-7781")
	a := s.Send(context.Background(), d)
	if a.Outcome != webhook.Retry || a.Reason != webhook.ReasonNetwork {
		t.Errorf("connection refused: %+v, want a network failure to retry", a)
	}
	checkTexts(t, a, d)

	d = delivery("https://gone.example.com/hooks/tok-7781")
	a = s.Send(context.Background(), d)
	if a.Outcome != webhook.Retry || a.Reason != webhook.ReasonNetwork || !strings.Contains(a.Error.EN, "gone.example.com") {
		t.Errorf("unresolvable name: %+v, want a network failure to retry", a)
	}
	checkTexts(t, a, d)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d = delivery("https://gone.example.com/hooks/tok-7781")
	if a = s.Send(ctx, d); a.Outcome != webhook.Retry || a.Reason != webhook.ReasonCanceled {
		t.Errorf("stopped by the caller: %+v, want canceled to retry", a)
	}
	checkTexts(t, a, d)
}

func TestBadDeliveries(t *testing.T) {
	s := webhook.NewSender(webhook.Guard{}, 0)
	good := delivery("https://hooks.example.com/x")
	tests := []struct {
		name   string
		change func(*webhook.Delivery)
		reason string
	}{
		{"no id", func(d *webhook.Delivery) { d.ID = "" }, webhook.ReasonBadRequest},
		{"id with a newline", func(d *webhook.Delivery) { d.ID = "a\r\nX-Evil: 1" }, webhook.ReasonBadRequest},
		{"no event", func(d *webhook.Delivery) { d.Event = "" }, webhook.ReasonBadRequest},
		{"event with spaces", func(d *webhook.Delivery) { d.Event = "payment large" }, webhook.ReasonBadRequest},
		{"no secret", func(d *webhook.Delivery) { d.Secret = nil }, webhook.ReasonBadRequest},
		{"not JSON", func(d *webhook.Delivery) { d.Payload = []byte("amount=1") }, webhook.ReasonBadRequest},
		{"too large", func(d *webhook.Delivery) {
			d.Payload = []byte(`"` + strings.Repeat("x", webhook.MaxPayload) + `"`)
		}, webhook.ReasonBadRequest},
		{"metadata URL", func(d *webhook.Delivery) { d.URL = "https://169.254.169.254/" }, webhook.ReasonLinkLocal},
		{"plain http", func(d *webhook.Delivery) { d.URL = "http://hooks.example.com/" }, webhook.ReasonScheme},
	}
	for _, tc := range tests {
		d := good
		tc.change(&d)
		a := s.Send(context.Background(), d)
		if a.Outcome != webhook.Failed || a.Reason != tc.reason || a.Timestamp != 0 {
			t.Errorf("%s: %+v, want failed (%s) before sending", tc.name, a, tc.reason)
		}
		checkTexts(t, a, d)
	}
}

func TestLongAnswerIsCut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("已收到", 200_000))) // 1.8 MB of 3-byte runes
	}))
	defer srv.Close()
	a := webhook.NewSender(webhook.Guard{Allow: loopbackAllowed}, 5*time.Second).Send(context.Background(), delivery(srv.URL))
	if a.Outcome != webhook.Delivered {
		t.Fatalf("Send = %+v", a)
	}
	if len(a.Response) > webhook.MaxSnippet || len(a.Response) < webhook.MaxSnippet-3 || !utf8.ValidString(a.Response) ||
		!strings.HasPrefix(a.Response, "已收到已收到") {
		t.Errorf("snippet of %d bytes, valid UTF-8 %v", len(a.Response), utf8.ValidString(a.Response))
	}
}

func TestConcurrentSends(t *testing.T) {
	var got received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := got.record(r)
		if webhook.VerifyRequest(testSecret, r.Header, body, time.Now()) != nil {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	s := webhook.NewSender(webhook.Guard{Allow: loopbackAllowed}, 5*time.Second)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			d := delivery(srv.URL)
			d.Payload = []byte(fmt.Sprintf(`{"n":%d}`, i))
			if a := s.Send(context.Background(), d); a.Outcome != webhook.Delivered {
				t.Errorf("send %d: %+v", i, a)
			}
		})
	}
	wg.Wait()
	if got.len() != 8 {
		t.Errorf("received %d, want 8", got.len())
	}
}
