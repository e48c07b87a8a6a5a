package kinds

import (
	"context"
	"fmt"
	"sync"
	"time"

	"payfuse/flows/webhook"
	"payfuse/models"
)

// Limits of one delivery pass.
const (
	DefaultMaxDeliveries = 100 // deliveries attempted per pass
	deliveryWorkers      = 4   // attempts in flight at once
)

// Deliverer sends due webhook deliveries through a guarded Sender and
// records each attempt: delivered, retried later (exponential backoff with
// jitter, up to webhook.GiveUpAfter after the first attempt) or failed.
type Deliverer struct {
	Store  *models.Store
	Sender *webhook.Sender
	// Max is how many deliveries one pass attempts (0: DefaultMaxDeliveries).
	Max int
	// Hold is how long a claimed delivery is kept from other senders; it
	// must outlast an attempt (0: the attempt timeout plus a minute).
	Hold time.Duration
}

// DeliveryCounts are what a pass did.
type DeliveryCounts struct {
	Attempted, Delivered, Retrying, Failed int
}

// DeliverDue attempts the deliveries due at now (of merchants, when given),
// a few at a time. Each is claimed first, so two passes never send the same
// attempt; an attempt cut short by ctx is not recorded and is retried once
// its claim lapses. logf, when not nil, gets a line per attempt.
func (d *Deliverer) DeliverDue(ctx context.Context, now time.Time, logf func(string, ...any), merchants ...string) (DeliveryCounts, error) {
	var c DeliveryCounts
	max := d.Max
	if max <= 0 {
		max = DefaultMaxDeliveries
	}
	hold := d.Hold
	if hold <= 0 {
		hold = webhook.DefaultTimeout + time.Minute
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	due, err := d.Store.DueDeliveries(now, max, merchants...)
	if err != nil {
		return c, err
	}
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, deliveryWorkers)
	)
	for i := range due {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := d.deliver(ctx, &due[i], now, hold, logf)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			switch res {
			case models.DeliveryDelivered:
				c.Attempted++
				c.Delivered++
			case models.DeliveryPending:
				c.Attempted++
				c.Retrying++
			case models.DeliveryFailed:
				c.Attempted++
				c.Failed++
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return c, first
}

// deliver makes one attempt at dl and returns its status afterwards ("" when
// nothing was attempted).
func (d *Deliverer) deliver(ctx context.Context, dl *models.WebhookDelivery, now time.Time, hold time.Duration, logf func(string, ...any)) (string, error) {
	ok, err := d.Store.ClaimDelivery(dl.ID, now, hold)
	if err != nil || !ok {
		return "", err
	}
	target, err := d.Store.WebhookTargetOf(dl.EndpointID)
	if err != nil {
		return "", fmt.Errorf("delivery %s: the endpoint's secret cannot be read: %w", dl.DeliveryID, err)
	}
	defer clear(target.Secret)
	a := d.Sender.Send(ctx, webhook.Delivery{ID: dl.DeliveryID, URL: target.URL, Event: dl.Event, Secret: target.Secret, Payload: []byte(dl.Payload)})
	if ctx.Err() != nil {
		return "", nil // shutting down: the claim lapses and the delivery is tried again
	}
	rec, err := d.Store.RecordAttempt(dl.ID, a, nil)
	if err != nil {
		return "", err
	}
	switch rec.Status {
	case models.DeliveryDelivered:
		logf("webhook %s (%s) to endpoint %d: delivered, answer %d, attempt %d", dl.DeliveryID, dl.Event, dl.EndpointID, a.StatusCode, rec.Attempts)
	case models.DeliveryPending:
		logf("webhook %s (%s) to endpoint %d: attempt %d failed (%s), next at %s: %s", dl.DeliveryID, dl.Event, dl.EndpointID,
			rec.Attempts, a.Reason, rec.NextAttemptAt.UTC().Format(time.RFC3339), a.Error.EN)
	default:
		logf("webhook %s (%s) to endpoint %d: failed after %d attempts (%s): %s", dl.DeliveryID, dl.Event, dl.EndpointID,
			rec.Attempts, a.Reason, rec.LastErrorText().EN)
	}
	return rec.Status, nil
}
