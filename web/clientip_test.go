package web

import "testing"

// TestClientIPResolve: behind trusted proxies the client is the rightmost
// X-Forwarded-For hop that is not a trusted proxy; what the client wrote to
// the left of it is never believed, and an untrusted peer's header is ignored.
func TestClientIPResolve(t *testing.T) {
	ci, err := newClientIPs([]string{"10.0.0.0/8", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no header", "10.0.0.5", nil, "10.0.0.5"},
		{"one proxy", "10.0.0.5", []string{"203.0.113.7"}, "203.0.113.7"},
		{"client claim appended to", "10.0.0.5", []string{"6.6.6.6, 203.0.113.7"}, "203.0.113.7"},
		{"two proxies", "10.0.0.5", []string{"203.0.113.7, 192.0.2.1"}, "203.0.113.7"},
		{"two header lines", "10.0.0.5", []string{"6.6.6.6", "203.0.113.7, 10.1.1.1"}, "203.0.113.7"},
		{"untrusted peer", "198.51.100.2", []string{"203.0.113.7"}, "198.51.100.2"},
		{"every hop trusted", "10.0.0.5", []string{"10.9.9.9, 192.0.2.1"}, "10.9.9.9"},
		{"garbage hop", "10.0.0.5", []string{"<script>, 10.2.2.2"}, "10.2.2.2"},
		{"garbage right of client", "10.0.0.5", []string{"203.0.113.7, nonsense"}, "10.0.0.5"},
		{"IPv6 client", "10.0.0.5", []string{"2001:db8::1"}, "2001:db8::1"},
	} {
		if got := ci.resolve(tc.peer, bytesOf(tc.xff)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	none, _ := newClientIPs(nil)
	if got := none.resolve("10.0.0.5", bytesOf([]string{"203.0.113.7"})); got != "10.0.0.5" {
		t.Errorf("without trusted proxies the header counts: %q", got)
	}
}

func bytesOf(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}
