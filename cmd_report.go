package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"payfuse/models"
)

const (
	reportDailySynopsis   = "payfuse report daily --merchant CODE --date YYYY-MM-DD [--format csv|json] [--by-method]"
	reportMonthlySynopsis = "payfuse report monthly --merchant CODE --month YYYY-MM [--format csv|json] [--by-method]"
)

// cmdReport prints a merchant's daily or monthly settlement report to
// standard output: CSV (UTF-8 with BOM; merchant, channel, account,
// [method,] date, payments, payment_amount, refunds, refund_amount, fees,
// net, reconciliation — one line per channel account (and method with
// --by-method), then the totals line, merchant "total") or, with
// --format json, an object with "rows" and "total". Figures count the
// succeeded payments and refunds of the business dates (see models/reports.go);
// amounts are yuan with two decimals.
func cmdReport(g *globals, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, "Usage:\n  "+reportDailySynopsis+"\n  "+reportMonthlySynopsis+"\n")
		if len(args) == 0 {
			return errors.New("report: name the report: daily or monthly")
		}
		return flag.ErrHelp
	}
	period := args[0]
	var synopsis, dateFlag, dateHelp, dateShape string
	switch period {
	case models.ReportDaily:
		synopsis, dateFlag, dateHelp, dateShape = reportDailySynopsis, "date", "business date, YYYY-MM-DD, in the merchant's time zone (required)", "YYYY-MM-DD"
	case models.ReportMonthly:
		synopsis, dateFlag, dateHelp, dateShape = reportMonthlySynopsis, "month", "month, YYYY-MM (required)", "YYYY-MM"
	default:
		return fmt.Errorf("report: unknown report %q (want daily or monthly)", period)
	}
	fs := newFlags("report "+period, synopsis, g, stderr)
	merchant := fs.String("merchant", "", "merchant code (required)")
	date := fs.String(dateFlag, "", dateHelp)
	format := fs.String("format", "csv", "csv or json")
	byMethod := fs.Bool("by-method", false, "one row per channel account and payment method")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("report: unexpected argument %q", fs.Arg(0))
	}
	if *merchant == "" || *date == "" {
		return fmt.Errorf("report: --merchant and --%s are required", dateFlag)
	}
	if *format != "csv" && *format != "json" {
		return fmt.Errorf("report: --format %q: want csv or json", *format)
	}
	f := models.ReportFilter{Merchant: *merchant, Period: period, Date: *date, ByMethod: *byMethod}
	if errs := f.Validate(); errs != nil {
		if errs["merchant"] != "" {
			return fmt.Errorf("report: no merchant %q", *merchant)
		}
		return fmt.Errorf("report: --%s %q: give it as %s", dateFlag, *date, dateShape)
	}
	store, _, err := g.open()
	if err != nil {
		return err
	}
	defer store.Close()
	rep, err := store.Report(models.Scope{All: true}, f)
	if errors.Is(err, models.ErrNotFound) {
		return fmt.Errorf("report: no merchant %q", *merchant)
	}
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if *format == "json" {
		return printJSON(stdout, rep.JSON())
	}
	return rep.WriteCSV(stdout)
}
