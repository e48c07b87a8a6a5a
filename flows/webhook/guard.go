package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"payfuse/channels"
)

// MaxURLLength is the longest webhook URL taken.
const MaxURLLength = 2048

// RefusedError says why PayFuse will not send a webhook to a destination.
// Message is safe to log and show: it names the host and the address but
// never quotes the rest of the URL (whose path or query may hold a token).
type RefusedError struct {
	Reason  string // one of the Reason constants
	Host    string // the host refused, as written in the URL or allow-list
	Message channels.Text
}

func (e *RefusedError) Error() string {
	return "webhook: destination refused (" + e.Reason + "): " + e.Message.EN
}

// IsRefused reports whether err is, or wraps, a *RefusedError.
func IsRefused(err error) bool {
	var re *RefusedError
	return errors.As(err, &re)
}

func refuse(reason, host, en, zh string, args ...any) *RefusedError {
	return &RefusedError{Reason: reason, Host: host, Message: channels.Textf(en, zh, args...)}
}

// AllowList is what an admin trusts despite the guard: an internal alerting
// service on a private address, say. It admits those destinations only.
type AllowList struct {
	// Hosts are exact host names (or IP addresses), compared without regard
	// to case or a trailing dot. An allowed name may resolve to any address.
	Hosts []string
	// Nets are address ranges (a single address is a /32 or /128).
	Nets []netip.Prefix
	// HTTP permits plain http:// to allow-listed destinations; https is
	// required everywhere else whatever this says.
	HTTP bool
}

func normHost(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }

// hostAllowed reports whether the name h is listed in Hosts.
func (l AllowList) hostAllowed(h string) bool {
	h = normHost(h)
	for _, x := range l.Hosts {
		if normHost(x) == h {
			return true
		}
	}
	return false
}

// addrAllowed reports whether a is in Nets or listed as an address in Hosts.
func (l AllowList) addrAllowed(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	for _, p := range l.Nets {
		if p.Contains(a) {
			return true
		}
	}
	for _, x := range l.Hosts {
		if b, err := netip.ParseAddr(normHost(x)); err == nil && b.WithZone("").Unmap() == a {
			return true
		}
	}
	return false
}

// admits reports whether host, as written in a URL (a name or an address),
// is allow-listed.
func (l AllowList) admits(host string) bool {
	if l.hostAllowed(host) {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && l.addrAllowed(a)
}

// String lists the entries one a line, as ParseAllowList reads them.
func (l AllowList) String() string {
	var lines []string
	lines = append(lines, l.Hosts...)
	for _, p := range l.Nets {
		lines = append(lines, p.String())
	}
	return strings.Join(lines, "\n")
}

// ParseAllowList reads an admin's allow-list: host names, IP addresses and
// CIDR ranges, separated by new lines, commas or spaces. Ranges wider than a
// /8 (IPv4) or /7 (IPv6) are refused: that would switch the guard off rather
// than let one service through. HTTP is left false; it is a separate choice.
func ParseAllowList(text string) (AllowList, error) {
	var l AllowList
	for _, e := range strings.FieldsFunc(text, func(r rune) bool {
		return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	}) {
		if strings.Contains(e, "/") {
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return AllowList{}, refuse(ReasonAllowList, e,
					"%q is not an address range such as 10.20.0.0/16.", "“%s”不是 10.20.0.0/16 这样的地址段。", e)
			}
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			if (p.Addr().Is4() && p.Bits() < 8) || (p.Addr().Is6() && p.Bits() < 7) {
				return AllowList{}, refuse(ReasonAllowList, e,
					"%s is too wide to allow-list; name the service's own addresses.", "%s 范围过大，不能加入白名单；请只填写该服务自己的地址。", e)
			}
			l.Nets = append(l.Nets, p.Masked())
			continue
		}
		h := normHost(e)
		if a, err := netip.ParseAddr(h); err == nil {
			l.Nets = append(l.Nets, netip.PrefixFrom(a.WithZone("").Unmap(), a.Unmap().BitLen()))
			continue
		}
		if err := checkName(h); err != nil && err.Reason != ReasonLoopback {
			return AllowList{}, refuse(ReasonAllowList, e,
				"%q is not a host name, IP address or address range.", "“%s”不是主机名、IP 地址或地址段。", e)
		}
		l.Hosts = append(l.Hosts, h)
	}
	return l, nil
}

// Validate checks a webhook URL before it is saved or used, without
// touching the network: the scheme, that it carries no user name or
// password, and, when the host is an address, that the address is public.
// A host name is checked again, address by address, every time a webhook
// connects (see Guard). allow admits the destinations it lists.
// Errors are *RefusedError.
func Validate(rawURL string, allow AllowList) error {
	if _, err := parseTarget(rawURL, allow); err != nil {
		return err
	}
	return nil
}

// parseTarget validates rawURL and returns its host, normalised.
func parseTarget(rawURL string, allow AllowList) (string, *RefusedError) {
	notURL := func() (string, *RefusedError) {
		return "", refuse(ReasonBadURL, "",
			"This is not a full web address such as https://hooks.example.com/payfuse.",
			"这不是完整的网址，应形如 https://hooks.example.com/payfuse。")
	}
	if len(rawURL) > MaxURLLength {
		return "", refuse(ReasonBadURL, "", "The URL is longer than %d characters.", "网址超过 %d 个字符。", MaxURLLength)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return notURL()
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", refuse(ReasonScheme, u.Hostname(), "Webhook URLs must start with https://.", "Webhook 地址必须以 https:// 开头。")
	}
	host := normHost(u.Hostname())
	if u.Opaque != "" || host == "" {
		return notURL()
	}
	if u.User != nil {
		return "", refuse(ReasonUserinfo, host,
			"The URL must not contain a user name or password; the receiver checks the signature made with the webhook's secret instead.",
			"网址中不能包含用户名或密码；接收方应改为校验用 Webhook 密钥生成的签名。")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", refuse(ReasonBadURL, host, "The port %s is not a port number (1–65535).", "端口 %s 不是有效端口号（1–65535）。", p)
		}
	}
	a, aerr := netip.ParseAddr(host)
	if aerr != nil && endsInNumber(host) {
		return "", refuseSpelling(host)
	}
	allowed := allow.admits(host)
	if u.Scheme == "http" && !(allow.HTTP && allowed) {
		return "", refuse(ReasonScheme, host,
			"Webhook URLs must use https://; plain http:// is only for hosts an admin allow-listed for it.",
			"Webhook 地址必须使用 https://；只有管理员加入白名单并允许 http 的主机才能使用 http://。")
	}
	if allowed {
		return host, nil
	}
	if aerr == nil {
		if r, carried, ok := addrProblem(a); !ok {
			return "", refuseAddr(host, a, r, carried)
		}
		if a.Zone() != "" {
			return "", refuse(ReasonBadHost, host, "%s names a network interface; use an address without %%zone.", "%s 指定了网卡；请使用不带 %%zone 的地址。", host)
		}
		return host, nil
	}
	if err := checkName(host); err != nil {
		return "", err
	}
	return host, nil
}

func refuseSpelling(host string) *RefusedError {
	if a, ok := legacyIPv4(host); ok {
		return refuse(ReasonIPSpelling, host,
			"%s is an unusual way to write the IP address %s; write IP addresses as four decimal numbers (a.b.c.d).",
			"%s 是 IP 地址 %s 的非常规写法；IP 地址请写成四段十进制数字（a.b.c.d）。", host, a)
	}
	return refuse(ReasonIPSpelling, host, "%s is neither a host name nor an IP address.", "%s 既不是主机名也不是 IP 地址。", host)
}

// checkName checks a host name (not an address) as written: plain ASCII,
// not a number in disguise, not a name for this machine.
func checkName(host string) *RefusedError {
	if endsInNumber(host) {
		return refuseSpelling(host)
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			if c >= 0x80 {
				return refuse(ReasonBadHost, host,
					"The host %q has characters outside ASCII; write an internationalised name in its xn-- form.",
					"主机名“%s”含非 ASCII 字符；国际化域名请写成 xn-- 形式。", host)
			}
			return refuse(ReasonBadHost, host, "%q is not a valid host name.", "“%s”不是有效的主机名。", host)
		}
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || host == "ip6-localhost" || host == "ip6-loopback" {
		return refuse(ReasonLoopback, host, "%s is %s; webhooks are not sent there unless an admin allow-lists it.",
			"%s 是%s；除非管理员将其加入白名单，否则不会向其发送 Webhook。", host, classes[ReasonLoopback])
	}
	return nil
}

// Resolver looks up the addresses of a host name. *net.Resolver is one;
// tests give their own to decide what a name resolves to.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Guard connects only where webhooks may go. Its zero value uses the
// system resolver and allows no exceptions.
type Guard struct {
	Allow    AllowList
	Resolver Resolver // nil: net.DefaultResolver
}

func (g Guard) resolver() Resolver {
	if g.Resolver != nil {
		return g.Resolver
	}
	return net.DefaultResolver
}

// admit returns the addresses of host that may be dialled: all of them, or
// a *RefusedError when any one is refused (a name that also resolves to a
// private address is not trusted with the public one either).
func (g Guard) admit(ctx context.Context, host string) ([]netip.Addr, error) {
	host = normHost(host)
	byName := g.Allow.hostAllowed(host)
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		if !byName {
			if err := checkName(host); err != nil {
				return nil, err
			}
		}
		addrs, err = g.resolver().LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if !byName && !g.Allow.addrAllowed(a) {
			if r, carried, ok := addrProblem(a); !ok {
				return nil, refuseAddr(host, a, r, carried)
			}
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}

// Check is Validate plus the address check the guard makes when it
// connects: it resolves the host now, so a form can say at once that a name
// points into the private network. Passing is no promise for later (DNS
// may change); the guard checks again on every connection. A name that does
// not resolve is refused here (ReasonUnresolved), though Send would treat it
// as a passing failure.
func (g Guard) Check(ctx context.Context, rawURL string) error {
	host, rerr := parseTarget(rawURL, g.Allow)
	if rerr != nil {
		return rerr
	}
	if g.Allow.admits(host) {
		return nil
	}
	_, err := g.admit(ctx, host)
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return refuse(ReasonUnresolved, host, "%s does not resolve to any address.", "%s 无法解析到任何地址。", host)
	}
	return err
}

// DialContext connects to address ("host:port") only if the guard admits
// every address the host has, and then only to those addresses: the name is
// resolved once, here, so it cannot resolve somewhere else in between.
// Refusals are *RefusedError.
func (g Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, refuse(ReasonBadURL, address, "Webhooks only use TCP, not %s.", "Webhook 只使用 TCP，不使用 %s。", network)
	}
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return nil, refuse(ReasonBadURL, host, "The port %s is not a port number (1–65535).", "端口 %s 不是有效端口号（1–65535）。", portText)
	}
	addrs, err := g.admit(ctx, host)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{KeepAlive: 30 * time.Second, Control: dialControl(addrs)}
	var first error
	for _, a := range addrs {
		if network == "tcp4" && !a.Is4() || network == "tcp6" && a.Is4() {
			continue
		}
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if first == nil {
		first = &net.AddrError{Err: "no address of the requested family", Addr: host}
	}
	return nil, first
}

// dialControl returns a net.Dialer Control hook that lets a socket connect
// only to one of the admitted addresses: the last word before the connect
// system call, whatever path the address took to get there.
func dialControl(admitted []netip.Addr) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err == nil {
			a := ap.Addr().WithZone("").Unmap()
			for _, ok := range admitted {
				if ok.WithZone("").Unmap() == a {
					return nil
				}
			}
		}
		return refuse(ReasonUnchecked, address,
			"The connection to %s was stopped: the address had not been checked.", "已阻止连接 %s：该地址未经检查。", address)
	}
}

// Client returns an HTTP client that connects only where g admits: it
// validates every request's URL, dials through DialContext, ignores proxy
// settings, and does not follow redirects (it returns the 3xx answer).
// timeout bounds each request, body included; 0 means DefaultTimeout.
func (g Guard) Client(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	t := &http.Transport{
		Proxy:                  nil,
		DialContext:            g.DialContext,
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    timeout,
		MaxIdleConns:           32,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport:     guardedTransport{allow: g.Allow, next: t},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       timeout,
	}
}

// guardedTransport validates each request's URL before sending it, so the
// client is safe with URLs that did not come through Send.
type guardedTransport struct {
	allow AllowList
	next  http.RoundTripper
}

func (t guardedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := Validate(r.URL.String(), t.allow); err != nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, err
	}
	return t.next.RoundTrip(r)
}

// compile-time check that *net.Resolver fits.
var _ Resolver = (*net.Resolver)(nil)
