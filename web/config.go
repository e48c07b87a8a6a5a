// Package web is PayFuse's HTTP server: one table of routes (each with the
// role it needs), the middleware chain and the error handler.
package web

import (
	"log/slog"
	"time"

	"payfuse/flows/kinds"
)

// Config is the server's configuration, built by main from flags and env.
type Config struct {
	Addr           string
	SecureCookies  bool
	TrustedProxies []string // addresses/CIDRs whose X-Forwarded-For is believed
	MasterKey      []byte
	Logger         *slog.Logger
	// LoginFailuresPerAddress bounds failed sign-ins per client address per
	// LoginFailureWindow (defaults 30 per 15 minutes).
	LoginFailuresPerAddress int
	LoginFailureWindow      time.Duration
	// Flows is what the flow kinds need from outside the database (channel
	// API addresses, the drop root). Serve runs the flow engine.
	Flows kinds.Config
	// MetricsAllow lists the client addresses/CIDRs that may read /metrics
	// without a token, judged by the connection's own peer address (nil:
	// loopback only; "none" alone: no address, the token only).
	MetricsAllow []string
	// MetricsToken, when set (16 characters or more), lets any address read
	// /metrics with "Authorization: Bearer <token>".
	MetricsToken string
	// Pprof turns on the Go profiler at /debug/pprof/ for signed-in admins.
	Pprof bool
}
