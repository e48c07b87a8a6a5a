package handlers

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/channels"

	"payfuse/views"
)

// Dashboard is the start page: for now the user's access and the channel
// accounts whose certificates expire within 30 days.
func (h *Handlers) Dashboard(c *fiber.Ctx) error {
	now := time.Now()
	expiring, err := h.Store.ExpiringAccounts(scope(c), now, channels.ExpiringSoon)
	if err != nil {
		return err
	}
	return h.Render(c, fiber.StatusOK, views.DashboardPage(views.Dashboard{Expiring: expiring, Now: now}))
}

// Placeholder shows an area that a later release fills; titleKey names it.
func (h *Handlers) Placeholder(titleKey string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		return h.Render(c, fiber.StatusOK, views.PlaceholderPage(titleKey))
	}
}

// Healthz answers while the process is up (for load balancers and supervisors).
func (h *Handlers) Healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}
