package kinds

import (
	"context"
	"errors"
	"strings"
	"time"

	"payfuse/flows"
	"payfuse/flows/webhook"
	"payfuse/models"
)

// TriggerConfig is what the trigger_eval flow needs from outside the
// database: where webhooks may go beyond the public internet.
type TriggerConfig struct {
	// Allow is the platform allow-list of webhook destinations (hosts and
	// address ranges an admin trusts although they are private); endpoints
	// are validated against it when created and the guard checks it on
	// every connection. Empty: public https destinations only.
	Allow webhook.AllowList
	// Resolver resolves endpoint host names (nil: the system's); tests set it.
	Resolver webhook.Resolver
	// Timeout is one attempt's limit (0: webhook.DefaultTimeout).
	Timeout time.Duration
	// MaxDeliveries caps the attempts of one run (0: DefaultMaxDeliveries).
	MaxDeliveries int
}

// RegisterTriggers adds the trigger_eval kind to the engine with cfg. A
// trigger_eval flow (scheduled every minute, "* * * * *") evaluates its
// merchant's enabled rules, raises their alerts, queues their webhooks, and
// then sends the merchant's due deliveries, retries included.
func RegisterTriggers(e *flows.Engine, s *models.Store, cfg TriggerConfig) {
	t := &triggers{s: s, d: &Deliverer{Store: s, Max: cfg.MaxDeliveries,
		Sender: webhook.NewSender(webhook.Guard{Allow: cfg.Allow, Resolver: cfg.Resolver}, cfg.Timeout)}}
	if cfg.Timeout > 0 {
		t.d.Hold = cfg.Timeout + time.Minute
	}
	e.Register(models.FlowTriggerEval, flows.HandlerFunc(t.run))
}

type triggers struct {
	s *models.Store
	d *Deliverer
}

// run evaluates, acts, then delivers. Counts: RowsNew firings, RowsRead
// delivery attempts, RowsMerged deliveries delivered, Discrepancies
// deliveries that failed for good. A firing's actions that fail fail the
// run (it is retried), but the firing is not repeated before its cooldown.
func (t *triggers) run(ctx context.Context, run *flows.Run) (flows.Counts, error) {
	merchant := run.Flow.MerchantCode
	now := run.Now()
	var c flows.Counts
	var problems []string
	fired, evalErr := t.s.EvaluateTriggers(now, merchant)
	if evalErr != nil {
		run.Logf("evaluation: %v", evalErr)
		problems = append(problems, evalErr.Error())
	}
	for i := range fired {
		f := &fired[i]
		c.RowsNew++
		run.Logf("rule %q fired (%s): %s", f.RuleName, f.Subject, f.Title.EN)
		if f.Alert {
			if _, created, err := t.s.RaiseAlert(models.RaiseInput{MerchantCode: f.MerchantCode, Source: "trigger", SourceID: f.RuleID,
				Kind: f.Kind, Severity: f.Severity, DedupeKey: f.DedupeKey(), Title: f.Title, Body: f.Body, Link: f.Link}); err != nil {
				run.Logf("rule %q: alert not raised: %v", f.RuleName, err)
				problems = append(problems, err.Error())
			} else if !created {
				run.Logf("rule %q: counted on the open alert", f.RuleName)
			}
		}
		if f.WebhookEndpointID != 0 {
			d, err := t.s.EnqueueDelivery(models.DeliveryInput{EndpointID: f.WebhookEndpointID, RuleID: f.RuleID, Event: f.Event, Payload: f.Payload()})
			switch {
			case errors.Is(err, models.ErrEndpointDisabled):
				run.Logf("rule %q: webhook endpoint %d is disabled; not sent", f.RuleName, f.WebhookEndpointID)
			case err != nil:
				run.Logf("rule %q: webhook not queued: %v", f.RuleName, err)
				problems = append(problems, err.Error())
			default:
				run.Logf("rule %q: webhook %s queued for endpoint %d", f.RuleName, d.DeliveryID, f.WebhookEndpointID)
			}
		}
	}
	dc, err := t.d.DeliverDue(ctx, now, run.Logf, merchant)
	c.RowsRead, c.RowsMerged, c.Discrepancies = dc.Attempted, dc.Delivered, dc.Failed
	if err != nil {
		if ctx.Err() != nil {
			return c, ctx.Err()
		}
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		msg := strings.Join(problems, "; ")
		return c, flows.Fail("trigger evaluation had errors: %s", "触发规则评估出错：%s", msg)
	}
	return c, nil
}
