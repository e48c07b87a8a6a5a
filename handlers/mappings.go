package handlers

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"payfuse/channels/generic"
	"payfuse/models"
	"payfuse/views"
)

const (
	// maxMappingSample bounds an uploaded sample statement: only its first
	// rows matter to the mapping.
	maxMappingSample = 2 << 20
	// keptSample is how much of the sample the form carries between
	// previews (cut at a line end), so no state stays on the server.
	keptSample = 64 << 10
	// previewRows is how many rows the preview shows.
	previewRows = 10
)

var delimiters = map[string]string{"comma": ",", "tab": "\t", "pipe": "|", "semicolon": ";"}

// MappingEdit shows an account's column mapping: the saved one, or for an
// account without one a starting point for its channel.
func (h *Handlers) MappingEdit(c *fiber.Ctx) error {
	acct, m, _, err := h.accountParam(c)
	if err != nil {
		return err
	}
	d := views.MappingForm{Account: acct, Merchant: m, MaxUpload: maxMappingSample}
	saved, err := h.Store.GetMapping(scope(c), acct.ID)
	switch {
	case err == nil:
		d.Mapping, d.Saved = saved.Mapping, saved
	case errors.Is(err, models.ErrNotFound):
		d.Mapping = generic.Guess(nil, nil, acct.Channel)
		d.Mapping.FixedStatus = "" // until a sample shows whether there is a status column
	default:
		return err
	}
	return h.Render(c, fiber.StatusOK, views.MappingPage(d))
}

// MappingPreview reads the form and a sample (a newly uploaded file, or the
// one the form carries) and shows what the mapping makes of it. A new sample
// fills the columns the form has not chosen (or that the file lacks) from
// the names statements commonly use. htmx requests get the editor only.
func (h *Handlers) MappingPreview(c *fiber.Ctx) error {
	acct, m, _, err := h.accountParam(c)
	if err != nil {
		return err
	}
	d, fresh, err := readMappingForm(c)
	if err != nil {
		return err
	}
	d.Account, d.Merchant, d.MaxUpload = acct, m, maxMappingSample
	if d.Error == "" && len(d.SampleBytes) > 0 {
		if fresh {
			raw, err := generic.Preview(bytes.NewReader(d.SampleBytes), generic.Mapping{Encoding: d.Mapping.Encoding, Delimiter: d.Mapping.Delimiter}, previewRows)
			if err != nil {
				return err
			}
			d.Mapping = mergeGuess(d.Mapping, generic.Guess(raw.Header, raw.Rows, acct.Channel), raw)
		}
		res, err := generic.Preview(bytes.NewReader(d.SampleBytes), d.Mapping, previewRows)
		if err != nil {
			return err
		}
		d.Preview = &res
	}
	if saved, err := h.Store.GetMapping(scope(c), acct.ID); err == nil {
		d.Saved = saved
	}
	if c.Get("HX-Request") == "true" {
		return h.Render(c, fiber.StatusOK, views.MappingEditor(d))
	}
	return h.Render(c, fiber.StatusOK, views.MappingPage(d))
}

// MappingSave validates and stores the mapping, then returns to the account.
func (h *Handlers) MappingSave(c *fiber.Ctx) error {
	acct, m, _, err := h.accountParam(c)
	if err != nil {
		return err
	}
	d, _, err := readMappingForm(c)
	if err != nil {
		return err
	}
	d.Account, d.Merchant, d.MaxUpload = acct, m, maxMappingSample
	var me *models.MappingError
	err = h.Store.SaveMapping(actor(c), acct.ID, d.Mapping)
	switch {
	case err == nil:
		h.flash(c, "success", "mapping.saved")
		return redirect(c, fmt.Sprintf("/channels/%d", acct.ID))
	case errors.As(err, &me):
		d.Problems = me.Problems
	default:
		return storeErr(err)
	}
	if len(d.SampleBytes) > 0 {
		if res, err := generic.Preview(bytes.NewReader(d.SampleBytes), d.Mapping, previewRows); err == nil {
			d.Preview = &res
		}
	}
	return h.Render(c, fiber.StatusUnprocessableEntity, views.MappingPage(d))
}

// mergeGuess keeps what the form chose where the new sample has it, and
// takes the guess for the rest.
func mergeGuess(form, guess generic.Mapping, raw generic.PreviewResult) generic.Mapping {
	has := func(name string) bool {
		for _, h := range raw.Header {
			if strings.EqualFold(strings.TrimSpace(h), name) {
				return true
			}
		}
		return false
	}
	out := form
	out.Columns = map[string][]string{}
	for _, f := range generic.Fields {
		names := form.Column(f)
		if len(names) > 0 && slices.ContainsFunc(names, has) {
			out.Columns[f] = names
		} else if g := guess.Column(f); len(g) > 0 {
			out.Columns[f] = append(g, names...)
		}
	}
	if out.Statuses == nil {
		out.Statuses = map[string]string{}
	}
	for w, s := range guess.Statuses {
		if _, ok := out.Statuses[w]; !ok {
			out.Statuses[w] = s
		}
	}
	if len(out.Column(generic.FieldStatus)) > 0 {
		out.FixedStatus = ""
	} else if out.FixedStatus == "" {
		out.FixedStatus = guess.FixedStatus
	}
	if len(out.RefundWords) == 0 {
		out.RefundWords = guess.RefundWords
	}
	if len(form.TimeLayouts) == 0 || slices.Equal(form.TimeLayouts, []string{generic.DefaultTimeLayout}) {
		out.TimeLayouts = guess.TimeLayouts
	}
	if len(out.AccountLabels) == 0 {
		out.AccountLabels = guess.AccountLabels
	}
	if out.Footer == nil {
		out.Footer = generic.GuessFooter(raw.Header, raw.Footer)
	}
	return out
}

// readMappingForm collects the mapping the form describes and its sample.
// fresh is true when a new sample file was uploaded with this request.
func readMappingForm(c *fiber.Ctx) (views.MappingForm, bool, error) {
	var d views.MappingForm
	m := generic.Mapping{Columns: map[string][]string{}}
	for _, f := range generic.Fields {
		var names []string
		if v := strings.TrimSpace(c.FormValue("col_" + f)); v != "" {
			names = append(names, v)
		}
		names = append(names, splitList(c.FormValue("alt_"+f))...)
		if len(names) > 0 {
			m.Columns[f] = names
		}
	}
	m.Statuses = pairs(c.FormValue("statuses"))
	m.Methods = pairs(c.FormValue("methods"))
	m.FixedStatus = c.FormValue("fixed_status")
	m.FixedMethod = c.FormValue("fixed_method")
	m.RefundWords = splitList(c.FormValue("refund_words"))
	m.PaymentWords = splitList(c.FormValue("payment_words"))
	m.NegativeRefunds = c.FormValue("negative_refunds") == "1"
	m.TimeLayouts = lines(c.FormValue("time_layouts"))
	m.TimeZone = strings.TrimSpace(c.FormValue("time_zone"))
	m.AmountUnit = c.FormValue("amount_unit")
	m.Currency = c.FormValue("currency")
	m.Encoding = c.FormValue("encoding")
	if d, ok := delimiters[c.FormValue("delimiter")]; ok {
		m.Delimiter = d
	}
	m.AccountLabels = splitList(c.FormValue("account_labels"))
	if mk := strings.TrimSpace(c.FormValue("footer_marker")); mk != "" || c.FormValue("footer_count") != "" || c.FormValue("footer_amount") != "" {
		m.Footer = &generic.Footer{Marker: mk, CountColumn: c.FormValue("footer_count"), AmountColumn: c.FormValue("footer_amount")}
	}
	d.Mapping = m.Normalize()

	fresh := false
	if fh, err := c.FormFile("sample_file"); err == nil && fh.Size > 0 {
		if fh.Size > maxMappingSample {
			d.Error = "mapping.err_sample_too_large"
		} else {
			f, err := fh.Open()
			if err != nil {
				return d, false, err
			}
			b, err := io.ReadAll(io.LimitReader(f, maxMappingSample))
			f.Close()
			if err != nil {
				return d, false, err
			}
			d.SampleBytes, d.Truncated, fresh = keep(b)
			d.SampleName = fh.Filename
		}
	} else if s := c.FormValue("sample"); s != "" {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) > keptSample {
			d.Error = "mapping.err_sample_unreadable"
		} else {
			d.SampleBytes, d.Truncated = b, c.FormValue("sample_truncated") == "1"
			d.SampleName = c.FormValue("sample_name")
		}
	}
	d.Sample = base64.StdEncoding.EncodeToString(d.SampleBytes)
	return d, fresh, nil
}

// keep cuts a sample to keptSample bytes at a line end.
func keep(b []byte) ([]byte, bool, bool) {
	if len(b) <= keptSample {
		return b, false, true
	}
	cut := b[:keptSample]
	if i := bytes.LastIndexByte(cut, '\n'); i > 0 {
		cut = cut[:i+1]
	}
	return cut, true, true
}

// splitList splits a list typed with commas (either width) or new lines.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '，' || r == '\n' || r == '\r' }) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// lines splits a textarea into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// pairs reads "word = value" lines.
func pairs(s string) map[string]string {
	out := map[string]string{}
	for _, l := range lines(s) {
		i := strings.LastIndexAny(l, "=")
		if i < 0 {
			out[strings.TrimSpace(l)] = ""
			continue
		}
		out[strings.TrimSpace(l[:i])] = strings.TrimSpace(l[i+1:])
	}
	return out
}
