package generic

import (
	"bytes"
	"fmt"
	"testing"

	"payfuse/channels"
)

// BenchmarkParse streams a 100,000-row UnionPay-style statement through the
// mapping. Run: go test ./channels/generic -run X -bench Parse -benchmem
func BenchmarkParse(b *testing.B) {
	const n = 100000
	var buf bytes.Buffer
	buf.WriteString("商户代码：898110000000001\n查询流水号,商户订单号,交易类型,交易金额,商户手续费,应答码,交易时间,原交易查询流水号,商户代码\n")
	for i := range n {
		fmt.Fprintf(&buf, "`5126030109%011d,`ORD-%d,01,100.00,0.60,00,2026-03-01 09:15:02,,898110000000001\n", i, i)
	}
	fmt.Fprintf(&buf, "合计,%d笔,,%d.00,,,,,\n", n, n*100)
	data := buf.Bytes()
	m := unionPayMapping()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		rows := 0
		if _, err := Parse(bytes.NewReader(data), m, "unionpay", func(channels.Record) error { rows++; return nil }); err != nil || rows != n {
			b.Fatal(rows, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}
