package webhook

import (
	"net/netip"
	"testing"
)

// The Control hook is the guard's last word: whatever address a socket is
// about to connect to must be one admit checked.
func TestDialControl(t *testing.T) {
	control := dialControl([]netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("2606:2800:220:1::1")})
	for addr, ok := range map[string]bool{
		"93.184.216.34:443":          true,
		"[::ffff:93.184.216.34]:443": true,
		"[2606:2800:220:1::1]:443":   true,
		"127.0.0.1:443":              false,
		"169.254.169.254:80":         false,
		"[::1]:443":                  false,
		"not an address":             false,
	} {
		err := control("tcp4", addr, nil)
		if ok != (err == nil) {
			t.Errorf("control(%s) = %v", addr, err)
		}
		if err != nil && !IsRefused(err) {
			t.Errorf("control(%s) = %v, want a RefusedError", addr, err)
		}
	}
}

func TestLegacyIPv4(t *testing.T) {
	for in, want := range map[string]string{
		"2130706433":          "127.0.0.1",
		"0177.0.0.1":          "127.0.0.1",
		"0x7f.1":              "127.0.0.1",
		"127.1":               "127.0.0.1",
		"127.0.1":             "127.0.0.1",
		"0xa9.0xfe.0xa9.0xfe": "169.254.169.254",
		"10.0x10203":          "10.1.2.3",
		"0":                   "0.0.0.0",
		"0x":                  "0.0.0.0",
	} {
		if a, ok := legacyIPv4(in); !ok || a.String() != want {
			t.Errorf("legacyIPv4(%q) = %v, %v; want %s", in, a, ok, want)
		}
	}
	for _, in := range []string{"4294967296", "256.1.1.1", "1.2.3.256", "1.2.3.4.5", "08.1.1.1", "", "1..1", "example"} {
		if a, ok := legacyIPv4(in); ok {
			t.Errorf("legacyIPv4(%q) = %v, want no address", in, a)
		}
	}
}
