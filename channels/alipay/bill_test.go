package alipay_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"payfuse/channels"
	"payfuse/channels/alipay"
)

// The fixtures are hand-made in the layout of Alipay's trade bill
// (bill_type=trade), in UTF-8 so they can be read; the tests encode them to
// GBK, as Alipay ships them.
const (
	detailFile  = "20881234567890120156_20260301_业务明细.csv"
	summaryFile = "20881234567890120156_20260301_业务明细(汇总).csv"
)

func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func gbk(t testing.TB, s string) []byte {
	t.Helper()
	b, err := simplifiedchinese.GBK.NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatalf("unable to encode to GBK: %v", err)
	}
	return b
}

type entry struct {
	name     string // UTF-8; stored as GBK without the UTF-8 flag unless utf8Name
	body     []byte
	utf8Name bool
}

// zipOf builds a zip the way Alipay's is: deflated entries whose names are
// GBK bytes without the UTF-8 flag.
func zipOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: time.Date(2026, 3, 2, 6, 12, 45, 0, time.UTC)}
		if !e.utf8Name {
			h.Name, h.NonUTF8 = string(gbk(t, e.name)), true
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func billZip(t testing.TB) []byte {
	return zipOf(t,
		entry{name: summaryFile, body: gbk(t, fixture(t, "trade_summary.csv"))},
		entry{name: detailFile, body: gbk(t, fixture(t, "trade_detail.csv"))})
}

func collect(recs *[]channels.Record) func(channels.Record) error {
	return func(r channels.Record) error { *recs = append(*recs, r); return nil }
}

func parseZip(t testing.TB, data []byte, maxInflated int64) ([]channels.Record, channels.Totals, error) {
	t.Helper()
	var recs []channels.Record
	tot, err := alipay.ParseTradeBill(bytes.NewReader(data), int64(len(data)), maxInflated, collect(&recs))
	return recs, tot, err
}

func parseCSV(data []byte) ([]channels.Record, channels.Totals, error) {
	var recs []channels.Record
	tot, err := alipay.ParseTradeBillCSV(bytes.NewReader(data), collect(&recs))
	return recs, tot, err
}

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

const pid = "2088123456789012"

// wantRecords is what the fixture holds, Raw aside.
var wantRecords = []channels.Record{
	{
		Channel: "alipay", Kind: "payment", ChannelRef: "2026030122001411110500000001", MerchantOrderNo: "PF20260301000001",
		Status: "succeeded", NativeStatus: "交易", Amount: 3200, Fee: 19, FeeKnown: true, Currency: "CNY",
		Payer: "张*******1)", AccountRef: pid, CreatedAt: utc("2026-03-01 01:15:02"), PaidAt: utc("2026-03-01 01:15:09"),
	},
	{
		Channel: "alipay", Kind: "payment", ChannelRef: "2026030122001411110500000002", MerchantOrderNo: "PF20260301000002",
		Status: "succeeded", NativeStatus: "交易", Amount: 1650, Fee: 10, FeeKnown: true, Currency: "CNY",
		Payer: "li******om", AccountRef: pid, CreatedAt: utc("2026-03-01 02:02:11"), PaidAt: utc("2026-03-01 02:02:15"),
	},
	{
		Channel: "alipay", Kind: "payment", ChannelRef: "2026030122001411110500000003", MerchantOrderNo: "PF20260301000003",
		Status: "succeeded", NativeStatus: "交易", Amount: 10000, Fee: 60, FeeKnown: true, Currency: "CNY",
		Payer: "王*******2)", AccountRef: pid, CreatedAt: utc("2026-03-01 02:40:00"), PaidAt: utc("2026-03-01 02:41:30"),
	},
	{
		Channel: "alipay", Kind: "refund", ChannelRef: "2026030122001411110500000001/RF20260301000001",
		PaymentRef: "2026030122001411110500000001", MerchantOrderNo: "PF20260301000001", RefundNo: "RF20260301000001",
		Status: "succeeded", NativeStatus: "退款", Amount: 3200, Fee: 19, FeeKnown: true, Currency: "CNY",
		Payer: "张*******1)", AccountRef: pid, CreatedAt: utc("2026-03-01 03:30:00"), RefundedAt: utc("2026-03-01 03:30:00"),
	},
	{
		Channel: "alipay", Kind: "refund", ChannelRef: "2026030122001411110500000003/RF20260301000003",
		PaymentRef: "2026030122001411110500000003", MerchantOrderNo: "PF20260301000003", RefundNo: "RF20260301000003",
		Status: "succeeded", NativeStatus: "退款", Amount: 4000, Fee: 24, FeeKnown: true, Currency: "CNY",
		Payer: "王*******2)", AccountRef: pid, CreatedAt: utc("2026-03-01 08:05:59"), RefundedAt: utc("2026-03-01 08:05:59"),
	},
}

// wantTotals add up Amount (商家实收), as the footer does.
var wantTotals = channels.Totals{Payments: 3, Refunds: 2, PaymentAmount: 14850, RefundAmount: 7200, Fees: 89 - 43}

func withoutRaw(recs []channels.Record) []channels.Record {
	out := slices.Clone(recs)
	for i := range out {
		out[i].Raw = nil
	}
	return out
}

func checkRecords(t *testing.T, recs []channels.Record, tot channels.Totals) {
	t.Helper()
	got := withoutRaw(recs)
	if len(got) != len(wantRecords) {
		t.Fatalf("got %d records, want %d", len(got), len(wantRecords))
	}
	for i := range got {
		if fmt.Sprintf("%+v", got[i]) != fmt.Sprintf("%+v", wantRecords[i]) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], wantRecords[i])
		}
	}
	if tot != wantTotals {
		t.Errorf("totals = %+v, want %+v", tot, wantTotals)
	}
}

func TestParseTradeBillZip(t *testing.T) {
	recs, tot, err := parseZip(t, billZip(t), 200<<20)
	if err != nil {
		t.Fatalf("ParseTradeBill: %v", err)
	}
	checkRecords(t, recs, tot)

	// Raw keeps every column under the file's own name, trimmed of the tab.
	raw := recs[1].Raw
	for name, want := range map[string]string{
		"支付宝交易号": "2026030122001411110500000002", "商品名称": "早餐套餐", "订单金额（元）": "18.50",
		"商家实收（元）": "16.50", "商家优惠（元）": "2.00", "券名称": "满减券", "服务费（元）": "-0.10",
		"对方账户": "li***@example.com", "备注": "会员日", "退款批次号/请求号": "",
	} {
		if got, ok := raw[name]; !ok || got != want {
			t.Errorf("Raw[%q] = %q (present %v), want %q", name, got, ok, want)
		}
	}
	if len(raw) != 25 {
		t.Errorf("Raw has %d fields, want the 25 columns", len(raw))
	}
}

func TestParseTradeBillZipNames(t *testing.T) {
	detail := gbk(t, fixture(t, "trade_detail.csv"))
	other := gbk(t, strings.Replace(fixture(t, "trade_detail.csv"), "2026030122001411110500000002", "2026030122009999999999999999", 1))
	cases := []struct {
		name    string
		entries []entry
		bad     string // part of the refusal; "" to accept
	}{
		{"UTF-8 flagged names", []entry{{name: detailFile, body: detail, utf8Name: true}}, ""},
		{"in a folder", []entry{{name: "bills/" + detailFile, body: detail}}, ""},
		{"full-width brackets in the summary's name", []entry{
			{name: "20881234567890120156_20260301_业务明细（汇总）.csv", body: []byte("not a bill")},
			{name: detailFile, body: detail}}, ""},
		{"traversal names beside the detail are ignored", []entry{
			{name: "../../" + detailFile, body: other},
			{name: "/etc/" + detailFile, body: other},
			{name: `..\..\` + detailFile, body: other},
			{name: "C:/" + detailFile, body: other},
			{name: detailFile, body: detail}}, ""},
		{"only traversal names", []entry{
			{name: "../" + detailFile, body: detail},
			{name: "a/../../" + detailFile, body: detail}}, "no detail file"},
		{"no detail entry", []entry{{name: summaryFile, body: gbk(t, fixture(t, "trade_summary.csv"))}}, "no detail file"},
		{"two detail entries", []entry{{name: detailFile, body: detail}, {name: "x_" + detailFile, body: detail}}, "2 detail files"},
		{"detail entry is not a bill", []entry{{name: detailFile, body: gbk(t, fixture(t, "trade_summary.csv"))}}, "columns"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, tot, err := parseZip(t, zipOf(t, c.entries...), 0)
			if c.bad == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				checkRecords(t, recs, tot)
				return
			}
			requireRefusal(t, err, -1, c.bad)
		})
	}
}

// requireRefusal checks err is a *channels.BillError on line (-1: any line)
// whose English message contains part, with a Chinese message too.
func requireRefusal(t *testing.T, err error, line int, part string) {
	t.Helper()
	var be *channels.BillError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v (%T), want a *channels.BillError", err, err)
	}
	if line >= 0 && be.Line != line {
		t.Errorf("refused on line %d, want line %d: %v", be.Line, line, err)
	}
	if !strings.Contains(be.Message.EN, part) {
		t.Errorf("message %q does not contain %q", be.Message.EN, part)
	}
	if be.Message.ZH == "" || be.Message.ZH == be.Message.EN {
		t.Errorf("no Chinese message: %+v", be.Message)
	}
}

func TestParseTradeBillZipRefusals(t *testing.T) {
	valid := billZip(t)
	damaged := slices.Clone(valid)
	// Flip bytes inside the second entry's compressed data (the detail).
	i := bytes.Index(damaged, gbk(t, detailFile)) + len(gbk(t, detailFile)) + 40
	for j := i; j < i+16; j++ {
		damaged[j] ^= 0x5a
	}
	cases := []struct {
		name string
		data []byte
		part string
	}{
		{"not a zip", gbk(t, fixture(t, "trade_detail.csv")), "not a readable zip"},
		{"empty", nil, "not a readable zip"},
		{"truncated zip", valid[:len(valid)/2], "not a readable zip"},
		{"damaged data", damaged, "damaged"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := parseZip(t, c.data, 0)
			requireRefusal(t, err, -1, c.part)
		})
	}
}

// zeroDeflate returns a deflate stream of mib MiB of zeros without deflating
// them all (which takes minutes under the race detector): the stream of the
// second MiB, after a sync flush, decodes to another MiB of zeros wherever
// zeros came before, so it is repeated.
func zeroDeflate(t testing.TB, mib int) (data []byte, crc uint32) {
	t.Helper()
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	zeros := make([]byte, 1<<20)
	w.Write(zeros)
	w.Flush()
	first := slices.Clone(buf.Bytes())
	buf.Reset()
	w.Write(zeros)
	w.Flush()
	next := slices.Clone(buf.Bytes())
	buf.Reset()
	w.Close()
	last := slices.Clone(buf.Bytes())

	out := slices.Clone(first)
	for range mib - 1 {
		out = append(out, next...)
	}
	out = append(out, last...)
	for range mib {
		crc = crc32.Update(crc, crc32.IEEETable, zeros)
	}
	return out, crc
}

func TestZeroDeflate(t *testing.T) {
	data, crc := zeroDeflate(t, 5)
	got, err := io.ReadAll(flate.NewReader(bytes.NewReader(data)))
	if err != nil || len(got) != 5<<20 || crc32.ChecksumIEEE(got) != crc || bytes.ContainsFunc(got, func(r rune) bool { return r != 0 }) {
		t.Fatalf("zeroDeflate(5) inflates to %d bytes (err %v), want 5 MiB of zeros", len(got), err)
	}
}

// bombZip stores the deflated zeros as the detail entry, declaring size
// bytes inflated (the truth, or a lie).
func bombZip(t testing.TB, mib int, declared uint64) []byte {
	t.Helper()
	data, crc := zeroDeflate(t, mib)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name: string(gbk(t, detailFile)), NonUTF8: true, Method: zip.Deflate,
		CRC32: crc, CompressedSize64: uint64(len(data)), UncompressedSize64: declared,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseTradeBillZipBomb(t *testing.T) {
	cases := []struct {
		name     string
		mib      int
		declared uint64
		part     string
	}{
		{"1 GiB of zeros, declared", 1024, 1 << 30, "more than 200 MiB"},
		{"1 GiB of zeros declared as 100 KiB", 1024, 100 << 10, "damaged"},
		{"1 GiB of zeros declared as 1 MiB", 1024, 1 << 20, "longer than 256 KiB"},
		{"300 MiB of zeros declared as 150 MiB", 300, 150 << 20, "times its compressed size"},
		{"100 MiB of zeros, declared", 100, 100 << 20, "times its compressed size"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := bombZip(t, c.mib, c.declared)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, _, err := parseZip(t, data, 200<<20)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			requireRefusal(t, err, -1, c.part)
			if elapsed > 3*time.Second {
				t.Errorf("refusing took %v", elapsed)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
				t.Errorf("refusing allocated %d KiB", alloc>>10)
			}
		})
	}
}

func TestParseTradeBillInflateLimit(t *testing.T) {
	// An honest bill larger than the limit is refused while it is read.
	_, _, err := parseZip(t, billZip(t), 1024)
	requireRefusal(t, err, -1, "more than 1024 bytes")
	// A limit just above the detail's size reads it.
	recs, tot, err := parseZip(t, billZip(t), int64(len(gbk(t, fixture(t, "trade_detail.csv")))+len(gbk(t, fixture(t, "trade_summary.csv")))))
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, recs, tot)
}

// edit applies old→new replacements to the fixture, each exactly once.
func edit(t testing.TB, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		if strings.Count(s, pairs[i]) < 1 {
			t.Fatalf("fixture has no %q", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

// lines applies f to each physical line of the fixture.
func lines(s string, f func(n int, line string) string) string {
	ls := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i := range ls {
		ls[i] = f(i+1, ls[i])
	}
	return strings.Join(ls, "\n") + "\n"
}

// permute reorders the table's columns (the header is line 5, rows 6-10) and
// adds a column, leaving the comment lines alone.
func permute(s string) string {
	return lines(s, func(n int, line string) string {
		if n < 5 || strings.HasPrefix(line, "#") {
			return line
		}
		cells := strings.Split(line, ",")
		slices.Reverse(cells)
		extra := "新增列"
		if n > 5 {
			extra = fmt.Sprintf("x%d\t", n)
		}
		return strings.Join(append([]string{extra}, cells...), ",")
	})
}

func TestParseTradeBillCSVLayouts(t *testing.T) {
	base := fixture(t, "trade_detail.csv")
	cases := []struct {
		name string
		data []byte
	}{
		{"GBK", gbk(t, base)},
		{"UTF-8", []byte(base)},
		{"UTF-8 with a byte-order mark", append([]byte{0xEF, 0xBB, 0xBF}, base...)},
		{"CRLF", gbk(t, strings.ReplaceAll(base, "\n", "\r\n"))},
		{"no final line break", gbk(t, strings.TrimSuffix(base, "\n"))},
		{"half-width brackets in the header", gbk(t, strings.NewReplacer("（", "(", "）", ")").Replace(base))},
		{"spaced header names", gbk(t, edit(t, base, "订单金额（元）", " 订单金额 （元） ", "支付宝交易号,", "支付宝交易号\t,"))},
		{"reordered and extra columns", gbk(t, permute(base))},
		{"quoted cells", gbk(t, edit(t, base, ",拿铁咖啡,", `,"拿铁,""咖啡""",`, ",-0.10,", `,"-0.10",`))},
		{"trailing commas", gbk(t, lines(base, func(n int, l string) string {
			if n >= 5 && n <= 10 {
				return l + ","
			}
			return l
		}))},
		{"blank lines", gbk(t, lines(base, func(n int, l string) string {
			if n == 7 || n == 11 {
				return "\r\n" + l + "\n,,,,"
			}
			return l
		}))},
		{"footer without the end marker", gbk(t, edit(t, base, "#-----------------------------------------业务明细列表结束------------------------------------\n", ""))},
		{"amounts with a thousands separator", gbk(t, edit(t, base,
			"-0.60,", `"-0.60",`, "#交易合计：3笔，商家实收共148.50元", "#交易合计：3笔，商家实收共1,48.50元"))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, tot, err := parseCSV(c.data)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			checkRecords(t, recs, tot)
		})
	}

	t.Run("quoted cell kept whole in Raw", func(t *testing.T) {
		recs, _, err := parseCSV(gbk(t, edit(t, base, ",拿铁咖啡,", `,"拿铁,""咖啡""",`)))
		if err != nil {
			t.Fatal(err)
		}
		if got := recs[0].Raw["商品名称"]; got != `拿铁,"咖啡"` {
			t.Errorf("商品名称 = %q", got)
		}
	})
	t.Run("reordered columns keep their names in Raw", func(t *testing.T) {
		recs, _, err := parseCSV(gbk(t, permute(base)))
		if err != nil {
			t.Fatal(err)
		}
		if recs[2].Raw["新增列"] != "x8" || recs[2].Raw["商家实收（元）"] != "100.00" {
			t.Errorf("Raw = %v", recs[2].Raw)
		}
	})
}

func TestParseTradeBillCSVWithoutRefunds(t *testing.T) {
	s := lines(fixture(t, "trade_detail.csv"), func(n int, l string) string {
		if n == 9 || n == 10 || n == 13 {
			return "#"
		}
		return l
	})
	recs, tot, err := parseCSV(gbk(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || tot != (channels.Totals{Payments: 3, PaymentAmount: 14850, Fees: 89}) {
		t.Errorf("got %d records, totals %+v", len(recs), tot)
	}
}

func TestParseTradeBillCSVMerchantPaidAll(t *testing.T) {
	// A breakfast paid entirely with the merchant's own voucher: the merchant
	// received nothing, so Amount is 0, and the footer agrees.
	s := edit(t, fixture(t, "trade_detail.csv"),
		"18.50,16.50,0.00,0.00,0.00,2.00,0.00,满减券", "18.50,0.00,0.00,0.00,0.00,0.00,18.50,免单券",
		"商家实收共148.50元", "商家实收共132.00元")
	recs, tot, err := parseCSV(gbk(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if recs[1].Amount != 0 || recs[1].Raw["订单金额（元）"] != "18.50" || tot.PaymentAmount != 13200 {
		t.Errorf("record %+v, totals %+v", recs[1], tot)
	}
}

func TestParseTradeBillCSVRefunds(t *testing.T) {
	// A refund without a request number takes the merchant order number, as
	// Alipay does for a refund requested without out_request_no.
	recs, _, err := parseCSV(gbk(t, edit(t, fixture(t, "trade_detail.csv"), "RF20260301000001\t,", "\t,")))
	if err != nil {
		t.Fatal(err)
	}
	if r := recs[3]; r.ChannelRef != "2026030122001411110500000001/PF20260301000001" || r.RefundNo != "PF20260301000001" {
		t.Errorf("refund = %s / %s", r.ChannelRef, r.RefundNo)
	}
}

func TestParseTradeBillCSVRefusals(t *testing.T) {
	base := fixture(t, "trade_detail.csv")
	cut := func(from int) string {
		return lines(base, func(n int, l string) string {
			if n >= from {
				return "#"
			}
			return l
		})
	}
	cases := []struct {
		name string
		data string
		line int
		part string
	}{
		{"payment count", edit(t, base, "#交易合计：3笔", "#交易合计：4笔"), 12, "says 4 payments but lists 3"},
		{"payment sum", edit(t, base, "商家实收共148.50元", "商家实收共148.60元"), 12, "received 148.60 yuan but its payment rows add up to 148.50"},
		{"refund count", edit(t, base, "#退款合计：2笔", "#退款合计：1笔"), 13, "says 1 refunds but lists 2"},
		{"refund sum", edit(t, base, "商家实收退款共-72.00元", "商家实收退款共-71.00元"), 13, "71.00 yuan was refunded"},
		{"a row changed", edit(t, base, "100.00,100.00,", "100.00,100.10,"), 12, "add up to 148.60"},
		{"a row dropped", lines(base, func(n int, l string) string {
			if n == 7 {
				return ""
			}
			return l
		}), 12, "says 3 payments but lists 2"},
		{"no footer", cut(11), 14, "missing"},
		{"no refund footer", edit(t, base, "#退款合计：2笔，商家实收退款共-72.00元，商家优惠退款共0.00元\n", ""), 13, "refund total line"},
		{"cut inside the table", strings.Join(strings.SplitAfter(base, "\n")[:8], ""), 8, "missing"},
		{"unreadable footer", edit(t, base, "#交易合计：3笔", "#交易合计：三笔"), 12, "cannot be read"},
		{"footer twice", edit(t, base, "#导出时间", "#交易合计：3笔，商家实收共148.50元\n#导出时间"), 14, "appears twice"},
		{"malformed amount", edit(t, base, "18.50,16.50", "18.5O,16.50"), 7, "订单金额(元) is not an amount"},
		{"three decimals", edit(t, base, "18.50,16.50", "18.50,16.505"), 7, "商家实收(元) is not an amount"},
		{"empty amount", edit(t, base, "18.50,16.50", ",16.50"), 7, "not an amount"},
		{"malformed fee", edit(t, base, "-0.10,", "-0.1x,"), 7, "服务费(元) is not an amount"},
		{"negative payment", edit(t, base, "18.50,16.50", "-18.50,16.50"), 7, "negative"},
		{"zero amount", edit(t, base, "18.50,16.50", "0.00,16.50"), 7, "zero"},
		{"bad time", edit(t, base, "2026-03-01 10:02:15", "2026/03/01 10:02:15"), 7, "完成时间 is not a time"},
		{"no trade number", edit(t, base, "2026030122001411110500000002\t,", "\t,"), 7, "no 支付宝交易号"},
		{"unknown business type", edit(t, base, "交易\t,早餐", "冻结\t,早餐"), 7, "Unknown 业务类型"},
		{"short row", edit(t, base, ",-0.10,0.00,会员日", ""), 7, "has 22 cells"},
		{"long row", edit(t, base, ",会员日", ",会员日,x"), 7, "has 26 cells"},
		{"unclosed quote", edit(t, base, ",早餐套餐,", `,"早餐套餐,`), 7, "not closed"},
		{"row after the table", edit(t, base, "#导出时间", "2026030122001411110500000009,x,交易\n#导出时间"), 14, "follows the end"},
		{"missing column", edit(t, base, ",商家实收（元）,", ",实收,"), 5, "商家实收(元)"},
		{"duplicate column", edit(t, base, ",备注", ",商家实收(元)"), 5, "twice"},
		{"no table", strings.Join(strings.SplitAfter(base, "\n")[:4], ""), 0, "No table"},
		{"empty", "", 0, "No table"},
		// UTF-8 for the first 64 KiB (a long comment), GBK further on.
		{"mixed encodings", "#" + strings.Repeat("-", 70<<10) + "\n" + edit(t, base, "会员日", "\xbb\xe1\xd4\xb1\xc8\xd5"), 8, "not valid UTF-8"},
		{"long line", edit(t, base, "会员日", strings.Repeat("长", 100<<10)), 7, "longer than 256 KiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := []byte(c.data) // these two are UTF-8 on purpose
			if c.name != "mixed encodings" && c.name != "long line" {
				data = gbk(t, c.data)
			}
			_, _, err := parseCSV(data)
			requireRefusal(t, err, c.line, c.part)
		})
	}
}

func TestParseTradeBillStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	_, err := alipay.ParseTradeBillCSV(strings.NewReader(fixture(t, "trade_detail.csv")), func(channels.Record) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Errorf("err = %v after %d records, want the callback's error after 2", err, n)
	}
	// A nil callback only checks the file.
	if tot, err := alipay.ParseTradeBillCSV(strings.NewReader(fixture(t, "trade_detail.csv")), nil); err != nil || tot != wantTotals {
		t.Errorf("nil callback: %+v, %v", tot, err)
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestParseTradeBillCSVReadError(t *testing.T) {
	boom := errors.New("connection reset")
	_, err := alipay.ParseTradeBillCSV(io.MultiReader(strings.NewReader(fixture(t, "trade_detail.csv")[:300]), failingReader{boom}), nil)
	var be *channels.BillError
	if !errors.Is(err, boom) || errors.As(err, &be) {
		t.Errorf("err = %v; want the reader's error, not a refusal", err)
	}
}

func FuzzParseTradeBillCSV(f *testing.F) {
	base := fixture(f, "trade_detail.csv")
	f.Add([]byte(base))
	f.Add(gbk(f, base))
	f.Add(gbk(f, permute(base)))
	f.Add([]byte(base[:len(base)/2]))
	f.Add([]byte("支付宝交易号,业务类型,完成时间,订单金额(元),商家实收(元)\n1,交易,2026-03-01 00:00:00,\"1.00\",1.00\n#交易合计：1笔，商家实收共1.00元\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var recs []channels.Record
		tot, err := alipay.ParseTradeBillCSV(bytes.NewReader(data), collect(&recs))
		if err != nil {
			var be *channels.BillError
			if !errors.As(err, &be) {
				t.Fatalf("err = %v (%T), want a *channels.BillError", err, err)
			}
			return
		}
		var sum channels.Totals
		for _, r := range recs {
			if r.Amount < 0 || r.Fee < 0 || r.ChannelRef == "" || r.Currency != "CNY" || r.Status != channels.StatusSucceeded {
				t.Fatalf("bad record %+v", r)
			}
			switch r.Kind {
			case channels.KindPayment:
				sum.Payments++
				sum.PaymentAmount += r.Amount
				sum.Fees += r.Fee
			case channels.KindRefund:
				sum.Refunds++
				sum.RefundAmount += r.Amount
				sum.Fees -= r.Fee
			default:
				t.Fatalf("bad kind %+v", r)
			}
		}
		if sum != tot {
			t.Fatalf("totals %+v, records add up to %+v", tot, sum)
		}
	})
}

// benchBill makes a GBK detail CSV of n rows, one in ten a refund.
func benchBill(b *testing.B, n int) []byte {
	var sb strings.Builder
	sb.WriteString(strings.Join(strings.SplitAfter(fixture(b, "trade_detail.csv"), "\n")[:5], ""))
	var pays, refunds int
	var received, refunded int64
	for i := range n {
		trade := fmt.Sprintf("2026030122001411%012d", i)
		order := fmt.Sprintf("PF2026030100%06d", i)
		fen := int64(100 + i%9900)
		amount := fmt.Sprintf("%d.%02d", fen/100, fen%100)
		typ, reqNo, sign := "交易", "", ""
		if i%10 == 9 {
			typ, reqNo, sign = "退款", "RF"+order[2:], "-"
			refunds++
			refunded += fen
		} else {
			pays++
			received += fen
		}
		fmt.Fprintf(&sb, "%s\t,%s\t,%s\t,商品%d,2026-03-01 09:15:02,2026-03-01 09:15:09,S001\t,南山店\t,op01\t,T01\t,张*(138****%04d)\t,%s%s,%s%s,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,%s\t,-0.01,0.00,\n",
			trade, order, typ, i, i%10000, sign, amount, sign, amount, reqNo)
	}
	fmt.Fprintf(&sb, "#-----------------------------------------业务明细列表结束------------------------------------\n")
	fmt.Fprintf(&sb, "#交易合计：%d笔，商家实收共%d.%02d元，商家优惠共0.00元\n", pays, received/100, received%100)
	fmt.Fprintf(&sb, "#退款合计：%d笔，商家实收退款共-%d.%02d元，商家优惠退款共0.00元\n", refunds, refunded/100, refunded%100)
	sb.WriteString("#导出时间：[2026年03月02日 06:12:45]\n")
	return gbk(b, sb.String())
}

func BenchmarkParseTradeBillCSV(b *testing.B) {
	const rows = 100_000
	data := benchBill(b, rows)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if _, err := alipay.ParseTradeBillCSV(bytes.NewReader(data), func(channels.Record) error { n++; return nil }); err != nil || n != rows {
			b.Fatalf("parsed %d rows: %v", n, err)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
