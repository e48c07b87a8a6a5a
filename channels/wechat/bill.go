package wechat

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"payfuse/channels"
)

// A WeChat Pay trade bill (交易账单, GET /v3/bill/tradebill, bill_type ALL,
// SUCCESS or REFUND) is, as WeChat Pay documents it ("交易账单文件格式说明"):
//
//   - a header row of Chinese column names, without backticks;
//   - detail rows, one per payment or refund, each value preceded by a
//     backtick (`) so that spreadsheets keep long numbers as text;
//   - a summary header row beginning 总交易单数, and one summary row whose
//     values carry backticks too.
//
// Fields are separated by commas, amounts are yuan, fees have five decimals,
// times are Beijing time. A payment and a refund of the same order are two
// independent rows: refund rows have 交易状态 REFUND and carry the refund
// numbers. Which columns there are depends on the bill type and on the
// merchant's bill version, so the parser finds every column by its name.

// maxBillLine caps one line of a bill; a longer line is refused rather than
// buffered.
const maxBillLine = 64 << 10

// beijing is China Standard Time. China has kept UTC+8 without daylight
// saving since 1991, so a fixed zone is exact and needs no tz database.
var beijing = time.FixedZone("CST", 8*60*60)

// billTimeLayout is how bills write 交易时间.
const billTimeLayout = "2006-01-02 15:04:05"

// The detail columns PayFuse reads, by meaning.
const (
	colTime              = iota // 交易时间
	colAppID                    // 公众账号ID
	colMchID                    // 商户号
	colSubMchID                 // 特约商户号
	colDevice                   // 设备号
	colTransactionID            // 微信订单号
	colOutTradeNo               // 商户订单号
	colOpenID                   // 用户标识
	colTradeType                // 交易类型
	colTradeState               // 交易状态
	colBank                     // 付款银行
	colCurrency                 // 货币种类
	colSettlement               // 应结订单金额
	colCoupon                   // 代金券金额
	colRefundApplyTime          // 退款申请时间 (REFUND bills)
	colRefundSuccessTime        // 退款成功时间 (REFUND bills)
	colRefundID                 // 微信退款单号
	colOutRefundNo              // 商户退款单号
	colRefundAmount             // 退款金额
	colCouponRefund             // 充值券退款金额
	colRefundType               // 退款类型
	colRefundStatus             // 退款状态
	colBody                     // 商品名称
	colAttach                   // 商户数据包
	colFee                      // 手续费
	colRate                     // 费率
	colOrderAmount              // 订单金额
	colRefundRequested          // 申请退款金额
	colRateNote                 // 费率备注
	numCols
)

// columnNames lists, for each column, the names bills have used for it:
// the current name first, then older ones. Older bills (merchants that have
// not switched on 免充值券) say 总金额 for 应结订单金额 and 企业红包金额 or
// 代金券或立减优惠金额 for 代金券金额; some say 子商户号 for 特约商户号.
var columnNames = [numCols][]string{
	colTime:              {"交易时间"},
	colAppID:             {"公众账号ID"},
	colMchID:             {"商户号"},
	colSubMchID:          {"特约商户号", "子商户号"},
	colDevice:            {"设备号"},
	colTransactionID:     {"微信订单号"},
	colOutTradeNo:        {"商户订单号"},
	colOpenID:            {"用户标识"},
	colTradeType:         {"交易类型"},
	colTradeState:        {"交易状态"},
	colBank:              {"付款银行"},
	colCurrency:          {"货币种类"},
	colSettlement:        {"应结订单金额", "总金额"},
	colCoupon:            {"代金券金额", "代金券或立减优惠金额", "企业红包金额"},
	colRefundApplyTime:   {"退款申请时间"},
	colRefundSuccessTime: {"退款成功时间"},
	colRefundID:          {"微信退款单号"},
	colOutRefundNo:       {"商户退款单号"},
	colRefundAmount:      {"退款金额"},
	colCouponRefund:      {"充值券退款金额", "代金券或立减优惠退款金额", "企业红包退款金额"},
	colRefundType:        {"退款类型"},
	colRefundStatus:      {"退款状态"},
	colBody:              {"商品名称"},
	colAttach:            {"商户数据包"},
	colFee:               {"手续费"},
	colRate:              {"费率"},
	colOrderAmount:       {"订单金额"},
	colRefundRequested:   {"申请退款金额"},
	colRateNote:          {"费率备注"},
}

// summaryCountName heads the summary: the number of detail rows.
const summaryCountName = "总交易单数"

// A summaryCheck pairs a detail column with the summary column that totals
// it. The summary total is the sum of the column over every detail row:
// refund rows carry 0.00 in 应结订单金额 and 订单金额, payment rows 0.00 in
// 退款金额 and 申请退款金额, and 手续费 is signed (refund rows give the fee
// back as a negative number), so 手续费总金额 is the net fee.
type summaryCheck struct {
	col   int
	names []string // the summary column's names, current first
	scale int      // decimal places compared
}

var summaryChecks = []summaryCheck{
	{colSettlement, []string{"应结订单总金额", "总交易额"}, 2},
	{colRefundAmount, []string{"退款总金额", "总退款金额"}, 2},
	{colCouponRefund, []string{"充值券退款总金额", "总代金券或立减优惠退款金额", "总企业红包退款金额"}, 2},
	{colFee, []string{"手续费总金额"}, 5},
	{colOrderAmount, []string{"订单总金额"}, 2},
	{colRefundRequested, []string{"申请退款总金额"}, 2},
}

// feeScale is the number of decimals bills give fees with.
const feeScale = 5

// ParseTradeBill streams a WeChat Pay v3 trade bill (bill_type ALL, SUCCESS
// or REFUND; plain CSV or gzip, told apart by the gzip magic bytes), calling
// fn for each detail row as a channels.Record, and returns the totals the
// rows add up to after checking them against the bill's own summary row.
//
// Any malformed row, unknown layout, missing summary or summary disagreement
// returns a *channels.BillError (bilingual, with the line number; 0 for the
// file as a whole). Because the summary comes last, fn sees the rows before
// the file is known to be good: callers must hold what fn receives as
// tentative (in a transaction, say) until ParseTradeBill returns nil. An
// error from fn stops the parse and is returned wrapped, never as a
// BillError. Memory stays bounded: one line at a time, at most 64 KiB each.
//
// The mapping to the canonical record:
//
//   - 交易状态 REFUND makes a refund record: ChannelRef 微信退款单号, RefundNo
//     商户退款单号, PaymentRef 微信订单号, Amount 退款金额, status from 退款状态,
//     CreatedAt 交易时间 (when WeChat Pay accepted the refund), RefundedAt
//     退款成功时间 when the bill has it (REFUND bills) or else 交易时间, only
//     when the refund succeeded; Fee the fee given back (the row's negative
//     手续费, made positive).
//   - Any other 交易状态 makes a payment record: ChannelRef 微信订单号, Amount
//     应结订单金额 (older bills: 总金额), Fee 手续费, PaidAt 交易时间 when
//     succeeded, CreatedAt 交易时间 otherwise.
//   - Amount is what the merchant is actually paid: WeChat Pay defines
//     应结订单金额 = 订单金额 − 非充值代金券金额 (the merchant-funded coupons it
//     never receives), and likewise 退款金额 is the settled refund, 申请退款金额
//     less merchant-funded coupons. 订单金额 and 申请退款金额 stay in Raw.
//   - AccountRef is 特约商户号 when it names a sub-merchant (service-provider
//     bills) and 商户号 otherwise (ordinary merchants' bills show 0 there).
//   - Totals.Fees is the net of the records' fees in fen (payments' fees
//     minus refunds' returned fees), each row rounded to the fen first.
func ParseTradeBill(r io.Reader, fn func(channels.Record) error) (channels.Totals, error) {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return channels.Totals{}, channels.Refuse(0,
				"The file looks gzip-compressed but does not decompress.",
				"文件看似 gzip 压缩文件，但无法解压。")
		}
		defer zr.Close()
		br = bufio.NewReader(zr)
	}
	p := &billParser{fn: fn}
	if err := p.run(br); err != nil {
		return channels.Totals{}, err
	}
	return p.totals, nil
}

// billParser holds the state of one ParseTradeBill call.
type billParser struct {
	fn func(channels.Record) error

	header   []string       // detail header names, in file order
	cols     [numCols]int   // column index by meaning, -1 when absent
	amount   int            // the column giving a payment's Amount
	sums     [numCols]int64 // per summary-checked column: sum over rows, at its scale
	rows     int64
	totals   channels.Totals
	sumNames []string // summary header names
	sumLine  int      // the summary header's line
}

const (
	stateHeader = iota
	stateDetail
	stateSummary
	stateDone
)

func (p *billParser) run(br *bufio.Reader) error {
	state := stateHeader
	var long []byte // a line longer than br's buffer, gathered
	for lineNo := 1; ; lineNo++ {
		raw, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], raw...)
			for errors.Is(err, bufio.ErrBufferFull) && len(long) <= maxBillLine {
				raw, err = br.ReadSlice('\n')
				long = append(long, raw...)
			}
			raw = long
		}
		if errors.Is(err, bufio.ErrBufferFull) || len(raw) > maxBillLine {
			return channels.Refuse(lineNo, "The line is longer than %d KiB; this is not a WeChat Pay trade bill.",
				"该行超过 %d KiB，不是微信支付交易账单。", maxBillLine>>10)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return channels.Refuse(lineNo, "The file could not be read to the end (%v).",
				"文件未能完整读取（%v）。", err)
		}
		if len(raw) == 0 && err != nil {
			break
		}
		raw = bytes.TrimSuffix(raw, []byte{'\n'})
		raw = bytes.TrimSuffix(raw, []byte{'\r'})
		if lineNo == 1 {
			raw = bytes.TrimPrefix(raw, []byte("\uFEFF"))
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			if err != nil {
				break
			}
			continue
		}
		if !utf8.Valid(raw) {
			return channels.Refuse(lineNo, "The line is not valid UTF-8; WeChat Pay bills are UTF-8 (was the file re-saved in another encoding?).",
				"该行不是有效的 UTF-8；微信支付账单为 UTF-8 编码（文件是否被另存为其他编码？）。")
		}
		line := string(raw)
		switch state {
		case stateHeader:
			if perr := p.readHeader(lineNo, line); perr != nil {
				return perr
			}
			state = stateDetail
		case stateDetail:
			if isSummaryHeader(line) {
				p.sumNames, p.sumLine = splitHeader(line), lineNo
				state = stateSummary
				break
			}
			if perr := p.readRow(lineNo, line); perr != nil {
				return perr
			}
		case stateSummary:
			if perr := p.checkSummary(lineNo, line); perr != nil {
				return perr
			}
			state = stateDone
		case stateDone:
			return channels.Refuse(lineNo, "There is more after the summary row; the file is not a WeChat Pay trade bill as documented.",
				"汇总数据行之后还有内容，文件不符合微信支付交易账单的格式。")
		}
		if err != nil {
			break
		}
	}
	switch state {
	case stateHeader:
		return channels.Refuse(0, "The file is empty: it has no header row.", "文件为空：没有表头行。")
	case stateDetail:
		return channels.Refuse(0, "The file is truncated: it ends without the summary (总交易单数 …) rows.",
			"文件不完整：缺少汇总数据（总交易单数……）行。")
	case stateSummary:
		return channels.Refuse(0, "The file is truncated: the summary header has no summary row after it.",
			"文件不完整：汇总数据表头之后没有汇总数据行。")
	}
	return nil
}

// splitHeader splits a header row. Header names carry no backtick as
// WeChat Pay writes them; one is tolerated (and removed) all the same.
func splitHeader(line string) []string {
	names := strings.Split(line, ",")
	for i, n := range names {
		names[i] = strings.TrimPrefix(strings.TrimSpace(n), "`")
	}
	return names
}

// splitValues splits a detail or summary row into its values. Every value
// starts with a backtick, so splitting on ",`" keeps a comma inside a value
// (a product name, say) in its value.
func splitValues(line string) []string {
	if !strings.HasPrefix(line, "`") {
		return strings.Split(line, ",")
	}
	return strings.Split(line[1:], ",`")
}

// isSummaryHeader reports whether line is the summary header: not a detail
// row (those start with a backtick) and naming 总交易单数, which WeChat Pay
// puts first (any place is accepted).
func isSummaryHeader(line string) bool {
	if strings.HasPrefix(line, "`") {
		return false
	}
	for _, n := range splitHeader(line) {
		if n == summaryCountName {
			return true
		}
	}
	return false
}

func (p *billParser) readHeader(lineNo int, line string) *channels.BillError {
	if isSummaryHeader(line) {
		return channels.Refuse(lineNo, "The file starts with the summary; the detail header row (交易时间, …) is missing.",
			"文件以汇总数据开头，缺少明细数据表头（交易时间……）。")
	}
	p.header = splitHeader(line)
	seen := make(map[string]bool, len(p.header))
	for _, n := range p.header {
		if n != "" && seen[n] {
			return channels.Refuse(lineNo, "The header names the column %s twice.", "表头中列名 %s 出现了两次。", n)
		}
		seen[n] = true
	}
	for c := range p.cols {
		p.cols[c] = -1
	names:
		for _, name := range columnNames[c] {
			for i, n := range p.header {
				if n == name {
					p.cols[c] = i
					break names
				}
			}
		}
	}
	p.amount = p.cols[colSettlement]
	if p.amount < 0 {
		p.amount = p.cols[colOrderAmount]
	}
	var missing []string
	for _, c := range []int{colTime, colTransactionID, colTradeState} {
		if p.cols[c] < 0 {
			missing = append(missing, columnNames[c][0])
		}
	}
	if p.amount < 0 {
		missing = append(missing, columnNames[colSettlement][0])
	}
	if len(missing) > 0 {
		return channels.Refuse(lineNo, "This is not a WeChat Pay trade bill layout PayFuse knows: the header has no %s column.",
			"无法识别的微信支付交易账单格式：表头中没有 %s 列。", strings.Join(missing, ", "))
	}
	return nil
}

// value returns column c of a row, or "" when the bill has no such column.
func (p *billParser) value(vals []string, c int) string {
	if i := p.cols[c]; i >= 0 {
		return strings.TrimSpace(vals[i])
	}
	return ""
}

func (p *billParser) readRow(lineNo int, line string) error {
	if !strings.HasPrefix(line, "`") {
		return channels.Refuse(lineNo, "The row is neither a detail row (values start with `) nor the summary header.",
			"该行既不是明细数据行（每个值以 ` 开头），也不是汇总数据表头。")
	}
	vals := splitValues(line)
	if len(vals) != len(p.header) {
		return channels.Refuse(lineNo, "The row has %d values but the header has %d columns.",
			"该行有 %d 个值，而表头有 %d 列。", len(vals), len(p.header))
	}
	p.rows++

	// The summary totals each paired column over every row.
	for _, sc := range summaryChecks {
		if p.cols[sc.col] < 0 {
			continue
		}
		s := p.value(vals, sc.col)
		if s == "" {
			continue
		}
		v, err := channels.ParseDecimal(s, sc.scale)
		if err != nil {
			return badAmount(lineNo, p.header[p.cols[sc.col]], s, sc.scale)
		}
		sum, ok := addInt64(p.sums[sc.col], v)
		if !ok {
			return channels.Refuse(lineNo, "The amounts add up to more than PayFuse can count.", "金额合计超出可计算的范围。")
		}
		p.sums[sc.col] = sum
	}

	rec, berr := p.record(lineNo, vals)
	if berr != nil {
		return berr
	}
	t := &p.totals
	var ok bool
	if rec.Kind == channels.KindRefund {
		t.Refunds++
		t.RefundAmount, ok = addInt64(t.RefundAmount, rec.Amount)
		if ok {
			t.Fees, ok = addInt64(t.Fees, -rec.Fee)
		}
	} else {
		t.Payments++
		t.PaymentAmount, ok = addInt64(t.PaymentAmount, rec.Amount)
		if ok {
			t.Fees, ok = addInt64(t.Fees, rec.Fee)
		}
	}
	if !ok {
		return channels.Refuse(lineNo, "The amounts add up to more than PayFuse can count.", "金额合计超出可计算的范围。")
	}
	if p.fn != nil {
		if err := p.fn(rec); err != nil {
			return fmt.Errorf("wechat: trade bill line %d: %w", lineNo, err)
		}
	}
	return nil
}

// record maps one detail row to the canonical record.
func (p *billParser) record(lineNo int, vals []string) (channels.Record, *channels.BillError) {
	raw := make(map[string]string, len(p.header))
	for i, n := range p.header {
		if n != "" {
			raw[n] = vals[i]
		}
	}
	rec := channels.Record{
		Channel:         Code,
		MerchantOrderNo: p.value(vals, colOutTradeNo),
		Method:          tradeTypeMethod(p.value(vals, colTradeType)),
		Payer:           channels.MaskPayer(p.value(vals, colOpenID)),
		AccountRef:      p.value(vals, colMchID),
		Raw:             raw,
	}
	if sub := p.value(vals, colSubMchID); sub != "" && sub != "0" {
		rec.AccountRef = sub
	}
	var berr *channels.BillError
	if rec.Currency, berr = p.currency(lineNo, vals); berr != nil {
		return rec, berr
	}
	at, berr := p.time(lineNo, vals, colTime, true)
	if berr != nil {
		return rec, berr
	}
	txID := p.value(vals, colTransactionID)
	state := strings.ToUpper(p.value(vals, colTradeState))

	var fee5 int64
	if s := p.value(vals, colFee); s != "" {
		v, err := channels.ParseDecimal(s, feeScale)
		if err != nil {
			return rec, badAmount(lineNo, p.header[p.cols[colFee]], s, feeScale)
		}
		fee5, rec.FeeKnown = v, true
	}

	if state == "REFUND" {
		rec.Kind = channels.KindRefund
		for _, c := range []int{colRefundID, colRefundAmount} {
			if p.cols[c] < 0 {
				return rec, channels.Refuse(lineNo, "The row is a refund (交易状态 REFUND) but the bill has no %s column.",
					"该行为退款（交易状态 REFUND），但账单中没有 %s 列。", columnNames[c][0])
			}
		}
		rec.ChannelRef = p.value(vals, colRefundID)
		rec.RefundNo = p.value(vals, colOutRefundNo)
		rec.PaymentRef = txID
		if rec.ChannelRef == "" || rec.ChannelRef == "0" {
			return rec, channels.Refuse(lineNo, "The refund row has no 微信退款单号.", "该退款行没有微信退款单号。")
		}
		native := strings.ToUpper(p.value(vals, colRefundStatus))
		status, ok := refundStatus(native)
		if !ok {
			return rec, channels.Refuse(lineNo, "退款状态 %q is not a refund status PayFuse knows.",
				"退款状态 %q 不是可识别的退款状态。", truncate(native, 32))
		}
		if native == "" {
			native = "REFUND"
		}
		rec.Status, rec.NativeStatus = status, native
		if rec.Amount, berr = p.amountOf(lineNo, vals, p.cols[colRefundAmount]); berr != nil {
			return rec, berr
		}
		if fee5 > 0 {
			return rec, channels.Refuse(lineNo, "The refund row has a positive 手续费 %s; a refund can only give a fee back (zero or negative).",
				"该退款行的手续费 %s 为正数；退款只能退回手续费（为零或负数）。", p.value(vals, colFee))
		}
		rec.Fee = channels.RoundToFen(-fee5, feeScale)
		rec.CreatedAt = at
		if status == channels.StatusSucceeded {
			rec.RefundedAt = at
			done, berr := p.time(lineNo, vals, colRefundSuccessTime, false)
			if berr != nil {
				return rec, berr
			}
			if !done.IsZero() {
				rec.RefundedAt = done
			}
		}
		return rec, nil
	}

	rec.Kind = channels.KindPayment
	rec.ChannelRef = txID
	if rec.ChannelRef == "" {
		return rec, channels.Refuse(lineNo, "The payment row has no 微信订单号.", "该支付行没有微信订单号。")
	}
	status, ok := tradeStateStatus(state)
	if !ok {
		return rec, channels.Refuse(lineNo, "交易状态 %q is not a trade state PayFuse knows.",
			"交易状态 %q 不是可识别的交易状态。", truncate(state, 32))
	}
	rec.Status, rec.NativeStatus = status, state
	if rec.Amount, berr = p.amountOf(lineNo, vals, p.amount); berr != nil {
		return rec, berr
	}
	if fee5 < 0 {
		return rec, channels.Refuse(lineNo, "The payment row has a negative 手续费 %s.", "该支付行的手续费 %s 为负数。",
			p.value(vals, colFee))
	}
	rec.Fee = channels.RoundToFen(fee5, feeScale)
	if status == channels.StatusSucceeded {
		rec.PaidAt = at
	} else {
		rec.CreatedAt = at
	}
	return rec, nil
}

// amountOf parses the yuan amount in column index i of a row: present, at
// most two decimals, not negative.
func (p *billParser) amountOf(lineNo int, vals []string, i int) (int64, *channels.BillError) {
	name, s := p.header[i], strings.TrimSpace(vals[i])
	if s == "" {
		return 0, channels.Refuse(lineNo, "%s is empty.", "%s为空。", name)
	}
	v, err := channels.ParseYuan(s)
	if err != nil {
		return 0, badAmount(lineNo, name, s, 2)
	}
	if v < 0 {
		return 0, channels.Refuse(lineNo, "%s %s is negative.", "%s %s 为负数。", name, s)
	}
	return v, nil
}

// time parses a Beijing time column of a row into UTC. An absent or empty
// optional column gives the zero time.
func (p *billParser) time(lineNo int, vals []string, c int, required bool) (time.Time, *channels.BillError) {
	s := p.value(vals, c)
	if s == "" {
		if required {
			return time.Time{}, channels.Refuse(lineNo, "%s is empty.", "%s为空。", columnNames[c][0])
		}
		return time.Time{}, nil
	}
	t, ok := parseBeijing(s)
	if !ok {
		return time.Time{}, channels.Refuse(lineNo, "%s %q is not a time like 2006-01-02 15:04:05.",
			"%s %q 不是形如 2006-01-02 15:04:05 的时间。", columnNames[c][0], truncate(s, 40))
	}
	return t, nil
}

// parseBeijing reads "2006-01-02 15:04:05" Beijing time as UTC. It forgives
// what WeChat Pay's own samples show: full-width colons and doubled spaces.
func parseBeijing(s string) (time.Time, bool) {
	s = strings.ReplaceAll(s, "：", ":")
	s = strings.Join(strings.Fields(s), " ")
	t, err := time.ParseInLocation(billTimeLayout, s, beijing)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// currency reads 货币种类: CNY when absent or empty (WeChat Pay settles
// domestic merchants in yuan only), otherwise an ISO 4217 code as given.
func (p *billParser) currency(lineNo int, vals []string) (string, *channels.BillError) {
	c, ok := normalizeCurrency(p.value(vals, colCurrency))
	if !ok {
		return "", channels.Refuse(lineNo, "货币种类 %q is not an ISO 4217 currency code.",
			"货币种类 %q 不是 ISO 4217 货币代码。", truncate(p.value(vals, colCurrency), 16))
	}
	return c, nil
}

func normalizeCurrency(s string) (string, bool) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "", "CNY", "RMB", "人民币":
		return "CNY", true
	}
	u := strings.ToUpper(strings.TrimSpace(s))
	if len(u) != 3 {
		return "", false
	}
	for _, r := range u {
		if r < 'A' || r > 'Z' {
			return "", false
		}
	}
	return u, true
}

func (p *billParser) checkSummary(lineNo int, line string) error {
	vals := splitValues(line)
	if len(vals) != len(p.sumNames) {
		return channels.Refuse(lineNo, "The summary row has %d values but its header has %d columns.",
			"汇总数据行有 %d 个值，而其表头有 %d 列。", len(vals), len(p.sumNames))
	}
	find := func(names []string) (string, string, bool) {
		for _, name := range names {
			for i, n := range p.sumNames {
				if n == name {
					return n, strings.TrimSpace(vals[i]), true
				}
			}
		}
		return "", "", false
	}
	_, countText, _ := find([]string{summaryCountName})
	count, err := strconv.ParseInt(countText, 10, 64)
	if err != nil || count < 0 {
		return channels.Refuse(lineNo, "%s %q is not a count.", "%s %q 不是笔数。", summaryCountName, truncate(countText, 32))
	}
	if count != p.rows {
		return channels.Refuse(0, "The summary says %s %d but the bill has %d detail rows; the file is not trustworthy.",
			"汇总数据的%s为 %d，但账单有 %d 行明细数据；文件不可信。", summaryCountName, count, p.rows)
	}
	for _, sc := range summaryChecks {
		ci := p.cols[sc.col]
		if ci < 0 {
			continue
		}
		name, text, ok := find(sc.names)
		if !ok {
			// Every documented layout totals the amount, refund and fee
			// columns it has; one that does not cannot be checked.
			if ci == p.amount || sc.col == colRefundAmount || sc.col == colFee {
				return channels.Refuse(p.sumLine, "The summary has no %s to check the rows' %s against.",
					"汇总数据中没有%s，无法核对明细的%s。", sc.names[0], p.header[ci])
			}
			continue
		}
		want, err := channels.ParseDecimal(text, sc.scale)
		if err != nil {
			return badAmount(lineNo, name, text, sc.scale)
		}
		if got := p.sums[sc.col]; got != want {
			return channels.Refuse(0, "The summary says %s %s but the rows' %s add up to %s; the file is not trustworthy.",
				"汇总数据的%s为 %s，但明细的%s合计为 %s；文件不可信。",
				name, formatDecimal(want, sc.scale), p.header[ci], formatDecimal(got, sc.scale))
		}
	}
	return nil
}

func badAmount(lineNo int, column, s string, scale int) *channels.BillError {
	return channels.Refuse(lineNo, "%s %q is not an amount with at most %d decimals.",
		"%s %q 不是最多 %d 位小数的金额。", column, truncate(s, 32), scale)
}

// formatDecimal writes v units of 10^-scale as decimal text.
func formatDecimal(v int64, scale int) string {
	neg := v < 0
	u := uint64(v)
	if neg {
		u = uint64(-v) // wraps correctly for math.MinInt64
	}
	s := strconv.FormatUint(u, 10)
	if scale > 0 {
		if len(s) <= scale {
			s = strings.Repeat("0", scale-len(s)+1) + s
		}
		s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func addInt64(a, b int64) (int64, bool) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, false
	}
	return a + b, true
}

// truncate shortens s to at most n runes for a message.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// tradeTypeMethod maps WeChat Pay's trade_type (交易类型) to the canonical
// method: NATIVE and MICROPAY are codes (the merchant's or the payer's),
// JSAPI is in-wallet (Official Account pages and Mini Programs), MWEB is H5
// and APP is an app. API v3 writes "App"; case does not matter. Anything
// else (FACEPAY, say) is "".
func tradeTypeMethod(s string) string {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "NATIVE", "MICROPAY":
		return channels.MethodScan
	case "JSAPI":
		return channels.MethodQuick
	case "MWEB":
		return channels.MethodH5
	case "APP":
		return channels.MethodApp
	}
	return ""
}

// tradeStateStatus maps a payment's trade_state (交易状态) to the canonical
// status. REFUND ("转入退款") means the payment was made and then (partly)
// refunded: the payment itself succeeded.
func tradeStateStatus(s string) (string, bool) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "SUCCESS", "REFUND":
		return channels.StatusSucceeded, true
	case "NOTPAY":
		return channels.StatusPending, true
	case "USERPAYING", "ACCEPT":
		return channels.StatusProcessing, true
	case "CLOSED":
		return channels.StatusClosed, true
	case "REVOKED":
		return channels.StatusRevoked, true
	case "PAYERROR":
		return channels.StatusFailed, true
	}
	return "", false
}

// refundStatus maps a refund status, from a bill's 退款状态 or a
// notification's refund_status, to the canonical one. Bills list refunds
// WeChat Pay accepted, so an empty status is taken as succeeded. CHANGE (v2)
// and ABNORMAL (v3) are refunds that could not be paid back to the payer.
func refundStatus(s string) (string, bool) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "", "SUCCESS":
		return channels.StatusSucceeded, true
	case "PROCESSING":
		return channels.StatusProcessing, true
	case "FAIL", "FAILED", "CHANGE", "ABNORMAL":
		return channels.StatusFailed, true
	case "REFUNDCLOSE", "CLOSED":
		return channels.StatusClosed, true
	}
	return "", false
}
