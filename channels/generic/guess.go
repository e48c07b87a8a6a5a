package generic

import (
	"strings"
	"time"

	"payfuse/channels"
)

// guessNames are column names seen in statements, per field, best first.
// The UnionPay names are those of UnionPay's merchant reconciliation file
// (全渠道 对账文件: 查询流水号, 商户订单号, 交易金额, 交易传输时间, 商户手续费,
// 原交易查询流水号, 商户代码, 交易类型, 系统跟踪号) and of its gateway API
// (queryId, orderId, txnAmt, txnTime, origQryId, merId, txnType,
// origRespCode); the others are the common Chinese and English ones.
var guessNames = map[string][]string{
	FieldOrderNo:    {"商户订单号", "订单号", "orderId", "out_trade_no", "merchant_order_no", "order_no", "Order No", "Merchant Order No"},
	FieldChannelRef: {"查询流水号", "queryId", "交易流水号", "渠道流水号", "交易单号", "transaction_id", "trade_no", "channel_txn_id", "Transaction ID", "系统跟踪号", "traceNo"},
	FieldAmount:     {"交易金额", "txnAmt", "金额", "订单金额", "amount", "Amount", "交易金额(元)", "金额(元)"},
	FieldStatus:     {"交易状态", "状态", "应答码", "origRespCode", "respCode", "status", "Status", "trade_status"},
	FieldTime:       {"交易时间", "交易完成时间", "完成时间", "支付时间", "交易传输时间", "txnTime", "时间", "trade_time", "paid_at", "Time", "Transaction Time"},
	FieldCreated:    {"创建时间", "下单时间", "订单时间", "created_at"},
	FieldKind:       {"交易类型", "txnType", "业务类型", "type", "Type", "kind"},
	FieldFee:        {"手续费", "商户手续费", "服务费", "fee", "Fee"},
	FieldRefundNo:   {"退款单号", "商户退款单号", "退款订单号", "out_refund_no", "refund_no", "Refund No"},
	FieldPaymentRef: {"原交易查询流水号", "origQryId", "原交易流水号", "原查询流水号", "原交易单号", "payment_ref", "Original Transaction ID"},
	FieldMethod:     {"支付方式", "payType", "method", "Method"},
	FieldPayer:      {"付款方", "卡号", "付款账号", "账号", "payer", "Payer"},
	FieldAccountRef: {"商户代码", "商户号", "merId", "mer_id", "Merchant ID"},
	FieldCurrency:   {"币种", "货币种类", "currency", "Currency"},
}

// GuessNames returns the column names Guess looks for, per field.
func GuessNames(field string) []string { return guessNames[field] }

// statusWords are native status words PayFuse knows the meaning of: UnionPay's
// origRespCode (00 success, 02 pending, 03 closed, 04 revoked, 05 processing,
// 06 failed) and the common words of CSV exports.
var statusWords = map[string]string{
	"00": channels.StatusSucceeded, "02": channels.StatusPending, "03": channels.StatusClosed,
	"04": channels.StatusRevoked, "05": channels.StatusProcessing, "06": channels.StatusFailed,
	"成功": channels.StatusSucceeded, "交易成功": channels.StatusSucceeded, "支付成功": channels.StatusSucceeded,
	"已支付": channels.StatusSucceeded, "退款成功": channels.StatusSucceeded, "SUCCESS": channels.StatusSucceeded,
	"失败": channels.StatusFailed, "交易失败": channels.StatusFailed, "支付失败": channels.StatusFailed, "FAIL": channels.StatusFailed, "FAILED": channels.StatusFailed,
	"处理中": channels.StatusProcessing, "PROCESSING": channels.StatusProcessing,
	"待支付": channels.StatusPending, "未支付": channels.StatusPending, "PENDING": channels.StatusPending, "NOTPAY": channels.StatusPending,
	"已关闭": channels.StatusClosed, "关闭": channels.StatusClosed, "CLOSED": channels.StatusClosed,
	"已撤销": channels.StatusRevoked, "撤销": channels.StatusRevoked, "REVOKED": channels.StatusRevoked,
}

// refundWords are type words that mark refunds: UnionPay's txnType 04
// (退货, a refund) and the common words.
var refundWords = []string{"退款", "退货", "REFUND", "04"}

// timeGuesses are the layouts Guess tries on a sample's first time cell.
var timeGuesses = []string{
	"yyyy-MM-dd HH:mm:ss", "yyyy/MM/dd HH:mm:ss", "yyyyMMddHHmmss", "yyyy-MM-ddTHH:mm:ss", "yyyy-MM-dd HH:mm",
	"yyyy/M/d H:mm:ss", "yyyy/M/d H:mm", "yyyy-MM-dd HH:mm:ss.SSS", "yyyyMMdd HHmmss", "yyyy-MM-dd",
}

// Guess proposes a mapping for a file with the given header and first rows:
// columns found by the names statements commonly use (Chinese and
// English), the status words it knows among those in the rows, the time
// layout that reads the first time cell, and fen as the unit when the
// amounts have no decimal point and the channel is UnionPay (whose files
// count in fen) or the column says 分.
func Guess(header []string, rows [][]string, channel string) Mapping {
	m := Mapping{Columns: map[string][]string{}, TimeZone: DefaultTimeZone, AmountUnit: UnitYuan, Encoding: EncodingAuto}
	col := map[string]int{}
	for i, h := range header {
		if _, dup := col[normHeader(h)]; !dup {
			col[normHeader(h)] = i
		}
	}
	taken := map[int]bool{}
	for _, f := range Fields {
		for _, name := range guessNames[f] {
			if i, ok := col[normHeader(name)]; ok && !taken[i] {
				m.Columns[f] = []string{header[i]}
				taken[i] = true
				break
			}
		}
	}
	cells := func(f string) []string {
		var out []string
		if names := m.Columns[f]; len(names) > 0 {
			i := col[normHeader(names[0])]
			for _, r := range rows {
				if i < len(r) && r[i] != "" {
					out = append(out, r[i])
				}
			}
		}
		return out
	}
	m.Statuses = map[string]string{}
	for _, w := range cells(FieldStatus) {
		for word, st := range statusWords {
			if strings.EqualFold(word, w) {
				m.Statuses[w] = st
			}
		}
	}
	if len(m.Columns[FieldStatus]) == 0 {
		m.FixedStatus = channels.StatusSucceeded
	} else {
		for w, st := range statusWords {
			if channel == "unionpay" && len(w) == 2 && w[0] == '0' {
				m.Statuses[w] = st
			}
		}
	}
	m.RefundWords = append([]string(nil), refundWords...)
	m.TimeLayouts = []string{DefaultTimeLayout}
	var layouts []string
	parses := func(l, s string) bool {
		gl, _ := goLayout(l)
		_, err := time.Parse(gl, s)
		return err == nil
	}
cellLoop:
	for _, s := range cells(FieldTime) {
		for _, l := range layouts {
			if parses(l, s) {
				continue cellLoop
			}
		}
		for _, l := range timeGuesses {
			if parses(l, s) {
				layouts = append(layouts, l)
				break
			}
		}
	}
	if len(layouts) > 0 {
		m.TimeLayouts = layouts
	}
	if amounts := cells(FieldAmount); len(amounts) > 0 {
		dot := false
		for _, a := range amounts {
			dot = dot || strings.Contains(a, ".")
		}
		name := m.Columns[FieldAmount][0]
		if !dot && (channel == "unionpay" || strings.Contains(name, "分")) {
			m.AmountUnit = UnitFen
		}
	}
	if channel == "unionpay" {
		m.AccountLabels = []string{"商户代码", "商户号", "merId"}
	}
	return m
}

// footerMarkers are how summary rows commonly start.
var footerMarkers = []string{"合计", "总计", "汇总", "Total", "TOTAL", "total"}

// footerMarker returns the known summary marker the cell starts with, or "".
func footerMarker(cell string) string {
	for _, mk := range footerMarkers {
		if strings.HasPrefix(cell, mk) {
			return mk
		}
	}
	return ""
}

// GuessFooter proposes how to read a summary row found after the table
// (nil when there is none or it cannot be read): the marker it starts
// with, the column under which it gives a whole count, and the column under
// which it gives a decimal amount.
func GuessFooter(header, footer []string) *Footer {
	if len(footer) == 0 {
		return nil
	}
	mk := footerMarker(firstCell(footer))
	if mk == "" {
		return nil
	}
	f := &Footer{Marker: mk}
	for i, c := range footer {
		if i >= len(header) || c == "" || strings.HasPrefix(c, mk) {
			continue
		}
		if _, err := channels.ParseDecimal(strings.TrimSuffix(c, "笔"), 0); err == nil && f.CountColumn == "" && !strings.Contains(c, ".") {
			f.CountColumn = header[i]
		} else if _, err := channels.ParseYuan(strings.TrimSuffix(c, "元")); err == nil && f.AmountColumn == "" {
			f.AmountColumn = header[i]
		}
	}
	if f.CountColumn == "" && f.AmountColumn == "" {
		return nil
	}
	return f
}
