package flows

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"payfuse/models"
)

// TestLeaseTakeoverAfterSIGKILL: a process running a flow is killed with
// SIGKILL mid-run (no deferred cleanup, no lease release). Another engine on
// the same database takes the flow over once the dead holder's lease
// expires, records the killed attempt as failed rather than leaving it
// "running", and runs the flow to success — once.
func TestLeaseTakeoverAfterSIGKILL(t *testing.T) {
	if os.Getenv("PAYFUSE_FLOW_CHILD") != "" {
		t.Skip("this process is the child of TestLeaseTakeoverAfterSIGKILL")
	}
	s := models.OpenTest(t)
	if _, err := s.CreateMerchant(models.SystemActor, models.MerchantInput{Code: "SHOP_SH", Name: "上海店"}); err != nil {
		t.Fatal(err)
	}
	f, err := s.CreateFlow(web, admin, models.FlowInput{Name: "killed", Kind: models.FlowRollupCheck, MerchantCode: "SHOP_SH", Enabled: true, MaxAttempts: 3, RetryBaseSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestLeaseTakeoverChild$", "-test.v")
	cmd.Env = append(os.Environ(), "PAYFUSE_FLOW_CHILD=1", "PAYFUSE_FLOW_DSN="+models.TestDSN(t, s), fmt.Sprintf("PAYFUSE_FLOW_ID=%d", f.ID))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	running := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "running") {
			running = true
			break
		}
	}
	if !running {
		cmd.Wait()
		t.Fatal("the child never started the run")
	}
	cmd.Process.Kill() // SIGKILL
	cmd.Wait()

	var calls atomic.Int32
	e := New(s)
	e.ID = "survivor"
	e.LeaseTTL, e.RenewEvery = 2*time.Second, 500*time.Millisecond
	e.Register(models.FlowRollupCheck, HandlerFunc(func(ctx context.Context, run *Run) (Counts, error) {
		calls.Add(1)
		run.Logf("resumed from %q", run.Resume)
		return Counts{RowsRead: 1}, nil
	}))
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Stop(ctx)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := e.Poll(context.Background()); err != nil {
			t.Logf("poll: %v", err)
		}
		page, err := s.ListRuns(admin, models.RunFilter{FlowID: f.ID})
		if err != nil {
			t.Fatal(err)
		}
		done := false
		for _, r := range page.Rows {
			if r.Status == models.RunSucceeded {
				done = true
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no successful run 20 s after the holder was killed: %+v", page.Rows)
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.Stop(context.Background())
	page, _ := s.ListRuns(admin, models.RunFilter{FlowID: f.ID})
	var succeeded, failed, running2 int
	for _, r := range page.Rows {
		switch r.Status {
		case models.RunSucceeded:
			succeeded++
			if !strings.Contains(r.Log, hex.EncodeToString([]byte("halfway"))) {
				t.Errorf("the new attempt did not resume from the killed one's checkpoint: %q", r.Log)
			}
		case models.RunFailed:
			failed++
			if r.Owner != "child" {
				t.Errorf("failed run %d belongs to %q", r.ID, r.Owner)
			}
		case models.RunRunning:
			running2++
		}
	}
	if succeeded != 1 || failed != 1 || running2 != 0 || calls.Load() != 1 {
		t.Fatalf("after the takeover: %d succeeded, %d failed, %d running, %d handler calls; runs %+v", succeeded, failed, running2, calls.Load(), page.Rows)
	}
	if lease, err := s.GetLease(models.FlowLeaseName(f.ID)); err == nil && lease.Owner == "child" && lease.ExpiresAt.After(time.Now()) {
		t.Errorf("the dead holder still holds the lease: %+v", lease)
	}
}

// TestLeaseTakeoverChild is the child: it starts the flow and blocks in its
// handler until killed.
func TestLeaseTakeoverChild(t *testing.T) {
	if os.Getenv("PAYFUSE_FLOW_CHILD") == "" {
		t.Skip("run by TestLeaseTakeoverAfterSIGKILL")
	}
	dsn, err := models.ParseDSN(os.Getenv("PAYFUSE_FLOW_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := models.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	s := models.NewStore(db, dsn.Dialect)
	id, _ := strconv.ParseUint(os.Getenv("PAYFUSE_FLOW_ID"), 10, 64)
	e := New(s)
	e.ID = "child"
	e.LeaseTTL, e.RenewEvery = 2*time.Second, 500*time.Millisecond
	e.Register(models.FlowRollupCheck, HandlerFunc(func(ctx context.Context, run *Run) (Counts, error) {
		run.Checkpoint(hex.EncodeToString([]byte("halfway")), Counts{RowsRead: 1})
		fmt.Println("running")
		time.Sleep(time.Minute)
		return Counts{}, nil
	}))
	if _, err := e.RunNow(admin, id, web); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Minute)
	t.Fatal("the child was not killed")
}
