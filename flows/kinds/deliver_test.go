package kinds_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"payfuse/flows/kinds"
	"payfuse/flows/webhook"
	"payfuse/models"
)

// Two passes at once (two engines, say) send each delivery once.
func TestDeliverDueSendsEachDeliveryOnce(t *testing.T) {
	w := newTriggerWorld(t, kinds.TriggerConfig{Allow: loopback})
	rc := newReceiver(t)
	e, secret := w.endpoint(t, rc.srv.URL, loopback)
	rc.secret = secret
	const n = 12
	for range n {
		if _, err := w.s.EnqueueDelivery(models.DeliveryInput{EndpointID: e.ID, Event: "test.ping", Payload: []byte(`{"ping":true}`)}); err != nil {
			t.Fatal(err)
		}
	}
	d := &kinds.Deliverer{Store: w.s, Sender: webhook.NewSender(webhook.Guard{Allow: loopback}, 5*time.Second)}
	var wg sync.WaitGroup
	counts := make([]kinds.DeliveryCounts, 2)
	for i := range counts {
		wg.Go(func() {
			c, err := d.DeliverDue(context.Background(), w.clk.Now(), nil)
			if err != nil {
				t.Error(err)
			}
			counts[i] = c
		})
	}
	wg.Wait()
	got := rc.received()
	seen := map[string]bool{}
	for _, r := range got {
		id := r.header.Get(webhook.HeaderDelivery)
		if seen[id] {
			t.Errorf("delivery %s received twice", id)
		}
		seen[id] = true
		if r.verified != nil {
			t.Errorf("delivery %s: %v", id, r.verified)
		}
	}
	if len(got) != n || counts[0].Delivered+counts[1].Delivered != n {
		t.Errorf("received %d, passes counted %+v", len(got), counts)
	}
	if due, _ := w.s.DueDeliveries(w.clk.Now().Add(time.Hour), 100); len(due) != 0 {
		t.Errorf("%d deliveries still due", len(due))
	}
}
