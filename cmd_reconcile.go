package main

import (
	"errors"
	"fmt"
	"io"

	"payfuse/models"
)

const reconcileSynopsis = "payfuse reconcile --merchant CODE --channel wechat|alipay|unionpay --date YYYY-MM-DD [--account ID] [--json]"

// cmdReconcile runs one reconciliation now: the channel account's statement
// for the business date against what the other sources said. It prints the
// bucket counts (records of that business date, payments and refunds) and
// the day's status; --json prints them as an object whose keys are stable.
func cmdReconcile(g *globals, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("reconcile", reconcileSynopsis, g, stderr)
	merchant := fs.String("merchant", "", "merchant code (required)")
	channel := fs.String("channel", "", "wechat, alipay or unionpay (required)")
	date := fs.String("date", "", "business date, YYYY-MM-DD, in the merchant's time zone (required)")
	accountID := fs.Uint64("account", 0, "channel account id (needed when the merchant has several accounts at the channel)")
	asJSON := fs.Bool("json", false, `print {"matched", "amount_mismatch", "status_mismatch", "missing_in_statement", "only_in_statement", "open", "status", …} as JSON`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("reconcile: unexpected argument %q", fs.Arg(0))
	}
	if *merchant == "" || *channel == "" || *date == "" {
		return errors.New("reconcile: --merchant, --channel and --date are required")
	}
	store, _, err := g.open()
	if err != nil {
		return err
	}
	defer store.Close()
	m, acct, err := cliAccount(store, "reconcile", *merchant, *channel, *accountID)
	if err != nil {
		return err
	}
	d, err := store.Reconcile(models.CLIActor(), models.Scope{All: true}, acct.ID, *date)
	var fe models.FieldErrors
	if errors.As(err, &fe) {
		return fmt.Errorf("reconcile: --date %q: give the business date as YYYY-MM-DD", *date)
	}
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	if *asJSON {
		printJSON(stdout, map[string]any{
			"merchant": m.Code, "channel": acct.Channel, "account_id": acct.ID, "date": d.BizDate, "status": d.Status,
			"has_statement": d.HasStatement, "matched": d.Matched, "amount_mismatch": d.AmountMismatch,
			"status_mismatch": d.StatusMismatch, "missing_in_statement": d.MissingInStatement,
			"only_in_statement": d.OnlyInStatement, "open": d.Open, "day_id": d.ID,
		})
		return nil
	}
	fmt.Fprintf(stdout, "%s %s account %d, %s: %s\n", m.Code, acct.Channel, acct.ID, d.BizDate, d.Status)
	for _, b := range models.ReconBuckets {
		fmt.Fprintf(stdout, "  %-22s %d\n", b, d.Count(b))
	}
	fmt.Fprintf(stdout, "  %-22s %d\n", "open", d.Open)
	if !d.HasStatement {
		fmt.Fprintln(stdout, "no statement of this day is in the ledger yet: import it, then reconcile again")
	}
	return nil
}
