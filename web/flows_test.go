package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"payfuse/models"
)

// flowForm is a valid new rollup-check flow of SHOP_SH; tests change a field or two.
func flowForm(name string) url.Values {
	return url.Values{"name": {name}, "kind": {models.FlowRollupCheck}, "merchant": {"SHOP_SH"}, "account": {""},
		"schedule": {"0 9 * * *"}, "params": {`{"days":1}`}, "max_attempts": {"3"}, "retry_base": {"60"}, "enabled": {"1"}}
}

// noMissingKeys fails when a page shows a translation key instead of text.
func noMissingKeys(t *testing.T, what string, r resp) {
	t.Helper()
	for _, p := range []string{"[flows.", "[flow.", "[action.", "[pager."} {
		if strings.Contains(r.Body, p) {
			i := strings.Index(r.Body, p)
			t.Errorf("%s shows a missing translation near %q", what, r.Body[i:min(len(r.Body), i+60)])
		}
	}
}

func flowCount(t *testing.T, s *models.Store) int64 {
	var n int64
	if err := s.DB.Model(&models.Flow{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFlowPages(t *testing.T) {
	w := newLedgerWorld(t)
	op := w.english(t, "opsh", "operator sh pass")

	list := op.get("/flows")
	if list.StatusCode != http.StatusOK || !strings.Contains(list.Body, "No flows yet") || !strings.Contains(list.Body, `href="/flows/new"`) {
		t.Fatalf("empty list: %d %s", list.StatusCode, clip(list.Body))
	}
	// The form offers only the operator's merchant and accounts.
	form := op.get("/flows/new")
	if form.StatusCode != http.StatusOK || !strings.Contains(form.Body, "SH WeChat") || strings.Contains(form.Body, "BJ WeChat") || strings.Contains(form.Body, `value="SHOP_BJ"`) {
		t.Fatalf("new form: %d %s", form.StatusCode, clip(form.Body))
	}
	noMissingKeys(t, "the new form", form)
	// Choosing a kind fills in its default settings (htmx asks for the form again).
	if r := op.do("GET", "/flows/new?kind=bill_sync&params=", nil, "HX-Request", "true"); !strings.Contains(r.Body, "bill_type") || !strings.Contains(r.Body, "lag_days") {
		t.Errorf("bill-sync defaults are not offered: %s", clip(r.Body))
	}
	if r := op.get("/flows/new?kind=bill_sync&params=" + url.QueryEscape(`{"date":"2026-01-02"}`)); !strings.Contains(r.Body, "2026-01-02") {
		t.Errorf("the user's own settings were replaced by the defaults")
	}

	// A bad schedule: 422, the message next to the field, nothing saved.
	bad := flowForm("sh-rollup")
	bad.Set("schedule", "0 25 * * *")
	r := op.post("/flows", bad)
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "Not a valid 5-field cron expression") ||
		!strings.Contains(r.Body, `aria-describedby="e-schedule"`) || !strings.Contains(r.Body, "not a valid cron expression") {
		t.Fatalf("bad cron: %d %s", r.StatusCode, clip(r.Body))
	}
	if !strings.Contains(r.Body, `value="0 25 * * *"`) || !strings.Contains(r.Body, `value="sh-rollup"`) {
		t.Errorf("the form does not echo what was typed")
	}
	bad = flowForm("Bad Name!")
	bad.Set("max_attempts", "lots")
	bad.Set("params", "[1,2]")
	r = op.post("/flows", bad)
	for _, want := range []string{"Use 2–64 lower-case letters", "Give 1 to 10 attempts.", "Settings must be a JSON object"} {
		if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, want) {
			t.Errorf("bad input: %d, no %q", r.StatusCode, want)
		}
	}
	// Another merchant's account or merchant is refused like a wrong value.
	bad = flowForm("sh-rollup")
	bad.Set("account", id(w.acctBJ.ID))
	if r = op.post("/flows", bad); r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "Choose one of this merchant") {
		t.Errorf("foreign account: %d", r.StatusCode)
	}
	bad = flowForm("bj-rollup")
	bad.Set("merchant", "SHOP_BJ")
	if r = op.post("/flows", bad); r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "Choose a merchant you manage") {
		t.Errorf("foreign merchant: %d", r.StatusCode)
	}
	if n := flowCount(t, w.store); n != 0 {
		t.Fatalf("bad input saved %d flows", n)
	}

	r = op.post("/flows", flowForm("sh-rollup"))
	flowPath := r.Header.Get("Location")
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(flowPath, "/flows/") {
		t.Fatalf("create: %d %s", r.StatusCode, clip(r.Body))
	}
	show := op.get(flowPath)
	for _, want := range []string{"Flow sh-rollup created.", "Rollup check", "every day at 09:00", "Asia/Shanghai", `id="flow-next"`, "No runs yet", "Run now"} {
		if !strings.Contains(show.Body, want) {
			t.Errorf("the flow page lacks %q", want)
		}
	}
	// The next three occurrences, at 09:00 in the merchant's zone.
	next := show.Body[strings.Index(show.Body, `id="flow-next"`):]
	next = next[:strings.Index(next, "</ol>")]
	if strings.Count(next, "09:00:00</time>") != 3 {
		t.Errorf("next occurrences: %s", next)
	}
	noMissingKeys(t, "the flow page", show)

	list = op.get("/flows")
	for _, want := range []string{`data-flow="sh-rollup"`, "Rollup check", "All accounts", "Never run", "0 9 * * *"} {
		if !strings.Contains(list.Body, want) {
			t.Errorf("the list lacks %q", want)
		}
	}
	noMissingKeys(t, "the list", list)
	if f := op.get("/flows?kind=bill_sync"); strings.Contains(f.Body, `data-flow="sh-rollup"`) || !strings.Contains(f.Body, "No flows match") {
		t.Errorf("the kind filter shows other kinds")
	}

	// Edit: name, kind and merchant are read-only; the rest changes.
	edit := op.get(flowPath + "/edit")
	if edit.StatusCode != http.StatusOK || !strings.Contains(edit.Body, `id="flow-fixed"`) || strings.Contains(edit.Body, `name="name"`) {
		t.Fatalf("edit form: %d %s", edit.StatusCode, clip(edit.Body))
	}
	upd := url.Values{"account": {id(w.acctSH.ID)}, "schedule": {"30 2 * * 1"}, "params": {`{"days":1}`}, "max_attempts": {"0"}, "retry_base": {"30"}}
	if r = op.post(flowPath, upd); r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "Give 1 to 10 attempts.") || !strings.Contains(r.Body, `id="flow-fixed"`) {
		t.Errorf("bad edit: %d %s", r.StatusCode, clip(r.Body))
	}
	upd.Set("max_attempts", "2")
	if r = op.post(flowPath, upd); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != flowPath {
		t.Fatalf("edit: %d %s", r.StatusCode, clip(r.Body))
	}
	show = op.get(flowPath)
	for _, want := range []string{"Flow sh-rollup saved.", "every Monday at 02:30", "SH WeChat", "up to 2 attempts"} {
		if !strings.Contains(show.Body, want) {
			t.Errorf("the edited flow page lacks %q", want)
		}
	}

	// Disabled, it does not run; the refusal says why.
	if r = op.post(flowPath+"/disable", nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", r.StatusCode)
	}
	if show = op.get(flowPath); !strings.Contains(show.Body, "Flow sh-rollup disabled.") || !strings.Contains(show.Body, "Not while disabled") {
		t.Errorf("disabled flow page: %s", clip(show.Body))
	}
	if r = op.post(flowPath+"/run", nil); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != flowPath {
		t.Fatalf("run a disabled flow: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	if show = op.get(flowPath); !strings.Contains(show.Body, "Not started: the flow is disabled; enable it first") {
		t.Errorf("the refusal is not shown: %s", clip(show.Body))
	}
	if r = op.post(flowPath+"/enable", nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("enable: %d", r.StatusCode)
	}
	if show = op.get(flowPath); !strings.Contains(show.Body, "Flow sh-rollup enabled.") {
		t.Errorf("enabled flow page lacks the flash")
	}

	// Run now: the run page, once the run has ended, says it succeeded.
	r = op.post(flowPath+"/run", nil)
	runPath := r.Header.Get("Location")
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(runPath, "/flows/runs/") {
		t.Fatalf("run now: %d %s %s", r.StatusCode, runPath, clip(r.Body))
	}
	runID, _ := strconv.ParseUint(strings.TrimPrefix(runPath, "/flows/runs/"), 10, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if run, err := w.srv.H.Flows.WaitRun(ctx, runID); err != nil || run.Status != models.RunSucceeded {
		t.Fatalf("the run: %+v %v", run, err)
	}
	page := op.get(runPath)
	for _, want := range []string{"Run started.", `data-status="succeeded"`, "Succeeded", "Manual", "opsh", "groups compared", "1 of 2", "sh-rollup"} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("the run page lacks %q", want)
		}
	}
	if strings.Contains(page.Body, `hx-trigger="every 2s"`) {
		t.Errorf("a finished run's page still polls")
	}
	noMissingKeys(t, "the run page", page)
	// htmx asks for the panel alone.
	if p := op.do("GET", runPath, nil, "HX-Request", "true"); p.StatusCode != http.StatusOK || strings.Contains(p.Body, "<html") || !strings.Contains(p.Body, `id="run-panel"`) {
		t.Errorf("the run panel fragment: %d %s", p.StatusCode, clip(p.Body))
	}
	show = op.get(flowPath)
	if !strings.Contains(show.Body, fmt.Sprintf(`data-run="%d" data-status="succeeded"`, runID)) {
		t.Errorf("the history lacks the run: %s", clip(show.Body))
	}
	if f := op.get(flowPath + "?status=failed"); strings.Contains(f.Body, `data-run="`) || !strings.Contains(f.Body, "No runs match") {
		t.Errorf("the status filter shows other runs")
	}
	if l := op.get("/flows?status=succeeded"); !strings.Contains(l.Body, `data-flow="sh-rollup"`) || !strings.Contains(l.Body, `data-status="succeeded"`) {
		t.Errorf("the list does not show the last result")
	}

	var audits []string
	w.store.DB.Model(&models.AuditLog{}).Where("actor = ? AND object_type = ?", "opsh", "flow").Order("id").Pluck("action", &audits)
	if strings.Join(audits, " ") != "flow.create flow.update flow.disable flow.enable flow.run" {
		t.Errorf("audit: %v", audits)
	}

	// Another merchant's operator finds none of it.
	bj := w.english(t, "opbj", "operator bj pass")
	for _, p := range []string{flowPath, flowPath + "/edit", runPath} {
		if g := bj.get(p); g.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s by another merchant: %d", p, g.StatusCode)
		}
	}
	for _, p := range []string{flowPath, flowPath + "/run", flowPath + "/disable", flowPath + "/enable"} {
		if g := bj.post(p, upd); g.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s by another merchant: %d", p, g.StatusCode)
		}
	}
	if l := bj.get("/flows"); strings.Contains(l.Body, "sh-rollup") {
		t.Errorf("another merchant's list shows the flow")
	}
	finBJ := w.english(t, "finbj", "finance bj pass")
	if g := finBJ.get(runPath); g.StatusCode != http.StatusNotFound {
		t.Errorf("another merchant's finance sees the run: %d", g.StatusCode)
	}

	// Finance watches but does not change or run.
	fin := w.english(t, "finsh", "finance sh pass")
	l := fin.get("/flows")
	if l.StatusCode != http.StatusOK || !strings.Contains(l.Body, `data-flow="sh-rollup"`) || strings.Contains(l.Body, `href="/flows/new"`) {
		t.Errorf("finance list: %d %s", l.StatusCode, clip(l.Body))
	}
	if s := fin.get(flowPath); s.StatusCode != http.StatusOK || strings.Contains(s.Body, "/run\"") || strings.Contains(s.Body, "/edit\"") {
		t.Errorf("finance flow page: %d, offers changes: %v", s.StatusCode, strings.Contains(s.Body, "Run now"))
	}
	if s := fin.get(runPath); s.StatusCode != http.StatusOK {
		t.Errorf("finance run page: %d", s.StatusCode)
	}
	if g := fin.get("/flows/new"); g.StatusCode != http.StatusForbidden {
		t.Errorf("finance new form: %d", g.StatusCode)
	}
	for _, p := range []string{"/flows", flowPath + "/run", flowPath} {
		if g := fin.post(p, flowForm("fin-flow")); g.StatusCode != http.StatusForbidden {
			t.Errorf("finance POST %s: %d", p, g.StatusCode)
		}
	}

	// In Chinese.
	zh := newClient(t, w.srv)
	zh.header.Set("Accept-Language", "zh-CN")
	zh.login("opsh", "operator sh pass")
	for path, wants := range map[string][]string{
		"/flows":           {"业务流程", "汇总核查", "新建流程", "成功"},
		flowPath:           {"每周一 02:30", "立即运行", "运行记录", "接下来的运行时间"},
		runPath:            {"运行详情", "成功", "手动", "读取行数"},
		"/flows/new":       {"账单同步", "文件夹导入", "请选择类型"},
		flowPath + "/edit": {"流程创建后名称、类型和商户不可更改"},
	} {
		p := zh.get(path)
		for _, want := range wants {
			if !strings.Contains(p.Body, want) {
				t.Errorf("the Chinese %s lacks %q", path, want)
			}
		}
		noMissingKeys(t, "the Chinese "+path, p)
	}
	bad = flowForm("zh-flow")
	bad.Set("schedule", "@daily")
	if p := zh.post("/flows", bad); p.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "不是有效的五字段 cron 表达式") || !strings.Contains(p.Body, "请写出五个字段") {
		t.Errorf("the Chinese schedule error: %d %s", p.StatusCode, clip(p.Body))
	}
}

var olderRE = regexp.MustCompile(`href="([^"]*)"[^>]*rel="next"`)

// TestFlowRunHistoryPages walks a long history page by page, newest first.
func TestFlowRunHistoryPages(t *testing.T) {
	w := newLedgerWorld(t)
	f, err := w.store.CreateFlow(models.Actor{Name: "setup"}, models.Scope{All: true},
		models.FlowInput{Name: "sh-reconcile", Kind: models.FlowReconcile, MerchantCode: "SHOP_SH", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range 30 {
		status := models.RunSucceeded
		if i%3 == 0 {
			status = models.RunFailed
		}
		end := start.Add(time.Duration(i)*time.Hour + 1500*time.Millisecond)
		run := models.FlowRun{FlowID: f.ID, MerchantCode: "SHOP_SH", Trigger: models.TriggerManual, TriggeredBy: "opsh", Attempt: 1,
			Status: status, StartedAt: start.Add(time.Duration(i) * time.Hour), EndedAt: &end}
		if status == models.RunFailed {
			run.Error = `{"EN":"the channel said no","ZH":"渠道拒绝"}`
		}
		if err := w.store.DB.Create(&run).Error; err != nil {
			t.Fatal(err)
		}
	}
	op := w.english(t, "opsh", "operator sh pass")
	path := "/flows/" + id(f.ID)
	first := op.get(path)
	if n := strings.Count(first.Body, `data-run="`); n != 25 {
		t.Fatalf("the first page has %d runs", n)
	}
	if !strings.Contains(first.Body, "the channel said no") || !strings.Contains(first.Body, "1.5s") {
		t.Errorf("the history lacks the error or the duration")
	}
	m := olderRE.FindStringSubmatch(first.Body)
	if m == nil || !strings.Contains(m[1], "before=") {
		t.Fatalf("no older link: %v", m)
	}
	older := strings.ReplaceAll(m[1], "&amp;", "&")
	second := op.get(older)
	if n := strings.Count(second.Body, `data-run="`); n != 5 || strings.Contains(second.Body, `rel="next"`) || !strings.Contains(second.Body, "Newest") {
		t.Errorf("the second page has %d runs: %s", n, clip(second.Body))
	}
	failed := op.get(path + "?status=failed")
	if n := strings.Count(failed.Body, `data-status="failed"`); n != 10 || strings.Contains(failed.Body, `data-status="succeeded"`) {
		t.Errorf("the failed filter shows %d failed runs", n)
	}

	// A retrying attempt links to the one before and says when it goes again;
	// a running one asks for its panel again until it ends.
	prev := uint64(30)
	retryAt := start.Add(48 * time.Hour)
	retrying := models.FlowRun{FlowID: f.ID, MerchantCode: "SHOP_SH", Trigger: models.TriggerRetry, Attempt: 2, PrevRunID: &prev,
		Status: models.RunRetrying, RetryAt: &retryAt, StartedAt: start.Add(47 * time.Hour), EndedAt: &retryAt,
		Error: `{"EN":"bill not ready","ZH":"账单尚未生成"}`, Log: "10:00:00 asked WeChat Pay\n"}
	running := models.FlowRun{FlowID: f.ID, MerchantCode: "SHOP_SH", Trigger: models.TriggerSchedule, Attempt: 1, Status: models.RunRunning,
		StartedAt: start.Add(49 * time.Hour), Occurrence: &retryAt}
	for _, r := range []*models.FlowRun{&retrying, &running} {
		if err := w.store.DB.Create(r).Error; err != nil {
			t.Fatal(err)
		}
	}
	p := op.get("/flows/runs/" + id(retrying.ID))
	for _, want := range []string{`id="prev-attempt"`, "previous attempt: run #30", "Next attempt", "2026-03-03 08:00:00", "bill not ready", "asked WeChat Pay", "Retry"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("the retrying run's page lacks %q", want)
		}
	}
	if strings.Contains(p.Body, `hx-trigger="every 2s"`) {
		t.Errorf("a retrying run's page polls")
	}
	p = op.get("/flows/runs/" + id(running.ID))
	if !strings.Contains(p.Body, `hx-trigger="every 2s"`) || !strings.Contains(p.Body, "still running") || !strings.Contains(p.Body, "Scheduled for") {
		t.Errorf("the running run's page: %s", clip(p.Body))
	}

	zh := newClient(t, w.srv)
	zh.header.Set("Accept-Language", "zh-CN")
	zh.login("opsh", "operator sh pass")
	if p := zh.get("/flows/runs/" + id(retrying.ID)); !strings.Contains(p.Body, "账单尚未生成") || !strings.Contains(p.Body, "等待重试") {
		t.Errorf("the Chinese retrying run lacks its error")
	}
	if p := zh.get(path + "?status=failed"); !strings.Contains(p.Body, "渠道拒绝") || !strings.Contains(p.Body, "失败") {
		t.Errorf("the Chinese history lacks the error text")
	}
}
