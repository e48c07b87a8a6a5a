package models

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"gorm.io/gorm"

	"payfuse/channels"
)

// benchRows is the size of the statement the import benchmark takes; set
// PAYFUSE_BENCH_IMPORT_ROWS to change it.
func benchRows(b *testing.B) int {
	if v := os.Getenv("PAYFUSE_BENCH_IMPORT_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("PAYFUSE_BENCH_IMPORT_ROWS=%q: want a positive number", v)
		}
		return n
	}
	return 50000
}

// wechatBill writes a WeChat Pay trade bill (type ALL) of n successful
// payments for mch, in the channel's own format: backtick-prefixed cells and
// the summary block the parser checks the rows against.
func wechatBill(mch string, n int) []byte {
	var buf bytes.Buffer
	writeWechatBill(&buf, mch, n)
	return buf.Bytes()
}

// writeWechatBill writes the bill wechatBill returns to w, a row at a time.
func writeWechatBill(w io.Writer, mch string, n int) {
	io.WriteString(w, "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r\n")
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	types := []string{"NATIVE", "JSAPI", "MWEB", "APP", "MICROPAY"}
	var total, fees int64 // fen; fees in 1/1000 fen
	for i := 0; i < n; i++ {
		amount := int64(100 + (i*7919)%90000)
		fee := amount * 6 // 0.6% in 1/1000 fen
		total += amount
		fees += fee
		fmt.Fprintf(w, "`%s,`wx2b4c6d8e0f1a3b5c,`%s,`0,`,`42000028512026030%021d,`PF%018d,`oX7k2Qm9Lr4Tz8Vb1Nc6Hd3Jf5Gs,`%s,`SUCCESS,`OTHERS,`CNY,`%d.%02d,`0.00,`0,`0,`0.00,`0.00,`,`,`商品%d,`,`%d.%05d,`0.60%%,`%d.%02d,`0.00,`\r\n",
			at.Add(time.Duration(i)*time.Second).Format(time.DateTime), mch, i, i, types[i%len(types)],
			amount/100, amount%100, i%50, fee/100000, fee%100000, amount/100, amount%100)
	}
	io.WriteString(w, "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n")
	fmt.Fprintf(w, "`%d,`%d.%02d,`0.00,`0.00,`%d.%05d,`%d.%02d,`0.00\r\n", n, total/100, total%100, fees/100000, fees%100000, total/100, total%100)
}

// BenchmarkImportStatement measures a WeChat Pay statement import end to end
// — parse, clean, merge, insert transactions and their sources, roll up —
// in rows/s (statement rows), and in the same run raw multi-row INSERTs of
// the rows the import wrote (each statement row's transaction and source
// row) into an empty ledger (raw_rows/s, in statement rows), and their ratio.
// Run:
//
//	go test ./models -run '^$' -bench ImportStatement -benchtime 3x
//	PAYFUSE_TEST_MYSQL=mysql://root@127.0.0.1:3306/payfuse_test go test ./models -run '^$' -bench ImportStatement -benchtime 3x
func BenchmarkImportStatement(b *testing.B) {
	rows := benchRows(b)
	var importSecs, rawSecs float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, acct, mch := ledgerFixture(b)
		bill := wechatBill(mch, rows)
		b.StartTimer()
		start := time.Now()
		sf, err := s.OpenStatement(acct, "bench.csv", bytes.NewReader(bill), int64(len(bill)))
		if err != nil {
			b.Fatal(err)
		}
		res, err := s.ImportStatement(web, acct.ID, sf)
		if err != nil || res.Refused || res.Inserted != rows {
			b.Fatal(res, err)
		}
		importSecs += time.Since(start).Seconds()
		b.StopTimer()

		// The baseline: the same rows the import wrote — transactions and
		// their source rows, already parsed and cleaned — written with plain
		// multi-row INSERTs into another empty ledger, in one transaction.
		var txns []Transaction
		var srcs []TransactionSource
		if err := s.DB.Order("id").Find(&txns).Error; err != nil {
			b.Fatal(err)
		}
		if err := s.DB.Order("id").Find(&srcs).Error; err != nil {
			b.Fatal(err)
		}
		raw := OpenTest(b)
		start = time.Now()
		if err := raw.Tx(func(tx *gorm.DB) error {
			if err := insertRows(tx, "transactions", transactionColumns, len(txns), raw.insertBatch(), func(i int, args []any) []any {
				return transactionValues(&txns[i], args)
			}); err != nil {
				return err
			}
			return insertRows(tx, "transaction_sources", sourceColumns, len(srcs), raw.insertBatch(), func(i int, args []any) []any {
				return sourceValues(&srcs[i], args)
			})
		}); err != nil {
			b.Fatal(err)
		}
		rawSecs += time.Since(start).Seconds()
		b.StartTimer()
	}
	n := float64(rows * b.N)
	b.ReportMetric(n/importSecs, "rows/s")
	b.ReportMetric(n/rawSecs, "raw_rows/s")
	b.ReportMetric(rawSecs/importSecs, "ratio")
}

// BenchmarkParseOnly is the parser's share: the same bill parsed, nothing stored.
func BenchmarkParseOnly(b *testing.B) {
	rows := benchRows(b)
	s, acct, mch := ledgerFixture(b)
	bill := wechatBill(mch, rows)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sf, err := s.OpenStatement(acct, "bench.csv", bytes.NewReader(bill), int64(len(bill)))
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		if _, err := sf.Parse(func(channels.Record) error { got++; return nil }); err != nil || got != rows {
			b.Fatal(got, err)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkRawInsertIndexes is what the ledger's indexes cost a plain
// multi-row INSERT of the same rows: with every index (as the ledger has
// them), with only the natural key that dedupe needs, and with none. It
// shows the ceiling any import shares with the 10M-row ledger page's indexes.
//
//	go test ./models -run '^$' -bench RawInsertIndexes -benchtime 1x
func BenchmarkRawInsertIndexes(b *testing.B) {
	rows := benchRows(b)
	s, acct, mch := ledgerFixture(b)
	bill := wechatBill(mch, rows)
	sf, err := s.OpenStatement(acct, "bench.csv", bytes.NewReader(bill), int64(len(bill)))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.ImportStatement(web, acct.ID, sf); err != nil {
		b.Fatal(err)
	}
	var txns []Transaction
	if err := s.DB.Order("id").Find(&txns).Error; err != nil {
		b.Fatal(err)
	}
	for _, keep := range []string{"all", "natural-key", "none"} {
		b.Run(keep, func(b *testing.B) {
			var secs float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				raw := OpenTest(b)
				var names []string
				if raw.Dialect == SQLite {
					raw.DB.Raw("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'transactions' AND sql IS NOT NULL").Scan(&names)
				} else {
					raw.DB.Raw("SELECT DISTINCT index_name FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = 'transactions' AND index_name <> 'PRIMARY'").Scan(&names)
				}
				dropped := 0
				for _, ix := range names {
					if keep == "all" || (keep == "natural-key" && ix == "ux_txn_natural") {
						continue
					}
					if err := raw.DB.Migrator().DropIndex("transactions", ix); err != nil {
						b.Fatal(err)
					}
					dropped++
				}
				b.StartTimer()
				start := time.Now()
				if err := raw.Tx(func(tx *gorm.DB) error {
					return insertRows(tx, "transactions", transactionColumns, len(txns), raw.insertBatch(), func(i int, args []any) []any {
						return transactionValues(&txns[i], args)
					})
				}); err != nil {
					b.Fatal(err)
				}
				secs += time.Since(start).Seconds()
				b.ReportMetric(float64(len(names)-dropped), "indexes")
			}
			b.ReportMetric(float64(rows*b.N)/secs, "rows/s")
		})
	}
}
