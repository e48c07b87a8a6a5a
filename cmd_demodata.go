package main

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"payfuse/models"
)

// cmdDemoData generates demo payment history and brings it into the ledger
// through the real ingest path (statement imports and notifications).
func cmdDemoData(g *globals, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo-data", "payfuse demo-data [--transactions N] [--days 90] [--seed S] [--merchant CODE …]", g, stderr)
	n := fs.Int("transactions", 20000, fmt.Sprintf("payments to generate, 1–%d (refunds come on top)", models.DemoMaxTransactions))
	days := fs.Int("days", models.DemoDefaultDays, fmt.Sprintf("days of history ending yesterday, 1–%d", models.DemoMaxDays))
	seed := fs.Int64("seed", 1, "the same seed on the same day makes the same history (a re-run adds nothing); another seed adds new history")
	var merchants stringList
	fs.Var(&merchants, "merchant", "merchant code to generate for (repeat for several; default the demo merchants SHOP_BJ, SHOP_GZ, SHOP_SH, created when missing)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("demo-data: unexpected argument %q", fs.Arg(0))
	}
	if *n < 1 || *n > models.DemoMaxTransactions {
		return fmt.Errorf("demo-data: --transactions must be between 1 and %d, not %d", models.DemoMaxTransactions, *n)
	}
	if *days < 1 || *days > models.DemoMaxDays {
		return fmt.Errorf("demo-data: --days must be between 1 and %d, not %d", models.DemoMaxDays, *days)
	}
	log, err := g.logger(stderr)
	if err != nil {
		return err
	}
	store, err := g.openWithVault(stderr)
	if err != nil {
		return err
	}
	defer store.Close()
	demo := len(merchants) == 0
	for _, code := range merchants {
		demo = demo || slices.Contains(models.DemoMerchants, strings.ToUpper(strings.TrimSpace(code)))
	}
	if demo {
		if err := createDemoData(store, stdout, log); err != nil {
			return fmt.Errorf("demo-data: %w", err)
		}
		if err := printDemoToken(store, stdout, envOr("PAYFUSE_ADDR", "127.0.0.1:8080"), false); err != nil {
			return fmt.Errorf("demo-data: %w", err)
		}
	}
	opts := models.DemoOptions{Transactions: *n, Days: *days, Seed: *seed, Merchants: merchants}
	if *n >= 100000 {
		next := 10
		opts.Progress = func(done, total int) {
			if pct := done * 100 / total; pct >= next {
				fmt.Fprintf(stderr, "demo-data: %d%% (%d of %d payments)\n", pct, done, total)
				next = pct/10*10 + 10
			}
		}
	}
	sum, err := store.GenerateDemoHistory(models.CLIActor(), opts)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, demoSummaryLine(sum, *seed))
	fl, err := store.GenerateDemoFlows(models.CLIActor(), 21, *seed)
	if err != nil {
		return err
	}
	if fl.Flows > 0 {
		fmt.Fprintln(stdout, demoFlowsLine(fl))
	}
	return nil
}

func demoFlowsLine(fl models.DemoFlowsSummary) string {
	return fmt.Sprintf("demo flows: %d flows with %d runs of history, %d reconciled days with %d discrepancies, %d alerts",
		fl.Flows, fl.Runs, fl.ReconDays, fl.Discrepancies, fl.Alerts)
}

// demoSummaryLine tells in one line what demo-data did.
func demoSummaryLine(sum models.DemoSummary, seed int64) string {
	line := fmt.Sprintf("demo data for %s, %s … %s (seed %d): %d payments, %d refunds, %d also notified, %d conflicts; %d statement files",
		strings.Join(sum.Merchants, ", "), sum.From, sum.To, seed, sum.Payments, sum.Refunds, sum.Notifications, sum.Conflicts, sum.Files)
	if sum.Inserted == 0 && sum.AlreadyImported == sum.Files {
		return line + fmt.Sprintf(", all already imported: nothing added (%.1fs)", sum.Elapsed.Seconds())
	}
	rate := float64(sum.Rows) / max(sum.Elapsed.Seconds(), 1e-3)
	return line + fmt.Sprintf(" (%d already imported); %d new ledger rows; took %s (%.0f rows/s)",
		sum.AlreadyImported, sum.Inserted, sum.Elapsed.Round(100*time.Millisecond), rate)
}

// serveDemoTransactions is how many payments serve --demo generates on an
// empty ledger: enough to fill the pages and charts, few enough that the
// first start takes seconds (payfuse demo-data makes more).
const serveDemoTransactions = 3000

// generateServeDemoHistory gives a demo start with an empty ledger some
// payment history. Without demo accounts (a master key that does not open
// them, say) it logs why and lets the console start.
func generateServeDemoHistory(store *models.Store, stdout io.Writer, log *slog.Logger) error {
	sum, err := store.GenerateDemoHistory(models.SystemActor, models.DemoOptions{Transactions: serveDemoTransactions, Seed: 1, OnlyIfEmpty: true})
	if err != nil {
		log.Error("demo payment history not generated", "err", err)
		return nil
	}
	if !sum.Skipped {
		fmt.Fprintf(stdout, "  Demo history: %s\n", demoSummaryLine(sum, 1))
		log.Info("demo payment history generated", "payments", sum.Payments, "refunds", sum.Refunds, "conflicts", sum.Conflicts, "elapsed", sum.Elapsed.Round(time.Millisecond))
		fl, err := store.GenerateDemoFlows(models.SystemActor, 21, 1)
		if err != nil {
			log.Error("demo flows not generated", "err", err)
		} else if fl.Flows > 0 {
			fmt.Fprintf(stdout, "  %s\n", demoFlowsLine(fl))
		}
		fmt.Fprintln(stdout)
	}
	return nil
}

// demoCredentials makes test credentials for each channel named, on every
// core at once (a set holds three RSA keys, which take most of a demo start).
func demoCredentials(chans []string, now time.Time, newCreds func(channel string, now time.Time) map[string][]byte) []map[string][]byte {
	out := make([]map[string][]byte, len(chans))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU())
	for i, ch := range chans {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			out[i] = newCreds(ch, now)
			<-sem
		}()
	}
	wg.Wait()
	return out
}

// printDemoToken makes the demo API token (every permission, the demo
// merchants) — with renew, a fresh secret for an existing one — and prints it
// with a curl example, so a newcomer can try docs/API.md at once. Without
// renew an existing token is kept and nothing is printed.
func printDemoToken(store *models.Store, stdout io.Writer, addr string, renew bool) error {
	secret, err := store.EnsureDemoAPIToken(models.SystemActor, renew)
	if err != nil {
		return fmt.Errorf("demo API token: %w", err)
	}
	if secret == "" {
		return nil
	}
	fmt.Fprintf(stdout, "  Demo API token (every permission, merchants %s; shown only now):\n    %s\n", strings.Join(models.DemoMerchants, ", "), secret)
	fmt.Fprintf(stdout, "  Try: curl -H 'Authorization: Bearer %s' 'http://%s/api/v1/transactions?limit=5'   (guide: docs/API.md)\n\n", secret, addr)
	return nil
}
