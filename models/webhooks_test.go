package models

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/flows/webhook"
)

func mustEndpoint(t *testing.T, s *Store, name, url string, allow webhook.AllowList) (*WebhookEndpoint, string) {
	t.Helper()
	e, secret, err := s.CreateWebhookEndpoint(web, Scope{All: true}, WebhookInput{MerchantCode: "SHOP_SH", Name: name, URL: url, Enabled: true}, allow)
	if err != nil {
		t.Fatalf("create endpoint %s: %v", name, err)
	}
	return e, secret
}

func TestWebhookEndpointSecretIsSealedAndShownOnce(t *testing.T) {
	s, _ := vaultStore(t)
	mustMerchant(t, s, "SHOP_SH")
	mustMerchant(t, s, "SHOP_BJ")
	e, secret := mustEndpoint(t, s, "ops", "https://hooks.example.com/payfuse?token=tok-5531", webhook.AllowList{})
	if len(secret) != 43 || e.SecretSealed != nil {
		t.Fatalf("created: secret %q, endpoint %+v", secret, e)
	}
	if bytes.Contains(rawDump(t, s), []byte(secret)) {
		t.Fatal("the endpoint secret is stored in plain text")
	}
	list, err := s.ListWebhookEndpoints(Scope{All: true}, "")
	if err != nil || len(list) != 1 || list[0].SecretSealed != nil || list[0].URL != e.URL {
		t.Fatalf("list: %+v %v", list, err)
	}
	if got, _ := s.GetWebhookEndpoint(Scope{All: true}, e.ID); got.SecretSealed != nil {
		t.Error("Get returned the sealed secret")
	}
	target, err := s.WebhookTargetOf(e.ID)
	if err != nil || string(target.Secret) != secret || target.URL != e.URL {
		t.Fatalf("target: %+v %v", target, err)
	}
	audit := auditActions(t, s, ActWebhookCreate)
	if len(audit) != 1 || strings.Contains(audit[0].Detail+audit[0].After, "tok-5531") || strings.Contains(audit[0].After, secret) {
		t.Errorf("audit: %+v", audit)
	}

	// Rotation: a new secret, shown once, sealed too.
	again, err := s.RotateWebhookSecret(web, Scope{All: true}, e.ID)
	if err != nil || again == secret {
		t.Fatalf("rotate: %q %v", again, err)
	}
	if target, _ := s.WebhookTargetOf(e.ID); string(target.Secret) != again {
		t.Error("the rotated secret is not the one used")
	}
	if bytes.Contains(rawDump(t, s), []byte(again)) {
		t.Fatal("the rotated secret is stored in plain text")
	}
	// A sealed secret moved to another endpoint does not open.
	e2, _ := mustEndpoint(t, s, "other", "https://hooks.example.com/2", webhook.AllowList{})
	var sealed []byte
	s.DB.Model(&WebhookEndpoint{}).Where("id = ?", e.ID).Select("secret_sealed").Scan(&sealed)
	s.DB.Model(&WebhookEndpoint{}).Where("id = ?", e2.ID).Updates(map[string]any{"secret_sealed": sealed, "data_key_id": e.DataKeyID})
	if _, err := s.WebhookTargetOf(e2.ID); !errors.Is(err, ErrSealBroken) {
		t.Errorf("moved secret: %v", err)
	}

	// Scope.
	bj := Scope{Merchants: []string{"SHOP_BJ"}}
	if list, _ := s.ListWebhookEndpoints(bj, ""); len(list) != 0 {
		t.Errorf("SHOP_BJ lists %d endpoints", len(list))
	}
	if _, err := s.RotateWebhookSecret(web, bj, e.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("SHOP_BJ rotates SHOP_SH's secret: %v", err)
	}
	if err := s.DeleteWebhookEndpoint(web, bj, e.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("SHOP_BJ deletes SHOP_SH's endpoint: %v", err)
	}
	if _, _, err := s.CreateWebhookEndpoint(web, bj, WebhookInput{MerchantCode: "SHOP_SH", Name: "x", URL: "https://a.example.com/"}, webhook.AllowList{}); err == nil {
		t.Error("SHOP_BJ created an endpoint for SHOP_SH")
	}
}

func TestWebhookURLAllowList(t *testing.T) {
	s, _ := vaultStore(t)
	mustMerchant(t, s, "SHOP_SH")
	for _, u := range []string{"http://hooks.example.com/", "https://127.0.0.1/x", "https://10.1.2.3/x", "https://169.254.169.254/latest",
		"https://user:pw@hooks.example.com/", "https://2130706433/", "ftp://hooks.example.com/"} {
		_, _, err := s.CreateWebhookEndpoint(web, Scope{All: true}, WebhookInput{MerchantCode: "SHOP_SH", Name: "x", URL: u}, webhook.AllowList{})
		var fe FieldErrors
		if !errors.As(err, &fe) || fe["url"] != "webhook.err_url" {
			t.Errorf("%s: %v, want the URL refused", u, err)
		}
	}
	allow := webhook.AllowList{Nets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, HTTP: true}
	mustEndpoint(t, s, "internal", "http://10.1.2.3:8080/alerts", allow)
	if _, _, err := s.CreateWebhookEndpoint(web, Scope{All: true}, WebhookInput{MerchantCode: "SHOP_SH", Name: "internal", URL: "https://a.example.com/"}, allow); err == nil ||
		err.(FieldErrors)["name"] != "webhook.err_name_taken" {
		t.Errorf("same name again: %v", err)
	}
}

func TestWebhookDeliveryLifecycle(t *testing.T) {
	s, c := vaultStore(t)
	mustMerchant(t, s, "SHOP_SH")
	e, _ := mustEndpoint(t, s, "ops", "https://hooks.example.com/", webhook.AllowList{})
	enqueue := func() *WebhookDelivery {
		t.Helper()
		d, err := s.EnqueueDelivery(DeliveryInput{EndpointID: e.ID, Event: "payment.large", Payload: []byte(`{"amount":1}`)})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	attempt := func(o webhook.Outcome, code int) webhook.Attempt {
		a := webhook.Attempt{Start: s.Now(), Duration: 100 * time.Millisecond, StatusCode: code, Outcome: o}
		if o != webhook.Delivered {
			a.Reason, a.Error = webhook.ReasonStatus, channels.Text{EN: "The receiver answered.", ZH: "接收方已应答。"}
		}
		return a
	}
	d := enqueue()
	if _, err := s.EnqueueDelivery(DeliveryInput{EndpointID: e.ID, Event: "x", Payload: []byte("not json")}); err == nil {
		t.Error("a payload that is not JSON was queued")
	}
	due, err := s.DueDeliveries(s.Now(), 10)
	if err != nil || len(due) != 1 || due[0].DeliveryID != d.DeliveryID || due[0].Status != DeliveryPending {
		t.Fatalf("due: %+v %v", due, err)
	}
	if ok, _ := s.ClaimDelivery(d.ID, s.Now(), time.Minute); !ok {
		t.Fatal("first claim refused")
	}
	if ok, _ := s.ClaimDelivery(d.ID, s.Now(), time.Minute); ok {
		t.Fatal("a claimed delivery was claimed again")
	}
	if due, _ := s.DueDeliveries(s.Now(), 10); len(due) != 0 {
		t.Fatalf("a claimed delivery is due: %+v", due)
	}
	// 503: retried later, within the first retry's ceiling.
	got, err := s.RecordAttempt(d.ID, attempt(webhook.Retry, 503), nil)
	if err != nil || got.Status != DeliveryPending || got.Attempts != 1 || got.NextAttemptAt == nil || got.LastStatusCode != 503 ||
		got.NextAttemptAt.Before(s.Now()) || got.NextAttemptAt.After(s.Now().Add(webhook.FirstRetry+time.Second)) {
		t.Fatalf("after a 503: %+v %v", got, err)
	}
	first := *got.FirstAttemptAt
	c.Add(time.Hour)
	got, _ = s.RecordAttempt(d.ID, attempt(webhook.Delivered, 200), nil)
	if got.Status != DeliveryDelivered || got.Attempts != 2 || got.NextAttemptAt != nil || got.DeliveredAt == nil ||
		!got.FirstAttemptAt.Equal(first) || got.LastErrorText().EN != "" {
		t.Fatalf("after a 200: %+v", got)
	}
	// 400: failed at once.
	d2 := enqueue()
	got, _ = s.RecordAttempt(d2.ID, attempt(webhook.Failed, 400), nil)
	if got.Status != DeliveryFailed || got.NextAttemptAt != nil || got.LastReason != webhook.ReasonStatus {
		t.Fatalf("after a 400: %+v", got)
	}
	// Still failing a day after the first attempt: given up.
	d3 := enqueue()
	got, _ = s.RecordAttempt(d3.ID, attempt(webhook.Retry, 500), nil)
	c.Add(webhook.GiveUpAfter)
	got, _ = s.RecordAttempt(d3.ID, attempt(webhook.Retry, 500), nil)
	if got.Status != DeliveryFailed || got.Attempts != 2 || !strings.Contains(got.LastErrorText().EN, "Given up") || got.LastErrorText().ZH == "" {
		t.Fatalf("after a day of 500s: %+v", got)
	}
	if list, _ := s.ListDeliveries(Scope{All: true}, DeliveryFilter{EndpointID: e.ID, Status: DeliveryFailed}); len(list) != 2 || list[0].ID != d3.ID {
		t.Errorf("failed deliveries: %+v", list)
	}
	if list, _ := s.ListDeliveries(Scope{Merchants: []string{"SHOP_BJ"}}, DeliveryFilter{}); len(list) != 0 {
		t.Errorf("SHOP_BJ sees %d deliveries", len(list))
	}

	// Disabling fails what is pending and queues nothing more.
	d4 := enqueue()
	if _, err := s.SetWebhookEnabled(web, Scope{All: true}, e.ID, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetDelivery(Scope{All: true}, d4.ID); got.Status != DeliveryFailed || got.LastReason != DeliveryReasonDisabled {
		t.Errorf("pending delivery of a disabled endpoint: %+v", got)
	}
	if _, err := s.EnqueueDelivery(DeliveryInput{EndpointID: e.ID, Event: "payment.large", Payload: []byte(`{}`)}); !errors.Is(err, ErrEndpointDisabled) {
		t.Errorf("queued to a disabled endpoint: %v", err)
	}

	// A rule that names the endpoint keeps it.
	r := mustRule(t, s, TriggerRuleInput{Name: "big", Kind: TriggerLargePayment, Params: `{"amount":1}`, WebhookEndpointID: e.ID})
	var fe FieldErrors
	if err := s.DeleteWebhookEndpoint(web, Scope{All: true}, e.ID); !errors.As(err, &fe) || fe["endpoint"] != "webhook.err_in_use" {
		t.Fatalf("delete in use: %v", err)
	}
	if _, err := s.UpdateTriggerRule(web, Scope{All: true}, r.ID, TriggerRuleInput{Name: "big", Kind: TriggerLargePayment, Params: `{"amount":1}`, Alert: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhookEndpoint(web, Scope{All: true}, e.ID); err != nil {
		t.Fatal(err)
	}
	var keys int64
	s.DB.Model(&DataKey{}).Where("id = ?", e.DataKeyID).Count(&keys)
	if keys != 0 {
		t.Error("the deleted endpoint's data key is left")
	}
	if list, _ := s.ListDeliveries(Scope{All: true}, DeliveryFilter{EndpointID: e.ID}); len(list) != 4 {
		t.Errorf("the delivery log lost entries: %d", len(list))
	}
	for _, action := range []string{ActWebhookDisable, ActWebhookDelete} {
		if n := len(auditActions(t, s, action)); n != 1 {
			t.Errorf("%d %s audit records", n, action)
		}
	}
}
