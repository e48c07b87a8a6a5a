package web_test

import (
	"net/url"
	"sort"
	"strings"

	"golang.org/x/net/html"
)

// The sweep reads pages the way a browser does, with the HTML tokenizer:
// what forms they hold, what links they offer, and whether anything a probe
// sent came back as live markup.

// sweepField is one named control of a form.
type sweepField struct {
	name, typ, value string
	checked          bool
	required         bool
	options          []string // a select's option values
}

// sweepForm is one form of a page.
type sweepForm struct {
	method, action, enctype string
	fields                  []sweepField
}

// key identifies a form by where it posts and what it holds.
func (f sweepForm) key() string {
	var names []string
	for _, fl := range f.fields {
		names = append(names, fl.name)
	}
	sort.Strings(names)
	return f.method + " " + f.action + " " + strings.Join(names, ",")
}

// parseSweepPage returns the forms of page (served at pagePath) and, per
// local path, the query parameter names its links and htmx attributes use.
func parseSweepPage(page, pagePath string) ([]sweepForm, map[string][]string) {
	var forms []sweepForm
	links := map[string][]string{}
	addLink := func(raw string) {
		u, err := url.Parse(raw)
		if err != nil || u.Host != "" || u.Scheme != "" {
			return
		}
		p := u.Path
		if p == "" {
			p = pagePath
		}
		for k := range u.Query() {
			links[p] = append(links[p], k)
		}
	}
	z := html.NewTokenizer(strings.NewReader(page))
	var cur *sweepForm
	var sel *sweepField  // the select being read
	var area *sweepField // the textarea being read
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		tok := z.Token()
		attr := func(k string) (string, bool) {
			for _, a := range tok.Attr {
				if a.Key == k {
					return a.Val, true
				}
			}
			return "", false
		}
		switch tt {
		case html.TextToken:
			if area != nil {
				area.value += tok.Data
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			for _, k := range []string{"href", "hx-get", "hx-post", "action", "formaction"} {
				if v, ok := attr(k); ok && strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "//") {
					addLink(v)
				}
			}
			switch tok.Data {
			case "form":
				method, _ := attr("method")
				action, _ := attr("action")
				enctype, _ := attr("enctype")
				if action == "" {
					action = pagePath
				}
				cur = &sweepForm{method: strings.ToUpper(method), action: action, enctype: enctype}
				if cur.method == "" {
					cur.method = "GET"
				}
			case "input", "select", "textarea", "button":
				name, _ := attr("name")
				if cur == nil || name == "" {
					continue
				}
				typ, _ := attr("type")
				if tok.Data != "input" {
					typ = tok.Data
				}
				if typ == "" {
					typ = "text"
				}
				value, _ := attr("value")
				_, checked := attr("checked")
				_, required := attr("required")
				cur.fields = append(cur.fields, sweepField{name: name, typ: strings.ToLower(typ), value: value, checked: checked, required: required})
				f := &cur.fields[len(cur.fields)-1]
				switch tok.Data {
				case "select":
					sel = f
				case "textarea":
					area = f
				}
			case "option":
				if sel == nil {
					continue
				}
				v, ok := attr("value")
				if !ok {
					v = "" // the option's text; the sweep does not need it
				}
				sel.options = append(sel.options, v)
				if _, selected := attr("selected"); selected || len(sel.options) == 1 {
					sel.value = v
				}
			}
		case html.EndTagToken:
			switch tok.Data {
			case "form":
				if cur != nil {
					forms = append(forms, *cur)
				}
				cur = nil
			case "select":
				sel = nil
			case "textarea":
				area = nil
			}
		}
	}
	if cur != nil {
		forms = append(forms, *cur)
	}
	return forms, links
}

// liveProbe reports the first piece of live markup in page that a probe put
// there: a script element or an event handler attribute calling alert(1),
// an element the img probe made, or a javascript: URL in an attribute that
// a browser follows. Escaped text, and probes inside attribute values, are
// inert and pass. It returns "" when the page is clean.
func liveProbe(page string) string {
	z := html.NewTokenizer(strings.NewReader(page))
	inScript := false
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return ""
		}
		tok := z.Token()
		switch tt {
		case html.TextToken:
			if inScript && strings.Contains(tok.Data, "alert(1)") {
				return "a script element calling alert(1)"
			}
		case html.EndTagToken:
			if tok.Data == "script" {
				inScript = false
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			if tok.Data == "script" {
				// Only script the browser runs: a data block
				// (type="application/json") is text to it.
				typ := ""
				for _, a := range tok.Attr {
					if a.Key == "type" {
						typ = strings.ToLower(strings.TrimSpace(a.Val))
					}
				}
				inScript = typ == "" || strings.Contains(typ, "javascript") || typ == "module"
			}
			for _, a := range tok.Attr {
				k, v := strings.ToLower(a.Key), strings.ToLower(strings.TrimSpace(a.Val))
				switch {
				case strings.HasPrefix(k, "on") && strings.Contains(v, "alert(1)"):
					return "<" + tok.Data + " " + a.Key + "=" + a.Val + ">"
				case tok.Data == "img" && k == "src" && v == "x":
					return "an <img src=x> from the probe"
				case (k == "href" || k == "src" || k == "action" || k == "formaction" || k == "hx-get" || k == "hx-post" || k == "data-href" || k == "xlink:href") &&
					strings.HasPrefix(strings.Map(dropSpace, v), "javascript:"):
					return "<" + tok.Data + " " + a.Key + "=" + a.Val + ">"
				}
			}
		}
	}
}

// dropSpace drops the white space and control characters browsers ignore
// inside a URL's scheme ("java\tscript:" is javascript:).
func dropSpace(r rune) rune {
	if r <= ' ' {
		return -1
	}
	return r
}
