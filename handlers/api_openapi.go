package handlers

import (
	"github.com/gofiber/fiber/v2"

	"payfuse/docs"
)

// APIOpenAPI is GET /api/v1/openapi.json: the API's OpenAPI 3.1 document.
// It is public: it describes the API and holds no data.
func (h *Handlers) APIOpenAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "application/json; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.Send(docs.OpenAPI)
}
