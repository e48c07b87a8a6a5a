package handlers

import "github.com/gofiber/fiber/v2"

// Notify is being built.
func (h *Handlers) Notify(c *fiber.Ctx) error { return fiber.ErrNotImplemented }
