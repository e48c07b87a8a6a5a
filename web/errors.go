package web

import (
	"crypto/subtle"
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"

	"payfuse/views"
)

// checkCSRF refuses a state change that comes from another site (by
// Sec-Fetch-Site or Origin) or does not carry the session's token, compared in
// constant time. The token comes in the form field _csrf or the X-CSRF-Token
// header (htmx sends the header).
func checkCSRF(c *fiber.Ctx, want string) error {
	switch site := c.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return errors.New("cross-site request (Sec-Fetch-Site: " + site + ")")
	}
	if origin := c.Get(fiber.HeaderOrigin); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, c.Hostname()) {
			return errors.New("origin does not match host")
		}
	}
	got := c.Get("X-CSRF-Token")
	if got == "" {
		got = c.FormValue("_csrf")
	}
	if want == "" || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errors.New("missing or wrong token")
	}
	return nil
}

// errorKey names the translation keys of an error page.
func errorKey(code int, csrf bool) string {
	if csrf {
		return "csrf"
	}
	switch code {
	case 400, 401, 403, 404, 405, 413, 429, 503:
		return itoa(code)
	}
	if code >= 500 {
		return "500"
	}
	return "400"
}

func errorPage(code int, key, requestID string, signedIn bool) templ.Component {
	return views.ErrorPage(code, "error."+key+".title", "error."+key+".body", requestID, signedIn)
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

func itoa(n int) string { return strconv.Itoa(n) }
