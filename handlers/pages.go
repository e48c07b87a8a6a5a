package handlers

import (
	"github.com/gofiber/fiber/v2"

	"payfuse/views"
)

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
