package webhook_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"payfuse/flows/webhook"
)

// refusedCases are URLs the guard must refuse, with the reason it gives.
var refusedCases = []struct{ url, reason string }{
	// scheme, userinfo, malformed
	{"ftp://example.com/", webhook.ReasonScheme},
	{"file:///etc/passwd", webhook.ReasonScheme},
	{"gopher://example.com:70/", webhook.ReasonScheme},
	{"example.com/hook", webhook.ReasonScheme},
	{"http://example.com/hook", webhook.ReasonScheme},
	{"https://user:pass@example.com/", webhook.ReasonUserinfo},
	{"https://token@example.com/", webhook.ReasonUserinfo},
	{"https://@example.com/", webhook.ReasonUserinfo},
	{"", webhook.ReasonScheme},
	{"https:///hook", webhook.ReasonBadURL},
	{"https://exa mple.com/", webhook.ReasonBadURL},
	{"https://example.com:0/", webhook.ReasonBadURL},
	{"https://example.com:99999/", webhook.ReasonBadURL},
	{"https://" + strings.Repeat("a", webhook.MaxURLLength) + ".com/", webhook.ReasonBadURL},
	{"https://１２７.０.０.１/", webhook.ReasonBadHost},
	{"https://例子.测试/", webhook.ReasonBadHost},
	{"https://ex!ample.com/", webhook.ReasonBadHost},

	// loopback
	{"https://127.0.0.1/", webhook.ReasonLoopback},
	{"https://127.8.9.10:8443/x", webhook.ReasonLoopback},
	{"https://127.0.0.1./", webhook.ReasonLoopback},
	{"https://[::1]/", webhook.ReasonLoopback},
	{"https://[0:0:0:0:0:0:0:1]/", webhook.ReasonLoopback},
	{"https://localhost/", webhook.ReasonLoopback},
	{"https://LocalHost./", webhook.ReasonLoopback},
	{"https://api.localhost/", webhook.ReasonLoopback},
	// private
	{"https://10.0.0.1/", webhook.ReasonPrivate},
	{"https://172.16.0.1/", webhook.ReasonPrivate},
	{"https://172.31.255.254/", webhook.ReasonPrivate},
	{"https://192.168.1.10/", webhook.ReasonPrivate},
	{"https://[fc00::1]/", webhook.ReasonPrivate},
	{"https://[fd12:3456:789a::1]/", webhook.ReasonPrivate},
	{"https://[fec0::1]/", webhook.ReasonPrivate},
	// link-local, cloud metadata
	{"https://169.254.169.254/latest/meta-data/", webhook.ReasonLinkLocal},
	{"http://169.254.169.254/computeMetadata/v1/", webhook.ReasonScheme},
	{"https://169.254.1.1/", webhook.ReasonLinkLocal},
	{"https://[fe80::1]/", webhook.ReasonLinkLocal},
	{"https://[fe80::1%25eth0]/", webhook.ReasonLinkLocal},
	{"https://[fd00:ec2::254]/", webhook.ReasonPrivate}, // AWS IMDS over IPv6
	// unspecified, multicast, broadcast, CGNAT, reserved
	{"https://0.0.0.0/", webhook.ReasonUnspecified},
	{"https://0.1.2.3/", webhook.ReasonUnspecified},
	{"https://[::]/", webhook.ReasonUnspecified},
	{"https://224.0.0.1/", webhook.ReasonMulticast},
	{"https://239.255.255.250/", webhook.ReasonMulticast},
	{"https://[ff02::1]/", webhook.ReasonMulticast},
	{"https://255.255.255.255/", webhook.ReasonBroadcast},
	{"https://100.64.0.1/", webhook.ReasonShared},
	{"https://100.127.255.254/", webhook.ReasonShared},
	{"https://192.0.2.10/", webhook.ReasonReserved},
	{"https://198.18.0.1/", webhook.ReasonReserved},
	{"https://240.0.0.1/", webhook.ReasonReserved},
	{"https://[2001:db8::1]/", webhook.ReasonReserved},
	{"https://[::127.0.0.1]/", webhook.ReasonReserved},
	{"https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", webhook.ReasonReserved}, // Teredo
	{"https://[64:ff9b:1::a00:1]/", webhook.ReasonReserved},
	// IPv6 forms carrying a refused IPv4 address
	{"https://[::ffff:127.0.0.1]/", webhook.ReasonLoopback},
	{"https://[::ffff:7f00:1]/", webhook.ReasonLoopback},
	{"https://[0:0:0:0:0:ffff:10.1.2.3]/", webhook.ReasonPrivate},
	{"https://[::ffff:169.254.169.254]/", webhook.ReasonLinkLocal},
	{"https://[::ffff:0.0.0.0]/", webhook.ReasonUnspecified},
	{"https://[::ffff:100.64.1.1]/", webhook.ReasonShared},
	{"https://[64:ff9b::127.0.0.1]/", webhook.ReasonLoopback}, // NAT64
	{"https://[64:ff9b::a9fe:a9fe]/", webhook.ReasonLinkLocal},
	{"https://[64:ff9b::c0a8:101]/", webhook.ReasonPrivate},
	{"https://[2002:7f00:1::1]/", webhook.ReasonLoopback}, // 6to4
	{"https://[2002:a9fe:a9fe::]/", webhook.ReasonLinkLocal},
	// numbers that are not dotted quads
	{"https://2130706433/", webhook.ReasonIPSpelling},
	{"https://0177.0.0.1/", webhook.ReasonIPSpelling},
	{"https://0x7f.0.0.1/", webhook.ReasonIPSpelling},
	{"https://0x7f000001/", webhook.ReasonIPSpelling},
	{"https://0X7F.1/", webhook.ReasonIPSpelling},
	{"https://017700000001/", webhook.ReasonIPSpelling},
	{"https://127.1/", webhook.ReasonIPSpelling},
	{"https://127.0.1/", webhook.ReasonIPSpelling},
	{"https://3232235777/", webhook.ReasonIPSpelling},          // 192.168.1.1
	{"https://0251.0376.0251.0376/", webhook.ReasonIPSpelling}, // 169.254.169.254
	{"https://0xa9.0xfe.0xa9.0xfe/", webhook.ReasonIPSpelling}, // 169.254.169.254
	{"https://1.2.3.04/", webhook.ReasonIPSpelling},            // octal 04: not canonical even when harmless
	{"https://99999999999/", webhook.ReasonIPSpelling},         // too large to be an address
	{"https://hooks.example.123/", webhook.ReasonIPSpelling},   // a numeric top-level label is no DNS name
	{"https://2130706433.:8443/", webhook.ReasonIPSpelling},    // trailing dot
	{"https://[::ffff:2130706433]/", webhook.ReasonBadURL},     // not even parsed
}

func TestValidateRefuses(t *testing.T) {
	for _, tc := range refusedCases {
		err := webhook.Validate(tc.url, webhook.AllowList{})
		var re *webhook.RefusedError
		if !errors.As(err, &re) {
			t.Errorf("Validate(%q) = %v, want a refusal (%s)", tc.url, err, tc.reason)
			continue
		}
		if re.Reason != tc.reason {
			t.Errorf("Validate(%q) reason = %s (%s), want %s", tc.url, re.Reason, re.Message.EN, tc.reason)
		}
		if re.Message.EN == "" || re.Message.ZH == "" || re.Message.EN == re.Message.ZH {
			t.Errorf("Validate(%q) message is not in both languages: %+v", tc.url, re.Message)
		}
		if !webhook.IsRefused(err) {
			t.Errorf("IsRefused(%v) = false", err)
		}
	}
}

func TestValidateMessages(t *testing.T) {
	tests := []struct{ url, en, zh string }{
		{"https://2130706433/", "IP address 127.0.0.1", "127.0.0.1"},
		{"https://0251.0376.0251.0376/", "169.254.169.254", "非常规写法"},
		{"https://169.254.169.254/latest/meta-data/", "metadata", "云元数据"},
		{"https://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1 carries 127.0.0.1, a loopback address", "环回地址"},
		{"https://10.0.0.1/", "allow-lists", "白名单"},
	}
	for _, tc := range tests {
		var re *webhook.RefusedError
		if !errors.As(webhook.Validate(tc.url, webhook.AllowList{}), &re) {
			t.Fatalf("Validate(%q) did not refuse", tc.url)
		}
		if !strings.Contains(re.Message.EN, tc.en) || !strings.Contains(re.Message.ZH, tc.zh) {
			t.Errorf("Validate(%q) = %q / %q, want %q / %q in them", tc.url, re.Message.EN, re.Message.ZH, tc.en, tc.zh)
		}
	}
	// The path and query may hold the receiver's token: never repeated.
	var re *webhook.RefusedError
	errors.As(webhook.Validate("https://10.0.0.1/hooks/tok-8f2a?key=abc", webhook.AllowList{}), &re)
	if strings.Contains(re.Error(), "tok-8f2a") || strings.Contains(re.Message.ZH, "key=abc") {
		t.Errorf("the refusal quotes the URL's path or query: %v", re)
	}
}

func TestValidateAccepts(t *testing.T) {
	for _, u := range []string{
		"https://hooks.example.com/payfuse",
		"https://HOOKS.Example.com./payfuse",
		"https://hooks.example.com:8443/x?token=abc#frag",
		"https://93.184.216.34/",
		"https://8.8.8.8:443/",
		"https://[2606:4700:4700::1111]/",
		"https://[::ffff:8.8.8.8]/",     // IPv4-mapped public address
		"https://[64:ff9b::808:808]/",   // NAT64 of 8.8.8.8
		"https://xn--fiqs8s.example/",   // an internationalised name in its ASCII form
		"https://alerts_1.example.com/", // underscores occur in real names
		"https://1e100.net/",
		"https://100.63.255.255/", // just below CGNAT
		"https://100.128.0.1/",    // just above it
		"https://172.15.255.255/", // just outside 172.16/12
		"https://172.32.0.1/",
	} {
		if err := webhook.Validate(u, webhook.AllowList{}); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", u, err)
		}
	}
}

func TestAllowList(t *testing.T) {
	l, err := webhook.ParseAllowList("alerts.corp.example.\n10.20.0.0/16, 127.0.0.1 ; [::1] ::1")
	if err == nil {
		t.Fatalf("ParseAllowList took a bracketed address")
	}
	l, err = webhook.ParseAllowList("Alerts.Corp.Example.\n10.20.0.0/16, 127.0.0.1 ; ::1\tlocalhost")
	if err != nil {
		t.Fatalf("ParseAllowList: %v", err)
	}
	if want := "alerts.corp.example\nlocalhost\n10.20.0.0/16\n127.0.0.1/32\n::1/128"; l.String() != want {
		t.Errorf("String() = %q, want %q", l.String(), want)
	}
	tests := []struct {
		url    string
		http   bool
		reason string // "" = accepted
	}{
		{"https://alerts.corp.example/hook", false, ""},
		{"https://ALERTS.corp.example./hook", false, ""},
		{"http://alerts.corp.example/hook", true, ""},
		{"http://alerts.corp.example/hook", false, webhook.ReasonScheme},
		{"https://10.20.3.4/", false, ""},
		{"http://10.20.3.4:8080/", true, ""},
		{"https://10.21.0.1/", false, webhook.ReasonPrivate},
		{"https://127.0.0.1:9000/", false, ""},
		{"https://127.0.0.2/", false, webhook.ReasonLoopback},
		{"https://[::ffff:127.0.0.1]/", false, ""},
		{"https://[::1]:9000/", false, ""},
		{"https://localhost:9000/", false, ""},
		{"https://other.corp.example/", false, ""}, // public as far as Validate knows; the dial decides
		{"http://other.corp.example/", true, webhook.ReasonScheme},
		{"https://169.254.169.254/", false, webhook.ReasonLinkLocal},
		{"https://2130706433/", false, webhook.ReasonIPSpelling},
		{"https://admin@alerts.corp.example/", false, webhook.ReasonUserinfo},
	}
	for _, tc := range tests {
		l.HTTP = tc.http
		err := webhook.Validate(tc.url, l)
		var re *webhook.RefusedError
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("Validate(%q, http=%v) = %v, want nil", tc.url, tc.http, err)
		case tc.reason != "" && (!errors.As(err, &re) || re.Reason != tc.reason):
			t.Errorf("Validate(%q, http=%v) = %v, want %s", tc.url, tc.http, err, tc.reason)
		}
	}
	for _, bad := range []string{"0.0.0.0/0", "::/0", "10.0.0.0/7", "*.example.com", "https://x.example", "10.0.0.0/33", "0x7f.1"} {
		var re *webhook.RefusedError
		if _, err := webhook.ParseAllowList(bad); !errors.As(err, &re) || re.Reason != webhook.ReasonAllowList || re.Message.ZH == "" {
			t.Errorf("ParseAllowList(%q) = %v, want an allow_list refusal", bad, err)
		}
	}
	if l, err := webhook.ParseAllowList(" \n "); err != nil || l.String() != "" {
		t.Errorf("an empty allow-list: %v %q", err, l.String())
	}
}

// fakeDNS answers for the names it knows and fails for others.
type fakeDNS struct {
	names map[string][]netip.Addr
	hook  func(host string) ([]netip.Addr, bool) // consulted first when set
	calls atomic.Int32
}

func (f *fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.calls.Add(1)
	if f.hook != nil {
		if a, ok := f.hook(host); ok {
			return a, nil
		}
	}
	if a, ok := f.names[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// TestDialRefuses proves the check is made when connecting, for addresses
// written in the URL and for names that resolve to them. Nothing here
// reaches the network: the guard refuses before dialling.
func TestDialRefuses(t *testing.T) {
	dns := &fakeDNS{names: map[string][]netip.Addr{}}
	g := webhook.Guard{Resolver: dns}
	tests := []struct{ addr, reason string }{
		{"127.0.0.1", webhook.ReasonLoopback},
		{"::1", webhook.ReasonLoopback},
		{"10.9.8.7", webhook.ReasonPrivate},
		{"192.168.0.1", webhook.ReasonPrivate},
		{"fd00::5", webhook.ReasonPrivate},
		{"169.254.169.254", webhook.ReasonLinkLocal},
		{"fe80::1%lo", webhook.ReasonLinkLocal},
		{"0.0.0.0", webhook.ReasonUnspecified},
		{"::", webhook.ReasonUnspecified},
		{"224.0.0.251", webhook.ReasonMulticast},
		{"255.255.255.255", webhook.ReasonBroadcast},
		{"100.100.100.200", webhook.ReasonShared}, // Alibaba Cloud's metadata service
		{"::ffff:127.0.0.1", webhook.ReasonLoopback},
		{"::ffff:169.254.169.254", webhook.ReasonLinkLocal},
		{"64:ff9b::7f00:1", webhook.ReasonLoopback},
		{"2002:c0a8:101::1", webhook.ReasonPrivate},
	}
	for i, tc := range tests {
		name := "n" + string(rune('a'+i)) + ".example.com"
		dns.names[name] = addrs(tc.addr)
		for _, target := range []string{tc.addr, name} {
			c, err := g.DialContext(context.Background(), "tcp", net.JoinHostPort(target, "443"))
			var re *webhook.RefusedError
			if !errors.As(err, &re) || re.Reason != tc.reason {
				if c != nil {
					c.Close()
				}
				t.Errorf("DialContext(%s) = %v, want %s", target, err, tc.reason)
			}
		}
	}
	// One bad address spoils the name: the good one is not tried either.
	dns.names["mixed.example.com"] = addrs("93.184.216.34", "127.0.0.1")
	if _, err := g.DialContext(context.Background(), "tcp", "mixed.example.com:443"); !webhook.IsRefused(err) {
		t.Errorf("a name resolving to a public and a loopback address: %v, want refused", err)
	}
	// Spellings the C resolver would read as 127.0.0.1 never reach a resolver.
	before := dns.calls.Load()
	for _, h := range []string{"2130706433", "0177.0.0.1", "0x7f.1", "localhost", "x.localhost"} {
		if _, err := g.DialContext(context.Background(), "tcp", net.JoinHostPort(h, "443")); !webhook.IsRefused(err) {
			t.Errorf("DialContext(%s) = %v, want refused", h, err)
		}
	}
	if dns.calls.Load() != before {
		t.Errorf("the resolver was asked about a refused spelling")
	}
	if _, err := g.DialContext(context.Background(), "udp", "8.8.8.8:53"); !webhook.IsRefused(err) {
		t.Errorf("a UDP dial was not refused: %v", err)
	}
}

func TestCheckResolves(t *testing.T) {
	dns := &fakeDNS{names: map[string][]netip.Addr{
		"public.example.com":   addrs("93.184.216.34", "2606:2800:220:1::1"),
		"intranet.example.com": addrs("10.1.1.1"),
	}}
	g := webhook.Guard{Resolver: dns}
	if err := g.Check(context.Background(), "https://public.example.com/hook"); err != nil {
		t.Errorf("Check(public) = %v", err)
	}
	var re *webhook.RefusedError
	if err := g.Check(context.Background(), "https://intranet.example.com/hook"); !errors.As(err, &re) || re.Reason != webhook.ReasonPrivate ||
		!strings.Contains(re.Message.EN, "intranet.example.com resolves to 10.1.1.1") {
		t.Errorf("Check(intranet) = %v, want private naming the address", err)
	}
	if err := g.Check(context.Background(), "https://nowhere.example.com/"); !errors.As(err, &re) || re.Reason != webhook.ReasonUnresolved {
		t.Errorf("Check(nowhere) = %v, want unresolved", err)
	}
	if err := g.Check(context.Background(), "https://10.0.0.1/"); !errors.As(err, &re) || re.Reason != webhook.ReasonPrivate {
		t.Errorf("Check(10.0.0.1) = %v", err)
	}
	g.Allow = webhook.AllowList{Hosts: []string{"intranet.example.com"}}
	if err := g.Check(context.Background(), "https://intranet.example.com/hook"); err != nil {
		t.Errorf("Check(allow-listed intranet) = %v", err)
	}
}

// tripwire is a loopback listener that counts the connections made to it.
// Count is exact: it connects a sentinel last, and connections are
// accepted in the order they were made.
type tripwire struct {
	ln   net.Listener
	done chan int
}

func newTripwire(t *testing.T) *tripwire {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tw := &tripwire{ln: ln, done: make(chan int, 1)}
	go func() {
		n := 0
		for {
			c, err := ln.Accept()
			if err != nil {
				tw.done <- -1
				return
			}
			b := make([]byte, 1)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.ReadFull(c, b)
			c.Close()
			if b[0] == 'S' {
				tw.done <- n
				return
			}
			n++
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return tw
}

func (tw *tripwire) port() string {
	_, p, _ := net.SplitHostPort(tw.ln.Addr().String())
	return p
}

// Count returns how many connections were made before it was called.
func (tw *tripwire) Count(t *testing.T) int {
	t.Helper()
	c, err := net.Dial("tcp", tw.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("S"))
	c.Close()
	n := <-tw.done
	tw.ln.Close()
	return n
}
