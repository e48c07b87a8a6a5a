package handlers

import "github.com/gofiber/fiber/v2"

// MappingEdit is being built.
func (h *Handlers) MappingEdit(c *fiber.Ctx) error { return fiber.ErrNotImplemented }

// MappingPreview is being built.
func (h *Handlers) MappingPreview(c *fiber.Ctx) error { return fiber.ErrNotImplemented }

// MappingSave is being built.
func (h *Handlers) MappingSave(c *fiber.Ctx) error { return fiber.ErrNotImplemented }
