package channels

import (
	"errors"
	"testing"
)

func TestParseDecimalIsExact(t *testing.T) {
	cases := []struct {
		in    string
		scale int
		want  int64
		bad   bool
	}{
		{"12.34", 2, 1234, false}, {"0.1", 2, 10, false}, {"-0.01", 2, -1, false}, {"1,234.56", 2, 123456, false},
		{"¥8.00", 2, 800, false}, {" 7 ", 2, 700, false}, {"0.29", 2, 29, false}, {"0.00600", 5, 600, false},
		{"1.005", 2, 0, true}, {"", 2, 0, true}, {"abc", 2, 0, true}, {"1.2.3", 2, 0, true}, {".", 2, 0, true},
		{"1e5", 2, 0, true}, {"99999999999999999999", 2, 0, true}, {".5", 2, 50, false}, {"-", 2, 0, true},
	}
	for _, c := range cases {
		got, err := ParseDecimal(c.in, c.scale)
		if c.bad {
			if err == nil || !errors.Is(err, ErrBadDecimal) {
				t.Errorf("ParseDecimal(%q) = %d, %v; want an error", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseDecimal(%q, %d) = %d, %v; want %d", c.in, c.scale, got, err, c.want)
		}
	}
}

func TestRoundToFen(t *testing.T) {
	for _, c := range []struct {
		v     int64
		scale int
		want  int64
	}{{600, 5, 1}, {499, 5, 0}, {500, 5, 1}, {-500, 5, -1}, {1234, 2, 1234}, {5, 0, 500}, {1499, 5, 1}, {1500, 5, 2}} {
		if got := RoundToFen(c.v, c.scale); got != c.want {
			t.Errorf("RoundToFen(%d, %d) = %d, want %d", c.v, c.scale, got, c.want)
		}
	}
}

func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"12.34", "-0.01", "1,234.56", "¥8.00", "0.00600", "abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseDecimal(s, 2)
		if err != nil {
			return
		}
		// Whatever parses must parse the same after re-formatting.
		neg := v < 0
		if neg {
			v = -v
		}
		txt := itoa(v/100) + "." + pad2(v%100)
		if neg {
			txt = "-" + txt
		}
		back, err := ParseDecimal(txt, 2)
		if err != nil || (neg && back != -v) || (!neg && back != v) {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, v, txt, back, err)
		}
	})
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

func pad2(n int64) string { return string([]byte{byte('0' + n/10), byte('0' + n%10)}) }
