package generic

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"payfuse/channels"
)

// unionPayMapping reads the sample layout below: a title line with the
// merchant id, a header, detail rows, a 合计 row under the detail columns.
func unionPayMapping() Mapping {
	return Mapping{
		Columns: map[string][]string{
			FieldChannelRef: {"查询流水号", "交易流水号"}, // the second is an older name
			FieldOrderNo:    {"商户订单号"},
			FieldAmount:     {"交易金额"},
			FieldStatus:     {"应答码"},
			FieldTime:       {"交易时间"},
			FieldKind:       {"交易类型"},
			FieldFee:        {"商户手续费"},
			FieldPaymentRef: {"原交易查询流水号"},
			FieldAccountRef: {"商户代码"},
		},
		Statuses:      map[string]string{"00": "succeeded", "06": "failed", "02": "pending"},
		RefundWords:   []string{"04"},
		PaymentWords:  []string{"01"},
		TimeLayouts:   []string{"yyyy-MM-dd HH:mm:ss", "yyyyMMddHHmmss"},
		AccountLabels: []string{"商户代码"},
		Footer:        &Footer{Marker: "合计", CountColumn: "商户订单号", AmountColumn: "交易金额"},
	}
}

const sample = "\uFEFF银联商户交易明细\r\n" +
	"商户代码：898110000000001\r\n" +
	"# 清算日期 2026-03-01\r\n" +
	"\r\n" +
	"查询流水号,商户订单号,交易类型,交易金额,商户手续费,应答码,交易时间,原交易查询流水号,商户代码\r\n" +
	"`512603010915020000001,`ORD-1,01,100.00,0.60,00,2026-03-01 09:15:02,,898110000000001\t\r\n" +
	"=\"512603011000000000002\",ORD-2,01,\"1,250.50\",7.50,00,20260301100000,,898110000000001\r\n" +
	"512603011200000000003,ORD-3,01,8.00,,06,2026-03-01 12:00:00,,898110000000001\r\n" +
	"512603011300000000004,RF-1,04,-100.00,-0.60,00,2026-03-01 13:00:00,512603010915020000001,898110000000001\r\n" +
	"合计,4笔,,1258.50,,,,,\r\n" +
	"# 导出时间 2026-03-02 06:00:00\r\n"

func parseAll(t *testing.T, m Mapping, data string) ([]channels.Record, channels.Totals, error) {
	t.Helper()
	var recs []channels.Record
	tot, err := Parse(strings.NewReader(data), m, "unionpay", func(r channels.Record) error {
		recs = append(recs, r)
		return nil
	})
	return recs, tot, err
}

func TestParseUnionPaySample(t *testing.T) {
	recs, tot, err := parseAll(t, unionPayMapping(), sample)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("got %d records", len(recs))
	}
	r := recs[0]
	if r.ChannelRef != "512603010915020000001" || r.MerchantOrderNo != "ORD-1" || r.Amount != 10000 || r.Fee != 60 || !r.FeeKnown ||
		r.Status != "succeeded" || r.Kind != "payment" || r.AccountRef != "898110000000001" || r.Channel != "unionpay" {
		t.Fatalf("first record: %+v", r)
	}
	if want := time.Date(2026, 3, 1, 1, 15, 2, 0, time.UTC); !r.PaidAt.Equal(want) || !r.CreatedAt.Equal(want) {
		t.Fatalf("times in UTC: paid %v created %v, want %v", r.PaidAt, r.CreatedAt, want)
	}
	if r.Raw["查询流水号"] != "512603010915020000001" || r.Raw["商户代码"] != "898110000000001" {
		t.Fatalf("raw: %v", r.Raw)
	}
	if recs[1].ChannelRef != "512603011000000000002" || recs[1].Amount != 125050 {
		t.Fatalf("Excel-guarded ref and quoted thousands: %+v", recs[1])
	}
	if !recs[1].PaidAt.Equal(time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("second layout: %v", recs[1].PaidAt)
	}
	if recs[2].Status != "failed" || !recs[2].PaidAt.IsZero() || recs[2].FeeKnown {
		t.Fatalf("failed payment: %+v", recs[2])
	}
	rf := recs[3]
	if rf.Kind != "refund" || rf.Amount != 10000 || rf.Fee != 60 || rf.PaymentRef != "512603010915020000001" || rf.RefundedAt.IsZero() {
		t.Fatalf("refund: %+v", rf)
	}
	want := channels.Totals{Payments: 3, Refunds: 1, PaymentAmount: 10000 + 125050 + 800, RefundAmount: 10000, Fees: 60 + 750 - 60}
	if tot != want {
		t.Fatalf("totals %+v, want %+v", tot, want)
	}
}

func refusedAt(t *testing.T, err error, line int, contains string) {
	t.Helper()
	var be *channels.BillError
	if !errors.As(err, &be) {
		t.Fatalf("want a refusal, got %v", err)
	}
	if be.Line != line || !strings.Contains(be.Message.EN, contains) || be.Message.ZH == "" || strings.Contains(be.Error()+be.Message.ZH, "%!") {
		t.Fatalf("refusal %q (zh %q) at line %d, want line %d containing %q", be.Message.EN, be.Message.ZH, be.Line, line, contains)
	}
}

func TestParseRefusals(t *testing.T) {
	m := unionPayMapping()
	cases := []struct {
		name, data string
		mapping    func(*Mapping)
		line       int
		contains   string
	}{
		{name: "footer amount disagrees", data: strings.Replace(sample, "合计,4笔,,1258.50", "合计,4笔,,1258.51", 1), line: 10, contains: "1258.51"},
		{name: "footer count disagrees", data: strings.Replace(sample, "合计,4笔,", "合计,5笔,", 1), line: 10, contains: "5 transactions"},
		{name: "footer missing", data: strings.Replace(sample, "合计,4笔,,1258.50,,,,,\r\n", "", 1), line: 10, contains: "missing"},
		{name: "malformed amount", data: strings.Replace(sample, "8.00", "8.0O", 1), line: 8, contains: "8.0O"},
		{name: "too many decimals", data: strings.Replace(sample, "8.00", "8.001", 1), line: 8, contains: "8.001"},
		{name: "unknown status", data: strings.Replace(sample, ",06,", ",99,", 1), line: 8, contains: "99"},
		{name: "missing status column", data: strings.Replace(sample, "应答码", "结果", 1), line: 5, contains: "status"},
		{name: "missing required column", data: strings.Replace(sample, "交易金额", "金额x", 1), line: 11, contains: "No header row"},
		{name: "bad time", data: strings.Replace(sample, "2026-03-01 12:00:00", "01/03/2026 12:00", 1), line: 8, contains: "01/03/2026"},
		{name: "row after footer", data: sample + "512603011300000000009,X,01,1.00,,00,2026-03-01 13:00:00,,\r\n", line: 12, contains: "follows the summary"},
		{name: "two merchant ids", data: strings.Replace(sample, "898110000000001\t", "898110000000002", 1), line: 6, contains: "898110000000002"},
		{name: "negative payment", data: strings.Replace(sample, ",8.00,", ",-8.00,", 1), line: 8, contains: "negative"},
		{name: "short row", data: strings.Replace(sample, "8.00,,06,2026-03-01 12:00:00,,898110000000001", "8.00,,06", 1), line: 8, contains: "cells"},
		{name: "unknown kind", data: strings.Replace(sample, "ORD-3,01", "ORD-3,31", 1), line: 8, contains: "31"},
		{name: "unclosed quote", data: strings.Replace(sample, `"1,250.50"`, `"1,250.50`, 1), line: 7, contains: "quoted"},
		{name: "fen unit refuses decimals", data: sample, mapping: func(m *Mapping) { m.AmountUnit = UnitFen }, line: 6, contains: "whole number"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mm := m
			if c.mapping != nil {
				c.mapping(&mm)
			}
			recs := 0
			_, err := Parse(strings.NewReader(c.data), mm, "unionpay", func(channels.Record) error { recs++; return nil })
			refusedAt(t, err, c.line, c.contains)
		})
	}
}

func TestParseGBKAndOldHeaders(t *testing.T) {
	m := unionPayMapping()
	m.Encoding = EncodingGBK
	old := strings.Replace(strings.TrimPrefix(sample, "\uFEFF"), "查询流水号,", "交易流水号,", 1) // an older file's name
	gbk, err := simplifiedchinese.GBK.NewEncoder().String(old)
	if err != nil {
		t.Fatal(err)
	}
	recs, tot, err := parseAll(t, m, gbk)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || tot.Payments != 3 || recs[0].Raw["交易流水号"] == "" {
		t.Fatalf("GBK with old header: %d records, %+v, raw %v", len(recs), tot, recs[0].Raw)
	}
	// Auto-detection reads the same bytes as GBK too.
	m.Encoding = ""
	if recs, _, err := parseAll(t, m, gbk); err != nil || len(recs) != 4 {
		t.Fatalf("auto encoding: %d records, %v", len(recs), err)
	}
	// Declared UTF-8 refuses GBK bytes with a clear message.
	m.Encoding = EncodingUTF8
	_, _, err = parseAll(t, m, gbk)
	refusedAt(t, err, 1, "UTF-8")
}

func TestParseTabsCommentsSummaryHeader(t *testing.T) {
	// Tab-separated, trailing tabs, # comments, a status column with words, a
	// WeChat-style summary header with its values on the next line.
	m := Mapping{
		Columns: map[string][]string{
			FieldChannelRef: {"Transaction ID"}, FieldAmount: {"Amount (fen)"}, FieldStatus: {"Status"}, FieldTime: {"Time"},
			FieldOrderNo: {"Order No"}, FieldRefundNo: {"Refund No"},
		},
		Statuses:    map[string]string{"success": "succeeded", "refund": "succeeded"},
		RefundWords: []string{"REFUND"},
		AmountUnit:  UnitFen,
		Delimiter:   "\t",
		TimeLayouts: []string{"yyyy-MM-ddTHH:mm:ss"},
		TimeZone:    "UTC",
		Footer:      &Footer{Marker: "Total count", CountColumn: "Total count", AmountColumn: "Total amount"},
	}
	data := "# account 1\n" +
		"Transaction ID\tOrder No\tRefund No\tAmount（FEN）\tStatus\tTime\t\n" +
		"T1\tO1\t\t1500\tSUCCESS\t2026-03-01T10:00:00\t\n" +
		"\n" +
		"T2\tO1\tR1\t500\tREFUND\t2026-03-01T11:00:00\t\n" +
		"# end of detail\n" +
		"Total count\tTotal amount\n" +
		"2\t2000\n"
	recs, tot, err := parseAll(t, m, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[1].Kind != "refund" || recs[1].RefundNo != "R1" || recs[0].Amount != 1500 || tot.RefundAmount != 500 {
		t.Fatalf("records %+v totals %+v", recs, tot)
	}
	_, _, err = parseAll(t, m, strings.Replace(data, "2\t2000", "2\t1000", 1))
	refusedAt(t, err, 8, "1000")
	_, _, err = parseAll(t, m, strings.TrimSuffix(data, "2\t2000\n"))
	refusedAt(t, err, 7, "missing")
}

func TestParseStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	_, err := Parse(strings.NewReader(sample), unionPayMapping(), "unionpay", func(channels.Record) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("got %v", err)
	}
}

func TestParseLongLineRefused(t *testing.T) {
	data := "查询流水号,交易金额,应答码,交易时间\n" + strings.Repeat("x", maxLineBytes+10) + "\n"
	m := unionPayMapping()
	m.Columns = map[string][]string{FieldChannelRef: {"查询流水号"}, FieldAmount: {"交易金额"}, FieldStatus: {"应答码"}, FieldTime: {"交易时间"}}
	_, _, err := parseAll(t, m, data)
	refusedAt(t, err, 2, "longer than")
}

func TestValidate(t *testing.T) {
	if ps := unionPayMapping().Validate(); len(ps) != 0 {
		t.Fatalf("complete mapping: %v", ps)
	}
	var m Mapping
	fields := map[string]bool{}
	for _, p := range m.Validate() {
		fields[p.Field] = true
	}
	for _, f := range []string{FieldChannelRef, FieldAmount, FieldTime, FieldStatus} {
		if !fields[f] {
			t.Errorf("an empty mapping should ask for %s: %v", f, fields)
		}
	}
	bad := unionPayMapping()
	bad.TimeLayouts = []string{"hh:mm"}
	bad.Statuses["07"] = "paid"
	bad.TimeZone = "Mars/Olympus"
	bad.Columns[FieldFee] = []string{"交易金额"}
	fields = map[string]bool{}
	for _, p := range bad.Validate() {
		fields[p.Field] = true
	}
	for _, f := range []string{"time_layouts", "statuses", "time_zone", FieldFee} {
		if !fields[f] {
			t.Errorf("want a problem on %s: %v", f, fields)
		}
	}
}

func TestGuessAndPreview(t *testing.T) {
	res, err := Preview(strings.NewReader(sample), Mapping{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Header) != 9 || res.Header[0] != "查询流水号" || len(res.Rows) != 2 || res.Rows[0][0] != "512603010915020000001" {
		t.Fatalf("preview without mapping: header %v rows %v", res.Header, res.Rows)
	}
	if len(res.Problems) == 0 || res.Records != nil {
		t.Fatalf("an empty mapping cannot parse: %+v", res)
	}
	g := Guess(res.Header, res.Rows, "unionpay")
	for f, want := range map[string]string{FieldChannelRef: "查询流水号", FieldOrderNo: "商户订单号", FieldAmount: "交易金额",
		FieldStatus: "应答码", FieldTime: "交易时间", FieldKind: "交易类型", FieldFee: "商户手续费", FieldPaymentRef: "原交易查询流水号", FieldAccountRef: "商户代码"} {
		if got := g.Column(f); len(got) != 1 || got[0] != want {
			t.Errorf("guess %s = %v, want %s", f, got, want)
		}
	}
	if g.Statuses["00"] != "succeeded" || g.AmountUnit != UnitYuan || g.TimeLayouts[0] != "yyyy-MM-dd HH:mm:ss" {
		t.Errorf("guess: %+v", g)
	}
	g.Footer = GuessFooter(res.Header, res.Footer)
	if g.Footer == nil || *g.Footer != (Footer{Marker: "合计", CountColumn: "商户订单号", AmountColumn: "交易金额"}) {
		t.Fatalf("footer guess: %+v from %v", g.Footer, res.Footer)
	}
	// The guess is a complete mapping: the preview parses the sample.
	res, err = Preview(strings.NewReader(sample), g, 2)
	if err != nil || len(res.Problems) != 0 {
		t.Fatal(err, res.Problems)
	}
	if res.Err != nil || len(res.Records) != 2 || res.Totals.Payments+res.Totals.Refunds != 4 {
		t.Fatalf("preview with the guess: err %v, %d records, %+v", res.Err, len(res.Records), res.Totals)
	}
	// A cut-short sample previews, noting the missing summary.
	m := unionPayMapping()
	cut := sample[:strings.Index(sample, "512603011300000000004")]
	res, err = Preview(strings.NewReader(cut), m, 10)
	if err != nil || res.Err != nil || !res.NoFooter || len(res.Records) != 3 {
		t.Fatalf("cut sample: %v %+v", err, res)
	}
	// A problem shows as the first refusal.
	res, _ = Preview(strings.NewReader(strings.Replace(sample, "8.00", "eight", 1)), m, 10)
	if res.Err == nil || res.Err.Line != 8 {
		t.Fatalf("preview problem: %+v", res.Err)
	}
}

func TestParseBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("large file")
	}
	var b bytes.Buffer
	b.WriteString("查询流水号,交易金额,应答码,交易时间\n")
	const n = 200000
	for i := range n {
		fmt.Fprintf(&b, "5126030109150%08d", i)
		b.WriteString(",1.00,00,2026-03-01 09:15:02\n")
	}
	m := unionPayMapping()
	m.Footer = nil
	m.Columns = map[string][]string{FieldChannelRef: {"查询流水号"}, FieldAmount: {"交易金额"}, FieldStatus: {"应答码"}, FieldTime: {"交易时间"}}
	m.PaymentWords, m.RefundWords = nil, nil
	count := 0
	tot, err := Parse(&b, m, "unionpay", func(channels.Record) error { count++; return nil })
	if err != nil || count != n || tot.PaymentAmount != n*100 {
		t.Fatalf("%d rows, %+v, %v", count, tot, err)
	}
}
