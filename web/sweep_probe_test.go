package web_test

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"payfuse/models"
	"payfuse/web"
)

// The probes. Each query parameter and form field gets every one of
// sweepProbes (all of a page's parameters, or a form's fields, at once per
// probe), then probeXSS alone in each. The first of sweepProbes holds the
// three XSS probes at once (a script element, and a breakout of a double-
// and of a single-quoted attribute); then a javascript: URL for values that
// land in links, two SQL probes, a value with a NUL byte, one with bytes
// that are not UTF-8, and a number that parses as an unsigned id but does
// not fit the databases' signed 64-bit integers. probeXSS breaks out of
// text and of both kinds of attribute and fits the 64 characters most names
// allow, so it is stored wherever a name may be.
const probeXSS = `"><img src=x onerror=alert(1)>' onmouseover='alert(1)`

const probeNotUTF8 = "\xff\xfe\xc3( not utf-8"

var sweepProbes = []string{
	`<script>alert(1)</script>"><img src=x onerror=alert(1)>' onmouseover='alert(1)`, "javascript:alert(1)",
	"' OR '1'='1", "1; DROP TABLE users--", "nul\x00byte", probeNotUTF8, "18446744073709551615",
}

// sweepSession is a client that sends forms the way the sweep needs: with
// the session's CSRF token (fetched once), any field names, NUL bytes and
// invalid UTF-8 kept as they are.
type sweepSession struct {
	*client
	token string
}

func (s *sweepSession) csrfToken() string {
	if s.token == "" {
		s.token = s.csrf()
	}
	return s.token
}

// send posts form (url-encoded, or multipart when files is not nil: each
// file field gets one file named by its value in files).
func (s *sweepSession) send(action string, form url.Values, files map[string]string, hdr ...string) resp {
	s.t.Helper()
	for attempt := 0; ; attempt++ {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		f.Set("_csrf", s.csrfToken())
		var r resp
		if files == nil {
			r = s.do("POST", action, f, hdr...)
		} else {
			r = s.multipart(action, f, files, hdr...)
		}
		if r.StatusCode == http.StatusForbidden && attempt == 0 && (strings.Contains(r.Body, "Form expired") || strings.Contains(r.Body, "表单已过期")) {
			s.token = "" // the session was given a new id (a privilege change): fetch the token again
			continue
		}
		return r
	}
}

func (s *sweepSession) multipart(action string, form url.Values, files map[string]string, hdr ...string) resp {
	s.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, vs := range form {
		for _, v := range vs {
			mw.WriteField(k, v)
		}
	}
	for field, name := range files { // an empty map sends the form as multipart, without files
		fw, _ := mw.CreateFormFile(field, name)
		// A CSV whose header and cells are probes too: statement parsers and
		// the mapping preview echo what they cannot read.
		fmt.Fprintf(fw, "%s,商户订单号,交易金额\n%s,PF1,1.00\n", probeXSS, probeXSS)
	}
	mw.Close()
	req := httptest.NewRequest("POST", action, &buf)
	for k, vs := range s.header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	for k, v := range s.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	res, err := s.srv.App.Test(req, -1)
	if err != nil {
		s.t.Fatalf("POST %s: %v", action, err)
	}
	for _, ck := range res.Cookies() {
		if ck.MaxAge < 0 || ck.Value == "" {
			delete(s.cookies, ck.Name)
		} else {
			s.cookies[ck.Name] = ck.Value
		}
	}
	b, _ := io.ReadAll(res.Body)
	return resp{res, string(b)}
}

// inert fails the test when an answer is not inert: a server error, live
// markup from a probe, or a redirect off the site.
func (w *sweepWorld) inert(t *testing.T, what string, r resp) {
	t.Helper()
	if r.StatusCode >= 500 {
		rid := r.Header.Get("X-Request-Id")
		t.Errorf("%s: status %d\n%s", what, r.StatusCode, w.logged(rid))
	}
	if strings.Contains(r.Header.Get("Content-Type"), "html") {
		if live := liveProbe(r.Body); live != "" {
			t.Errorf("%s: the page holds live markup from a probe: %s", what, live)
		}
	}
	for _, h := range []string{"Location", "HX-Redirect"} {
		if to := r.Header.Get(h); to != "" && (!strings.HasPrefix(to, "/") || strings.HasPrefix(to, "//") || strings.HasPrefix(to, `/\`)) {
			t.Errorf("%s: %s %q leaves the site", what, h, to)
		}
	}
}

// handlerParams lists the query and form parameter names the handler of a
// route reads by name: the string arguments of c.Query, c.FormValue,
// formList and the KPI pages' get, in the handler's own body and in the
// bodies of the functions of packages handlers and web it calls, found by
// parsing their sources.
func handlerParams(t *testing.T, rt web.Route) []string {
	t.Helper()
	fn := runtime.FuncForPC(reflect.ValueOf(rt.Handler).Pointer())
	if fn == nil {
		return nil
	}
	name := fn.Name() // payfuse/handlers.(*Handlers).LedgerList-fm
	name = strings.TrimSuffix(name[strings.LastIndex(name, ".")+1:], "-fm")
	funcs := handlerFuncs(t)
	if funcs[name] == nil {
		t.Errorf("%s %s: no source found for handler %s", rt.Method, rt.Path, name)
		return nil
	}
	var out []string
	seen := map[string]bool{}
	var walk func(name string)
	walk = func(name string) {
		if seen[name] || funcs[name] == nil {
			return
		}
		seen[name] = true
		ast.Inspect(funcs[name].Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			var callee string
			switch f := call.Fun.(type) {
			case *ast.SelectorExpr:
				callee = f.Sel.Name
			case *ast.Ident:
				callee = f.Name
			}
			arg := 0
			switch callee {
			case "formList":
				arg = 1
				fallthrough
			case "Query", "FormValue", "get":
				if len(call.Args) > arg {
					if lit, ok := call.Args[arg].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if v, err := strconv.Unquote(lit.Value); err == nil && !slices.Contains(out, v) {
							out = append(out, v)
						}
					}
				}
			default:
				walk(callee)
			}
			return true
		})
	}
	walk(name)
	return out
}

// handlerFuncs parses packages handlers and web once: their functions and
// methods by name.
var handlerFuncsOnce = sync.OnceValues(func() (map[string]*ast.FuncDecl, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("../handlers/*.go")
	if err != nil {
		return nil, err
	}
	own, _ := filepath.Glob("*.go") // handlers the web package defines itself
	files = append(files, own...)
	out := map[string]*ast.FuncDecl{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			return nil, err
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
				out[fd.Name.Name] = fd
			}
		}
	}
	return out, nil
})

func handlerFuncs(t *testing.T) map[string]*ast.FuncDecl {
	t.Helper()
	funcs, err := handlerFuncsOnce()
	if err != nil {
		t.Fatalf("parse ../handlers: %v", err)
	}
	return funcs
}

// sweepFill is a valid value for a form field left empty on the page, by
// name, so that a probe in one field is not refused for want of the others
// and reaches the database (and every page that shows it later).
func sweepFill(name string, n int) string {
	switch name {
	case "code":
		return "SWEEP" + strconv.Itoa(n)
	case "name", "display_name":
		return "sweep-" + strconv.Itoa(n)
	case "username":
		return "sweepuser" + strconv.Itoa(n)
	case "password":
		return "sweep password " + strconv.Itoa(n)
	case "url":
		return "https://hooks.example.com/sweep" + strconv.Itoa(n)
	case "reason", "note":
		return "sweep " + name + " " + strconv.Itoa(n)
	case "contact":
		return "sweep contact"
	case "merchants", "merchant":
		return "SHOP_SH"
	case "schedule":
		return "0 3 * * *"
	case "date", "from":
		return time.Now().AddDate(0, 0, -2).Format(time.DateOnly)
	case "to":
		return time.Now().AddDate(0, 0, -1).Format(time.DateOnly)
	case "month":
		return time.Now().Format("2006-01")
	case "amount", "min", "max", "new_value":
		return "1.00"
	}
	return ""
}

// base is the values a browser would send for the form, filled in as a
// user would to get past the required fields: empty text fields by
// sweepFill, a required select left on its empty choice on its first one, a
// group of check boxes none of which is ticked with its first ticked (but
// not the boxes that clear a stored secret).
// Buttons are left out.
func (f sweepForm) base(n int) url.Values {
	v := url.Values{}
	boxes := map[string]string{} // unticked groups: their first value
	for _, fl := range f.fields {
		switch fl.typ {
		case "button", "submit", "file", "reset", "image":
			continue
		case "checkbox", "radio":
			if fl.checked {
				v.Add(fl.name, fl.value)
			} else if _, ok := boxes[fl.name]; !ok && !strings.HasPrefix(fl.name, "clear_") {
				boxes[fl.name] = fl.value
			}
			continue
		}
		val := fl.value
		if fl.typ == "select" && val == "" && fl.required {
			for _, o := range fl.options {
				if o != "" {
					val = o
					break
				}
			}
		}
		if val == "" && fl.typ != "password" || fl.name == "password" && val == "" {
			val = sweepFill(fl.name, n)
		}
		if fl.typ == "password" && fl.name != "password" {
			val = "" // the user's own current password, a code: never guessed
		}
		if !v.Has(fl.name) {
			v.Set(fl.name, val)
		}
	}
	for name, val := range boxes {
		if !v.Has(name) {
			v.Set(name, val)
		}
	}
	return v
}

// files are the form's file fields, each with a file named like the probe.
func (f sweepForm) files() map[string]string {
	if !strings.Contains(f.enctype, "multipart") {
		return nil
	}
	out := map[string]string{}
	for _, fl := range f.fields {
		if fl.typ == "file" {
			out[fl.name] = probeXSS + ".csv"
		}
	}
	return out
}

// sweepDBState is what the SQL probes must leave alone: the tables and the
// users.
func sweepDBState(t *testing.T, store *models.Store) (tables []string, users int64) {
	t.Helper()
	tables, err := store.DB.Migrator().GetTables()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(tables)
	if err := store.DB.Model(&models.User{}).Count(&users).Error; err != nil {
		t.Fatal(err)
	}
	return tables, users
}

// probeEverything walks every console page of the routes table as the
// admin (and the sign-in pages anonymously), reads its forms, links and the
// parameters its handler reads, and sends the probes: each query parameter
// and each form field, all at once per probe and one by one with probeXSS.
// Every answer must be inert (no 5xx, no live markup from a probe, no
// redirect off the site). Then every page is read again, with the pages
// their links lead to (among them what the probes created), for stored
// probes; and the database must still hold its tables and its users.
func (w *sweepWorld) probeEverything(t *testing.T, signedIn *client) {
	start := time.Now()
	tables, users := sweepDBState(t, w.store)
	admin := &sweepSession{client: signedIn}
	anon := &sweepSession{client: newClient(t, w.srv)}
	// A record whose every text came from outside (a channel's statement or
	// notification): what the ledger pages show of it must be inert too.
	w.ingestProbeRecord(t)

	type page struct {
		path   string
		rt     web.Route
		params []string
		who    *sweepSession
	}
	var pages []*page
	byPath := map[string]*page{}
	forms := map[string]sweepForm{}
	var formOrder []string
	requests := map[string]int{} // by phase
	get := func(phase string, p *page, target string, hdr ...string) resp {
		requests[phase]++
		return p.who.do("GET", target, nil, hdr...)
	}
	for _, rt := range w.srv.Routes {
		// Not machine endpoints, images, or mounts of a whole subtree (the
		// profiler, off unless serve --pprof).
		if rt.Method != "GET" || !consoleRoute(rt) || rt.API || strings.HasSuffix(rt.Path, ".png") || strings.Contains(rt.Path, "*") {
			continue
		}
		path, unknown := w.pathFor(rt, "SHOP_SH")
		if unknown != "" {
			t.Errorf("GET %s: the sweep has no object for %s", rt.Path, unknown)
			continue
		}
		p := &page{path: path, rt: rt, who: admin, params: handlerParams(t, rt)}
		if rt.Access == web.Public {
			p.who = anon
		}
		pages = append(pages, p)
		byPath[strings.SplitN(path, "?", 2)[0]] = p
	}

	// Read each page: its forms, and the parameters its links and GET forms use.
	for _, p := range pages {
		r := get("read", p, p.path)
		w.inert(t, "GET "+p.path, r)
		if r.StatusCode != http.StatusOK && p.rt.Access != web.Public {
			t.Errorf("GET %s: %d, want 200", p.path, r.StatusCode)
		}
		fs, links := parseSweepPage(r.Body, strings.SplitN(p.path, "?", 2)[0])
		for target, keys := range links {
			if tp := byPath[target]; tp != nil {
				tp.params = append(tp.params, keys...)
			}
		}
		for _, f := range fs {
			action := strings.SplitN(f.action, "?", 2)[0]
			if f.method == "GET" {
				if tp := byPath[action]; tp != nil {
					for _, fl := range f.fields {
						tp.params = append(tp.params, fl.name)
					}
				}
				continue
			}
			if action == "/logout" || !strings.HasPrefix(action, "/") || !slices.ContainsFunc(f.fields, func(fl sweepField) bool {
				return fl.name != "_csrf" && fl.typ != "submit" && fl.typ != "button"
			}) {
				continue // sign-out, or an action button: nothing to type
			}
			k := f.key()
			if _, seen := forms[k]; !seen {
				forms[k] = f
				formOrder = append(formOrder, k)
			}
			if p.who == anon {
				forms[k+" anon"] = f
			}
		}
	}

	// Query parameters: every probe in all of a page's parameters at once
	// (the XSS one as htmx asks, for the fragments), then probeXSS in each.
	for _, p := range pages {
		slices.Sort(p.params)
		p.params = slices.Compact(slices.DeleteFunc(p.params, func(s string) bool { return s == "_csrf" }))
		if len(p.params) == 0 {
			p.params = []string{"q"}
		}
		if os.Getenv("SWEEP_DEBUG") != "" {
			t.Logf("GET %s reads %v", p.path, p.params)
		}
		sep := "?"
		if strings.Contains(p.path, "?") {
			sep = "&"
		}
		for i, probe := range sweepProbes {
			q := url.Values{}
			for _, k := range p.params {
				q.Set(k, probe)
			}
			target := p.path + sep + q.Encode()
			var hdr []string
			if i == 0 {
				hdr = []string{"HX-Request", "true"} // the fragments htmx asks for; the full page gets probeXSS below
			}
			w.inert(t, "GET "+p.rt.Path+" with every parameter "+strconv.Quote(probe)+strings.Join(hdr, ": "), get("query", p, target, hdr...))
		}
		for _, k := range p.params {
			target := p.path + sep + url.Values{k: {probeXSS}}.Encode()
			w.inert(t, "GET "+p.rt.Path+" with "+k+" the XSS probe", get("query", p, target))
		}
	}

	// Form fields: every probe in all fields at once, then probeXSS in each
	// field with the others filled in as a user would.
	sort.Strings(formOrder)
	n := 0
	for _, k := range formOrder {
		f := forms[k]
		who := admin
		if _, ok := forms[k+" anon"]; ok {
			who = anon
		}
		for _, probe := range sweepProbes {
			v := url.Values{}
			for _, fl := range f.fields {
				if fl.typ != "file" {
					v.Set(fl.name, probe)
				}
			}
			requests["form"]++
			w.inert(t, f.method+" "+f.action+" with every field "+strconv.Quote(probe), who.send(f.action, v, f.files()))
		}
		// A probe the form took stays in it for the next fields, so that an
		// edit form ends up holding every probe it accepts. On MySQL, which
		// refuses text that is not UTF-8 (SQLite stores it), each field also
		// gets the invalid UTF-8 probe alone.
		probed := map[string]bool{"_csrf": true}
		n++
		base := f.base(n)
		type one struct{ name, probe string }
		var singles []one
		for _, fl := range f.fields {
			if fl.typ == "file" || probed[fl.name] {
				continue
			}
			probed[fl.name] = true
			singles = append(singles, one{fl.name, probeXSS})
			if w.store.Dialect != models.SQLite {
				singles = append(singles, one{fl.name, probeNotUTF8})
			}
		}
		for _, fl := range singles {
			v := url.Values{}
			for k, vs := range base {
				v[k] = vs
			}
			v.Set(fl.name, fl.probe)
			// Multipart, but without the file: a new sample would replace
			// what the mapping form holds (the all-at-once pass sent files).
			var files map[string]string
			if f.files() != nil {
				files = map[string]string{}
			}
			requests["form"]++
			r := who.send(f.action, v, files)
			if r.StatusCode == http.StatusSeeOther && fl.probe == probeXSS {
				if f.action == "/merchants" || f.action == "/users" {
					n++
					base = f.base(n) // a create: the next one needs a code or username of its own
				} else {
					base = v
				}
			}
			if os.Getenv("SWEEP_DEBUG") != "" { // 2: also what was sent, and the field errors of a 422
				t.Logf("%s %s [%s] -> %d %s", f.method, f.action, fl.name, r.StatusCode, r.Header.Get("Location"))
				if r.StatusCode == http.StatusUnprocessableEntity && os.Getenv("SWEEP_DEBUG") == "2" {
					t.Logf("    sent %q\n    page says %q", v, regexp.MustCompile(`text-red-[67]00[^>]*>([^<]+)<`).FindAllStringSubmatch(r.Body, -1))
				}
			}
			w.inert(t, f.method+" "+f.action+" with "+fl.name+" "+strconv.Quote(fl.probe), r)
		}
	}

	// Stored probes: every page again, and the pages their links lead to
	// (among them those of what the probes created), a few of each route.
	seen := map[string]bool{}
	perRoute := map[string]int{}
	var next []string
	for _, p := range pages {
		seen[p.path] = true
		r := get("stored", p, p.path)
		w.inert(t, "GET "+p.path+" after the probes", r)
		next = append(next, localLinks(r.Body)...)
	}
	for _, l := range next {
		rt := w.routeOf(l)
		if seen[l] || rt == "" || perRoute[rt] >= 3 {
			continue
		}
		seen[l] = true
		perRoute[rt]++
		requests["stored"]++
		w.inert(t, "GET "+l+" after the probes", admin.get(l))
	}

	if r := admin.get("/"); r.StatusCode != http.StatusOK {
		t.Errorf("the admin's session did not survive the sweep: GET / %d", r.StatusCode)
	}
	tablesAfter, usersAfter := sweepDBState(t, w.store)
	if !slices.Equal(tables, tablesAfter) {
		t.Errorf("tables before %v, after %v", tables, tablesAfter)
	}
	if usersAfter < users {
		t.Errorf("%d users before the probes, %d after", users, usersAfter)
	}
	// The probes reached the database through the forms (so the pages read
	// again above showed them): if a form stops taking them, the sweep says so.
	stored := probesStored(t, w.store)
	for _, table := range []string{"merchants", "channel_accounts", "trigger_rules", "webhook_endpoints", "api_tokens",
		"kpi_weight_versions", "recon_items", "transaction_corrections", "alerts", "audit_logs", "transactions", "column_mappings"} {
		if stored[table] == 0 {
			t.Errorf("no probe reached %s: a form the sweep fills in is refused (run with SWEEP_DEBUG=1)", table)
		}
	}
	t.Logf("%d pages, %d forms; requests %v; probes stored %v; %s",
		len(pages), len(formOrder), requests, stored, time.Since(start).Round(time.Millisecond))
}

// routeOf returns the GET route pattern a local link opens, or "".
func (w *sweepWorld) routeOf(link string) string {
	p := strings.SplitN(link, "?", 2)[0]
	for _, rt := range w.srv.Routes {
		if rt.Method != "GET" || !consoleRoute(rt) {
			continue
		}
		pat := strings.Split(rt.Path, "/")
		got := strings.Split(p, "/")
		if len(pat) != len(got) {
			continue
		}
		match := true
		for i := range pat {
			if !strings.HasPrefix(pat[i], ":") && pat[i] != got[i] {
				match = false
				break
			}
		}
		if match {
			return rt.Path
		}
	}
	return ""
}

var localLinkRE = regexp.MustCompile(`(?:href|data-href)="(/[^"/][^"]*)"`)

// localLinks are the site's own page links in body (not static files, not
// sign-out), with their entities decoded.
func localLinks(body string) []string {
	var out []string
	for _, m := range localLinkRE.FindAllStringSubmatch(body, -1) {
		l := strings.ReplaceAll(m[1], "&amp;", "&")
		if strings.HasPrefix(l, "/static/") || strings.HasPrefix(l, "/api/") || strings.HasPrefix(l, "/logout") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// probesStored counts, per table, the rows that hold a probe's alert(1):
// where the probes reached the database (and so every page that shows it).
func probesStored(t *testing.T, store *models.Store) map[string]int {
	t.Helper()
	tables, err := store.DB.Migrator().GetTables()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, table := range tables {
		rows, err := store.DB.Raw("SELECT * FROM " + table).Rows()
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				var s string
				switch x := v.(type) {
				case []byte:
					s = string(x)
				case string:
					s = x
				}
				if strings.Contains(s, "alert(1)") {
					out[table]++
					break
				}
			}
		}
		rows.Close()
	}
	return out
}

// TestSweepLiveProbeDetector pins what liveProbe calls live: the probes as
// a browser would run them, never the same text escaped.
func TestSweepLiveProbeDetector(t *testing.T) {
	live := []string{
		`<p><script>alert(1)</script></p>`,
		`<input value=""><img src=x onerror=alert(1)>">`,
		`<a title='' onmouseover='alert(1)'>x</a>`,
		`<a href="javascript:alert(1)">x</a>`,
		`<a href=" JaVa	ScRiPt:alert(1)">x</a>`,
		`<tr data-href="javascript:alert(1)"></tr>`,
		`<form action="javascript:alert(1)"></form>`,
		`<script type="application/json">{"a":"</script><script>alert(1)</script>"}</script>`,
	}
	for _, page := range live {
		if liveProbe(page) == "" {
			t.Errorf("not caught: %s", page)
		}
	}
	inert := []string{
		`<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>`,
		`<input value="&#34;&gt;&lt;img src=x onerror=alert(1)&gt;">`,
		`<a title="&#39; onmouseover=&#39;alert(1)">x</a>`,
		`<a href="/ledger?q=javascript:alert(1)">x</a>`,
		`<a href="about:invalid#zTemplUnsafeURL">x</a>`,
		`<script type="application/json">{"a":"\u003cscript\u003ealert(1)"}</script>`,
		`<textarea>"><img src=x onerror=alert(1)></textarea>`,
	}
	for _, page := range inert {
		if got := liveProbe(page); got != "" {
			t.Errorf("inert page called live (%s): %s", got, page)
		}
	}
}
