package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"payfuse/models"
)

const kpiSynopsis = "payfuse kpi --merchant CODE --from YYYY-MM-DD --to YYYY-MM-DD [--method scan|quick|h5|app] [--json]"

// cmdKPI prints each channel account's KPIs (raw and normalised), weights
// and score under the merchant's weights in force, and the fused score —
// the figures of the KPI page, from the same code.
func cmdKPI(g *globals, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("kpi", kpiSynopsis, g, stderr)
	merchant := fs.String("merchant", "", "merchant code (required)")
	from := fs.String("from", "", "first business date, YYYY-MM-DD (required)")
	to := fs.String("to", "", "last business date, YYYY-MM-DD (required)")
	method := fs.String("method", "", "only this payment method: scan, quick, h5 or app")
	asJSON := fs.Bool("json", false, `print {"merchant", "from", "to", "weights", "accounts": [{"rank", "score", "kpis": [...]}], "fused", …} as JSON`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("kpi: unexpected argument %q", fs.Arg(0))
	}
	if *merchant == "" || *from == "" || *to == "" {
		return errors.New("kpi: --merchant, --from and --to are required")
	}
	if *method != "" && !slices.Contains(models.Methods, *method) {
		return fmt.Errorf("kpi: --method %q: use %s", *method, strings.Join(models.Methods, ", "))
	}
	store, _, err := g.open()
	if err != nil {
		return err
	}
	defer store.Close()
	all := models.Scope{All: true}
	m, err := store.GetMerchantByCode(all, *merchant)
	if errors.Is(err, models.ErrNotFound) {
		return fmt.Errorf("kpi: no merchant with code %q", *merchant)
	}
	if err != nil {
		return fmt.Errorf("kpi: %w", err)
	}
	res, err := store.ScoreKPIs(all, models.KPIFilter{Merchant: m.Code, From: *from, To: *to, Method: *method})
	var fe models.FieldErrors
	if errors.As(err, &fe) {
		return fmt.Errorf("kpi: %w", fe)
	}
	if err != nil {
		return fmt.Errorf("kpi: %w", err)
	}
	if *asJSON {
		return printJSON(stdout, res)
	}
	weights := "the built-in defaults"
	if res.WeightsVersion > 0 {
		weights = fmt.Sprintf("%q, version %d of the %s set", res.Weights.Name, res.WeightsVersion, res.WeightsFrom)
	}
	fmt.Fprintf(stdout, "%s KPIs %s … %s", m.Code, res.From, res.To)
	if res.Method != "" {
		fmt.Fprintf(stdout, ", method %s", res.Method)
	}
	fmt.Fprintf(stdout, " (weights: %s)\n", weights)
	for _, r := range res.Rows {
		rank := "-"
		if r.Rank > 0 {
			rank = "#" + strconv.Itoa(r.Rank)
		}
		fmt.Fprintf(stdout, "\n%s %s (%s, account %d)  score %s  weight %s\n", rank, r.Name, r.Channel, r.AccountID, optNum(r.Score), strconv.FormatFloat(r.Weight, 'f', -1, 64))
		if !r.Traffic {
			fmt.Fprintln(stdout, "   no traffic in the period: not scored")
			continue
		}
		fmt.Fprintf(stdout, "   %-20s %14s %8s %7s\n", "kpi", "value", "0-100", "weight")
		for i, k := range r.KPIs {
			fmt.Fprintf(stdout, "   %-20s %14s %8s %7s\n", k.Key, kpiCLIValue(models.KPIDefs[i].Unit, k.Value), optNum(k.Norm),
				strconv.FormatFloat(k.Weight, 'f', -1, 64))
		}
		if r.Formula != "" {
			fmt.Fprintf(stdout, "   score = %s\n", r.Formula)
		}
	}
	if res.Fused != nil {
		fmt.Fprintf(stdout, "\nfused score %s = %s\n", optNum(res.Fused), res.FusedFormula)
	} else {
		fmt.Fprintln(stdout, "\nno fused score: no account had traffic in the period")
	}
	return nil
}

func optNum(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', 2, 64)
}

func kpiCLIValue(unit string, v *float64) string {
	if v == nil {
		return "-"
	}
	switch unit {
	case models.UnitCount:
		return strconv.FormatFloat(*v, 'f', 0, 64)
	case models.UnitPercent:
		return strconv.FormatFloat(*v, 'f', 2, 64) + "%"
	case models.UnitSeconds:
		return strconv.FormatFloat(*v, 'f', 1, 64) + "s"
	}
	return strconv.FormatFloat(*v, 'f', 2, 64)
}
