package models

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// BenchmarkLedgerPage10M measures the ledger page's server time (the
// ListTransactions + CountTransactions pair the handler runs) on a MariaDB
// ledger of PAYFUSE_BENCH_ROWS rows, for the first page and a page 10,000
// pages deep, unfiltered, under each single filter and with the search box.
//
// The rows live in a database of their own, payfuse_bench (or
// PAYFUSE_BENCH_DB), seeded once with raw multi-row INSERTs and reused by
// later runs while it holds that many rows. Run:
//
//	PAYFUSE_TEST_MYSQL=mysql://root@127.0.0.1:3306/payfuse_test PAYFUSE_BENCH_ROWS=10000000 \
//	  go test ./models -run X -bench LedgerPage10M -benchtime 1x -timeout 3h
//
// It prints p50/p99/max per case and reports the worst p99 as worst-p99-ms.
func BenchmarkLedgerPage10M(b *testing.B) {
	raw, rowsEnv := os.Getenv(TestMySQLEnv), os.Getenv("PAYFUSE_BENCH_ROWS")
	if raw == "" || rowsEnv == "" {
		b.Skip("set " + TestMySQLEnv + " and PAYFUSE_BENCH_ROWS (e.g. 10000000) to run")
	}
	total, err := strconv.Atoi(rowsEnv)
	if err != nil || total < benchBatch {
		b.Fatalf("PAYFUSE_BENCH_ROWS=%q: want a number ≥ %d", rowsEnv, benchBatch)
	}
	s := benchStore(b, raw)
	seedLedger(b, s, total)
	reps := 200
	if v, err := strconv.Atoi(os.Getenv("PAYFUSE_BENCH_REPS")); err == nil && v > 0 {
		reps = v
	}
	const deepPages = 10000
	type benchCase struct {
		name string
		f    LedgerFilter
	}
	amin, amax := int64(10000), int64(20000)
	// Search targets and a day, read from the seeded rows themselves.
	var mid struct {
		BizDate         string
		ChannelRef      string
		MerchantOrderNo string
	}
	s.DB.Raw("SELECT biz_date, channel_ref, merchant_order_no FROM transactions WHERE id = ?", total/2).Scan(&mid)
	var order, refundNo string
	s.DB.Raw("SELECT merchant_order_no FROM transactions WHERE id = ?", total/3).Scan(&order)
	s.DB.Raw("SELECT refund_no FROM transactions WHERE id >= ? AND kind = 'refund' ORDER BY id LIMIT 1", total/5).Scan(&refundNo)
	day, _ := time.Parse(time.DateOnly, mid.BizDate)
	monthFrom, monthTo := day.AddDate(0, 0, -15).Format(time.DateOnly), day.AddDate(0, 0, 14).Format(time.DateOnly)
	cases := []benchCase{
		{"none", LedgerFilter{}},
		{"merchant", LedgerFilter{Merchant: "BENCH_M03"}},
		{"channel", LedgerFilter{Channel: "unionpay"}},
		{"method", LedgerFilter{Method: "app"}},
		{"kind", LedgerFilter{Kind: "refund"}},
		{"status", LedgerFilter{Status: "failed"}},
		{"date-day", LedgerFilter{DateFrom: mid.BizDate, DateTo: mid.BizDate}},
		{"date-month", LedgerFilter{DateFrom: monthFrom, DateTo: monthTo}},
		{"amount", LedgerFilter{AmountMin: &amin, AmountMax: &amax}},
		{"search-order", LedgerFilter{Query: order}},
		{"search-txn", LedgerFilter{Query: mid.ChannelRef}},
		{"search-refund", LedgerFilter{Query: refundNo}},
	}
	all := Scope{All: true}
	var lines []string
	worst := 0.0
	for i := 0; i < b.N; i++ {
		for _, c := range cases {
			// The cursor of the row that ends page 10,000 (or the last page of a smaller set).
			deep, depth := benchDeepCursor(b, s, c.f, deepPages*LedgerPageSize)
			for _, start := range []struct {
				name string
				cur  LedgerCursor
			}{{"first", LedgerCursor{}}, {fmt.Sprintf("deep(p%d)", depth/LedgerPageSize+1), deep}} {
				if c.f.Query != "" && start.name != "first" {
					continue // a search finds a handful of rows: one page
				}
				times := make([]time.Duration, reps)
				var got, n int
				var more bool
				for r := range reps {
					t0 := time.Now()
					rows, _, err := s.ListTransactions(all, c.f, start.cur, LedgerPageSize)
					if err != nil {
						b.Fatal(err)
					}
					n, more, err = s.CountTransactions(all, c.f, LedgerCountCap)
					if err != nil {
						b.Fatal(err)
					}
					times[r] = time.Since(t0)
					got = len(rows)
				}
				slices.Sort(times)
				p := func(q float64) float64 {
					return float64(times[min(len(times)-1, int(q*float64(len(times))))].Microseconds()) / 1000
				}
				worst = maxf(worst, p(0.99))
				count := strconv.Itoa(n)
				if more {
					count += "+"
				}
				lines = append(lines, fmt.Sprintf("%-14s %-10s rows=%-3d count=%-7s p50=%7.2fms p99=%7.2fms max=%7.2fms",
					c.name, start.name, got, count, p(0.50), p(0.99), p(1)))
			}
		}
	}
	fmt.Printf("ledger page on %d rows (MariaDB), %d runs per case, list+count server time:\n%s\n", total, reps, strings.Join(lines, "\n"))
	b.ReportMetric(worst, "worst-p99-ms")
}

func maxf(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}

// benchDeepCursor computes, with one index-only query, the cursor after
// the n-th row of the filtered set (or of its last full page when smaller).
func benchDeepCursor(b *testing.B, s *Store, f LedgerFilter, n int) (LedgerCursor, int) {
	q, err := s.ledgerBase(s.DB, Scope{All: true}, f)
	if err != nil {
		b.Fatal(err)
	}
	c, _, err := s.CountTransactions(Scope{All: true}, f, n)
	if err != nil {
		b.Fatal(err)
	}
	if c < n {
		n = c - c%LedgerPageSize
		if n == c && n > 0 {
			n -= LedgerPageSize
		}
	}
	if n <= 0 {
		return LedgerCursor{}, 0
	}
	var row struct {
		OccurredAt time.Time
		ID         uint64
	}
	if err := q.Select("occurred_at, id").Order("occurred_at DESC, id DESC").Offset(n - 1).Limit(1).Scan(&row).Error; err != nil {
		b.Fatal(err)
	}
	return LedgerCursor{At: row.OccurredAt, ID: row.ID}, n
}

func benchStore(b *testing.B, raw string) *Store {
	dsn, err := ParseDSN(raw)
	if err != nil || dsn.Dialect != MySQL {
		b.Fatalf("%s=%q: want a mysql:// URL", TestMySQLEnv, raw)
	}
	cfg := dsn.MySQL.Clone()
	cfg.DBName = "payfuse_bench"
	if v := os.Getenv("PAYFUSE_BENCH_DB"); v != "" {
		cfg.DBName = v
	}
	server := cfg.Clone()
	server.DBName = ""
	admin, err := gorm.Open(mysql.New(mysql.Config{DSNConfig: server}), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		b.Fatal(err)
	}
	if err := admin.Exec("CREATE DATABASE IF NOT EXISTS `" + cfg.DBName + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci").Error; err != nil {
		b.Fatal(err)
	}
	if db, err := admin.DB(); err == nil {
		db.Close()
	}
	dsn.MySQL = cfg
	db, err := Open(dsn)
	if err != nil {
		b.Fatal(err)
	}
	if err := Migrate(db, MySQL); err != nil {
		b.Fatal(err)
	}
	s := NewStore(db, MySQL)
	b.Cleanup(func() { s.Close() })
	return s
}

const (
	benchBatch     = 2000
	benchMerchants = 10
	benchDays      = 365
)

var (
	benchStart    = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	benchChannels = []string{"wechat", "alipay", "unionpay"}
)

type benchRowT struct {
	merchant int
	channel  string
	method   string
	kind     string
	status   string
	amount   int64
	at       time.Time
}

// benchRow is row i of the synthetic ledger, a pure function of i: rows are
// in time order over benchDays (with a daily rhythm), merchants skewed,
// channels wechat 50% / alipay 40% / unionpay 10%, 3% refunds, a few
// percent failed/closed/pending, amounts from ¥0.01 to ¥5,000 skewed small.
func benchRow(i int) benchRowT {
	r := rand.New(rand.NewPCG(uint64(i), 0x9e3779b97f4a7c15))
	var x benchRowT
	x.merchant = int(r.ExpFloat64()*2.5) % benchMerchants
	switch p := r.IntN(100); {
	case p < 50:
		x.channel = "wechat"
	case p < 90:
		x.channel = "alipay"
	default:
		x.channel = "unionpay"
	}
	x.method = []string{"scan", "scan", "scan", "quick", "quick", "h5", "app", "app"}[r.IntN(8)]
	x.kind = "payment"
	if r.IntN(100) < 3 {
		x.kind = "refund"
	}
	switch p := r.IntN(100); {
	case x.kind == "refund" && p < 95, x.kind == "payment" && p < 92:
		x.status = "succeeded"
	case x.kind == "refund":
		x.status = "processing"
	case p < 95:
		x.status = "failed"
	case p < 98:
		x.status = "closed"
	default:
		x.status = "pending"
	}
	x.amount = 1 + int64(r.ExpFloat64()*3000)%500000
	span := float64(benchDays * 24 * 3600)
	x.at = benchStart.Add(time.Duration(float64(i) / float64(benchTotal) * span * float64(time.Second))).Truncate(time.Second)
	return x
}

// benchTotal is the row count benchRow spreads over the year; set by seedLedger.
var benchTotal = 10000000

func benchOrderNo(i int) string { return fmt.Sprintf("ORD%010d", i) }

func benchChannelRef(i int, channel string) string {
	return fmt.Sprintf("%s%010d", map[string]string{"wechat": "42000", "alipay": "20250", "unionpay": "UP000"}[channel], i)
}

func seedLedger(b *testing.B, s *Store, total int) {
	benchTotal = total
	loc, _ := time.LoadLocation(DefaultTimezone)
	for m := range benchMerchants {
		code := fmt.Sprintf("BENCH_M%02d", m+1)
		if _, err := s.GetMerchantByCode(Scope{All: true}, code); err == ErrNotFound {
			if _, err := s.CreateMerchant(SystemActor, MerchantInput{Code: code, Name: "Bench " + code}); err != nil {
				b.Fatal(err)
			}
		}
	}
	var have int64
	if err := s.DB.Raw("SELECT COALESCE(MAX(id), 0) FROM transactions").Scan(&have).Error; err != nil {
		b.Fatal(err)
	}
	if int(have) >= total {
		return
	}
	start := int(have) - int(have)%benchBatch
	fmt.Printf("seeding %d transactions from row %d …\n", total, start)
	t0 := time.Now()
	var sb strings.Builder
	for lo := start; lo < total; lo += benchBatch {
		sb.Reset()
		sb.WriteString(`INSERT IGNORE INTO transactions (id, merchant_id, merchant_code, account_id, channel, kind, channel_ref, payment_ref,
			merchant_order_no, refund_no, method, status, native_status, refund_state, refunded_amount, amount, fee, fee_known, currency,
			payer, channel_created_at, paid_at, refunded_at, biz_date, occurred_at, sources, conflict, conflict_note, created_at, updated_at) VALUES `)
		for i := lo; i < min(lo+benchBatch, total); i++ {
			x := benchRow(i)
			if i > lo {
				sb.WriteByte(',')
			}
			ts := x.at.Format("'2006-01-02 15:04:05'")
			ref, payRef, order, refundNo := benchChannelRef(i, x.channel), "", benchOrderNo(i), ""
			paid, refunded := ts, "NULL"
			if x.kind == "refund" {
				payRef, order, refundNo = benchChannelRef(i-1000, x.channel), benchOrderNo(i-1000), fmt.Sprintf("RF%010d", i)
				paid, refunded = "NULL", ts
			}
			if x.kind == "payment" && x.status != "succeeded" {
				paid = "NULL"
			}
			sources := "statement"
			if i%3 != 0 {
				sources = "notification,statement"
			}
			conflict := 0
			if i%211 == 0 {
				conflict = 1
			}
			fmt.Fprintf(&sb, "(%d,%d,'BENCH_M%02d',%d,'%s','%s','%s','%s','%s','%s','%s','%s','','none',0,%d,%d,1,'CNY','',%s,%s,%s,'%s',%s,'%s',%d,'',%s,%s)",
				i+1, x.merchant+1, x.merchant+1, x.merchant*3+slices.Index(benchChannels, x.channel)+1, x.channel, x.kind, ref, payRef,
				order, refundNo, x.method, x.status, x.amount, x.amount*6/1000, ts, paid, refunded,
				x.at.In(loc).Format(time.DateOnly), ts, sources, conflict, ts, ts)
		}
		if err := s.DB.Exec(sb.String()).Error; err != nil {
			b.Fatal(err)
		}
		if (lo/benchBatch)%250 == 0 {
			done := lo + benchBatch - start
			fmt.Printf("  %d rows, %.0f rows/s\n", lo+benchBatch, float64(done)/time.Since(t0).Seconds())
		}
	}
	if err := s.DB.Exec("ANALYZE TABLE transactions").Error; err != nil {
		b.Fatal(err)
	}
	fmt.Printf("seeded in %s\n", time.Since(t0).Round(time.Second))
}
