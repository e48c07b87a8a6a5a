// Package generic reads statement files of any channel that has no native
// parser (UnionPay, and anything else exported as CSV) through a column
// mapping the merchant's operators save per channel account: which header
// names hold the order number, the channel's id, the amount, the status, the
// time…, how status words map to PayFuse's vocabulary, how times and
// amounts are written, and how the file's summary line is recognised.
//
// Columns are always found by header name (case, spacing and full-width
// brackets ignored), never by position. Nothing here speaks HTTP or touches
// the database.
package generic

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"payfuse/channels"
)

// Canonical fields a mapping can name columns for.
const (
	FieldOrderNo    = "order_no"    // merchant order number
	FieldChannelRef = "channel_ref" // the channel's transaction id (a refund's own id on refund rows)
	FieldAmount     = "amount"
	FieldStatus     = "status"
	FieldTime       = "time"         // when it was paid / refunded (or happened)
	FieldCreated    = "created_time" // when the order was created, when the file says
	FieldKind       = "kind"         // a transaction type column telling refunds from payments
	FieldFee        = "fee"
	FieldRefundNo   = "refund_no"   // refunds: the merchant's refund number
	FieldPaymentRef = "payment_ref" // refunds: the channel id of the refunded payment
	FieldMethod     = "method"
	FieldPayer      = "payer"
	FieldAccountRef = "account_ref" // the channel merchant id (UnionPay merId), checked against the account
	FieldCurrency   = "currency"
)

// Fields lists the canonical fields in the order the mapping form shows them.
var Fields = []string{
	FieldChannelRef, FieldOrderNo, FieldAmount, FieldStatus, FieldTime, FieldCreated, FieldKind, FieldFee,
	FieldRefundNo, FieldPaymentRef, FieldMethod, FieldPayer, FieldAccountRef, FieldCurrency,
}

// Amount units.
const (
	UnitYuan = "yuan" // decimal text with at most two decimals: 12.34
	UnitFen  = "fen"  // integer minor units: 1234
)

// Encodings.
const (
	EncodingAuto = "auto" // UTF-8 when the start of the file is UTF-8 (or has a BOM), GBK otherwise
	EncodingUTF8 = "utf-8"
	EncodingGBK  = "gbk"
)

// DefaultTimeLayout is the layout a mapping without one uses.
const DefaultTimeLayout = "yyyy-MM-dd HH:mm:ss"

// DefaultTimeZone is the zone times are read in when a mapping names none.
const DefaultTimeZone = "Asia/Shanghai"

// Mapping says how to read one channel account's CSV statements. It is saved
// as JSON, one per channel account.
type Mapping struct {
	// Columns names, per canonical field, the header names that hold it; the
	// first one the file has is used, so older column names can follow the
	// current one.
	Columns map[string][]string `json:"columns"`
	// Statuses maps a native status word (compared trimmed, case-insensitive)
	// to a canonical status. A word not in the table refuses the file.
	Statuses map[string]string `json:"statuses,omitempty"`
	// FixedStatus is every row's status when the file has no status column
	// (a file of settled transactions only).
	FixedStatus string `json:"fixed_status,omitempty"`
	// RefundWords are the words of the kind column that mark a refund row;
	// without a kind column they are looked for in the status column.
	RefundWords []string `json:"refund_words,omitempty"`
	// PaymentWords, when given, are the kind column's words for payments: any
	// other word refuses the file. Without them, every non-refund word is a payment.
	PaymentWords []string `json:"payment_words,omitempty"`
	// NegativeRefunds: a negative amount marks a refund row. Otherwise a
	// negative amount is refused on a payment and read as its magnitude on a refund.
	NegativeRefunds bool `json:"negative_refunds,omitempty"`
	// Methods maps the method column's words to canonical methods (unknown words give "").
	Methods map[string]string `json:"methods,omitempty"`
	// FixedMethod is every row's method when the file has no method column.
	FixedMethod string `json:"fixed_method,omitempty"`
	// TimeLayouts are the ways times are written, as yyyy MM dd HH mm ss (SSS
	// for milliseconds); tried in order. A layout must include the year.
	TimeLayouts []string `json:"time_layouts,omitempty"`
	// TimeZone is the IANA zone the times are written in (Asia/Shanghai by default).
	TimeZone string `json:"time_zone,omitempty"`
	// AmountUnit is yuan (decimal, default) or fen (integer), for amounts and fees.
	AmountUnit string `json:"amount_unit,omitempty"`
	// Currency is the ISO 4217 code of every row when there is no currency
	// column; "" means the merchant's currency.
	Currency string `json:"currency,omitempty"`
	// Encoding is auto (default), utf-8 or gbk.
	Encoding string `json:"encoding,omitempty"`
	// Delimiter separates cells: "," (default), "\t", "|" or ";".
	Delimiter string `json:"delimiter,omitempty"`
	// AccountLabels are labels of a line before the table that names the
	// channel merchant id (for example "商户代码：898110000000001"): the id
	// found after the label becomes every row's account reference.
	AccountLabels []string `json:"account_labels,omitempty"`
	// Footer, when set, says how the file's summary is recognised; the rows
	// must then agree with it, and a file without it is refused as cut short.
	Footer *Footer `json:"footer,omitempty"`
}

// Footer describes a statement's summary line. The line whose first cell
// starts with Marker (a "#" comment line too) is the summary. The count and
// amount are read from its cells under the columns named CountColumn and
// AmountColumn: either columns of the table's own header (a "合计" row under
// the detail columns), or — when the marker line itself holds those names —
// the columns of that summary header, read from the line after it.
//
// The count must equal the number of detail rows; the amount must equal the
// sum of the amount column as the rows write it (so a file that writes
// refunds as negative amounts has a net total, one that writes them positive
// a gross one), in the mapping's amount unit.
type Footer struct {
	Marker       string `json:"marker"`
	CountColumn  string `json:"count_column,omitempty"`
	AmountColumn string `json:"amount_column,omitempty"`
}

// Problem is one thing wrong with a mapping; Field names the form field.
type Problem struct {
	Field   string
	Message channels.Text
}

func problem(field, en, zh string, args ...any) Problem {
	return Problem{Field: field, Message: channels.Text{EN: fmt.Sprintf(en, args...), ZH: fmt.Sprintf(zh, args...)}}
}

var paymentStatuses = []string{
	channels.StatusPending, channels.StatusProcessing, channels.StatusSucceeded,
	channels.StatusFailed, channels.StatusClosed, channels.StatusRevoked,
}

// Statuses lists the canonical statuses a status word may map to.
func Statuses() []string { return slices.Clone(paymentStatuses) }

var methods = []string{channels.MethodScan, channels.MethodQuick, channels.MethodH5, channels.MethodApp}

// Column returns the header names mapped for field (nil when none).
func (m Mapping) Column(field string) []string {
	var out []string
	for _, n := range m.Columns[field] {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// Validate reports what is missing or wrong in a mapping; nil means it can
// read files. The required fields are the channel reference, the amount, a
// time and a status (a column or a fixed status).
func (m Mapping) Validate() []Problem {
	var ps []Problem
	for _, f := range []string{FieldChannelRef, FieldAmount, FieldTime} {
		if len(m.Column(f)) == 0 {
			ps = append(ps, Problem{Field: f, Message: channels.Text{
				EN: fmt.Sprintf("Choose the column that holds the %s.", fieldText(f).EN),
				ZH: fmt.Sprintf("请选择存放%s的列。", fieldText(f).ZH)}})
		}
	}
	for f := range m.Columns {
		if !slices.Contains(Fields, f) {
			ps = append(ps, problem(f, "Unknown field %q.", "未知字段 %q。", f))
		}
	}
	seen := map[string]string{}
	for _, f := range Fields {
		for _, n := range m.Column(f) {
			k := normHeader(n)
			if other, dup := seen[k]; dup && other != f {
				ps = append(ps, Problem{Field: f, Message: channels.Text{
					EN: fmt.Sprintf("The column %s is chosen for both the %s and the %s.", n, fieldText(other).EN, fieldText(f).EN),
					ZH: fmt.Sprintf("列 %s 同时被选为%s和%s。", n, fieldText(other).ZH, fieldText(f).ZH)}})
			}
			seen[k] = f
		}
	}
	switch {
	case len(m.Column(FieldStatus)) == 0 && m.FixedStatus == "":
		ps = append(ps, problem(FieldStatus, "Choose the status column, or the status every row has.", "请选择状态列，或指定所有行的统一状态。"))
	case m.FixedStatus != "" && !slices.Contains(paymentStatuses, m.FixedStatus):
		ps = append(ps, problem("fixed_status", "Unknown status %q.", "未知状态 %q。", m.FixedStatus))
	case len(m.Column(FieldStatus)) > 0 && len(m.Statuses) == 0:
		ps = append(ps, problem("statuses", "Say which canonical status each status word means.", "请说明每个状态词对应的标准状态。"))
	}
	words := map[string]bool{}
	for w, s := range m.Statuses {
		if strings.TrimSpace(w) == "" {
			ps = append(ps, problem("statuses", "A status word is empty.", "有状态词为空。"))
		}
		if !slices.Contains(paymentStatuses, s) {
			ps = append(ps, problem("statuses", "The status word %q maps to unknown status %q.", "状态词 %q 对应了未知状态 %q。", w, s))
		}
		if k := foldWord(w); words[k] {
			ps = append(ps, problem("statuses", "The status word %q is listed twice.", "状态词 %q 重复出现。", w))
		} else {
			words[k] = true
		}
	}
	for w, s := range m.Methods {
		if !slices.Contains(methods, s) {
			ps = append(ps, problem("methods", "The method word %q maps to unknown method %q.", "支付方式词 %q 对应了未知方式 %q。", w, s))
		}
	}
	if m.FixedMethod != "" && !slices.Contains(methods, m.FixedMethod) {
		ps = append(ps, problem("fixed_method", "Unknown method %q.", "未知支付方式 %q。", m.FixedMethod))
	}
	if len(m.Column(FieldKind)) > 0 && len(m.RefundWords) == 0 && len(m.PaymentWords) == 0 {
		ps = append(ps, problem("refund_words", "Say which words of the type column mark refunds.", "请说明交易类型列中哪些词表示退款。"))
	}
	for _, l := range m.TimeLayouts {
		if _, err := goLayout(l); err != nil {
			ps = append(ps, Problem{Field: "time_layouts", Message: channels.Text{
				EN: fmt.Sprintf("The time layout %q is not usable: %s.", l, err.EN),
				ZH: fmt.Sprintf("时间格式 %q 无法使用：%s。", l, err.ZH)}})
		}
	}
	if _, err := m.location(); err != nil {
		ps = append(ps, problem("time_zone", "Unknown time zone %q (use a name like Asia/Shanghai).", "未知时区 %q（请使用 Asia/Shanghai 这样的名称）。", m.TimeZone))
	}
	switch m.AmountUnit {
	case "", UnitYuan, UnitFen:
	default:
		ps = append(ps, problem("amount_unit", "The amount unit is yuan or fen, not %q.", "金额单位应为元或分，而不是 %q。", m.AmountUnit))
	}
	switch m.Encoding {
	case "", EncodingAuto, EncodingUTF8, EncodingGBK:
	default:
		ps = append(ps, problem("encoding", "The encoding is auto, utf-8 or gbk, not %q.", "编码应为 auto、utf-8 或 gbk，而不是 %q。", m.Encoding))
	}
	switch m.Delimiter {
	case "", ",", "\t", "|", ";":
	default:
		ps = append(ps, problem("delimiter", "The delimiter is a comma, a tab, | or ;.", "分隔符应为逗号、制表符、| 或 ;。"))
	}
	if m.Currency != "" && !currencyOK(m.Currency) {
		ps = append(ps, problem("currency", "The currency is a three-letter ISO 4217 code like CNY.", "币种应为 CNY 这样的三位 ISO 4217 代码。"))
	}
	if f := m.Footer; f != nil {
		if strings.TrimSpace(f.Marker) == "" {
			ps = append(ps, problem("footer_marker", "Say how the summary line starts (for example 合计 or Total).", "请说明汇总行以什么开头（如“合计”或 Total）。"))
		}
		if strings.TrimSpace(f.CountColumn) == "" && strings.TrimSpace(f.AmountColumn) == "" {
			ps = append(ps, problem("footer_count", "Choose the summary's count column, its amount column, or both.", "请选择汇总行的笔数列、金额列或两者。"))
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Field < ps[j].Field })
	return ps
}

func currencyOK(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// Normalize trims names and words and drops empty entries, so that what is
// saved is what is used.
func (m Mapping) Normalize() Mapping {
	out := m
	out.Columns = map[string][]string{}
	for f := range m.Columns {
		if names := m.Column(f); len(names) > 0 {
			out.Columns[f] = slices.Compact(names)
		}
	}
	out.Statuses = trimMap(m.Statuses)
	out.Methods = trimMap(m.Methods)
	out.RefundWords = trimList(m.RefundWords)
	out.PaymentWords = trimList(m.PaymentWords)
	out.AccountLabels = trimList(m.AccountLabels)
	out.TimeLayouts = trimList(m.TimeLayouts)
	out.TimeZone = strings.TrimSpace(m.TimeZone)
	out.Currency = strings.ToUpper(strings.TrimSpace(m.Currency))
	if f := m.Footer; f != nil {
		ft := Footer{Marker: strings.TrimSpace(f.Marker), CountColumn: strings.TrimSpace(f.CountColumn), AmountColumn: strings.TrimSpace(f.AmountColumn)}
		out.Footer = &ft
		if ft == (Footer{}) {
			out.Footer = nil
		}
	}
	return out
}

func trimMap(in map[string]string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		if k = strings.TrimSpace(k); k != "" {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

func trimList(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func (m Mapping) location() (*time.Location, error) {
	name := m.TimeZone
	if name == "" {
		name = DefaultTimeZone
	}
	loc, err := time.LoadLocation(name)
	if err != nil && name == DefaultTimeZone {
		return time.FixedZone("CST", 8*3600), nil
	}
	return loc, err
}

// goLayout turns a yyyy-MM-dd HH:mm:ss style pattern into a Go time layout.
func goLayout(p string) (string, *channels.Text) {
	if strings.TrimSpace(p) == "" {
		return "", &channels.Text{EN: "it is empty", ZH: "格式为空"}
	}
	l := layoutTokens.Replace(p)
	if !strings.Contains(p, "yy") || !strings.Contains(p, "M") || !strings.Contains(p, "d") {
		return "", &channels.Text{EN: "it needs the year (yyyy), month (MM) and day (dd)", ZH: "需包含年（yyyy）、月（MM）、日（dd）"}
	}
	// Letters left over would be matched literally; refuse them so a typo
	// (hh, YYYY) is caught when the mapping is saved, not at import.
	for _, c := range layoutLetters.Replace(p) {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' {
			return "", &channels.Text{EN: fmt.Sprintf("the letter %c is not one of yyyy MM dd HH mm ss SSS", c), ZH: fmt.Sprintf("字母 %c 不是 yyyy MM dd HH mm ss SSS 之一", c)}
		}
	}
	return l, nil
}

var (
	layoutTokens = strings.NewReplacer("yyyy", "2006", "yy", "06", "MM", "01", "M", "1", "dd", "02", "d", "2",
		"HH", "15", "H", "15", "mm", "04", "ss", "05", "SSS", "000")
	layoutLetters = strings.NewReplacer("yyyy", "", "yy", "", "MM", "", "M", "", "dd", "", "d", "",
		"HH", "", "H", "", "mm", "", "ss", "", "SSS", "", "T", "")
)

// fieldText names a canonical field in both languages.
func fieldText(f string) channels.Text {
	if t, ok := fieldNames[f]; ok {
		return t
	}
	return channels.Text{EN: f, ZH: f}
}

// FieldText names a canonical field in both languages, for messages.
func FieldText(f string) channels.Text { return fieldText(f) }

var fieldNames = map[string]channels.Text{
	FieldOrderNo:    {EN: "merchant order no", ZH: "商户订单号"},
	FieldChannelRef: {EN: "channel transaction id", ZH: "渠道流水号"},
	FieldAmount:     {EN: "amount", ZH: "金额"},
	FieldStatus:     {EN: "status", ZH: "状态"},
	FieldTime:       {EN: "transaction time", ZH: "交易时间"},
	FieldCreated:    {EN: "order creation time", ZH: "下单时间"},
	FieldKind:       {EN: "transaction type", ZH: "交易类型"},
	FieldFee:        {EN: "fee", ZH: "手续费"},
	FieldRefundNo:   {EN: "refund no", ZH: "退款单号"},
	FieldPaymentRef: {EN: "original transaction id", ZH: "原交易流水号"},
	FieldMethod:     {EN: "payment method", ZH: "支付方式"},
	FieldPayer:      {EN: "payer", ZH: "付款方"},
	FieldAccountRef: {EN: "channel merchant id", ZH: "渠道商户号"},
	FieldCurrency:   {EN: "currency", ZH: "币种"},
}

func foldWord(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// normHeader makes header names comparable: case, white space and
// full-width brackets and colons are ignored.
func normHeader(s string) string {
	s = headerReplacer.Replace(s)
	return strings.ToLower(strings.Join(strings.Fields(s), ""))
}

var headerReplacer = strings.NewReplacer("（", "(", "）", ")", "：", ":", "\u3000", " ")
