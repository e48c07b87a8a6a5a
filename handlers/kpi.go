package handlers

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/models"
	"payfuse/views"
)

// kpiAllMerchants is the merchant choice "every merchant in scope", scored
// with the global default weights (admins only: the global set is theirs).
const kpiAllMerchants = "*"

var kpiRanges = map[string]int{"7d": 7, "30d": 30, "90d": 90}

// kpiView reads the view the KPI pages share from the query or the form:
// merchant, date range and method; it resolves the range to dates and
// loads every account's KPIs for it.
func (h *Handlers) kpiView(c *fiber.Ctx) (*views.KPIPage, error) {
	sc := scope(c)
	get := func(k string) string {
		if v := c.FormValue(k); v != "" {
			return v
		}
		return c.Query(k)
	}
	merchants, _, err := h.Store.ListMerchants(sc, models.MerchantFilter{Size: 500})
	if err != nil {
		return nil, err
	}
	d := &views.KPIPage{Merchants: merchants, AllowAll: sc.All, Range: get("range"), Method: get("method"),
		CanSave: IdentityOf(c).User.Role == models.RoleAdmin}
	d.Merchant = get("merchant")
	switch {
	case d.Merchant == kpiAllMerchants && sc.All:
	case d.Merchant != "" && sc.Allows(d.Merchant):
	case len(merchants) > 0:
		d.Merchant = merchants[0].Code
	default:
		d.Merchant = ""
	}
	if d.Merchant == "" {
		return d, nil // nothing in scope
	}
	loc := time.FixedZone("CST", 8*3600)
	for i := range merchants {
		if merchants[i].Code == d.Merchant {
			loc = merchants[i].Location()
		}
	}
	today := h.Store.Now().In(loc)
	if _, ok := kpiRanges[d.Range]; !ok && d.Range != "custom" {
		d.Range = "30d"
	}
	if d.Method != "" && !slices.Contains(models.Methods, d.Method) {
		d.Method = ""
	}
	d.Filter = models.KPIFilter{Merchant: d.MerchantCode(), Method: d.Method}
	if d.Range == "custom" {
		d.Filter.From, d.Filter.To = get("from"), get("to")
		var fe models.FieldErrors
		if err := d.Filter.Validate(); errors.As(err, &fe) {
			d.FilterErrors = fe
		}
	}
	if d.Range != "custom" || d.FilterErrors != nil {
		n := kpiRanges[d.Range]
		if n == 0 {
			n = 30
		}
		d.Filter.To = today.Format(time.DateOnly)
		d.Filter.From = today.AddDate(0, 0, 1-n).Format(time.DateOnly)
	}
	if d.Accounts, err = h.Store.KPIs(sc, d.Filter); err != nil {
		return nil, err
	}
	if d.Active, d.ActiveVersion, err = h.Store.ActiveWeights(sc, d.Filter.Merchant); err != nil {
		return nil, storeErr(err)
	}
	if own, err := h.Store.OwnWeights(sc, d.Filter.Merchant); err != nil {
		return nil, storeErr(err)
	} else {
		d.Own = own != nil
	}
	if d.Versions, err = h.Store.WeightVersions(sc, d.Filter.Merchant); err != nil {
		return nil, storeErr(err)
	}
	return d, nil
}

// parseDraft reads the weights form: name, w.<kpi>, n.<kpi>, t.<kpi> and
// a.<account id> for every account in view. Unparsable numbers are field
// errors; the rest is models.Weights.Validate's to judge.
func parseDraft(c *fiber.Ctx, accts []models.AccountKPIs) (models.Weights, models.FieldErrors) {
	errs := models.FieldErrors{}
	num := func(field, raw string) float64 {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			return 0
		}
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			errs[field] = "kpi.err_number"
			return 0
		}
		return v
	}
	w := models.Weights{Name: strings.TrimSpace(c.FormValue("name")), KPIs: map[string]models.KPIWeight{}, Accounts: map[uint64]float64{}}
	for _, def := range models.KPIDefs {
		kw := models.KPIWeight{Weight: num("w."+def.Key, c.FormValue("w."+def.Key)), Norm: c.FormValue("n." + def.Key)}
		if kw.Norm == "" {
			kw.Norm = models.NormMinMax
		}
		if kw.Norm == models.NormTarget {
			kw.Target = num("t."+def.Key, c.FormValue("t."+def.Key))
		}
		w.KPIs[def.Key] = kw
	}
	for _, a := range accts {
		id := strconv.FormatUint(a.AccountID, 10)
		if raw := c.FormValue("a." + id); raw != "" {
			w.Accounts[a.AccountID] = num("a."+id, raw)
		}
	}
	ids := make([]uint64, len(accts))
	for i, a := range accts {
		ids[i] = a.AccountID
	}
	var fe models.FieldErrors
	if err := w.Validate(ids); errors.As(err, &fe) {
		for k, v := range fe {
			if errs[k] == "" {
				errs[k] = v
			}
		}
	}
	if len(errs) == 0 {
		return w, nil
	}
	return w, errs
}

// KPIPage shows the channel accounts' KPIs and scores under the weights in
// force, with the weights form whose every move previews the new ranking.
func (h *Handlers) KPIPage(c *fiber.Ctx) error {
	d, err := h.kpiView(c)
	if err != nil {
		return err
	}
	if d.Merchant != "" {
		d.Draft = d.Active.Clone()
		d.Board = views.CompareBoards(d.Accounts, d.Draft, d.Active)
	}
	return h.Render(c, fiber.StatusOK, views.KPIPageView(d))
}

// KPIPreview scores the accounts under the draft weights of the form and
// answers the scoreboard alone (the whole page without htmx), compared
// with the active set. It changes nothing.
func (h *Handlers) KPIPreview(c *fiber.Ctx) error {
	d, err := h.kpiView(c)
	if err != nil {
		return err
	}
	if d.Merchant == "" {
		return fiber.ErrNotFound
	}
	d.Draft, d.DraftErrors = parseDraft(c, d.Accounts)
	d.Reason = c.FormValue("reason")
	if d.DraftErrors == nil {
		d.Board = views.CompareBoards(d.Accounts, d.Draft, d.Active)
	}
	d.Board.Errors = d.DraftErrors
	status := fiber.StatusOK
	if d.DraftErrors != nil {
		status = fiber.StatusUnprocessableEntity
	}
	if c.Get("HX-Request") == "true" {
		ident := IdentityOf(c)
		fr := &views.Frame{Lang: ident.Lang, CSRF: ident.CSRF, User: ident.User, Path: "/kpis", RequestID: requestID(c)}
		// htmx swaps 2xx answers only: a refused draft is shown, not dropped.
		return h.RenderFrame(c, fiber.StatusOK, fr, views.KPIBoardPanel(d))
	}
	return h.Render(c, status, views.KPIPageView(d))
}

// KPIWeightsSave saves the form's weights as a new version of the
// merchant's set (the global default for "all merchants"), with a reason.
func (h *Handlers) KPIWeightsSave(c *fiber.Ctx) error {
	d, err := h.kpiView(c)
	if err != nil {
		return err
	}
	if d.Merchant == "" {
		return fiber.ErrNotFound
	}
	d.Draft, d.DraftErrors = parseDraft(c, d.Accounts)
	d.Reason = c.FormValue("reason")
	if d.DraftErrors == nil {
		_, err = h.Store.SaveWeights(actor(c), scope(c), d.Filter.Merchant, d.Draft, d.Reason)
		var fe models.FieldErrors
		switch {
		case errors.As(err, &fe):
			d.DraftErrors = fe
		case errors.Is(err, models.ErrWeightsChanged):
			d.DraftErrors = models.FieldErrors{"reason": "kpi.err_changed"}
		case err != nil:
			return storeErr(err)
		default:
			h.flash(c, "success", "kpi.saved")
			return redirect(c, kpiLink(d, ""))
		}
	}
	if d.DraftErrors["reason"] == "" || len(d.DraftErrors) > 1 {
		d.Board = views.CompareBoards(d.Accounts, d.Draft, d.Active)
	}
	d.Board.Errors = d.DraftErrors
	return h.Render(c, fiber.StatusUnprocessableEntity, views.KPIPageView(d))
}

// kpiLink is the KPI page (or one of its sub-pages) for the same view.
func kpiLink(d *views.KPIPage, path string) string {
	q := url.Values{}
	q.Set("merchant", d.Merchant)
	q.Set("range", d.Range)
	if d.Range == "custom" {
		q.Set("from", d.Filter.From)
		q.Set("to", d.Filter.To)
	}
	if d.Method != "" {
		q.Set("method", d.Method)
	}
	return "/kpis" + path + "?" + q.Encode()
}

// KPIVersionShow compares a saved version of the weights with the active
// one: both sets side by side and the ranking under each.
func (h *Handlers) KPIVersionShow(c *fiber.Ctx) error {
	return h.kpiVersion(c, fiber.StatusOK, "", "")
}

func (h *Handlers) kpiVersion(c *fiber.Ctx, status int, reason, reasonErr string) error {
	version, err := strconv.Atoi(c.Params("version"))
	if err != nil || version < 1 {
		return fiber.ErrNotFound
	}
	d, err := h.kpiView(c)
	if err != nil {
		return err
	}
	if d.Merchant == "" {
		return fiber.ErrNotFound
	}
	v, err := h.Store.WeightVersion(scope(c), d.Filter.Merchant, version)
	if err != nil {
		return storeErr(err)
	}
	w, err := v.Weights()
	if err != nil {
		return err
	}
	d.Draft, d.Compared, d.Reason = w, v, reason
	d.Board = views.CompareBoards(d.Accounts, w, d.Active)
	if reasonErr != "" {
		d.Board.Errors = models.FieldErrors{"reason": reasonErr}
	}
	return h.Render(c, status, views.KPIVersionView(d))
}

// KPIWeightsRestore makes an old version active again (saved as a new
// version, with a reason).
func (h *Handlers) KPIWeightsRestore(c *fiber.Ctx) error {
	version, err := strconv.Atoi(c.Params("version"))
	if err != nil || version < 1 {
		return fiber.ErrNotFound
	}
	d, err := h.kpiView(c)
	if err != nil {
		return err
	}
	if d.Merchant == "" {
		return fiber.ErrNotFound
	}
	reason := c.FormValue("reason")
	v, err := h.Store.RestoreWeights(actor(c), scope(c), d.Filter.Merchant, version, reason)
	var fe models.FieldErrors
	switch {
	case errors.As(err, &fe):
		return h.kpiVersion(c, fiber.StatusUnprocessableEntity, reason, firstError(fe))
	case errors.Is(err, models.ErrWeightsChanged):
		return h.kpiVersion(c, fiber.StatusConflict, reason, "kpi.err_changed")
	case err != nil:
		return storeErr(err)
	}
	h.flash(c, "success", "kpi.restored", fmt.Sprintf("v%d → v%d", version, v.Version))
	return redirect(c, kpiLink(d, ""))
}

// firstError picks the reason's error, else any, for a one-field form.
func firstError(fe models.FieldErrors) string {
	if k := fe["reason"]; k != "" {
		return k
	}
	for _, k := range fe {
		return k
	}
	return ""
}
