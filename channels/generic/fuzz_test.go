package generic

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"payfuse/channels"
)

// FuzzParse feeds arbitrary bytes through the UnionPay-style mapping: the
// parser must never panic, must refuse with a *channels.BillError (never a
// bare error, the reader being in memory), and when it takes a file its
// totals must agree with the records it delivered.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(strings.Replace(sample, "\r\n", "\n", -1)))
	f.Add([]byte("查询流水号,交易金额,应答码,交易时间,交易类型\n1,1.00,00,2026-03-01 00:00:00,01\n合计,1,1.00\n"))
	f.Add([]byte("\"a,b\",\"c\"\"d\",=\"1\",`2\n"))
	f.Add([]byte{0xEF, 0xBB, 0xBF, 0xB2, 0xE9, ',', '\n'})
	m := unionPayMapping()
	f.Fuzz(func(t *testing.T, data []byte) {
		var n, pay, refund int
		var amt int64
		tot, err := Parse(bytes.NewReader(data), m, "unionpay", func(r channels.Record) error {
			n++
			if r.Kind == channels.KindPayment {
				pay++
				amt += r.Amount
			} else {
				refund++
			}
			if r.Amount < 0 || r.Fee < 0 || r.ChannelRef == "" {
				t.Fatalf("bad record %+v", r)
			}
			return nil
		})
		if err != nil {
			var be *channels.BillError
			if !errors.As(err, &be) {
				t.Fatalf("not a refusal: %v", err)
			}
			return
		}
		if tot.Payments != pay || tot.Refunds != refund || tot.PaymentAmount != amt {
			t.Fatalf("totals %+v for %d payments (%d) and %d refunds", tot, pay, amt, refund)
		}
	})
}
