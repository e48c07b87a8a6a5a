package webhook

import (
	"net/netip"
	"strconv"
	"strings"

	"payfuse/channels"
)

// Reasons a destination is refused (RefusedError.Reason).
const (
	ReasonBadURL      = "bad_url"     // not an absolute http(s) URL with a host and a valid port
	ReasonScheme      = "scheme"      // not https, or http where the allow-list does not permit it
	ReasonUserinfo    = "userinfo"    // a user name or password in the URL
	ReasonBadHost     = "bad_host"    // a host that is neither a plain ASCII DNS name nor an IP address
	ReasonIPSpelling  = "ip_spelling" // a number that is not a dotted-quad IPv4 address: 2130706433, 0177.0.0.1, 0x7f.1
	ReasonLoopback    = "loopback"    // 127.0.0.0/8, ::1, localhost
	ReasonPrivate     = "private"     // 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10
	ReasonLinkLocal   = "link_local"  // 169.254/16 (cloud metadata), fe80::/10
	ReasonUnspecified = "unspecified" // 0.0.0.0/8, ::
	ReasonMulticast   = "multicast"   // 224/4, ff00::/8
	ReasonBroadcast   = "broadcast"   // 255.255.255.255
	ReasonShared      = "shared"      // carrier-grade NAT, 100.64.0.0/10
	ReasonReserved    = "reserved"    // documentation, benchmarking, 240/4, deprecated IPv6 transition forms
	ReasonUnresolved  = "unresolved"  // the name has no address (Guard.Check only)
	ReasonUnchecked   = "unchecked"   // a connection to an address the guard had not checked (a bug, caught by the dialer's Control hook)
	ReasonAllowList   = "allow_list"  // an allow-list entry that cannot be used (ParseAllowList)
)

// classes describes each address class, as the end of a sentence.
var classes = map[string]channels.Text{
	ReasonLoopback:    {EN: "a loopback address (this machine)", ZH: "环回地址（本机）"},
	ReasonPrivate:     {EN: "a private network address", ZH: "内网地址"},
	ReasonLinkLocal:   {EN: "a link-local address (the cloud metadata service 169.254.169.254 is one)", ZH: "链路本地地址（云元数据服务 169.254.169.254 即属此类）"},
	ReasonUnspecified: {EN: "an unspecified (\"this network\") address", ZH: "未指定地址（“本网络”）"},
	ReasonMulticast:   {EN: "a multicast address", ZH: "组播地址"},
	ReasonBroadcast:   {EN: "the broadcast address", ZH: "广播地址"},
	ReasonShared:      {EN: "a carrier-grade NAT address (100.64.0.0/10)", ZH: "运营商级 NAT 地址（100.64.0.0/10）"},
	ReasonReserved:    {EN: "a reserved address (documentation, benchmarking or a retired IPv6 transition form)", ZH: "保留地址（文档、测试或已废弃的 IPv6 过渡格式）"},
}

type addrRange struct {
	prefix netip.Prefix
	reason string
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// v4Ranges are the IPv4 ranges webhooks may not reach, most specific first.
var v4Ranges = []addrRange{
	{mustPrefix("255.255.255.255/32"), ReasonBroadcast},
	{mustPrefix("0.0.0.0/8"), ReasonUnspecified},
	{mustPrefix("10.0.0.0/8"), ReasonPrivate},
	{mustPrefix("100.64.0.0/10"), ReasonShared},
	{mustPrefix("127.0.0.0/8"), ReasonLoopback},
	{mustPrefix("169.254.0.0/16"), ReasonLinkLocal},
	{mustPrefix("172.16.0.0/12"), ReasonPrivate},
	{mustPrefix("192.0.0.0/24"), ReasonReserved}, // IETF protocol assignments
	{mustPrefix("192.0.2.0/24"), ReasonReserved}, // TEST-NET-1
	{mustPrefix("192.88.99.0/24"), ReasonReserved},
	{mustPrefix("192.168.0.0/16"), ReasonPrivate},
	{mustPrefix("198.18.0.0/15"), ReasonReserved},   // benchmarking
	{mustPrefix("198.51.100.0/24"), ReasonReserved}, // TEST-NET-2
	{mustPrefix("203.0.113.0/24"), ReasonReserved},  // TEST-NET-3
	{mustPrefix("224.0.0.0/4"), ReasonMulticast},
	{mustPrefix("240.0.0.0/4"), ReasonReserved},
}

// v6Ranges are the IPv6 ranges webhooks may not reach that no IPv4 address
// is read out of (those are handled in addrProblem).
var v6Ranges = []addrRange{
	{mustPrefix("::/128"), ReasonUnspecified},
	{mustPrefix("::1/128"), ReasonLoopback},
	{mustPrefix("::/96"), ReasonReserved},           // IPv4-compatible, deprecated
	{mustPrefix("::ffff:0:0:0/96"), ReasonReserved}, // IPv4-translated (SIIT)
	{mustPrefix("64:ff9b:1::/48"), ReasonReserved},  // local-use NAT64
	{mustPrefix("100::/64"), ReasonReserved},        // discard-only
	{mustPrefix("2001::/32"), ReasonReserved},       // Teredo: the IPv4 client address is obfuscated
	{mustPrefix("2001:2::/48"), ReasonReserved},     // benchmarking
	{mustPrefix("2001:10::/28"), ReasonReserved},    // ORCHID
	{mustPrefix("2001:db8::/32"), ReasonReserved},   // documentation
	{mustPrefix("3fff::/20"), ReasonReserved},       // documentation
	{mustPrefix("fc00::/7"), ReasonPrivate},         // unique local
	{mustPrefix("fe80::/10"), ReasonLinkLocal},
	{mustPrefix("fec0::/10"), ReasonPrivate}, // site-local, deprecated
	{mustPrefix("ff00::/8"), ReasonMulticast},
}

var (
	nat64  = mustPrefix("64:ff9b::/96")
	sixTo4 = mustPrefix("2002::/16")
)

// addrProblem says why webhooks may not go to a: the reason, and the IPv4
// address an IPv6 form carries when that is what is refused. ok is true when
// a is a public address.
func addrProblem(a netip.Addr) (reason string, carried netip.Addr, ok bool) {
	a = a.WithZone("")
	if a.Is4In6() {
		v4 := a.Unmap()
		if r, _, fine := addrProblem(v4); !fine {
			return r, v4, false
		}
		return "", netip.Addr{}, true
	}
	if a.Is4() {
		for _, r := range v4Ranges {
			if r.prefix.Contains(a) {
				return r.reason, netip.Addr{}, false
			}
		}
		return "", netip.Addr{}, true
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		v4 := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if r, _, fine := addrProblem(v4); !fine {
			return r, v4, false
		}
		return "", netip.Addr{}, true
	case sixTo4.Contains(a):
		v4 := netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
		if r, _, fine := addrProblem(v4); !fine {
			return r, v4, false
		}
		return "", netip.Addr{}, true
	}
	for _, r := range v6Ranges {
		if r.prefix.Contains(a) {
			return r.reason, netip.Addr{}, false
		}
	}
	if !a.IsGlobalUnicast() {
		return ReasonReserved, netip.Addr{}, false
	}
	return "", netip.Addr{}, true
}

// refuseAddr builds the refusal for address a, reached through host (a name,
// or the address itself as written in the URL).
func refuseAddr(host string, a netip.Addr, reason string, carried netip.Addr) *RefusedError {
	class := classes[reason]
	subject := channels.Textf("%s is", "%s 是", host)
	switch literal := host == a.String() || host == a.WithZone("").String(); {
	case literal && carried.IsValid():
		subject = channels.Textf("%s carries %s,", "%s 内含 %s，这是", host, carried)
	case !literal && carried.IsValid():
		subject = channels.Textf("%s resolves to %s, which carries %s,", "%s 解析为 %s，其中含 %s，这是", host, a, carried)
	case !literal:
		subject = channels.Textf("%s resolves to %s,", "%s 解析为 %s，这是", host, a)
	}
	return &RefusedError{
		Reason: reason,
		Host:   host,
		Message: channels.Textf("%s %s; webhooks are not sent there unless an admin allow-lists it.",
			"%s%s；除非管理员将其加入白名单，否则不会向其发送 Webhook。", subject, class),
	}
}

// endsInNumber reports whether host's last label is a number (decimal, or
// hexadecimal with 0x): such a host is meant as an IPv4 address by browsers
// and by the C library's resolver, never as a DNS name.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if len(last) >= 2 && (last[:2] == "0x" || last[:2] == "0X") {
		return strings.Trim(last[2:], "0123456789abcdefABCDEF") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}

// legacyIPv4 reads host the way inet_aton does: one to four parts, each
// decimal, octal (leading 0) or hexadecimal (0x), the last part filling the
// remaining bytes. ok is false when host is not such a number.
func legacyIPv4(host string) (netip.Addr, bool) {
	parts := strings.Split(host, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var vals []uint64
	for _, p := range parts {
		base := 10
		switch {
		case len(p) >= 2 && (p[:2] == "0x" || p[:2] == "0X"):
			base, p = 16, p[2:]
			if p == "" {
				p = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil || p == "" {
			return netip.Addr{}, false
		}
		vals = append(vals, v)
	}
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 255 {
			return netip.Addr{}, false
		}
		n |= v << (24 - 8*i)
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}
