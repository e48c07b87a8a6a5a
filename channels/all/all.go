// Package all lists every payment channel PayFuse knows.
package all

import (
	"slices"

	"payfuse/channels"
	"payfuse/channels/alipay"
	"payfuse/channels/unionpay"
	"payfuse/channels/wechat"
)

// specs is the display order of the channels.
var specs = []channels.Spec{wechat.Spec, alipay.Spec, unionpay.Spec}

// Specs returns every channel's spec: WeChat Pay, Alipay, UnionPay. The
// slices inside are copies, so callers may change them freely.
func Specs() []channels.Spec {
	out := make([]channels.Spec, len(specs))
	for i, s := range specs {
		out[i] = clone(s)
	}
	return out
}

// Lookup returns the spec of the channel whose code is code.
func Lookup(code string) (channels.Spec, bool) {
	for _, s := range specs {
		if s.Code == code {
			return clone(s), true
		}
	}
	return channels.Spec{}, false
}

func clone(s channels.Spec) channels.Spec {
	s.Methods = slices.Clone(s.Methods)
	s.Fields = slices.Clone(s.Fields)
	return s
}
