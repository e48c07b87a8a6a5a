package web_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"payfuse/docs"
	"payfuse/models"
)

// The contract between docs/openapi.json and the handlers: every /api/v1
// route is documented and every documented operation is a route; calling
// each operation with the document's own examples answers a documented
// status with a body that validates against the documented schema, and so
// do its errors.

type openAPI struct {
	OpenAPI    string                               `json:"openapi"`
	Servers    []struct{ URL string }               `json:"servers"`
	Paths      map[string]map[string]map[string]any `json:"paths"`
	Components struct {
		Schemas   map[string]any `json:"schemas"`
		Responses map[string]any `json:"responses"`
	} `json:"components"`
}

func loadOpenAPI(t *testing.T) *openAPI {
	t.Helper()
	var doc openAPI
	if err := json.Unmarshal(docs.OpenAPI, &doc); err != nil {
		t.Fatalf("docs/openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" || len(doc.Servers) != 1 || doc.Servers[0].URL != "/api/v1" {
		t.Fatalf("openapi %q, servers %v", doc.OpenAPI, doc.Servers)
	}
	return &doc
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// resolve follows a local $ref.
func (d *openAPI) resolve(v any) map[string]any {
	m, _ := v.(map[string]any)
	for m != nil {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		switch {
		case strings.HasPrefix(ref, "#/components/schemas/"):
			m, _ = d.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
		case strings.HasPrefix(ref, "#/components/responses/"):
			m, _ = d.Components.Responses[strings.TrimPrefix(ref, "#/components/responses/")].(map[string]any)
		default:
			return nil
		}
	}
	return m
}

// validate checks v against a JSON Schema (the subset the document uses:
// $ref, type, enum, properties, required, additionalProperties, items,
// minProperties, maxProperties, date and date-time formats).
func (d *openAPI) validate(schema any, v any, at string) []string {
	s := d.resolve(schema)
	if s == nil {
		return []string{at + ": unresolvable schema"}
	}
	var errs []string
	if types := schemaTypes(s["type"]); len(types) > 0 && !slices.ContainsFunc(types, func(t string) bool { return jsonIs(v, t) }) {
		return []string{fmt.Sprintf("%s: %v is not %v", at, clip(fmt.Sprint(v)), types)}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", at, v, enum))
	}
	if str, ok := v.(string); ok && str != "" {
		switch s["format"] {
		case "date-time":
			if _, err := time.Parse(time.RFC3339, str); err != nil {
				errs = append(errs, at+": not a date-time: "+str)
			}
		case "date":
			if _, err := time.Parse(time.DateOnly, str); err != nil {
				errs = append(errs, at+": not a date: "+str)
			}
		}
	}
	switch val := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, r := range asStrings(s["required"]) {
			if _, ok := val[r]; !ok {
				errs = append(errs, at+": lacks "+r)
			}
		}
		keys := make([]string, 0, len(val))
		for k := range val {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k]; ok {
				errs = append(errs, d.validate(ps, val[k], at+"."+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					errs = append(errs, at+": undocumented member "+k)
				}
			case map[string]any:
				errs = append(errs, d.validate(ap, val[k], at+"."+k)...)
			}
		}
		if n, ok := s["minProperties"].(float64); ok && float64(len(val)) < n {
			errs = append(errs, at+": too few members")
		}
		if n, ok := s["maxProperties"].(float64); ok && float64(len(val)) > n {
			errs = append(errs, at+": too many members")
		}
	case []any:
		if items, ok := s["items"]; ok {
			for i, it := range val {
				errs = append(errs, d.validate(items, it, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	return errs
}

func schemaTypes(v any) []string {
	switch t := v.(type) {
	case string:
		return []string{t}
	case []any:
		return asStrings(t)
	}
	return nil
}

func asStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func jsonIs(v any, typ string) bool {
	switch typ {
	case "null":
		return v == nil
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	}
	return false
}

// checkResponse fails unless the answer's status is documented for op and
// its body validates against the documented schema.
func (d *openAPI) checkResponse(t *testing.T, name string, op map[string]any, r apiResp) {
	t.Helper()
	responses, _ := op["responses"].(map[string]any)
	resp := d.resolve(responses[fmt.Sprint(r.Status)])
	if resp == nil {
		t.Errorf("%s: status %d is not documented (%s)", name, r.Status, clip(r.Raw))
		return
	}
	content, _ := resp["content"].(map[string]any)
	media := d.resolve(content["application/json"])
	if media == nil {
		t.Errorf("%s: status %d documents no JSON body", name, r.Status)
		return
	}
	var body any
	if err := json.Unmarshal([]byte(r.Raw), &body); err != nil {
		t.Errorf("%s: the body is not JSON: %s", name, clip(r.Raw))
		return
	}
	for _, e := range d.validate(media["schema"], body, "body") {
		t.Errorf("%s (%d): %s", name, r.Status, e)
	}
}

// TestAPIRoutesMatchTheDocument: every /api/v1 route of the routes table is
// an operation of the document (with the permission it documents), and every
// operation is a route.
func TestAPIRoutesMatchTheDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	srv, _ := newServer(t)
	routes := map[string]string{}
	for _, rt := range srv.Routes {
		if p, ok := strings.CutPrefix(rt.Path, "/api/v1"); ok {
			key := strings.ToLower(rt.Method) + " " + strings.ReplaceAll(p, ":id", "{id}")
			routes[key] = rt.Perm
		}
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for method, op := range item {
			if !slices.Contains(httpMethods, method) {
				continue
			}
			key := method + " " + path
			documented[key] = true
			perm, ok := routes[key]
			if !ok {
				t.Errorf("%s is documented but is no route", key)
				continue
			}
			if got, _ := op["x-permission"].(string); got != perm {
				t.Errorf("%s: documented permission %q, route needs %q", key, got, perm)
			}
		}
	}
	for key := range routes {
		if !documented[key] {
			t.Errorf("route %s is not in docs/openapi.json", key)
		}
	}
	// The server serves the document itself, without a token.
	r := apiCall(t, srv, "", "GET", "/api/v1/openapi.json", nil)
	if r.Status != http.StatusOK || r.Raw != string(docs.OpenAPI) {
		t.Errorf("GET /api/v1/openapi.json: %d", r.Status)
	}
}

// TestAPIContract walks the document and calls each operation with its
// examples (path ids and account ids of the test world), with a token of
// every permission, then without a token: each answer is documented and
// validates.
func TestAPIContract(t *testing.T) {
	doc := loadOpenAPI(t)
	w := newAPIWorld(t)
	bill := readTestBill(t, "all.csv")
	keys := make([]string, 0, len(doc.Paths))
	for p := range doc.Paths {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	calls := 0
	for _, path := range keys {
		for _, method := range httpMethods {
			op, ok := doc.Paths[path][method]
			if !ok {
				continue
			}
			name := strings.ToUpper(method) + " " + path
			target := "/api/v1" + strings.ReplaceAll(path, "{id}", id(w.shTxn))
			q := url.Values{}
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				pm := doc.resolve(p)
				if pm["in"] == "query" && pm["example"] != nil {
					q.Set(pm["name"].(string), fmt.Sprint(pm["example"]))
				} else if pm["in"] == "query" && pm["required"] == true {
					t.Errorf("%s: required parameter %v has no example", name, pm["name"])
				}
			}
			if len(q) > 0 {
				target += "?" + q.Encode()
			}
			public := false
			if sec, ok := op["security"].([]any); ok && len(sec) == 0 {
				public = true
			}
			token := w.token
			if public {
				token = ""
			}
			var r apiResp
			body, _ := op["requestBody"].(map[string]any)
			content, _ := body["content"].(map[string]any)
			switch {
			case content["application/json"] != nil:
				ex := doc.resolve(content["application/json"])["example"]
				if m, ok := ex.(map[string]any); ok {
					if _, has := m["account_id"]; has {
						m["account_id"] = w.acctSH.ID
					}
				}
				if ex == nil {
					t.Fatalf("%s: the JSON body has no example", name)
				}
				r = apiCall(t, w.srv, token, strings.ToUpper(method), target, ex, "Idempotency-Key", "contract-"+method+path)
				// The example validates against the documented request schema.
				raw, _ := json.Marshal(ex)
				var back any
				json.Unmarshal(raw, &back)
				for _, e := range doc.validate(doc.resolve(content["application/json"])["schema"], back, "request") {
					t.Errorf("%s example: %s", name, e)
				}
			case content["multipart/form-data"] != nil:
				r = apiUpload(t, w.srv, token, map[string]string{"account_id": id(w.acctSH.ID)}, "all.csv", bill)
			default:
				r = apiCall(t, w.srv, token, strings.ToUpper(method), target, nil)
			}
			calls++
			if r.Status/100 != 2 {
				t.Errorf("%s with the document's example: %d %s", name, r.Status, clip(r.Raw))
			}
			if path == "/openapi.json" {
				continue
			}
			doc.checkResponse(t, name, op, r)
			// Without a token: 401, documented, in the error shape.
			anon := apiCall(t, w.srv, "", strings.ToUpper(method), target, nil)
			if anon.Status != http.StatusUnauthorized {
				t.Errorf("%s without a token: %d", name, anon.Status)
			}
			doc.checkResponse(t, name+" without a token", op, anon)
			// With a token lacking the permission: 403, documented.
			if perm, _ := op["x-permission"].(string); perm != "" {
				others := slices.DeleteFunc(slices.Clone(models.APIPermissions), func(p string) bool { return p == perm })
				_, weak := mustToken(t, w.store, nil, "weak-"+method+strings.ReplaceAll(path, "/", "-"), []string{"SHOP_SH"}, others...)
				deny := apiCall(t, w.srv, weak, strings.ToUpper(method), target, nil)
				if deny.Status != http.StatusForbidden {
					t.Errorf("%s without %s: %d", name, perm, deny.Status)
				}
				doc.checkResponse(t, name+" without the permission", op, deny)
			}
		}
	}
	if calls < 9 {
		t.Errorf("only %d operations called", calls)
	}
	// A few documented error answers validate too.
	list := doc.Paths["/transactions"]["get"]
	doc.checkResponse(t, "bad filter", list, w.call(t, "GET", "/api/v1/transactions?from=x", nil))
	doc.checkResponse(t, "foreign merchant", list, w.call(t, "GET", "/api/v1/transactions?merchant=SHOP_BJ", nil))
	doc.checkResponse(t, "unknown parameter", list, w.call(t, "GET", "/api/v1/transactions?colour=red", nil))
	post := doc.Paths["/transactions"]["post"]
	doc.checkResponse(t, "bad record", post, w.call(t, "POST", "/api/v1/transactions", map[string]any{"kind": "x"}))
	doc.checkResponse(t, "merged record", post, w.call(t, "POST", "/api/v1/transactions", map[string]any{"account_id": w.acctSH.ID,
		"kind": "payment", "channel_ref": "WX1", "status": "succeeded", "amount": 1, "paid_at": "2026-03-05T10:00:00+08:00"}))
	show := doc.Paths["/transactions/{id}"]["get"]
	doc.checkResponse(t, "conflicted record", show, w.call(t, "GET", "/api/v1/transactions/"+id(w.shTxn), nil))
	doc.checkResponse(t, "foreign record", show, w.call(t, "GET", "/api/v1/transactions/"+id(w.bjTxn), nil))
	patch := doc.Paths["/transactions/{id}"]["patch"]
	doc.checkResponse(t, "correction", patch, w.call(t, "PATCH", "/api/v1/transactions/"+id(w.shTxn),
		map[string]any{"correction": map[string]any{"field": "status", "value": "failed", "reason": "customer cancelled"}}))
	monthly := doc.Paths["/reports/monthly"]["get"]
	doc.checkResponse(t, "monthly by method", monthly, w.call(t, "GET", "/api/v1/reports/monthly?month=2026-03&by_method=true", nil))
	imp := doc.Paths["/imports"]["post"]
	doc.checkResponse(t, "refused statement", imp, apiUpload(t, w.srv, w.token, map[string]string{"account_id": id(w.acctSH.ID)}, "bad.csv", readTestBill(t, "bad_amount.csv")))
	doc.checkResponse(t, "already imported", imp, apiUpload(t, w.srv, w.token, map[string]string{"account_id": id(w.acctSH.ID)}, "all.csv", bill))
}
