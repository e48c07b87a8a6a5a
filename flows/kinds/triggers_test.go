package kinds_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/testkeys"
	"payfuse/flows/kinds"
	"payfuse/flows/webhook"
	"payfuse/models"
)

// loopback admits the httptest receivers, over plain http.
var loopback = webhook.AllowList{Nets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, HTTP: true}

// receiver is a webhook receiver on loopback that answers with the codes
// it is given, in turn (200 once they run out), and keeps what it got.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	codes  []int
	got    []received
	secret []byte
}

type received struct {
	header   http.Header
	body     []byte
	verified error
}

func newReceiver(t *testing.T, codes ...int) *receiver {
	rc := &receiver{codes: codes}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.got = append(rc.got, received{header: r.Header.Clone(), body: body, verified: webhook.VerifyRequest(rc.secret, r.Header, body, time.Now())})
		code := 200
		if len(rc.codes) > 0 {
			code, rc.codes = rc.codes[0], rc.codes[1:]
		}
		w.WriteHeader(code)
		w.Write([]byte("answer " + http.StatusText(code)))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) received() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// triggerWorld is a world whose clock is the real time (the sender stamps
// attempts with it), with trigger_eval registered for the loopback allow-list,
// a WeChat Pay account, and a trigger_eval flow.
type triggerWorld struct {
	*world
	acct *models.ChannelAccount
	mch  string
	flow *models.Flow
}

func newTriggerWorld(t *testing.T, cfg kinds.TriggerConfig) *triggerWorld {
	t.Helper()
	w := newWorld(t, kinds.Config{})
	setClock(w.clk, time.Now().UTC().Truncate(time.Second))
	kinds.RegisterTriggers(w.e, w.s, cfg)
	values := testkeys.Credentials("wechat", w.clk.Now())
	acct := w.account(t, "wechat", values)
	f, err := w.s.CreateFlow(alice, all, models.FlowInput{Name: "sh-triggers", Kind: models.FlowTriggerEval, MerchantCode: "SHOP_SH",
		Schedule: "* * * * *", Enabled: true, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &triggerWorld{world: w, acct: acct, mch: string(values["mch_id"]), flow: f}
}

func setClock(c *clock, t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (w *triggerWorld) advance(d time.Duration) { setClock(w.clk, w.clk.Now().Add(d)) }

func (w *triggerWorld) endpoint(t *testing.T, url string, allow webhook.AllowList) (*models.WebhookEndpoint, []byte) {
	t.Helper()
	e, secret, err := w.s.CreateWebhookEndpoint(alice, all, models.WebhookInput{MerchantCode: "SHOP_SH", Name: "ops " + url, URL: url, Enabled: true}, allow)
	if err != nil {
		t.Fatal(err)
	}
	return e, []byte(secret)
}

func (w *triggerWorld) largePaymentRule(t *testing.T, endpoint uint64) *models.TriggerRule {
	t.Helper()
	r, err := w.s.CreateTriggerRule(alice, all, models.TriggerRuleInput{Name: "big", MerchantCode: "SHOP_SH", Kind: models.TriggerLargePayment,
		Params: `{"amount":100000}`, Alert: true, WebhookEndpointID: endpoint, Enabled: true, Severity: models.SeverityCritical})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (w *triggerWorld) pay(t *testing.T, ref string, amount int64) {
	t.Helper()
	w.advance(time.Second)
	rec := channels.Record{Channel: "wechat", Kind: channels.KindPayment, ChannelRef: ref, MerchantOrderNo: "O" + ref, Method: "scan",
		Status: channels.StatusSucceeded, Amount: amount, Currency: "CNY", AccountRef: w.mch, CreatedAt: w.clk.Now(), PaidAt: w.clk.Now()}
	if _, err := w.s.Ingest(alice, w.acct.ID, models.SourceNotification, []channels.Record{rec}); err != nil {
		t.Fatal(err)
	}
}

func (w *triggerWorld) deliveries(t *testing.T) []models.WebhookDelivery {
	t.Helper()
	list, err := w.s.ListDeliveries(all, models.DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func TestTriggerEvalRaisesAlertAndSendsSignedWebhook(t *testing.T) {
	w := newTriggerWorld(t, kinds.TriggerConfig{Allow: loopback})
	rc := newReceiver(t)
	e, secret := w.endpoint(t, rc.srv.URL+"/hooks/payfuse", loopback)
	rc.secret = secret
	r := w.largePaymentRule(t, e.ID)
	w.pay(t, "P-BIG", 250000)
	w.pay(t, "P-SMALL", 9900)

	run := w.run(t, w.flow)
	if run.Status != models.RunSucceeded || run.RowsNew != 1 || run.RowsRead != 1 || run.RowsMerged != 1 {
		t.Fatalf("run: %s %+v %s\n%s", run.Status, run.RunCounts, run.ErrorText().EN, run.Log)
	}
	if !strings.Contains(run.Log, `rule "big" fired`) || !strings.Contains(run.Log, "delivered, answer 200") {
		t.Errorf("log:\n%s", run.Log)
	}
	alerts, _ := w.s.ListAlerts(all, models.AlertFilter{})
	if len(alerts) != 1 || alerts[0].Source != "trigger" || alerts[0].SourceID != r.ID || alerts[0].Severity != models.SeverityCritical ||
		!strings.Contains(alerts[0].TitleText().ZH, "大额支付") {
		t.Errorf("alerts: %+v", alerts)
	}
	got := rc.received()
	if len(got) != 1 {
		t.Fatalf("received %d webhooks", len(got))
	}
	if got[0].verified != nil {
		t.Errorf("signature: %v", got[0].verified)
	}
	var body struct {
		Event string `json:"event"`
		Data  struct {
			Amount     int64  `json:"amount"`
			ChannelRef string `json:"channel_ref"`
		} `json:"data"`
	}
	if err := json.Unmarshal(got[0].body, &body); err != nil || body.Event != "payment.large" || body.Data.Amount != 250000 || body.Data.ChannelRef != "P-BIG" {
		t.Errorf("payload %s: %v", got[0].body, err)
	}
	dl := w.deliveries(t)
	if len(dl) != 1 || dl[0].Status != models.DeliveryDelivered || got[0].header.Get(webhook.HeaderDelivery) != dl[0].DeliveryID ||
		got[0].header.Get(webhook.HeaderEvent) != "payment.large" {
		t.Errorf("delivery %+v, headers %v", dl, got[0].header)
	}

	// The next minute: nothing new, nothing sent again.
	w.advance(time.Minute)
	run = w.run(t, w.flow)
	if run.Status != models.RunSucceeded || run.RowsNew != 0 || run.RowsRead != 0 || len(rc.received()) != 1 {
		t.Errorf("second run: %s %+v\n%s", run.Status, run.RunCounts, run.Log)
	}
}

func TestTriggerEvalRetriesThenDelivers(t *testing.T) {
	w := newTriggerWorld(t, kinds.TriggerConfig{Allow: loopback})
	rc := newReceiver(t, 500)
	e, secret := w.endpoint(t, rc.srv.URL, loopback)
	rc.secret = secret
	w.largePaymentRule(t, e.ID)
	w.pay(t, "P1", 300000)

	run := w.run(t, w.flow)
	dl := w.deliveries(t)
	if run.Status != models.RunSucceeded || len(dl) != 1 || dl[0].Status != models.DeliveryPending || dl[0].Attempts != 1 ||
		dl[0].LastStatusCode != 500 || dl[0].NextAttemptAt == nil || !strings.Contains(run.Log, "attempt 1 failed") {
		t.Fatalf("after a 500: %+v\n%s", dl, run.Log)
	}
	if wait := dl[0].NextAttemptAt.Sub(*dl[0].LastAttemptAt); wait <= 0 || wait > webhook.FirstRetry+time.Minute {
		t.Errorf("first retry after %s", wait)
	}
	// Not due yet: the next minute's run leaves it.
	run = w.run(t, w.flow)
	if len(rc.received()) != 1 {
		t.Fatalf("retried before it was due:\n%s", run.Log)
	}
	w.advance(time.Hour)
	run = w.run(t, w.flow)
	dl = w.deliveries(t)
	got := rc.received()
	if dl[0].Status != models.DeliveryDelivered || dl[0].Attempts != 2 || len(got) != 2 || run.RowsMerged != 1 {
		t.Fatalf("after the retry: %+v, %d received\n%s", dl, len(got), run.Log)
	}
	if got[0].header.Get(webhook.HeaderDelivery) != got[1].header.Get(webhook.HeaderDelivery) || got[1].verified != nil {
		t.Errorf("the retry is not the same delivery, signed: %v %v", got[0].header, got[1].verified)
	}
}

func TestTriggerEvalDeliveryFailures(t *testing.T) {
	w := newTriggerWorld(t, kinds.TriggerConfig{Allow: loopback})
	bad := newReceiver(t, 400)
	flaky := newReceiver(t, 500, 500, 500)
	eBad, _ := w.endpoint(t, bad.srv.URL, loopback)
	eFlaky, _ := w.endpoint(t, flaky.srv.URL, loopback)
	// An endpoint saved while the allow-list let 10.0.0.0/8 through, which
	// the platform no longer allows.
	ePrivate, _ := w.endpoint(t, "https://10.20.30.40/hook", webhook.AllowList{Nets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	payload := []byte(`{"event":"test"}`)
	var ids []uint64
	for _, e := range []uint64{eBad.ID, eFlaky.ID, ePrivate.ID} {
		d, err := w.s.EnqueueDelivery(models.DeliveryInput{EndpointID: e, Event: "test.ping", Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	// The flaky one has been failing for a day.
	dayAgo := w.clk.Now().Add(-webhook.GiveUpAfter - time.Minute)
	if err := w.s.DB.Model(&models.WebhookDelivery{}).Where("id = ?", ids[1]).Updates(map[string]any{"first_attempt_at": dayAgo, "attempts": 9}).Error; err != nil {
		t.Fatal(err)
	}
	run := w.run(t, w.flow)
	if run.RowsRead != 3 || run.Discrepancies != 3 {
		t.Errorf("run counts %+v\n%s", run.RunCounts, run.Log)
	}
	get := func(id uint64) *models.WebhookDelivery {
		d, err := w.s.GetDelivery(all, id)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := get(ids[0]); d.Status != models.DeliveryFailed || d.LastStatusCode != 400 || d.Attempts != 1 {
		t.Errorf("400: %+v", d)
	}
	if d := get(ids[1]); d.Status != models.DeliveryFailed || d.Attempts != 10 || !strings.Contains(d.LastErrorText().EN, "Given up") {
		t.Errorf("a day of 500s: %+v %s", d, d.LastErrorText().EN)
	}
	if d := get(ids[2]); d.Status != models.DeliveryFailed || d.LastReason != webhook.ReasonPrivate || d.LastStatusCode != 0 ||
		!strings.Contains(d.LastErrorText().EN, "private") || d.LastErrorText().ZH == "" {
		t.Errorf("private destination: %+v %+v", d, d.LastErrorText())
	}
	if len(bad.received()) != 1 || len(flaky.received()) != 1 {
		t.Errorf("received: bad %d, flaky %d", len(bad.received()), len(flaky.received()))
	}
}

func TestTriggerEvalOnlyItsMerchant(t *testing.T) {
	w := newTriggerWorld(t, kinds.TriggerConfig{Allow: loopback})
	if _, err := w.s.CreateMerchant(models.SystemActor, models.MerchantInput{Code: "SHOP_BJ", Name: "北京店"}); err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t)
	e, _, err := w.s.CreateWebhookEndpoint(alice, all, models.WebhookInput{MerchantCode: "SHOP_BJ", Name: "bj", URL: rc.srv.URL, Enabled: true}, loopback)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.s.EnqueueDelivery(models.DeliveryInput{EndpointID: e.ID, Event: "test.ping", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	run := w.run(t, w.flow)
	if run.Status != models.RunSucceeded || run.RowsRead != 0 || len(rc.received()) != 0 {
		t.Errorf("SHOP_SH's flow sent SHOP_BJ's webhook: %+v\n%s", run.RunCounts, run.Log)
	}
}
