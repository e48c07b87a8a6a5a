package web_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"payfuse/models"
)

// notifySenders is how many WeChat Pay senders post at once.
const notifySenders = 50

// BenchmarkNotifications starts the real server on a loopback listener and
// has 50 concurrent senders post signed WeChat Pay payment notifications over
// HTTP, each for a distinct payment, b.N in all. The notifications are signed
// before the clock starts (signing is WeChat Pay's cost, not ours). It reports
// throughput (notifs/s) and the p50 and p99 latency of one notification.
// The target: at least 1,000/s sustained with p99 at most 50 ms at 50
// concurrent senders.
//
//   - max: each sender posts its next notification as soon as the last is
//     answered (closed loop): the most the server takes. At saturation the
//     latency is queueing: 50 senders / throughput on average.
//
//   - paced-1000: the 50 senders together post 1,000 a second on a fixed
//     schedule (open loop), the load the target names; latency is counted
//     from when a notification was due, so a slow server cannot hide it.
//
//     go test ./web -run '^$' -bench BenchmarkNotifications -benchtime 5000x
//     PAYFUSE_TEST_MYSQL=mysql://root@127.0.0.1:3306/payfuse_test go test ./web -run '^$' -bench BenchmarkNotifications -benchtime 5000x
func BenchmarkNotifications(b *testing.B) {
	b.Run("max", func(b *testing.B) { benchNotifications(b, 0) })
	b.Run("paced-1000", func(b *testing.B) { benchNotifications(b, 1000) })
}

// benchNotifications sends b.N notifications from notifySenders senders, as
// fast as answered (rate 0) or rate a second in all.
func benchNotifications(b *testing.B, rate int) {
	f := newNotifyFixture(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		<-served
	}()
	url := "http://" + ln.Addr().String() + "/notify/wechat/" + id(f.wx.ID)

	type note struct {
		hdr  http.Header
		body []byte
	}
	notes := make([]note, b.N)
	var build sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := 0; w < workers; w++ {
		build.Add(1)
		go func(w int) {
			defer build.Done()
			for i := w; i < b.N; i += workers {
				rec := f.wxPayment(fmt.Sprintf("42000099%020d", i), int64(100+i%10000))
				hdr, body := f.wxNotification(rec, time.Now())
				notes[i] = note{hdr, body}
			}
		}(w)
	}
	build.Wait()

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: notifySenders, MaxIdleConnsPerHost: notifySenders}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	latencies := make([]time.Duration, b.N)
	var next, failed atomic.Int64
	var senders sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for s := 0; s < notifySenders; s++ {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				req, _ := http.NewRequest("POST", url, bytes.NewReader(notes[i].body))
				req.Header = notes[i].hdr.Clone()
				t0 := time.Now()
				if rate > 0 {
					// Notification i is due at start + i/rate.
					t0 = start.Add(time.Duration(i) * time.Second / time.Duration(rate))
					time.Sleep(time.Until(t0))
				}
				res, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				latencies[i] = time.Since(t0)
				if err != nil || res.StatusCode != http.StatusNoContent {
					if failed.Add(1) <= 3 {
						if err != nil {
							b.Errorf("notification %d: %v", i, err)
						} else {
							b.Errorf("notification %d: status %d", i, res.StatusCode)
						}
					}
				}
			}
		}()
	}
	senders.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d notifications failed", n, b.N)
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[min(len(latencies)-1, int(float64(len(latencies))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "notifs/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	if got := f.count(&models.Transaction{}); got != int64(b.N) {
		b.Errorf("%d ledger rows, want %d", got, b.N)
	}
}
