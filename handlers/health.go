package handlers

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// ReadyTimeout bounds the readiness checks together: a database that has
// not answered by then is not ready (a pool with every connection busy
// counts as not answering).
const ReadyTimeout = time.Second

// readyStates remembers, per store, what the last readiness check found
// ("" when ready), so that a change is logged once rather than at every probe.
var readyStates sync.Map // *models.Store -> string

// Readyz answers 200 when this instance can serve: the database answers
// within ReadyTimeout and has exactly the schema migrations this binary
// knows; otherwise 503, naming the check that failed. Load balancers and
// orchestrators send traffic only to ready instances (Healthz says only that
// the process is up). The answer never carries error text: the cause is logged.
func (h *Handlers) Readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), ReadyTimeout)
	defer cancel()
	checks := fiber.Map{"database": "ok", "migrations": "unchecked"}
	failed, detail := "", ""
	var missing []int
	if err := h.Store.Ping(ctx); err != nil {
		failed, detail = "database", err.Error()
		checks["database"] = "unreachable"
		if errors.Is(err, context.DeadlineExceeded) {
			checks["database"] = "timeout"
		}
	} else if st, err := h.Store.CheckSchema(ctx); err != nil {
		failed, detail = "migrations", err.Error()
		checks["migrations"] = "unreadable"
		if errors.Is(err, context.DeadlineExceeded) {
			failed, checks["database"], checks["migrations"] = "database", "timeout", "unchecked"
		}
	} else {
		switch {
		case len(st.Missing) > 0:
			failed, checks["migrations"], missing = "migrations", "behind", st.Missing
			detail = "the database lacks migrations this binary needs: run payfuse migrate"
		case st.Newer > 0:
			failed, checks["migrations"] = "migrations", "ahead"
			detail = "the database has migrations newer than this binary: upgrade payfuse"
		default:
			checks["migrations"] = "ok"
		}
	}
	h.logReadiness(failed, detail)
	if failed == "" {
		return c.JSON(fiber.Map{"status": "ready", "checks": checks})
	}
	body := fiber.Map{"status": "unavailable", "failed": failed, "checks": checks}
	if missing != nil {
		body["missing_migrations"] = missing
	}
	return c.Status(fiber.StatusServiceUnavailable).JSON(body)
}

// logReadiness logs when readiness changes: the cause when the instance
// stops being ready, a line when it is ready again.
func (h *Handlers) logReadiness(failed, detail string) {
	state := failed
	if failed != "" {
		state += ": " + detail
	}
	prev, seen := readyStates.Swap(h.Store, state)
	if h.Log == nil || (seen && prev.(string) == state) || (!seen && state == "") {
		return
	}
	if state == "" {
		h.Log.Info("ready again")
		return
	}
	h.Log.Warn("not ready", "check", failed, "err", detail)
}
