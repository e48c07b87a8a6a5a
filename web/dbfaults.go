package web

import (
	"net/http"

	"github.com/gofiber/fiber/v2"

	"payfuse/models"
	"payfuse/views"
)

// databaseFault names what a database failure means for the user: the
// status and the error page's translation key, or false when err is not
// one. Busy (a lock held past the wait), full (no space to write) and
// unavailable (the server refused, dropped or did not answer the
// connection) all changed nothing; busy and unavailable pass by themselves,
// so they are 503 with Retry-After.
func databaseFault(c *fiber.Ctx, err error) (int, string, bool) {
	switch {
	case models.IsBusy(err):
		// On SQLite, a large import holds the write lock for its whole length.
		c.Set(fiber.HeaderRetryAfter, "30")
		return http.StatusServiceUnavailable, "busy", true
	case models.IsFull(err):
		return http.StatusInsufficientStorage, "full", true
	case models.IsUnavailable(err):
		c.Set(fiber.HeaderRetryAfter, "5")
		return http.StatusServiceUnavailable, "503", true
	}
	return 0, "", false
}

// langCookie is the language choice's cookie (handlers sets it).
const langCookie = "payfuse_lang"

// visitorLang is the language of a visitor whose session could not be read
// (the database is away): their language cookie, else their browser's, as
// the session middleware picks it for a visitor who is not signed in.
func visitorLang(c *fiber.Ctx) string {
	if l := views.NormalizeLanguage(c.Cookies(langCookie)); l != "" {
		return l
	}
	return views.MatchLanguage(c.Get(fiber.HeaderAcceptLanguage))
}
