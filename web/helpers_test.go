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
	"sync"
	"testing"
	"time"

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
	host    string      // the request's Host when set (a header named Host is not sent)
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
	if c.host != "" {
		req.Host = c.host
	}
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

// login signs in the way a person would: the password; the authenticator
// code when the user has a second factor; enrolment (through the pages, with
// the key the page shows) when their role requires one they lack. Then, unless
// the user must first change their password, it passes a step-up check, so
// the tests of dangerous actions can go straight to them (the step-up tests
// in twofactor_test.go sign in with signIn instead).
func (c *client) login(username, password string) {
	c.t.Helper()
	loc := c.signIn(username, password)
	if loc == "/account/2fa" {
		c.enrolTOTP(username)
		loc = "/"
	}
	if loc != "/account" {
		c.stepUp(username, password)
	}
}

// signIn passes the password step and, when the user has a second factor,
// the code step; it returns where the console sent the browser then.
func (c *client) signIn(username, password string) string {
	c.t.Helper()
	r := c.post("/login", url.Values{"username": {username}, "password": {password}})
	if r.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("login %s: status %d", username, r.StatusCode)
	}
	loc := r.Header.Get("Location")
	if strings.HasPrefix(loc, "/login/2fa") {
		r = c.post("/login/2fa", url.Values{"code": {c.totpCode(username)}})
		if r.StatusCode != http.StatusSeeOther {
			c.t.Fatalf("login %s, second step: status %d", username, r.StatusCode)
		}
		loc = r.Header.Get("Location")
	}
	return loc
}

var manualKeyRE = regexp.MustCompile(`data-manual-key>([A-Z2-7 ]+)<`)

// enrolTOTP enrols the signed-in user's authenticator through the enrolment
// page, reading the manual key off it, and remembers the secret for later codes.
func (c *client) enrolTOTP(username string) string {
	c.t.Helper()
	r := c.get("/account/2fa")
	m := manualKeyRE.FindStringSubmatch(r.Body)
	if r.StatusCode != http.StatusOK || m == nil {
		c.t.Fatalf("enrolment page for %s: status %d, no manual key", username, r.StatusCode)
	}
	secret := strings.ReplaceAll(m[1], " ", "")
	rememberTOTP(c.srv.H.Store, username, secret)
	r = c.post("/account/2fa/enable", url.Values{"code": {c.totpCode(username)}})
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "data-recovery-codes") {
		c.t.Fatalf("enrol %s: status %d", username, r.StatusCode)
	}
	return secret
}

// stepUp passes the step-up check: the password, and a code when the user
// has a second factor.
func (c *client) stepUp(username, password string) {
	c.t.Helper()
	form := url.Values{"password": {password}, "next": {"/"}}
	if _, ok := knownTOTP(c.srv.H.Store, username); ok {
		form.Set("code", c.totpCode(username))
	}
	if r := c.post("/account/step-up", form); r.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("step-up %s: status %d", username, r.StatusCode)
	}
}

// totpCode is a code the server accepts now for the user (see nextTOTP).
func (c *client) totpCode(username string) string {
	c.t.Helper()
	return nextTOTP(c.t, c.srv.H.Store, username)
}

// totpSecrets remembers the authenticator secrets the tests enrolled, per
// store and username.
var totpSecrets sync.Map

type totpKey struct {
	store *models.Store
	user  string
}

func rememberTOTP(store *models.Store, username, secret string) {
	totpSecrets.Store(totpKey{store, username}, secret)
}

func knownTOTP(store *models.Store, username string) (string, bool) {
	v, ok := totpSecrets.Load(totpKey{store, username})
	if !ok {
		return "", false
	}
	return v.(string), true
}

// nextTOTP returns a code the server accepts now: the one of the earliest
// time step in the ±1 window that is newer than the last step the user spent
// (a code is accepted once only). When all three are spent it waits for the
// next step of the store's clock.
func nextTOTP(t testing.TB, store *models.Store, username string) string {
	t.Helper()
	secret, ok := knownTOTP(store, username)
	if !ok {
		t.Fatalf("no authenticator secret known for %s", username)
	}
	u, err := store.GetUserByUsername(username)
	if err != nil {
		t.Fatal(err)
	}
	for {
		var last int64
		if err := store.DB.Model(&models.UserTOTP{}).Where("user_id = ?", u.ID).Select("last_step").Scan(&last).Error; err != nil {
			t.Fatal(err)
		}
		now := store.Now()
		cur := models.TOTPStep(now)
		step := max(last+1, cur-models.TOTPSkew)
		if step <= cur+models.TOTPSkew {
			code, err := models.TOTPCode(secret, step, models.TOTPDigits)
			if err != nil {
				t.Fatal(err)
			}
			return code
		}
		wait := time.Unix((cur+1)*int64(models.TOTPPeriod/time.Second), 0).Sub(now) + 50*time.Millisecond
		t.Logf("the codes of %s's window are spent: waiting %s for the next step", username, wait.Round(time.Millisecond))
		time.Sleep(wait)
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
