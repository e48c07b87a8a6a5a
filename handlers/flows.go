package handlers

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/flows"
	"payfuse/models"
	"payfuse/views"
)

// runsPerPage is how many runs a flow's history shows at a time.
const runsPerPage = 25

// flowDefaults are each kind's settings with their defaults spelled out: the
// new-flow form offers them, so nobody has to guess the JSON keys.
var flowDefaults = map[string]string{
	models.FlowBillSync:     `{"lag_days": 1, "bill_type": "ALL", "reconcile": true}`,
	models.FlowFolderImport: `{"folder": ""}`,
	models.FlowReconcile:    `{"lag_days": 1}`,
	models.FlowRollupCheck:  `{"days": 7, "repair": false}`,
	models.FlowTriggerEval:  `{}`,
}

// FlowList lists the flows in scope with their schedule, next run and last result.
func (h *Handlers) FlowList(c *fiber.Ctx) error {
	sc := scope(c)
	f := models.FlowFilter{Kind: c.Query("kind"), MerchantCode: strings.ToUpper(strings.TrimSpace(c.Query("merchant"))),
		LastStatus: c.Query("status"), Query: strings.TrimSpace(c.Query("q"))}
	if !slices.Contains(models.FlowKinds, f.Kind) {
		f.Kind = ""
	}
	if !slices.Contains(models.RunStatuses, f.LastStatus) {
		f.LastStatus = ""
	}
	if len(f.Query) > 64 {
		f.Query = f.Query[:64]
	}
	list, err := h.Store.ListFlows(sc, f)
	if err != nil {
		return err
	}
	merchants, _, err := h.Store.ListMerchants(sc, models.MerchantFilter{Size: 500})
	if err != nil {
		return err
	}
	d := views.FlowsPage{Flows: list, Filter: f, Merchants: merchants, Accounts: map[uint64]string{}}
	accounts, err := h.Store.ListAccounts(sc, models.AccountFilter{})
	if err != nil {
		return err
	}
	for _, a := range accounts {
		d.Accounts[a.ID] = a.DisplayName
	}
	return h.Render(c, fiber.StatusOK, views.FlowsListPage(d))
}

// FlowNew shows the form for a new flow. A kind in the query (the form's
// kind select asks with htmx when it changes) fills in that kind's default
// settings, unless the user has written settings of their own.
func (h *Handlers) FlowNew(c *fiber.Ctx) error {
	form := views.FlowForm{Kind: c.Query("kind"), MerchantCode: c.Query("merchant"), Params: c.Query("params"), Enabled: true,
		MaxAttempts: strconv.Itoa(models.DefaultFlowAttempts), RetryBase: strconv.Itoa(models.DefaultRetryBase)}
	if !slices.Contains(models.FlowKinds, form.Kind) {
		form.Kind = ""
	}
	if form.Kind != "" && isDefaultParams(form.Params) {
		form.Params = flowDefaults[form.Kind]
	}
	return h.flowForm(c, fiber.StatusOK, form)
}

// isDefaultParams reports whether settings are empty or some kind's untouched defaults.
func isDefaultParams(p string) bool {
	p = strings.TrimSpace(p)
	if p == "" || p == "{}" {
		return true
	}
	for _, def := range flowDefaults {
		if p == def {
			return true
		}
	}
	return false
}

// flowForm renders the flow form with the merchants and accounts in scope.
func (h *Handlers) flowForm(c *fiber.Ctx, status int, form views.FlowForm) error {
	sc := scope(c)
	merchants, _, err := h.Store.ListMerchants(sc, models.MerchantFilter{Size: 500})
	if err != nil {
		return err
	}
	form.Merchants = merchants
	if form.MerchantCode == "" && len(merchants) == 1 {
		form.MerchantCode = merchants[0].Code
	}
	if form.Accounts, err = h.Store.ListAccounts(sc, models.AccountFilter{}); err != nil {
		return err
	}
	form.Defaults = flowDefaults
	form.Loc = views.DisplayZone
	for i := range merchants {
		if merchants[i].Code == form.MerchantCode {
			form.Loc = merchants[i].Location()
		}
	}
	if form.Schedule != "" && form.Errors["schedule"] == "" {
		form.Preview, _ = models.NextOccurrences(form.Schedule, form.Loc, h.Store.Now(), 3)
	}
	return h.Render(c, status, views.FlowFormPage(form))
}

// flowInput reads the flow form. Numbers that are not numbers (or below 1)
// become -1, which the store refuses with the field's message.
func flowInput(c *fiber.Ctx) (views.FlowForm, models.FlowInput) {
	form := views.FlowForm{
		Name: c.FormValue("name"), Kind: c.FormValue("kind"), MerchantCode: c.FormValue("merchant"),
		Params: c.FormValue("params"), Schedule: c.FormValue("schedule"), Enabled: c.FormValue("enabled") != "",
		MaxAttempts: strings.TrimSpace(c.FormValue("max_attempts")), RetryBase: strings.TrimSpace(c.FormValue("retry_base")),
	}
	in := models.FlowInput{Name: form.Name, Kind: form.Kind, MerchantCode: form.MerchantCode, Params: form.Params,
		Schedule: form.Schedule, Enabled: form.Enabled, MaxAttempts: formInt(form.MaxAttempts), RetryBaseSeconds: formInt(form.RetryBase)}
	if v := c.FormValue("account"); v != "" {
		id := parseID(v)
		if id == 0 {
			id = math.MaxInt64 // no such account: the store says so next to the field
		}
		in.AccountID, form.AccountID = id, id
	}
	return form, in
}

// formInt reads an optional positive number: "" is 0 (the default), anything
// else that is not a positive number is -1 (refused).
func formInt(s string) int {
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return -1
	}
	return n
}

// withScheduleProblem adds what exactly is wrong with a refused schedule.
func withScheduleProblem(form *views.FlowForm, loc *time.Location) {
	if form.Errors["schedule"] == "" {
		return
	}
	var se *models.ScheduleError
	if _, err := models.ParseSchedule(form.Schedule, loc); errors.As(err, &se) {
		form.ScheduleProblem = se.Message
	}
}

// FlowCreate stores a new flow; bad input shows the form again with the
// messages next to the fields and saves nothing.
func (h *Handlers) FlowCreate(c *fiber.Ctx) error {
	form, in := flowInput(c)
	f, err := h.Store.CreateFlow(actor(c), scope(c), in)
	var fe models.FieldErrors
	switch {
	case errors.As(err, &fe):
		form.Errors = fe
		withScheduleProblem(&form, nil)
		return h.flowForm(c, fiber.StatusUnprocessableEntity, form)
	case err != nil:
		return storeErr(err)
	}
	h.flash(c, "success", "flows.created", f.Name)
	return redirect(c, fmt.Sprintf("/flows/%d", f.ID))
}

// flowLoc is the time zone of a flow's merchant.
func (h *Handlers) flowLoc(sc models.Scope, f *models.Flow) *time.Location {
	if m, err := h.Store.GetMerchantByCode(sc, f.MerchantCode); err == nil {
		return m.Location()
	}
	return f.Location()
}

// FlowShow shows a flow: its settings, next occurrences and run history.
func (h *Handlers) FlowShow(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	sc := scope(c)
	f, err := h.Store.GetFlow(sc, id)
	if err != nil {
		return storeErr(err)
	}
	d := views.FlowShow{Flow: f, Loc: h.flowLoc(sc, f), Status: c.Query("status")}
	if !slices.Contains(models.RunStatuses, d.Status) {
		d.Status = ""
	}
	d.Before = parseID(c.Query("before"))
	if f.AccountID != nil {
		if a, err := h.Store.GetAccount(sc, *f.AccountID); err == nil {
			d.AccountName = a.DisplayName
		}
	}
	if f.Schedule != "" {
		d.Next, _ = models.NextOccurrences(f.Schedule, d.Loc, h.Store.Now(), 3)
	}
	if d.Runs, err = h.Store.ListRuns(sc, models.RunFilter{FlowID: f.ID, Status: d.Status, Before: d.Before, Limit: runsPerPage}); err != nil {
		return err
	}
	return h.Render(c, fiber.StatusOK, views.FlowShowPage(d))
}

// FlowEdit shows the form for a flow's account, schedule, settings and retries.
func (h *Handlers) FlowEdit(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	f, err := h.Store.GetFlow(scope(c), id)
	if err != nil {
		return storeErr(err)
	}
	form := views.FlowForm{ID: f.ID, Name: f.Name, Kind: f.Kind, MerchantCode: f.MerchantCode, Params: flowParamsForm(f.Params),
		Schedule: f.Schedule, Enabled: f.Enabled, MaxAttempts: strconv.Itoa(f.MaxAttempts), RetryBase: strconv.Itoa(f.RetryBaseSeconds)}
	if f.AccountID != nil {
		form.AccountID = *f.AccountID
	}
	return h.flowForm(c, fiber.StatusOK, form)
}

// flowParamsForm shows stored settings as they are, "{}" as nothing to edit.
func flowParamsForm(p string) string {
	if p == "{}" {
		return ""
	}
	return p
}

// FlowUpdate changes a flow; name, kind and merchant stay as they are.
func (h *Handlers) FlowUpdate(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	sc := scope(c)
	form, in := flowInput(c)
	f, err := h.Store.UpdateFlow(actor(c), sc, id, in)
	var fe models.FieldErrors
	switch {
	case errors.As(err, &fe):
		old, err := h.Store.GetFlow(sc, id)
		if err != nil {
			return storeErr(err)
		}
		form.ID, form.Name, form.Kind, form.MerchantCode, form.Enabled = old.ID, old.Name, old.Kind, old.MerchantCode, old.Enabled
		form.Errors = fe
		withScheduleProblem(&form, nil)
		return h.flowForm(c, fiber.StatusUnprocessableEntity, form)
	case err != nil:
		return storeErr(err)
	}
	h.flash(c, "success", "flows.updated", f.Name)
	return redirect(c, fmt.Sprintf("/flows/%d", f.ID))
}

// FlowRun starts a run of the flow now and shows it. When the engine
// refuses (the flow is running already, disabled, ...), the flow's page
// says why in the user's language.
func (h *Handlers) FlowRun(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	run, err := h.Flows.RunNow(scope(c), id, actor(c))
	var fe *flows.Error
	switch {
	case errors.As(err, &fe):
		h.flash(c, "error", "flows.run_refused", fe.Message.In(IdentityOf(c).Lang))
		return redirect(c, fmt.Sprintf("/flows/%d", id))
	case err != nil:
		return storeErr(err)
	}
	h.flash(c, "success", "flows.run_started")
	return redirect(c, fmt.Sprintf("/flows/runs/%d", run.ID))
}

// FlowEnable schedules a flow again from its next occurrence.
func (h *Handlers) FlowEnable(c *fiber.Ctx) error { return h.flowSetEnabled(c, true) }

// FlowDisable stops a flow's schedule and cancels its pending retries.
func (h *Handlers) FlowDisable(c *fiber.Ctx) error { return h.flowSetEnabled(c, false) }

func (h *Handlers) flowSetEnabled(c *fiber.Ctx, enabled bool) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	f, err := h.Store.SetFlowEnabled(actor(c), scope(c), id, enabled)
	var fe models.FieldErrors
	switch {
	case errors.As(err, &fe):
		for _, k := range fe {
			h.flash(c, "error", k)
		}
		return redirect(c, fmt.Sprintf("/flows/%d", id))
	case err != nil:
		return storeErr(err)
	}
	if enabled {
		h.flash(c, "success", "flows.enabled_flash", f.Name)
	} else {
		h.flash(c, "success", "flows.disabled_flash", f.Name)
	}
	return redirect(c, fmt.Sprintf("/flows/%d", f.ID))
}

// FlowRunShow shows one run. While it runs, htmx asks again for the run's
// panel alone (HX-Request), drawn with a frame that leaves the flash alone.
func (h *Handlers) FlowRunShow(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	sc := scope(c)
	run, err := h.Store.GetRun(sc, id)
	if err != nil {
		return storeErr(err)
	}
	f, err := h.Store.GetFlow(sc, run.FlowID)
	if err != nil {
		return storeErr(err)
	}
	d := views.FlowRunShow{Run: run, Flow: f, Loc: h.flowLoc(sc, f), Now: h.Store.Now()}
	if c.Get("HX-Request") == "true" {
		ident := IdentityOf(c)
		fr := &views.Frame{Lang: ident.Lang, CSRF: ident.CSRF, User: ident.User, Path: c.Path(), RequestID: requestID(c)}
		return h.RenderFrame(c, fiber.StatusOK, fr, views.FlowRunPanel(d))
	}
	return h.Render(c, fiber.StatusOK, views.FlowRunPage(d))
}
