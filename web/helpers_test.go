package web_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"payfuse/models"
	"payfuse/web"
)

func newServer(t *testing.T, mut ...func(*web.Config)) (*web.Server, *models.Store) {
	t.Helper()
	store := models.OpenTest(t)
	key := make([]byte, 32)
	rand.Read(key)
	cfg := web.Config{Addr: "127.0.0.1:0", MasterKey: key, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, m := range mut {
		m(&cfg)
	}
	srv, err := web.New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	return srv, store
}

// client is a browser stand-in over app.Test with a cookie jar.
type client struct {
	t       *testing.T
	srv     *web.Server
	cookies map[string]string
	header  http.Header // extra headers on every request
}

func newClient(t *testing.T, srv *web.Server) *client {
	return &client{t: t, srv: srv, cookies: map[string]string{}, header: http.Header{}}
}

type resp struct {
	*http.Response
	Body string
}

func (c *client) do(method, path string, form url.Values, hdr ...string) resp {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	for k, v := range c.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	res, err := c.srv.App.Test(req, -1)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	for _, ck := range res.Cookies() {
		if ck.MaxAge < 0 || ck.Value == "" {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
	b, _ := io.ReadAll(res.Body)
	return resp{res, string(b)}
}

func (c *client) get(path string) resp { c.t.Helper(); return c.do("GET", path, nil) }

var csrfRE = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// csrf fetches a page and returns the CSRF token in its forms.
func (c *client) csrf() string {
	c.t.Helper()
	r := c.get("/login")
	if r.StatusCode == http.StatusSeeOther { // signed in: any page carries it
		r = c.get("/account")
	}
	m := csrfRE.FindStringSubmatch(r.Body)
	if m == nil {
		c.t.Fatalf("no CSRF token on the page (status %d)", r.StatusCode)
	}
	return m[1]
}

// post sends a form with the page's CSRF token.
func (c *client) post(path string, form url.Values) resp {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("_csrf", c.csrf())
	return c.do("POST", path, form)
}

func (c *client) login(username, password string) {
	c.t.Helper()
	r := c.post("/login", url.Values{"username": {username}, "password": {password}})
	if r.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("login %s: status %d", username, r.StatusCode)
	}
}

func loggedIn(t *testing.T, srv *web.Server, username, password string) *client {
	c := newClient(t, srv)
	c.login(username, password)
	return c
}

// postMultipart sends a multipart form (fields and files) with the CSRF token.
func (c *client) postMultipart(path string, fields map[string]string, files map[string][]byte) resp {
	c.t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	w.WriteField("_csrf", c.csrf())
	for k, v := range fields {
		for _, part := range strings.Split(v, "\x00") {
			w.WriteField(k, part)
		}
	}
	for k, b := range files {
		fw, _ := w.CreateFormFile(k, k+".bin")
		fw.Write(b)
	}
	w.Close()
	req := httptest.NewRequest("POST", path, &buf)
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	for k, v := range c.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	res, err := c.srv.App.Test(req, -1)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, ck := range res.Cookies() {
		c.cookies[ck.Name] = ck.Value
	}
	b, _ := io.ReadAll(res.Body)
	return resp{res, string(b)}
}
