package web_test

import (
	"bytes"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/flows/webhook"
	"payfuse/models"
)

// noMissingTriggerKeys fails when a page shows a translation key instead of text.
func noMissingTriggerKeys(t *testing.T, what string, r resp) {
	t.Helper()
	for _, p := range []string{"[triggers.", "[trigger.", "[webhooks.", "[webhook.", "[action.", "[pager.", "[alerts."} {
		if i := strings.Index(r.Body, p); i >= 0 {
			t.Errorf("%s shows a missing translation near %q", what, r.Body[i:min(len(r.Body), i+60)])
		}
	}
}

var secretRE = regexp.MustCompile(`id="webhook-secret"[^>]*>([^<]+)<`)

// secretOn returns the signing secret a page shows once.
func secretOn(t *testing.T, r resp) string {
	t.Helper()
	m := secretRE.FindStringSubmatch(r.Body)
	if m == nil {
		t.Fatalf("no secret on the page (%d): %s", r.StatusCode, clip(r.Body))
	}
	return strings.TrimSpace(m[1])
}

func endpointCount(t *testing.T, s *models.Store) int64 {
	var n int64
	if err := s.DB.Model(&models.WebhookEndpoint{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func ruleCount(t *testing.T, s *models.Store) int64 {
	var n int64
	if err := s.DB.Model(&models.TriggerRule{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// ruleForm is a valid success-rate rule of SHOP_SH; tests change a field or two.
func ruleForm(name string, endpoint uint64) url.Values {
	v := url.Values{"name": {name}, "merchant": {"SHOP_SH"}, "account": {""}, "kind": {models.TriggerSuccessRate},
		"window_minutes": {"60"}, "min_percent": {"90"}, "min_payments": {"20"}, "severity": {models.SeverityCritical},
		"alert": {"1"}, "cooldown": {"30"}, "enabled": {"1"}}
	if endpoint != 0 {
		v.Set("endpoint", id(endpoint))
	}
	return v
}

func TestWebhookEndpointPages(t *testing.T) {
	w := newLedgerWorld(t)
	op := w.english(t, "opsh", "operator sh pass")

	list := op.get("/flows/webhooks")
	if list.StatusCode != http.StatusOK || !strings.Contains(list.Body, "No webhook endpoints yet") || !strings.Contains(list.Body, `href="/flows/webhooks/new"`) {
		t.Fatalf("empty list: %d %s", list.StatusCode, clip(list.Body))
	}
	form := op.get("/flows/webhooks/new")
	if form.StatusCode != http.StatusOK || strings.Contains(form.Body, `value="SHOP_BJ"`) || !strings.Contains(form.Body, "X-PayFuse-Signature") {
		t.Fatalf("new form: %d %s", form.StatusCode, clip(form.Body))
	}
	noMissingTriggerKeys(t, "the new endpoint form", form)

	// Loopback, link-local (the metadata service), private: refused with the
	// reason next to the URL, nothing saved.
	for u, reason := range map[string]string{
		"http://127.0.0.1/x":                 "must use https://",
		"https://127.0.0.1/x":                "127.0.0.1 is a loopback address",
		"https://169.254.169.254/latest":     "169.254.169.254 is a link-local address",
		"https://10.0.0.1/hook":              "10.0.0.1 is a private network address",
		"https://user:pw@hooks.example.com/": "",
	} {
		r := op.post("/flows/webhooks", url.Values{"name": {"ops"}, "merchant": {"SHOP_SH"}, "url": {u}, "enabled": {"1"}})
		if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "This URL cannot receive webhooks.") ||
			!strings.Contains(r.Body, `aria-describedby="e-url"`) || !strings.Contains(r.Body, `id="url-problem"`) {
			t.Errorf("%s: %d %s", u, r.StatusCode, clip(r.Body))
		}
		if reason != "" && !strings.Contains(html.UnescapeString(r.Body), reason) {
			t.Errorf("%s: the reason %q is not shown", u, reason)
		}
		if strings.Contains(r.Body, `id="webhook-secret"`) {
			t.Errorf("%s: a refused endpoint shows a secret", u)
		}
	}
	if r := op.post("/flows/webhooks", url.Values{"name": {""}, "merchant": {"SHOP_BJ"}, "url": {"https://hooks.example.com/"}}); r.StatusCode != http.StatusUnprocessableEntity ||
		!strings.Contains(r.Body, "Give the endpoint a name") || !strings.Contains(r.Body, "Choose a merchant you manage") {
		t.Errorf("bad name and foreign merchant: %d %s", r.StatusCode, clip(r.Body))
	}
	if n := endpointCount(t, w.store); n != 0 {
		t.Fatalf("refused endpoints saved: %d", n)
	}

	// A public https URL: the answer shows the secret once, with how to verify.
	r := op.post("/flows/webhooks", url.Values{"name": {"ops-alerting"}, "merchant": {"SHOP_SH"},
		"url": {"https://hooks.example.com/payfuse?token=tok-5531"}, "enabled": {"1"}})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("create: %d %s", r.StatusCode, clip(r.Body))
	}
	secret := secretOn(t, r)
	for _, want := range []string{"Endpoint ops-alerting created.", "it will not be shown again", "X-PayFuse-Timestamp", "X-PayFuse-Delivery", "HMAC-SHA256"} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("the secret page lacks %q", want)
		}
	}
	if loc := r.Header.Get("Location"); loc != "" || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("the secret page: Location %q, Cache-Control %q", loc, r.Header.Get("Cache-Control"))
	}
	noMissingTriggerKeys(t, "the secret page", r)
	var ep models.WebhookEndpoint
	if err := w.store.DB.Where("name = ?", "ops-alerting").First(&ep).Error; err != nil {
		t.Fatal(err)
	}
	// The raw row does not hold the secret in plain text.
	var sealed []byte
	if err := w.store.DB.Raw("SELECT secret_sealed FROM webhook_endpoints WHERE id = ?", ep.ID).Row().Scan(&sealed); err != nil || len(sealed) == 0 {
		t.Fatalf("the sealed secret: %d bytes, %v", len(sealed), err)
	}
	if bytes.Contains(sealed, []byte(secret)) {
		t.Errorf("the row holds the secret in plain text")
	}

	// No later page shows the secret or the URL's query string.
	path := "/flows/webhooks/" + id(ep.ID) + "/deliveries"
	list = op.get("/flows/webhooks")
	for _, want := range []string{`data-endpoint="ops-alerting"`, "https://hooks.example.com/payfuse", "Enabled", path} {
		if !strings.Contains(list.Body, want) {
			t.Errorf("the list lacks %q", want)
		}
	}
	page := op.get(path)
	if page.StatusCode != http.StatusOK || !strings.Contains(page.Body, "Nothing sent to this endpoint yet") || !strings.Contains(page.Body, "shown only once") {
		t.Errorf("the endpoint page: %d %s", page.StatusCode, clip(page.Body))
	}
	for what, p := range map[string]resp{"list": list, "endpoint page": page, "rules": op.get("/flows/triggers"), "rule form": op.get("/flows/triggers/new")} {
		if strings.Contains(p.Body, secret) || strings.Contains(p.Body, "tok-5531") {
			t.Errorf("the %s shows the secret or the URL's token", what)
		}
	}
	noMissingTriggerKeys(t, "the list", list)
	noMissingTriggerKeys(t, "the endpoint page", page)

	// The delivery log: status badge, attempts, code, translated error,
	// escaped response, status filter.
	d1, err := w.store.EnqueueDelivery(models.DeliveryInput{EndpointID: ep.ID, Event: "payment.large", Payload: []byte(`{"x":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.RecordAttempt(d1.ID, webhook.Attempt{Start: time.Now(), StatusCode: 500, Outcome: webhook.Retry, Reason: "status",
		Error: channels.Text{EN: "The receiver answered 500.", ZH: "接收方返回 500。"}, Response: `<script>alert(1)</script>`}, nil); err != nil {
		t.Fatal(err)
	}
	d2, _ := w.store.EnqueueDelivery(models.DeliveryInput{EndpointID: ep.ID, Event: "bill.missing", Payload: []byte(`{}`)})
	if _, err := w.store.RecordAttempt(d2.ID, webhook.Attempt{Start: time.Now(), StatusCode: 204, Outcome: webhook.Delivered}, nil); err != nil {
		t.Fatal(err)
	}
	page = op.get(path)
	for _, want := range []string{fmt.Sprintf(`data-delivery="%d" data-status="pending"`, d1.ID), fmt.Sprintf(`data-delivery="%d" data-status="delivered"`, d2.ID),
		"payment.large", "Pending", "Delivered", ">500<", "The receiver answered 500.", "&lt;script&gt;alert(1)&lt;/script&gt;", d1.DeliveryID} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("the delivery log lacks %q", want)
		}
	}
	if strings.Contains(page.Body, "<script>alert(1)") {
		t.Errorf("the receiver's answer is not escaped")
	}
	if f := op.get(path + "?status=failed"); strings.Contains(f.Body, `data-delivery="`) || !strings.Contains(f.Body, "No deliveries match") {
		t.Errorf("the status filter shows other deliveries")
	}
	if f := op.get(path + "?status=delivered"); !strings.Contains(f.Body, fmt.Sprintf(`data-delivery="%d"`, d2.ID)) || strings.Contains(f.Body, fmt.Sprintf(`data-delivery="%d"`, d1.ID)) {
		t.Errorf("the delivered filter: %s", clip(f.Body))
	}

	// Rotate: a new secret, shown once the same way.
	r = op.post("/flows/webhooks/"+id(ep.ID)+"/rotate", nil)
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "signing secret of ops-alerting was replaced") {
		t.Fatalf("rotate: %d %s", r.StatusCode, clip(r.Body))
	}
	if s2 := secretOn(t, r); s2 == secret || len(s2) < 40 {
		t.Errorf("the rotated secret %q is not new", s2)
	} else if p := op.get(path); strings.Contains(p.Body, s2) || !strings.Contains(p.Body, "Replaced") {
		t.Errorf("the endpoint page shows the rotated secret or not when it was replaced")
	}

	// Disable fails the pending delivery (visibly); enable again.
	if r = op.post("/flows/webhooks/"+id(ep.ID)+"/disable", nil); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != path {
		t.Fatalf("disable: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	page = op.get(path)
	if !strings.Contains(page.Body, "Endpoint ops-alerting disabled.") || !strings.Contains(page.Body, "Not sent: the endpoint was disabled.") ||
		!strings.Contains(page.Body, fmt.Sprintf(`data-delivery="%d" data-status="failed"`, d1.ID)) {
		t.Errorf("the disabled endpoint's page: %s", clip(page.Body))
	}
	if r = op.post("/flows/webhooks/"+id(ep.ID)+"/enable", nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("enable: %d", r.StatusCode)
	}
	if page = op.get(path); !strings.Contains(page.Body, "Endpoint ops-alerting enabled.") {
		t.Errorf("the enable flash is missing")
	}

	// Delete: an unused endpoint goes; its log stays in the database.
	r = op.post("/flows/webhooks", url.Values{"name": {"spare"}, "merchant": {"SHOP_SH"}, "url": {"https://spare.example.com/"}, "enabled": {"1"}})
	secretOn(t, r)
	var spare models.WebhookEndpoint
	w.store.DB.Where("name = ?", "spare").First(&spare)
	if r = op.post("/flows/webhooks/"+id(spare.ID)+"/delete", nil); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/flows/webhooks" {
		t.Fatalf("delete: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	if list = op.get("/flows/webhooks"); !strings.Contains(list.Body, "Endpoint spare deleted.") || strings.Contains(list.Body, `data-endpoint="spare"`) {
		t.Errorf("the list after delete: %s", clip(list.Body))
	}
	if g := op.get("/flows/webhooks/" + id(spare.ID) + "/deliveries"); g.StatusCode != http.StatusNotFound {
		t.Errorf("a deleted endpoint's page: %d", g.StatusCode)
	}

	var audits []string
	w.store.DB.Model(&models.AuditLog{}).Where("actor = ? AND object_type = ?", "opsh", "webhook_endpoint").Order("id").Pluck("action", &audits)
	if strings.Join(audits, " ") != "webhook.create webhook.rotate_secret webhook.disable webhook.enable webhook.create webhook.delete" {
		t.Errorf("audit: %v", audits)
	}
	var logs []models.AuditLog
	w.store.DB.Find(&logs)
	if all := fmt.Sprintf("%+v", logs); strings.Contains(all, "tok-5531") || strings.Contains(all, secret) {
		t.Errorf("the audit log holds the URL's token or the secret")
	}
}

func TestTriggerRulePages(t *testing.T) {
	w := newLedgerWorld(t)
	setup := models.Actor{Name: "setup"}
	ep, _, err := w.store.CreateWebhookEndpoint(setup, models.Scope{All: true},
		models.WebhookInput{MerchantCode: "SHOP_SH", Name: "sh-hook", URL: "https://hooks.example.com/sh", Enabled: true}, webhook.AllowList{})
	if err != nil {
		t.Fatal(err)
	}
	epBJ, _, err := w.store.CreateWebhookEndpoint(setup, models.Scope{All: true},
		models.WebhookInput{MerchantCode: "SHOP_BJ", Name: "bj-hook", URL: "https://hooks.example.com/bj", Enabled: true}, webhook.AllowList{})
	if err != nil {
		t.Fatal(err)
	}
	op := w.english(t, "opsh", "operator sh pass")

	list := op.get("/flows/triggers")
	if list.StatusCode != http.StatusOK || !strings.Contains(list.Body, "No trigger rules yet") || !strings.Contains(list.Body, `href="/flows/triggers/new"`) ||
		!strings.Contains(list.Body, `href="/flows/webhooks"`) || !strings.Contains(list.Body, `href="/flows"`) {
		t.Fatalf("empty list: %d %s", list.StatusCode, clip(list.Body))
	}
	form := op.get("/flows/triggers/new")
	if form.StatusCode != http.StatusOK || !strings.Contains(form.Body, "SH WeChat") || strings.Contains(form.Body, "BJ WeChat") ||
		!strings.Contains(form.Body, "sh-hook") || strings.Contains(form.Body, "bj-hook") || !strings.Contains(form.Body, "Choose what the rule watches") {
		t.Fatalf("new form: %d %s", form.StatusCode, clip(form.Body))
	}
	noMissingTriggerKeys(t, "the new rule form", form)
	// Choosing a kind shows its settings with their defaults (htmx asks again).
	if r := op.do("GET", "/flows/triggers/new?kind=success_rate", nil, "HX-Request", "true"); !strings.Contains(r.Body, `name="window_minutes" type="number" value="30"`) ||
		!strings.Contains(r.Body, `name="min_percent" type="text" value="90"`) || strings.Contains(r.Body, `name="amount"`) {
		t.Errorf("success-rate settings: %s", clip(r.Body))
	}
	if r := op.get("/flows/triggers/new?kind=notify_refusals&window_minutes=15"); !strings.Contains(r.Body, `name="window_minutes" type="number" value="15"`) ||
		!strings.Contains(r.Body, `name="max_refusals" type="number" value="10"`) {
		t.Errorf("typed settings are not kept when the kind changes")
	}
	for kind, field := range map[string]string{"large_payment": `name="amount"`, "bill_missing": `name="at" type="time" value="10:00"`,
		"recon_unbalanced": `name="at" type="time" value="12:00"`, "cert_expiry": `name="days" type="number" value="30"`} {
		if r := op.get("/flows/triggers/new?kind=" + kind); !strings.Contains(r.Body, field) {
			t.Errorf("%s lacks %s", kind, field)
		}
	}

	// Bad input: 422, the messages next to the fields, nothing saved.
	bad := ruleForm("sh-low-rate", ep.ID)
	bad.Set("min_percent", "150")
	bad.Set("window_minutes", "soon")
	bad.Set("cooldown", "0x")
	r := op.post("/flows/triggers", bad)
	for _, want := range []string{"The success rate must be above 0 and at most 100 %.", "The window must be 1 to 1440 minutes.", "The cooldown must be 1 minute to 7 days.",
		`aria-describedby="e-min_percent"`, `value="sh-low-rate"`, `value="soon"`} {
		if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(r.Body), want) {
			t.Errorf("bad settings: %d, no %q", r.StatusCode, want)
		}
	}
	bad = ruleForm("sh-big", 0)
	bad.Set("kind", models.TriggerLargePayment)
	bad.Set("amount", "12.345")
	bad.Del("alert")
	r = op.post("/flows/triggers", bad)
	for _, want := range []string{"Enter yuan with at most two decimals", "Choose an alert, a webhook, or both.", `value="12.345"`} {
		if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, want) {
			t.Errorf("bad amount and no action: %d, no %q", r.StatusCode, want)
		}
	}
	for name, change := range map[string]func(url.Values){
		"foreign endpoint": func(v url.Values) { v.Set("endpoint", id(epBJ.ID)) },
		"foreign account":  func(v url.Values) { v.Set("account", id(w.acctBJ.ID)) },
		"foreign merchant": func(v url.Values) { v.Set("merchant", "SHOP_BJ") },
		"no kind":          func(v url.Values) { v.Set("kind", "") },
		"bad severity":     func(v url.Values) { v.Set("severity", "panic") },
		"infinite percent": func(v url.Values) { v.Set("min_percent", "Inf") },
		"NaN percent":      func(v url.Values) { v.Set("min_percent", "NaN") },
		"negative refusals": func(v url.Values) {
			v.Set("kind", models.TriggerNotifyRefusals)
			v.Set("max_refusals", "-3")
		},
		"bad time": func(v url.Values) {
			v.Set("kind", models.TriggerBillMissing)
			v.Set("at", "25:00")
		},
	} {
		v := ruleForm("sh-x", ep.ID)
		change(v)
		if r := op.post("/flows/triggers", v); r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, `aria-invalid="true"`) {
			t.Errorf("%s: %d", name, r.StatusCode)
		}
	}
	if n := ruleCount(t, w.store); n != 0 {
		t.Fatalf("bad input saved %d rules", n)
	}

	// A good rule with the endpoint, and a large-payment rule with an amount in yuan.
	if r = op.post("/flows/triggers", ruleForm("sh-low-rate", ep.ID)); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/flows/triggers" {
		t.Fatalf("create: %d %s", r.StatusCode, clip(r.Body))
	}
	big := ruleForm("sh-big", 0)
	big.Set("kind", models.TriggerLargePayment)
	big.Set("amount", "5,000.50")
	big.Set("account", id(w.acctSH.ID))
	big.Set("severity", models.SeverityInfo)
	if r = op.post("/flows/triggers", big); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("create large payment: %d %s", r.StatusCode, clip(r.Body))
	}
	var rule, bigRule models.TriggerRule
	w.store.DB.Where("name = ?", "sh-low-rate").First(&rule)
	w.store.DB.Where("name = ?", "sh-big").First(&bigRule)
	if p := bigRule.DecodeParams(); p.Amount != 500050 {
		t.Errorf("5,000.50 yuan stored as %d fen", p.Amount)
	}
	if rule.WebhookEndpointID == nil || *rule.WebhookEndpointID != ep.ID || !rule.Alert || rule.CooldownMinutes != 30 || rule.Severity != models.SeverityCritical || !rule.Enabled {
		t.Errorf("the rule: %+v", rule)
	}
	list = op.get("/flows/triggers")
	for _, want := range []string{"Rule sh-big created.", `data-rule="sh-low-rate"`, "Success rate", "success rate below 90 % over 60 min (at least 20 payments)",
		"Critical", "Alert in the inbox", "sh-hook", "Never", "a succeeded payment above ¥5,000.50", "SH WeChat", "All accounts", "at most once per 30 min"} {
		if !strings.Contains(html.UnescapeString(list.Body), want) {
			t.Errorf("the list lacks %q", want)
		}
	}
	noMissingTriggerKeys(t, "the list", list)

	// Edit: the merchant is fixed; bad values 422; a new kind saves.
	editPath := "/flows/triggers/" + id(rule.ID)
	edit := op.get(editPath + "/edit")
	if edit.StatusCode != http.StatusOK || !strings.Contains(edit.Body, `id="trigger-fixed"`) || strings.Contains(edit.Body, `name="merchant"`) ||
		!strings.Contains(edit.Body, `value="60"`) || !strings.Contains(edit.Body, `value="sh-low-rate"`) {
		t.Fatalf("edit form: %d %s", edit.StatusCode, clip(edit.Body))
	}
	upd := ruleForm("sh-low-rate", ep.ID)
	upd.Set("min_payments", "0")
	upd.Set("min_percent", "0")
	if r = op.post(editPath, upd); r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, `id="trigger-fixed"`) ||
		!strings.Contains(r.Body, "The success rate must be above 0") {
		t.Errorf("bad edit: %d %s", r.StatusCode, clip(r.Body))
	}
	upd = ruleForm("sh-refusals", ep.ID)
	upd.Set("kind", models.TriggerNotifyRefusals)
	upd.Set("window_minutes", "15")
	upd.Set("max_refusals", "0")
	if r = op.post(editPath, upd); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("edit: %d %s", r.StatusCode, clip(r.Body))
	}
	list = op.get("/flows/triggers")
	if !strings.Contains(list.Body, "Rule sh-refusals saved.") || !strings.Contains(list.Body, "more than 0 notifications refused within 15 min") {
		t.Errorf("the edited rule: %s", clip(list.Body))
	}
	if r = op.get(editPath + "/edit"); !strings.Contains(r.Body, `name="max_refusals" type="number" value="0"`) {
		t.Errorf("the edit form does not show 0 refusals")
	}

	// Disable and enable.
	if r = op.post(editPath+"/disable", nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", r.StatusCode)
	}
	if list = op.get("/flows/triggers"); !strings.Contains(list.Body, "Rule sh-refusals disabled.") || !strings.Contains(list.Body, `data-rule="sh-refusals" data-enabled="false"`) {
		t.Errorf("the disabled rule: %s", clip(list.Body))
	}
	if r = op.post(editPath+"/enable", nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("enable: %d", r.StatusCode)
	}
	if list = op.get("/flows/triggers"); !strings.Contains(list.Body, "Rule sh-refusals enabled.") || !strings.Contains(list.Body, `data-rule="sh-refusals" data-enabled="true"`) {
		t.Errorf("the enabled rule: %s", clip(list.Body))
	}

	// An endpoint a rule sends to is not deleted: the page says why.
	epPath := "/flows/webhooks/" + id(ep.ID)
	if r = op.post(epPath+"/delete", nil); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != epPath+"/deliveries" {
		t.Fatalf("delete in use: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	if p := op.get(epPath + "/deliveries"); !strings.Contains(p.Body, "Trigger rules still send to this endpoint") || !strings.Contains(p.Body, "sh-refusals") {
		t.Errorf("the refusal is not shown: %s", clip(p.Body))
	}
	if n := endpointCount(t, w.store); n != 2 {
		t.Errorf("an endpoint in use was deleted")
	}

	var audits []string
	w.store.DB.Model(&models.AuditLog{}).Where("actor = ? AND object_type = ?", "opsh", "trigger_rule").Order("id").Pluck("action", &audits)
	if strings.Join(audits, " ") != "trigger.create trigger.create trigger.update trigger.disable trigger.enable" {
		t.Errorf("audit: %v", audits)
	}

	// Another merchant's users find none of it.
	bj := w.english(t, "opbj", "operator bj pass")
	for _, p := range []string{editPath + "/edit", epPath + "/deliveries"} {
		if g := bj.get(p); g.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s by another merchant: %d", p, g.StatusCode)
		}
	}
	for _, p := range []string{editPath, editPath + "/disable", editPath + "/enable", epPath + "/rotate", epPath + "/disable", epPath + "/enable", epPath + "/delete"} {
		if g := bj.post(p, ruleForm("bj-x", epBJ.ID)); g.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s by another merchant: %d", p, g.StatusCode)
		}
	}
	if l := bj.get("/flows/triggers"); l.StatusCode != http.StatusOK || strings.Contains(l.Body, "sh-refusals") || strings.Contains(l.Body, "sh-big") {
		t.Errorf("another merchant's rule list shows SHOP_SH's rules")
	}
	if l := bj.get("/flows/webhooks"); strings.Contains(l.Body, "sh-hook") || !strings.Contains(l.Body, "bj-hook") {
		t.Errorf("another merchant's endpoint list")
	}
	if l := w.english(t, "finbj", "finance bj pass").get("/flows/triggers"); l.StatusCode != http.StatusOK || strings.Contains(l.Body, "sh-refusals") {
		t.Errorf("another merchant's finance sees the rules: %d", l.StatusCode)
	}

	// Finance sees the rules but changes nothing and has no business with endpoints.
	fin := w.english(t, "finsh", "finance sh pass")
	l := fin.get("/flows/triggers")
	if l.StatusCode != http.StatusOK || !strings.Contains(l.Body, `data-rule="sh-refusals"`) || strings.Contains(l.Body, `href="/flows/triggers/new"`) ||
		strings.Contains(l.Body, "/edit\"") || strings.Contains(l.Body, "/disable\"") || strings.Contains(l.Body, `href="/flows/webhooks`) {
		t.Errorf("finance list: %d %s", l.StatusCode, clip(l.Body))
	}
	noMissingTriggerKeys(t, "the finance list", l)
	for _, p := range []string{"/flows/triggers/new", editPath + "/edit", "/flows/webhooks", "/flows/webhooks/new", epPath + "/deliveries"} {
		if g := fin.get(p); g.StatusCode != http.StatusForbidden {
			t.Errorf("finance GET %s: %d", p, g.StatusCode)
		}
	}
	for _, p := range []string{"/flows/triggers", editPath, editPath + "/disable", "/flows/webhooks", epPath + "/rotate", epPath + "/delete"} {
		if g := fin.post(p, ruleForm("fin-x", 0)); g.StatusCode != http.StatusForbidden {
			t.Errorf("finance POST %s: %d", p, g.StatusCode)
		}
	}

	// In Chinese.
	zh := newClient(t, w.srv)
	zh.header.Set("Accept-Language", "zh-CN")
	zh.login("opsh", "operator sh pass")
	for path, wants := range map[string][]string{
		"/flows/triggers":                       {"触发规则", "新建规则", "通知被拒", "15 分钟内被拒绝的通知超过 0 条", "大额支付", "单笔成功支付超过 ¥5,000.50", "告警收件箱", "从未触发"},
		"/flows/triggers/new?kind=success_rate": {"新建规则", "支付成功率", "时间窗口", "成功率低于", "生成告警"},
		editPath + "/edit":                      {"规则创建后商户不可更改"},
		"/flows/webhooks":                       {"Webhook 端点", "新建端点", "已启用"},
		epPath + "/deliveries":                  {"投递日志", "更换密钥", "删除端点", "发送到此处的规则"},
	} {
		p := zh.get(path)
		for _, want := range wants {
			if !strings.Contains(html.UnescapeString(p.Body), want) {
				t.Errorf("the Chinese %s lacks %q", path, want)
			}
		}
		noMissingTriggerKeys(t, "the Chinese "+path, p)
	}
	if p := zh.post("/flows/webhooks", url.Values{"name": {"zh"}, "merchant": {"SHOP_SH"}, "url": {"https://169.254.169.254/latest"}}); p.StatusCode != http.StatusUnprocessableEntity ||
		!strings.Contains(p.Body, "链路本地地址") || !strings.Contains(p.Body, "除非管理员将其加入白名单") {
		t.Errorf("the Chinese refusal: %d %s", p.StatusCode, clip(p.Body))
	}
	if p := zh.post("/flows/webhooks", url.Values{"name": {"zh-hook"}, "merchant": {"SHOP_SH"}, "url": {"https://zh.example.com/"}}); !strings.Contains(p.Body, "请立即复制：它不会再次显示") {
		t.Errorf("the Chinese secret page: %d %s", p.StatusCode, clip(p.Body))
	}
	bad = ruleForm("zh-big", 0)
	bad.Set("kind", models.TriggerLargePayment)
	bad.Set("amount", "abc")
	if p := zh.post("/flows/triggers", bad); p.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "请输入以元为单位、最多两位小数的金额") {
		t.Errorf("the Chinese amount error: %d", p.StatusCode)
	}
}
