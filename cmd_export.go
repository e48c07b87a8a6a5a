package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"payfuse/models"
)

const exportSynopsis = "payfuse export transactions --merchant CODE [--channel C] [--from YYYY-MM-DD --to YYYY-MM-DD] [--format csv|xlsx] [-o FILE]"

// cmdExport writes a merchant's ledger rows (newest first) as CSV (UTF-8
// with BOM, the columns of models.LedgerColumns) or XLSX, to -o FILE or to
// standard output. --from/--to bound the business date, inclusive. With -o
// the file appears only when complete (written beside it, then renamed),
// readable by its owner only (mode 0600: it holds a merchant's takings).
func cmdExport(g *globals, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, "Usage:\n  "+exportSynopsis+"\n")
		if len(args) == 0 {
			return errors.New("export: name what to export: transactions")
		}
		return flag.ErrHelp
	}
	if args[0] != "transactions" {
		return fmt.Errorf("export: unknown subject %q (want transactions)", args[0])
	}
	fs := newFlags("export transactions", exportSynopsis, g, stderr)
	merchant := fs.String("merchant", "", "merchant code (required)")
	channel := fs.String("channel", "", "only this channel: wechat, alipay or unionpay")
	from := fs.String("from", "", "first business date, YYYY-MM-DD (inclusive)")
	to := fs.String("to", "", "last business date, YYYY-MM-DD (inclusive)")
	format := fs.String("format", "csv", "csv or xlsx")
	out := fs.String("o", "", "write to FILE instead of standard output")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("export: unexpected argument %q", fs.Arg(0))
	}
	if *merchant == "" {
		return errors.New("export: --merchant is required")
	}
	if *format != "csv" && *format != "xlsx" {
		return fmt.Errorf("export: --format %q: want csv or xlsx", *format)
	}
	f, fe := models.ParseLedgerFilter(url.Values{"merchant": {*merchant}, "channel": {*channel}, "from": {*from}, "to": {*to}})
	if fe != nil {
		return fe
	}
	store, _, err := g.open()
	if err != nil {
		return err
	}
	defer store.Close()
	all := models.Scope{All: true}
	if _, err := store.GetMerchantByCode(all, f.Merchant); err != nil {
		return fmt.Errorf("export: no merchant %q", *merchant)
	}
	write := func(w io.Writer) (int, error) {
		if *format == "xlsx" {
			return store.WriteLedgerXLSX(w, all, f)
		}
		return store.WriteLedgerCSV(w, all, f)
	}
	if *out == "" {
		_, err := write(stdout)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".*")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer os.Remove(tmp.Name())
	n, err := write(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(stderr, "exported %d transactions to %s\n", n, *out)
	return nil
}
