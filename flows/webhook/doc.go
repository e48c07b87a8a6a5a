// Package webhook sends PayFuse's outbound webhooks: signed JSON POSTs to
// URLs that admins and operators configure as the action of an event
// trigger. It keeps no state and touches no database: the flow engine
// stores the deliveries, calls Send for each attempt and asks Attempt.NextAt
// when to try again.
//
// # Where webhooks may go
//
// A webhook URL is typed in by a person, so PayFuse must not become a way
// into its own network (server-side request forgery). Validate refuses, with
// a reason in both console languages: schemes other than https (plain http
// only for allow-listed destinations, and only when the AllowList says
// HTTP); user names or passwords in the URL; loopback, private, link-local
// (the cloud metadata service at 169.254.169.254 among them), unspecified,
// multicast, broadcast, carrier-grade NAT (100.64.0.0/10), documentation and
// other reserved addresses; IPv6 forms that carry such an IPv4 address
// (IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16); and
// numbers that some resolvers read as IPv4 addresses although they are not
// written as four decimals (2130706433, 0177.0.0.1, 0x7f.1).
//
// Validation alone is not enough: a name may resolve to a public address
// when the form is saved and to 127.0.0.1 when the webhook is sent (DNS
// rebinding). So the Guard checks again when it connects: it resolves the
// name itself, refuses the connection if any of the addresses is refused,
// and dials only the addresses it checked (a net.Dialer Control hook makes
// sure of that). Redirects are never followed: a 3xx answer is recorded as a
// permanent failure that asks for the final URL to be configured instead.
// Proxy settings from the environment are ignored, since a proxy would make
// the address check meaningless.
//
// An AllowList names the exact hosts and address ranges an admin trusts
// (an internal alerting service, say); the guard lets those through and
// nothing else.
//
// # Signature
//
// Each attempt is a POST of the caller's JSON payload with these headers:
//
//	Content-Type:        application/json
//	User-Agent:          PayFuse-Webhook/1
//	X-PayFuse-Event:     the event type, e.g. payment.large
//	X-PayFuse-Delivery:  the delivery id, the same on every retry of one delivery
//	X-PayFuse-Timestamp: the time of this attempt in Unix seconds, e.g. 1700000000
//	X-PayFuse-Signature: sha256=<hex>
//
// where <hex> is the lower-case hexadecimal HMAC-SHA256, keyed with the
// endpoint's secret, of the timestamp exactly as sent, a full stop, and the
// raw body bytes:
//
//	HMAC-SHA256(secret, "1700000000" + "." + body)
//
// A receiver should take the raw body before parsing it, recompute the
// signature, compare it in constant time, refuse timestamps more than five
// minutes from its own clock (signing the timestamp makes an old request
// useless to replay later), and drop deliveries whose id it has already
// taken. The signature header may list several comma-separated signatures
// (when a secret is being rotated); one match is enough. Verify and
// VerifyRequest do all of this but the de-duplication.
//
// # Retries
//
// A 2xx answer delivers. 408, 429, 5xx, timeouts and connection failures
// are worth another try; every other answer, a redirect, a refused
// destination or a malformed delivery is not. Retries back off
// exponentially with full jitter (NextRetry) and stop GiveUpAfter (24 h)
// after the first attempt.
package webhook
