package handlers

import "github.com/gofiber/fiber/v2"

// LedgerShow is being built.
func (h *Handlers) LedgerShow(c *fiber.Ctx) error { return fiber.ErrNotImplemented }

// LedgerCorrect is being built.
func (h *Handlers) LedgerCorrect(c *fiber.Ctx) error { return fiber.ErrNotImplemented }
