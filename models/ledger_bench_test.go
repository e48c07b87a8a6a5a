package models

import (
	"fmt"
	"testing"
	"time"

	"payfuse/channels"
)

// BenchmarkImportStatement measures merging a statement into an empty ledger
// (clean → upsert → sources → rollups), parse excluded. Rows per second are
// reported as rows/s. Run: go test ./models -run X -bench ImportStatement -benchtime 3x
// (with PAYFUSE_TEST_MYSQL set for MariaDB).
func BenchmarkImportStatement(b *testing.B) {
	const rows = 50000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, acct, mch := ledgerFixture(b)
		recs := make([]channels.Record, rows)
		at := time.Date(2026, 3, 1, 8, 0, 0, 0, bj)
		for j := range recs {
			recs[j] = pay(fmt.Sprintf("BENCH%08d", j), mch, int64(100+j%9000), channels.StatusSucceeded, at.Add(time.Duration(j)*time.Second))
			recs[j].Fee, recs[j].FeeKnown = 1, true
			recs[j].Raw = map[string]string{"交易时间": "2026-03-01 08:00:00", "商户订单号": recs[j].MerchantOrderNo, "交易状态": "SUCCESS"}
		}
		b.StartTimer()
		start := time.Now()
		res, err := s.ImportStatement(web, acct.ID, statement(fmt.Sprintf("bench-%d", i), recs...))
		if err != nil || res.Inserted != rows {
			b.Fatal(res, err)
		}
		b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
	}
}
