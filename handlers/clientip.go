package handlers

import "github.com/gofiber/fiber/v2"

const clientIPKey = "client_ip"

// SetClientIP records the address a request came from (the web server
// resolves it from the peer and, behind trusted proxies, X-Forwarded-For).
func SetClientIP(c *fiber.Ctx, ip string) { c.Locals(clientIPKey, ip) }

// ClientIP is the address a request came from: what the audit log, the
// sign-in throttle and API tokens' allowed addresses use. Without the web
// server's resolution (a handler mounted elsewhere) it is the peer.
func ClientIP(c *fiber.Ctx) string {
	if ip, ok := c.Locals(clientIPKey).(string); ok && ip != "" {
		return ip
	}
	return c.IP()
}
