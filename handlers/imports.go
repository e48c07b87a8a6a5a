package handlers

import "github.com/gofiber/fiber/v2"

// ImportList is being built.
func (h *Handlers) ImportList(c *fiber.Ctx) error { return fiber.ErrNotImplemented }

// ImportUpload is being built.
func (h *Handlers) ImportUpload(c *fiber.Ctx) error { return fiber.ErrNotImplemented }

// ImportShow is being built.
func (h *Handlers) ImportShow(c *fiber.Ctx) error { return fiber.ErrNotImplemented }
