package handlers

import "github.com/gofiber/fiber/v2"

// LedgerList is being built.
func (h *Handlers) LedgerList(c *fiber.Ctx) error { return fiber.ErrNotImplemented }

// LedgerExport is being built.
func (h *Handlers) LedgerExport(c *fiber.Ctx) error { return fiber.ErrNotImplemented }
