package web

import (
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"

	"payfuse/handlers"
)

// clientIPs finds the address each request came from and records it for
// handlers.ClientIP. Without trusted proxies it is the connection's peer.
// When the peer is a trusted proxy, X-Forwarded-For is read from the right:
// each proxy appends the address it saw, so the rightmost address that is
// not itself a trusted proxy is the client. Everything left of it was
// written by the client and is not believed (a client that sends
// "X-Forwarded-For: 6.6.6.6" through an appending proxy is still recorded
// under its own address).
type clientIPs struct {
	trusted []netip.Prefix
}

func newClientIPs(trusted []string) (*clientIPs, error) {
	c := &clientIPs{}
	for _, t := range trusted {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		p, err := parsePrefix(t)
		if err != nil {
			return nil, err
		}
		c.trusted = append(c.trusted, p)
	}
	return c, nil
}

func (ci *clientIPs) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ci.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// middleware stores the client address in the request's locals.
func (ci *clientIPs) middleware(c *fiber.Ctx) error {
	handlers.SetClientIP(c, ci.resolve(c.Context().RemoteIP().String(), c.Request().Header.PeekAll(fiber.HeaderXForwardedFor)))
	return c.Next()
}

// resolve returns the client address for a connection from peer carrying
// the X-Forwarded-For header lines xff.
func (ci *clientIPs) resolve(peer string, xff [][]byte) string {
	addr, err := netip.ParseAddr(peer)
	if err != nil || len(ci.trusted) == 0 || !ci.isTrusted(addr) {
		return peer
	}
	client := addr
	for i := len(xff) - 1; i >= 0; i-- {
		hops := strings.Split(string(xff[i]), ",")
		for j := len(hops) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[j]))
			if err != nil {
				// An unreadable hop: what lies left of it cannot be trusted
				// either, so the last trusted hop's view stands.
				return client.Unmap().String()
			}
			client = hop
			if !ci.isTrusted(hop) {
				return hop.Unmap().String()
			}
		}
	}
	return client.Unmap().String() // every hop a trusted proxy: the leftmost
}
