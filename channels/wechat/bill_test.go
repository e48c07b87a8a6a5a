package wechat_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"payfuse/channels"
	"payfuse/channels/wechat"
)

// TestMain shortens the fuzzing engine's minimization of new inputs to 1 s
// unless -test.fuzzminimizetime is given. The engine's default is 60 s per
// input, and its subset-removal pass is quadratic in the input's size, so an
// input grown from a seed bill of a few KiB (or a signed notification, each
// try costing an RSA signature) holds a worker for the whole minute: a 20 s
// fuzzing run would execute almost nothing.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if !set {
		if err := flag.Set("test.fuzzminimizetime", "1s"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}

// beijingTime reads "2006-01-02 15:04:05" as Beijing time and returns it in UTC.
func beijingTime(t testing.TB, s string) time.Time {
	t.Helper()
	at, err := time.ParseInLocation("2006-01-02 15:04:05", s, time.FixedZone("CST", 8*3600))
	if err != nil {
		t.Fatal(err)
	}
	return at.UTC()
}

func readBill(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseBill parses a bill and collects its records.
func parseBill(data []byte) ([]channels.Record, channels.Totals, error) {
	var recs []channels.Record
	totals, err := wechat.ParseTradeBill(bytes.NewReader(data), func(r channels.Record) error {
		recs = append(recs, r)
		return nil
	})
	return recs, totals, err
}

// withoutRaw returns r with Raw cleared, for comparing the mapped fields.
func withoutRaw(r channels.Record) channels.Record {
	r.Raw = nil
	return r
}

func TestParseTradeBillAll(t *testing.T) {
	recs, totals, err := parseBill(readBill(t, "all.csv"))
	if err != nil {
		t.Fatal(err)
	}
	wantTotals := channels.Totals{Payments: 12, Refunds: 6, PaymentAmount: 21773, RefundAmount: 5435, Fees: 100 - 32}
	if totals != wantTotals {
		t.Errorf("totals = %+v, want %+v", totals, wantTotals)
	}
	if len(recs) != 18 {
		t.Fatalf("got %d records, want 18", len(recs))
	}

	// Every row: kind, status, native status, method, amount, fee.
	type row struct {
		kind, status, native, method string
		amount, fee                  int64
	}
	rows := []row{
		{"payment", "succeeded", "SUCCESS", "scan", 10000, 60},
		{"payment", "succeeded", "SUCCESS", "quick", 1234, 7}, // 0.07404 yuan fee
		{"payment", "succeeded", "SUCCESS", "h5", 4500, 27},   // 应结 45.00 of an order of 50.00 with a 5.00 merchant coupon
		{"payment", "succeeded", "SUCCESS", "app", 1, 0},
		{"payment", "succeeded", "SUCCESS", "scan", 888, 5}, // MICROPAY
		{"payment", "revoked", "REVOKED", "scan", 300, 0},
		{"payment", "pending", "NOTPAY", "quick", 2000, 0},
		{"payment", "processing", "USERPAYING", "scan", 600, 0},
		{"payment", "processing", "ACCEPT", "quick", 700, 0},
		{"payment", "closed", "CLOSED", "scan", 900, 0},
		{"payment", "failed", "PAYERROR", "app", 450, 0},
		{"payment", "succeeded", "SUCCESS", "", 200, 1}, // FACEPAY has no canonical method
		{"refund", "succeeded", "SUCCESS", "scan", 3000, 18},
		{"refund", "processing", "PROCESSING", "quick", 1234, 7},
		{"refund", "failed", "CHANGE", "scan", 100, 1}, // 0.00600 rounds up to a fen
		{"refund", "closed", "REFUNDCLOSE", "app", 1, 0},
		{"refund", "succeeded", "REFUND", "", 200, 1}, // empty 退款状态
		{"refund", "succeeded", "SUCCESS", "h5", 900, 5},
	}
	for i, w := range rows {
		r := recs[i]
		got := row{r.Kind, r.Status, r.NativeStatus, r.Method, r.Amount, r.Fee}
		if got != w {
			t.Errorf("row %d = %+v, want %+v", i+1, got, w)
		}
		if !r.FeeKnown || r.Channel != "wechat" || r.Currency != "CNY" || r.AccountRef != "1612345678" {
			t.Errorf("row %d: FeeKnown %v, Channel %q, Currency %q, AccountRef %q", i+1, r.FeeKnown, r.Channel, r.Currency, r.AccountRef)
		}
	}

	wantFirst := channels.Record{
		Channel: "wechat", Kind: "payment", ChannelRef: "4200002851202602280000000001", MerchantOrderNo: "PF20260228000001",
		Method: "scan", Status: "succeeded", NativeStatus: "SUCCESS", Amount: 10000, Fee: 60, FeeKnown: true,
		Currency: "CNY", Payer: channels.MaskPayer("oX7k2Qm9Lr4Tz8Vb1Nc6Hd3Jf5Gs"), AccountRef: "1612345678",
		PaidAt: time.Date(2026, 2, 28, 1, 15, 2, 0, time.UTC),
	}
	if got := withoutRaw(recs[0]); !reflect.DeepEqual(got, wantFirst) {
		t.Errorf("first record\n got %+v\nwant %+v", got, wantFirst)
	}
	if recs[0].Raw["商户号"] != "1612345678" || recs[0].Raw["费率"] != "0.60%" || len(recs[0].Raw) != 27 {
		t.Errorf("first record Raw = %v", recs[0].Raw)
	}

	// A product name with a comma stays in its column.
	if got := recs[2].Raw["商品名称"]; got != "T恤,蓝色" {
		t.Errorf("商品名称 = %q, want T恤,蓝色", got)
	}

	// A payment that did not succeed has a creation time, not a paid time.
	if r := recs[6]; !r.PaidAt.IsZero() || !r.CreatedAt.Equal(beijingTime(t, "2026-02-28 14:00:00")) {
		t.Errorf("NOTPAY row: PaidAt %v, CreatedAt %v", r.PaidAt, r.CreatedAt)
	}

	wantRefund := channels.Record{
		Channel: "wechat", Kind: "refund", ChannelRef: "50300908172026022800000000001",
		PaymentRef: "4200002851202602280000000001", MerchantOrderNo: "PF20260228000001", RefundNo: "RF20260228000001",
		Method: "scan", Status: "succeeded", NativeStatus: "SUCCESS", Amount: 3000, Fee: 18, FeeKnown: true,
		Currency: "CNY", Payer: channels.MaskPayer("oX7k2Qm9Lr4Tz8Vb1Nc6Hd3Jf5Gs"), AccountRef: "1612345678",
		CreatedAt:  time.Date(2026, 2, 28, 10, 0, 0, 0, time.UTC),
		RefundedAt: time.Date(2026, 2, 28, 10, 0, 0, 0, time.UTC),
	}
	if got := withoutRaw(recs[12]); !reflect.DeepEqual(got, wantRefund) {
		t.Errorf("first refund\n got %+v\nwant %+v", got, wantRefund)
	}
	// A refund still processing has not been refunded yet.
	if r := recs[13]; !r.RefundedAt.IsZero() || r.CreatedAt.IsZero() {
		t.Errorf("processing refund: RefundedAt %v, CreatedAt %v", r.RefundedAt, r.CreatedAt)
	}
	// The settled refund (退款金额), not the requested one (申请退款金额).
	if r := recs[17]; r.Amount != 900 || r.Raw["申请退款金额"] != "10.00" {
		t.Errorf("refund with a merchant coupon: Amount %d, 申请退款金额 %q", r.Amount, r.Raw["申请退款金额"])
	}
}

func TestParseTradeBillLayouts(t *testing.T) {
	allRecs, allTotals, err := parseBill(readBill(t, "all.csv"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		file   string
		totals channels.Totals
		check  func(t *testing.T, recs []channels.Record)
	}{
		{"all.csv.gz", allTotals, func(t *testing.T, recs []channels.Record) {
			if !reflect.DeepEqual(recs, allRecs) {
				t.Error("the gzip bill gives other records than the plain one")
			}
		}},
		{"success.csv", channels.Totals{Payments: 3, PaymentAmount: 20149, Fees: 1 + 120 + 0}, func(t *testing.T, recs []channels.Record) {
			r := recs[0]
			// A service provider's bill: the sub-merchant is the account.
			if r.AccountRef != "1612345678" || r.Raw["商户号"] != "1900001111" {
				t.Errorf("AccountRef %q (商户号 %q)", r.AccountRef, r.Raw["商户号"])
			}
			// Just after midnight in Beijing is the previous day in UTC.
			if want := time.Date(2026, 2, 27, 16, 0, 1, 0, time.UTC); !r.PaidAt.Equal(want) || r.PaidAt.Location() != time.UTC {
				t.Errorf("PaidAt = %v, want %v", r.PaidAt, want)
			}
			if recs[1].Fee != 120 || recs[2].Amount != 50 {
				t.Errorf("fee %d (want 120), amount %d (want 50)", recs[1].Fee, recs[2].Amount)
			}
		}},
		{"refund.csv", channels.Totals{Refunds: 2, RefundAmount: 4234, Fees: -25}, func(t *testing.T, recs []channels.Record) {
			if want := beijingTime(t, "2026-02-28 18:00:05"); !recs[0].RefundedAt.Equal(want) {
				t.Errorf("RefundedAt = %v, want 退款成功时间 %v", recs[0].RefundedAt, want)
			}
			if want := beijingTime(t, "2026-02-28 18:00:00"); !recs[0].CreatedAt.Equal(want) {
				t.Errorf("CreatedAt = %v, want 交易时间 %v", recs[0].CreatedAt, want)
			}
			if !recs[1].RefundedAt.IsZero() || recs[1].Status != "processing" {
				t.Errorf("processing refund: %+v", withoutRaw(recs[1]))
			}
		}},
		{"old.csv", channels.Totals{Payments: 2, Refunds: 1, PaymentAmount: 2510, RefundAmount: 500, Fees: 15 + 0 - 3}, func(t *testing.T, recs []channels.Record) {
			if recs[0].Amount != 2500 || recs[2].Kind != "refund" || recs[2].Amount != 500 || recs[2].RefundNo != "OLDR0001" {
				t.Errorf("old records: %+v / %+v", withoutRaw(recs[0]), withoutRaw(recs[2]))
			}
			if recs[0].Raw["总金额"] != "25.00" {
				t.Errorf("Raw keeps the old names: %v", recs[0].Raw)
			}
		}},
		{"bom_crlf.csv", channels.Totals{Payments: 1, Refunds: 1, PaymentAmount: 6660, RefundAmount: 660, Fees: 40 - 4}, func(t *testing.T, recs []channels.Record) {
			if _, ok := recs[0].Raw["交易时间"]; !ok {
				t.Errorf("the BOM stuck to the first column name: %v", recs[0].Raw)
			}
			if v := recs[1].Raw["费率备注"]; v != "" {
				t.Errorf("the CR stuck to the last value: %q", v)
			}
		}},
		{"reordered.csv", channels.Totals{Payments: 1, Refunds: 1, PaymentAmount: 1000, RefundAmount: 1000, Fees: 6 - 6}, func(t *testing.T, recs []channels.Record) {
			if recs[0].Method != "h5" || recs[0].ChannelRef != "4200002851202602280000000301" || recs[1].RefundNo != "RF20260228000301" {
				t.Errorf("reordered: %+v / %+v", withoutRaw(recs[0]), withoutRaw(recs[1]))
			}
		}},
		{"extra_column.csv", channels.Totals{Payments: 2, PaymentAmount: 770, Fees: 2 + 3}, func(t *testing.T, recs []channels.Record) {
			if recs[0].Raw["优惠标识"] != "DISCOUNT" || recs[1].Raw["门店编号"] != "SH-001" {
				t.Errorf("unknown columns are kept in Raw: %v", recs[0].Raw)
			}
			if recs[1].Amount != 440 {
				t.Errorf("amount %d, want 440", recs[1].Amount)
			}
		}},
		{"empty.csv", channels.Totals{}, func(t *testing.T, recs []channels.Record) {
			if len(recs) != 0 {
				t.Errorf("%d records from an empty bill", len(recs))
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			recs, totals, err := parseBill(readBill(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			if totals != c.totals {
				t.Errorf("totals = %+v, want %+v", totals, c.totals)
			}
			if n := totals.Payments + totals.Refunds; n != len(recs) {
				t.Errorf("%d records, totals count %d", len(recs), n)
			}
			c.check(t, recs)
		})
	}
}

// allHeader, allSummary and the rows below build small bills inline.
const (
	allHeader  = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
	allSummary = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
	payRow     = "`2026-02-28 10:00:00,`wx2b4c6d8e0f1a3b5c,`1612345678,`0,`,`4200000001,`P1,`openid0001,`NATIVE,`SUCCESS,`OTHERS,`CNY,`5.00,`0.00,`0,`0,`0.00,`0.00,`,`,`商品,`,`0.03000,`0.60%,`5.00,`0.00,`"
	paySummary = "`1,`5.00,`0.00,`0.00,`0.03000,`5.00,`0.00"
)

// lines joins lines with LF, ending with one.
func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

// gz compresses b.
func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestParseTradeBillRefuses(t *testing.T) {
	allGz := readBill(t, "all.csv.gz")
	cases := []struct {
		name string
		data []byte
		line int    // -1: wherever the reading stopped
		want string // in the English message
	}{
		{"summary disagrees", readBill(t, "summary_mismatch.csv"), 0, "应结订单总金额 11.01 but the rows' 应结订单金额 add up to 11.00"},
		{"truncated", readBill(t, "truncated.csv"), 0, "truncated"},
		{"malformed amount", readBill(t, "bad_amount.csv"), 3, `"12.3.4"`},
		{"amount finer than a fen", readBill(t, "sub_fen.csv"), 2, `"1.005"`},
		{"empty file", nil, 0, "empty"},
		{"blank lines only", []byte("\n\r\n\n"), 0, "empty"},
		{"header only", []byte(lines(allHeader)), 0, "truncated"},
		{"summary header without its row", []byte(lines(allHeader, payRow, allSummary)), 0, "no summary row"},
		{"summary first", []byte(lines(allSummary, paySummary)), 1, "detail header"},
		{"unknown layout", []byte(lines("日期,金额,状态", "`2026-02-28,`1.00,`OK", allSummary, paySummary)), 1, "no 交易时间, 微信订单号, 交易状态, 应结订单金额 column"},
		{"column twice", []byte(lines(allHeader+",手续费", payRow+",`0", allSummary, paySummary)), 1, "手续费 twice"},
		{"too few values", []byte(lines(allHeader, "`2026-02-28 10:00:00,`wx,`1612345678", allSummary, paySummary)), 2, "3 values but the header has 27"},
		{"row without backticks", []byte(lines(allHeader, strings.ReplaceAll(payRow, "`", ""), allSummary, paySummary)), 2, "neither a detail row"},
		{"unknown trade state", []byte(lines(allHeader, strings.Replace(payRow, "`SUCCESS", "`MYSTERY", 1), allSummary, paySummary)), 2, `"MYSTERY"`},
		{"unknown refund status", []byte(lines(allHeader,
			"`2026-02-28 11:00:00,`wx,`1612345678,`0,`,`4200000001,`P1,`o1,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`5030001,`R1,`5.00,`0.00,`ORIGINAL,`LIMBO,`商品,`,`0.00000,`0.60%,`0.00,`5.00,`",
			allSummary, "`1,`0.00,`5.00,`0.00,`0.00000,`0.00,`5.00")), 2, `退款状态 "LIMBO"`},
		{"refund with a positive fee", []byte(lines(allHeader,
			"`2026-02-28 11:00:00,`wx,`1612345678,`0,`,`4200000001,`P1,`o1,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`5030001,`R1,`5.00,`0.00,`ORIGINAL,`SUCCESS,`商品,`,`0.03000,`0.60%,`0.00,`5.00,`",
			allSummary, "`1,`0.00,`5.00,`0.00,`0.03000,`0.00,`5.00")), 2, "positive 手续费"},
		{"refund without a refund id", []byte(lines(allHeader,
			"`2026-02-28 11:00:00,`wx,`1612345678,`0,`,`4200000001,`P1,`o1,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`0,`R1,`5.00,`0.00,`ORIGINAL,`SUCCESS,`商品,`,`0.00000,`0.60%,`0.00,`5.00,`",
			allSummary, "`1,`0.00,`5.00,`0.00,`0.00000,`0.00,`5.00")), 2, "no 微信退款单号"},
		{"refund row in a SUCCESS bill", []byte(lines(
			"交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注",
			"`2026-02-28 11:00:00,`wx,`1612345678,`0,`,`4200000001,`P1,`o1,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`商品,`,`0.00000,`0.60%,`0.00,`",
			"总交易单数,应结订单总金额,手续费总金额,订单总金额", "`1,`0.00,`0.00000,`0.00")), 2, "no 微信退款单号 column"},
		{"payment with a negative fee", []byte(lines(allHeader, strings.Replace(payRow, "`0.03000", "`-0.03000", 1), allSummary, paySummary)), 2, "negative 手续费"},
		{"negative amount", []byte(lines(allHeader, strings.Replace(payRow, "`5.00", "`-5.00", 1), allSummary, paySummary)), 2, "negative"},
		{"fee with six decimals", []byte(lines(allHeader, strings.Replace(payRow, "`0.03000", "`0.030001", 1), allSummary, paySummary)), 2, `手续费 "0.030001"`},
		{"bad time", []byte(lines(allHeader, strings.Replace(payRow, "2026-02-28 10:00:00", "28/02/2026 10:00", 1), allSummary, paySummary)), 2, "not a time"},
		{"bad currency", []byte(lines(allHeader, strings.Replace(payRow, "`CNY", "`YUAN", 1), allSummary, paySummary)), 2, "货币种类"},
		{"no transaction id", []byte(lines(allHeader, strings.Replace(payRow, "`4200000001", "`", 1), allSummary, paySummary)), 2, "no 微信订单号"},
		{"count disagrees", []byte(lines(allHeader, payRow, allSummary, strings.Replace(paySummary, "`1,", "`2,", 1))), 0, "总交易单数 2 but the bill has 1 detail rows"},
		{"fee total disagrees", []byte(lines(allHeader, payRow, allSummary, strings.Replace(paySummary, "0.03000", "0.03001", 1))), 0, "手续费总金额 0.03001 but the rows' 手续费 add up to 0.03000"},
		{"order total disagrees", []byte(lines(allHeader, payRow, allSummary, "`1,`5.00,`0.00,`0.00,`0.03000,`5.01,`0.00")), 0, "订单总金额 5.01"},
		{"summary lacks the fee total", []byte(lines(allHeader, payRow, "总交易单数,应结订单总金额,退款总金额", "`1,`5.00,`0.00")), 3, "no 手续费总金额"},
		{"summary value count", []byte(lines(allHeader, payRow, allSummary, "`1,`5.00")), 4, "2 values"},
		{"summary count not a number", []byte(lines(allHeader, payRow, allSummary, strings.Replace(paySummary, "`1,", "`one,", 1))), 4, "not a count"},
		{"summary amount malformed", []byte(lines(allHeader, payRow, allSummary, strings.Replace(paySummary, "`5.00", "`5.0.0", 1))), 4, `"5.0.0"`},
		{"more after the summary", []byte(lines(allHeader, payRow, allSummary, paySummary, payRow)), 5, "more after the summary"},
		{"line too long", []byte(allHeader + "\n`" + strings.Repeat("x", 70<<10) + "\n"), 2, "longer than 64 KiB"},
		{"gzip magic, not gzip", []byte("\x1f\x8bnot really gzip"), 0, "does not decompress"},
		{"gzip cut short", allGz[:len(allGz)/2], -1, "could not be read"},
		{"gzip of a truncated bill", gz(readBill(t, "truncated.csv")), 0, "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			totals, err := wechat.ParseTradeBill(bytes.NewReader(c.data), func(channels.Record) error { calls++; return nil })
			var be *channels.BillError
			if !errors.As(err, &be) {
				t.Fatalf("err = %v (%T), want a *channels.BillError; %d records", err, err, calls)
			}
			if totals != (channels.Totals{}) {
				t.Errorf("totals %+v returned with an error", totals)
			}
			if c.line >= 0 && be.Line != c.line {
				t.Errorf("line = %d, want %d (%v)", be.Line, c.line, err)
			}
			if !strings.Contains(be.Message.EN, c.want) {
				t.Errorf("message %q does not say %q", be.Message.EN, c.want)
			}
			if be.Message.ZH == "" || be.Message.EN == "" {
				t.Errorf("message lacks a language: %+v", be.Message)
			}
		})
	}
}

// TestParseTradeBillLongLine reads a line far longer than the read buffer
// (a long product name) whole.
func TestParseTradeBillLongLine(t *testing.T) {
	name := strings.Repeat("长", 10000) // 30,000 bytes
	recs, _, err := parseBill([]byte(lines(allHeader, strings.Replace(payRow, "`商品", "`"+name, 1), allSummary, paySummary)))
	if err != nil {
		t.Fatal(err)
	}
	if got := recs[0].Raw["商品名称"]; got != name {
		t.Errorf("商品名称 has %d bytes, want %d", len(got), len(name))
	}
}

func TestParseTradeBillCallbackError(t *testing.T) {
	stop := errors.New("database is full")
	calls := 0
	_, err := wechat.ParseTradeBill(bytes.NewReader(readBill(t, "all.csv")), func(channels.Record) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Fatalf("err = %v after %d calls; want the callback's error after 2", err, calls)
	}
	var be *channels.BillError
	if errors.As(err, &be) {
		t.Errorf("the callback's error came back as a BillError: %v", err)
	}
	if !strings.Contains(err.Error(), "line 3") {
		t.Errorf("err %q does not name the line", err)
	}
}

// TestParseTradeBillStreams shows that rows reach fn before the rest of the
// file has been read: the writer waits for the first record before writing
// the rest of the bill.
func TestParseTradeBillStreams(t *testing.T) {
	pr, pw := io.Pipe()
	first := make(chan struct{})
	go func() {
		fmt.Fprint(pw, lines(allHeader, payRow))
		select {
		case <-first:
		case <-time.After(10 * time.Second):
			pw.CloseWithError(errors.New("the parser did not yield the first row before reading on"))
			return
		}
		fmt.Fprint(pw, lines(allSummary, paySummary))
		pw.Close()
	}()
	n := 0
	_, err := wechat.ParseTradeBill(pr, func(channels.Record) error {
		n++
		if n == 1 {
			close(first)
		}
		return nil
	})
	if err != nil || n != 1 {
		t.Fatalf("err = %v, %d records", err, n)
	}
}

func FuzzParseTradeBill(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			f.Add(readBill(f, e.Name()))
		}
	}
	f.Add([]byte(lines(allHeader, payRow, allSummary, paySummary)))
	f.Fuzz(func(t *testing.T, data []byte) {
		var sum channels.Totals
		totals, err := wechat.ParseTradeBill(bytes.NewReader(data), func(r channels.Record) error {
			switch {
			case r.Kind != channels.KindPayment && r.Kind != channels.KindRefund:
				t.Fatalf("kind %q", r.Kind)
			case r.Amount < 0 || r.Fee < 0:
				t.Fatalf("amount %d, fee %d", r.Amount, r.Fee)
			case r.Status == "" || r.ChannelRef == "" || r.Currency == "":
				t.Fatalf("incomplete record %+v", withoutRaw(r))
			}
			if r.Kind == channels.KindRefund {
				sum.Refunds++
				sum.RefundAmount += r.Amount
				sum.Fees -= r.Fee
			} else {
				sum.Payments++
				sum.PaymentAmount += r.Amount
				sum.Fees += r.Fee
			}
			return nil
		})
		if err != nil {
			var be *channels.BillError
			if !errors.As(err, &be) {
				t.Fatalf("err = %v (%T), want a *channels.BillError", err, err)
			}
			if be.Message.EN == "" || be.Message.ZH == "" {
				t.Fatalf("message lacks a language: %+v", be.Message)
			}
			return
		}
		if totals != sum {
			t.Fatalf("totals %+v, but the records add up to %+v", totals, sum)
		}
	})
}

// benchBill writes an ALL bill of n rows (every tenth a refund) with a
// summary that agrees.
func benchBill(n int) []byte {
	var b bytes.Buffer
	b.Grow(n * 260)
	b.WriteString(allHeader + "\r\n")
	var settled, refunded, orders, requested, fees int64 // fen, fen, fen, fen, 10^-5 yuan
	for i := range n {
		amount := int64(100 + i%9900)
		at := time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC).Add(time.Duration(i%86400) * time.Second).Format("2006-01-02 15:04:05")
		if i%10 == 9 {
			fee := amount * 6 // 0.6% of amount fen, in 10^-5 yuan
			fmt.Fprintf(&b, "`%s,`wx2b4c6d8e0f1a3b5c,`1612345678,`0,`,`42000028512026022%011d,`PF%010d,`oX7k2Qm9Lr4Tz8Vb1Nc6Hd3Jf5Gs,`JSAPI,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`503009081720260228%011d,`RF%010d,`%d.%02d,`0.00,`ORIGINAL,`SUCCESS,`商品,`,`-%d.%05d,`0.60%%,`0.00,`%d.%02d,`\r\n",
				at, i, i, i, i, amount/100, amount%100, fee/100000, fee%100000, amount/100, amount%100)
			refunded += amount
			requested += amount
			fees -= fee
			continue
		}
		fee := amount * 6
		fmt.Fprintf(&b, "`%s,`wx2b4c6d8e0f1a3b5c,`1612345678,`0,`,`42000028512026022%011d,`PF%010d,`oX7k2Qm9Lr4Tz8Vb1Nc6Hd3Jf5Gs,`NATIVE,`SUCCESS,`OTHERS,`CNY,`%d.%02d,`0.00,`0,`0,`0.00,`0.00,`,`,`商品,`,`%d.%05d,`0.60%%,`%d.%02d,`0.00,`\r\n",
			at, i, i, amount/100, amount%100, fee/100000, fee%100000, amount/100, amount%100)
		settled += amount
		orders += amount
		fees += fee
	}
	yuan := func(v int64) string { return fmt.Sprintf("%d.%02d", v/100, v%100) }
	b.WriteString(allSummary + "\r\n")
	fmt.Fprintf(&b, "`%d,`%s,`%s,`0.00,`%d.%05d,`%s,`%s\r\n", n, yuan(settled), yuan(refunded), fees/100000, fees%100000, yuan(orders), yuan(requested))
	return b.Bytes()
}

func TestBenchBillIsValid(t *testing.T) {
	_, totals, err := parseBill(benchBill(1000))
	if err != nil || totals.Payments != 900 || totals.Refunds != 100 {
		t.Fatalf("totals %+v, err %v", totals, err)
	}
}

func BenchmarkParseTradeBill(b *testing.B) {
	const rows = 100_000
	data := benchBill(rows)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if _, err := wechat.ParseTradeBill(bytes.NewReader(data), func(channels.Record) error { n++; return nil }); err != nil || n != rows {
			b.Fatalf("err %v, %d rows", err, n)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
