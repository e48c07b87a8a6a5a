package web_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"payfuse/models"
	"payfuse/web"
)

// apiResp is an API answer: status, headers, raw body and the body decoded.
type apiResp struct {
	Status int
	Header http.Header
	Raw    string
	JSON   map[string]any
}

// errCode is the error shape's code ("" when the body is not an error).
func (r apiResp) errCode() string {
	e, _ := r.JSON["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r apiResp) errField() any {
	e, _ := r.JSON["error"].(map[string]any)
	return e["field"]
}

// data is the body's "data" member as an object.
func (r apiResp) data() map[string]any {
	d, _ := r.JSON["data"].(map[string]any)
	return d
}

// apiCall sends one request to the API with token (none when ""), a JSON
// body (nil: none; a string is sent as is) and header pairs.
func apiCall(t *testing.T, srv *web.Server, token, method, path string, body any, hdr ...string) apiResp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			rd = bytes.NewReader(b)
		}
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return apiSend(t, srv, req)
}

func apiSend(t *testing.T, srv *web.Server, req *http.Request) apiResp {
	t.Helper()
	res, err := srv.App.Test(req, -1)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	b, _ := io.ReadAll(res.Body)
	out := apiResp{Status: res.StatusCode, Header: res.Header, Raw: string(b)}
	json.Unmarshal(b, &out.JSON)
	return out
}

// apiUpload posts a statement file to POST /api/v1/imports.
func apiUpload(t *testing.T, srv *web.Server, token string, fields map[string]string, name string, data []byte, hdr ...string) apiResp {
	t.Helper()
	req := multipartRequest(t, "/api/v1/imports", fields, name, data)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return apiSend(t, srv, req)
}

func multipartRequest(t *testing.T, path string, fields map[string]string, name string, data []byte) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if name != "" {
		fw, _ := mw.CreateFormFile("file", name)
		fw.Write(data)
	}
	mw.Close()
	req := httptest.NewRequest("POST", path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return req
}

// mustToken makes a token for maker (nil: the system) or fails the test.
func mustToken(t *testing.T, store *models.Store, maker *models.User, name string, merchants []string, perms ...string) (*models.APIToken, string) {
	t.Helper()
	in := models.APITokenInput{Name: name, Merchants: merchants, Permissions: perms, AllMerchants: merchants == nil}
	tok, secret, err := store.CreateAPIToken(models.SystemActor, maker, in)
	if err != nil {
		t.Fatalf("token %s: %v", name, err)
	}
	return tok, secret
}

// checkErrorShape fails unless r is exactly {"error": {"code", "message", "field"}}.
func checkErrorShape(t *testing.T, what string, r apiResp) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: content type %q", what, ct)
	}
	if len(r.JSON) != 1 {
		t.Errorf("%s: body %s is not the error shape", what, r.Raw)
		return
	}
	e, ok := r.JSON["error"].(map[string]any)
	if !ok || len(e) != 3 {
		t.Errorf("%s: body %s is not the error shape", what, r.Raw)
		return
	}
	if c, _ := e["code"].(string); c == "" {
		t.Errorf("%s: no code in %s", what, r.Raw)
	}
	if m, _ := e["message"].(string); m == "" {
		t.Errorf("%s: no message in %s", what, r.Raw)
	}
	if f, present := e["field"]; !present {
		t.Errorf("%s: no field in %s", what, r.Raw)
	} else if _, isStr := f.(string); f != nil && !isStr {
		t.Errorf("%s: field %v", what, f)
	}
	for _, leak := range []string{"SELECT", "sql", "goroutine", ".go:", "gorm", "UNIQUE constraint", "Error 1062"} {
		if strings.Contains(r.Raw, leak) {
			t.Errorf("%s: internal text %q in %s", what, leak, r.Raw)
		}
	}
}
