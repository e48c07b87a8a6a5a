package alipay

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"

	"payfuse/channels"
)

// The trade bill is the file behind the download URL that
// alipay.data.dataservice.bill.downloadurl.query returns for bill_type=trade:
// a zip of two GBK CSV files, <pid>0156_<date>_业务明细.csv (one row per trade
// or refund) and <pid>0156_<date>_业务明细(汇总).csv (totals per store). The
// detail file reads:
//
//	#支付宝业务明细查询
//	#账号：[<pid>0156]
//	#起始日期：[2026年03月01日 00:00:00]   终止日期：[2026年03月02日 00:00:00]
//	#-----------------------------------------业务明细列表----------------------------------------
//	支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,...,订单金额（元）,商家实收（元）,...,退款批次号/请求号,服务费（元）,分润（元）,备注
//	<rows>
//	#-----------------------------------------业务明细列表结束------------------------------------
//	#交易合计：N笔，商家实收共X元，商家优惠共Y元
//	#退款合计：M笔，商家实收退款共-Z元，商家优惠退款共-W元
//	#导出时间：[2026年03月02日 06:12:45]
//
// Text cells end with a tab (so spreadsheets keep long numbers as text);
// refund rows (业务类型 退款) repeat the trade's number and carry negative amounts.
//
// How rows become records:
//
//   - Amount is 商家实收（元）: what the merchant actually received, the
//     order amount (订单金额（元）) less the discounts the merchant paid for
//     itself (商家优惠, merchant vouchers and red packets); what Alipay paid
//     for (支付宝红包, 集分宝, 支付宝优惠) still reaches the merchant. It is the
//     figure the footer sums (#交易合计 …商家实收共X元, #退款合计
//     …商家实收退款共-Z元), so Totals.PaymentAmount and RefundAmount are
//     checked against the footer as they are, and it is the figure Alipay's
//     notifications call receipt_amount (实收金额). A payment the merchant
//     paid for entirely gives Amount 0; 订单金额 itself must be above zero.
//     订单金额 and the discount columns stay in Raw.
//   - A refund has no id of its own in the bill. Its ChannelRef is
//     支付宝交易号 + "/" + 退款批次号/请求号: the request number the merchant gave
//     (out_request_no), unique within the trade, and the same pair an Alipay
//     refund notification carries (trade_no, out_biz_no). When the request
//     number is empty the merchant order number stands in for it, as Alipay
//     itself does for a refund requested without one.
//   - The bill lists completed trades and refunds only: Status is succeeded.
//     NativeStatus is the 业务类型 word (交易 or 退款); the bill has no status column.
//   - A refund row's 创建时间 is the trade's creation time, so a refund's
//     CreatedAt and RefundedAt are both its 完成时间 (创建时间 stays in Raw).
//   - Fee is the absolute value of 服务费（元） (charged on a payment, given back
//     on a refund); Totals.Fees is the payments' fees less the refunds'.
//   - AccountRef is the 16-digit PID (2088…) from the #账号 line, which
//     appends 0156 to it. Method is "": the bill does not say.
//   - Times are Beijing time (UTC+8) and are returned in UTC.
//
// Columns are found by name (full-width and half-width brackets alike, white
// space ignored), never by position; Raw keeps every cell of the row under
// its column's name as the file gives it.
//
// The footer must agree with the rows: the #交易合计 line (count of 交易 rows,
// their 商家实收 sum) always, the #退款合计 line (count of 退款 rows, the
// magnitude of their 商家实收 sum) whenever it is there, and it must be there
// when refunds are listed. A missing #交易合计 line means a file cut short.

// DefaultMaxInflated is the inflated-size limit ParseTradeBill applies when
// it is given none: far above a day's or a month's bill of a busy merchant,
// far below what would strain the server.
const DefaultMaxInflated = 200 << 20

const (
	maxLineBytes  = 256 << 10 // longest line read; real rows are a few hundred bytes
	maxZipEntries = 64        // Alipay's zip holds two
	// An entry inflating more than maxRatio times its compressed size (and to
	// more than ratioFloor bytes) is a zip bomb, not a bill: CSV text
	// compresses about ten times.
	maxRatio   = 100
	ratioFloor = 1 << 20
	detailName = "业务明细.csv"
	billLayout = "2006-01-02 15:04:05"
)

// beijing is China Standard Time; a fixed zone needs no time zone database.
var beijing = time.FixedZone("CST", 8*60*60)

// Column names, normalised by normHeader.
const (
	colTradeNo  = "支付宝交易号"
	colOrderNo  = "商户订单号"
	colBizType  = "业务类型"
	colCreated  = "创建时间"
	colFinished = "完成时间"
	colPayer    = "对方账户"
	colAmount   = "订单金额(元)"
	colReceived = "商家实收(元)"
	colRefundNo = "退款批次号/请求号"
	colFee      = "服务费(元)"
)

var requiredCols = []string{colTradeNo, colBizType, colFinished, colAmount, colReceived}

const (
	bizPayment = "交易"
	bizRefund  = "退款"
)

var (
	accountRE      = regexp.MustCompile(`账号[:：]\s*\[?\s*(2088[0-9]{12})`)
	payFooterRE    = regexp.MustCompile(`^交易合计[:：]\s*([0-9]+)\s*笔\s*[,，]\s*商家实收共\s*([-+]?[0-9][0-9,]*(?:\.[0-9]+)?)\s*元`)
	refundFooterRE = regexp.MustCompile(`^退款合计[:：]\s*([0-9]+)\s*笔\s*[,，]\s*商家实收退款共\s*([-+]?[0-9][0-9,]*(?:\.[0-9]+)?)\s*元`)
	headerReplacer = strings.NewReplacer("（", "(", "）", ")")
	utf8BOM        = []byte{0xEF, 0xBB, 0xBF}
)

// ParseTradeBill reads an Alipay trade bill: the zip of size bytes behind
// the download URL of bill_type=trade. It finds the detail entry (the name
// ending in 业务明细.csv, not 业务明细(汇总).csv; names are read as GBK, which
// Alipay writes without the zip UTF-8 flag), streams its rows through fn as
// records and checks them against the footer totals, as ParseTradeBillCSV
// does. Anything malformed, and any disagreement, is refused with a
// *channels.BillError (both languages, with the line number when there is
// one). A zip that declares more than maxInflated bytes inflated in all, an
// entry inflating more than 100 times its compressed size, or an entry that
// turns out larger than declared, is refused before or while it is read, so
// a zip bomb fills neither memory nor disk.
//
// maxInflated <= 0 means DefaultMaxInflated. Nothing is written to disk, so
// entry names are only compared, never used as paths; entries whose names
// leave the archive's root (absolute, "..", drive letters) are ignored.
//
// fn sees each row as it is read, before the footer is checked: the caller
// must treat the records as provisional until ParseTradeBill returns a nil
// error (ingest them in one transaction, and roll back on error). An error
// from fn stops the parse and is returned as it is. A nil fn only checks the
// file. Errors that are not the file's fault (the reader's I/O errors) are
// returned wrapped, not as a *channels.BillError.
func ParseTradeBill(r io.ReaderAt, size int64, maxInflated int64, fn func(channels.Record) error) (channels.Totals, error) {
	if maxInflated <= 0 {
		maxInflated = DefaultMaxInflated
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		// ErrInsecurePath only reports names that leave the root (under
		// GODEBUG=zipinsecurepath=0); the reader is usable and such names are
		// skipped below.
		if isDamaged(err) {
			return channels.Totals{}, channels.Refuse(0,
				"The file is not a readable zip archive; an Alipay trade bill is a .zip file (%v).",
				"该文件不是可读取的 zip 压缩包；支付宝交易账单应为 .zip 文件（%v）。", err)
		}
		return channels.Totals{}, fmt.Errorf("alipay: unable to read the bill zip: %w", err)
	}
	if len(zr.File) > maxZipEntries {
		return channels.Totals{}, channels.Refuse(0,
			"The zip holds %d entries; an Alipay trade bill holds two. It was not read.",
			"该 zip 包含 %d 个文件，而支付宝交易账单只含两个文件，未读取。", len(zr.File))
	}
	var declared uint64
	var detail []*zip.File
	for _, f := range zr.File {
		declared += f.UncompressedSize64
		if declared > uint64(maxInflated) || declared < f.UncompressedSize64 {
			return channels.Totals{}, tooBig(maxInflated)
		}
		if f.UncompressedSize64 > ratioFloor && f.UncompressedSize64/maxRatio > max(f.CompressedSize64, 1) {
			return channels.Totals{}, channels.Refuse(0,
				"A zip entry inflates %d times its compressed size, which no bill does (a zip bomb?). The file was not read.",
				"zip 中有文件的解压后大小为压缩大小的 %d 倍，账单文件不会如此（疑似 zip 炸弹），未读取。",
				f.UncompressedSize64/max(f.CompressedSize64, 1))
		}
		if f.FileInfo().IsDir() {
			continue
		}
		if isDetailName(f) {
			detail = append(detail, f)
		}
	}
	switch {
	case len(detail) == 0:
		return channels.Totals{}, channels.Refuse(0,
			"The zip holds no detail file (a name ending in %s): is this an Alipay trade bill (bill_type=trade)?",
			"zip 中没有明细文件（文件名以 %s 结尾）：请确认这是支付宝交易账单（bill_type=trade）。", detailName)
	case len(detail) > 1:
		return channels.Totals{}, channels.Refuse(0,
			"The zip holds %d detail files (names ending in %s); a trade bill holds one.",
			"zip 中有 %d 个明细文件（文件名以 %s 结尾），交易账单只应有一个。", len(detail), detailName)
	}
	rc, err := detail[0].Open()
	if err != nil {
		if isDamaged(err) {
			return channels.Totals{}, channels.Refuse(0,
				"The detail file in the zip cannot be opened (%v).", "无法打开 zip 中的明细文件（%v）。", err)
		}
		return channels.Totals{}, fmt.Errorf("alipay: unable to open the bill's detail file: %w", err)
	}
	defer rc.Close()
	return ParseTradeBillCSV(&inflateGuard{r: rc, left: min(maxInflated, math.MaxInt64-1) + 1, limit: maxInflated}, fn)
}

// ParseTradeBillCSV reads the detail CSV of a trade bill already taken out
// of its zip, streaming: each row goes to fn as it is read, and the rows are
// checked against the footer (#交易合计 and #退款合计 lines) at the end; fn
// and the errors behave as for ParseTradeBill.
//
// The encoding is decided from the first 64 KiB: a UTF-8 byte-order mark, or
// text that is valid UTF-8, means UTF-8; anything else is read as GBK (as
// GB18030, its superset). Lines longer than 256 KiB are refused, so memory
// stays bounded whatever the input.
func ParseTradeBillCSV(r io.Reader, fn func(channels.Record) error) (channels.Totals, error) {
	br := bufio.NewReaderSize(r, maxLineBytes)
	peek, err := br.Peek(64 << 10)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return channels.Totals{}, readError(0, err)
	}
	p := &billParser{br: br, fn: fn}
	if bytes.HasPrefix(peek, utf8BOM) {
		br.Discard(len(utf8BOM))
	} else if !utf8.Valid(dropPartialRune(peek)) {
		p.dec = simplifiedchinese.GB18030.NewDecoder()
	}
	if err := p.run(); err != nil {
		return channels.Totals{}, err
	}
	return p.totals, nil
}

// footer is what one of the #…合计 lines says.
type footer struct {
	seen   bool
	line   int
	count  int
	amount int64 // fen, as printed (refunds are negative)
}

type billParser struct {
	br   *bufio.Reader
	fn   func(channels.Record) error
	dec  *encoding.Decoder // nil for UTF-8
	line int

	pid    string
	header []string       // the names as the file gives them
	col    map[string]int // normalised name -> index
	ended  bool           // a comment line followed the table

	fields []string
	buf    []byte // decoding buffer

	totals                  channels.Totals
	payFooter, refundFooter footer
}

func (p *billParser) run() error {
	for {
		raw, err := p.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		line := bytes.TrimSpace(raw)
		if len(line) == 0 {
			continue
		}
		text, ok := p.decode(line)
		if !ok {
			return p.badEncoding()
		}
		switch {
		case text[0] == '#':
			if err := p.comment(text[1:]); err != nil {
				return err
			}
		case p.header == nil:
			if err := p.readHeader(text); err != nil {
				return err
			}
		default:
			if err := p.row(text); err != nil {
				return err
			}
		}
	}
	return p.finish()
}

// next returns the next physical line, its line ending removed. The slice is
// valid until the following call.
func (p *billParser) next() ([]byte, error) {
	b, err := p.br.ReadSlice('\n')
	switch {
	case err == nil:
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, channels.Refuse(p.line+1,
			"The line is longer than %d KiB; an Alipay bill's lines are far shorter. Is this the right file?",
			"该行超过 %d KiB，支付宝账单的行远比这短。请确认文件是否正确。", maxLineBytes>>10)
	case errors.Is(err, io.EOF):
		if len(b) == 0 {
			return nil, io.EOF
		}
	default:
		return nil, readError(p.line+1, err)
	}
	p.line++
	return bytes.TrimRight(b, "\r\n"), nil
}

// readError turns an error met while reading into what the caller gets: a
// refusal when the data itself is bad (a damaged or oversized zip entry), a
// wrapped I/O error otherwise.
func readError(line int, err error) error {
	var be *channels.BillError
	if errors.As(err, &be) {
		return be
	}
	if isDamaged(err) {
		return channels.Refuse(line, "The file is damaged and cannot be read to the end (%v).",
			"文件已损坏，无法完整读取（%v）。", err)
	}
	return fmt.Errorf("alipay: unable to read the bill: %w", err)
}

// comment handles a # line: the account before the table, the footer after it.
func (p *billParser) comment(text string) error {
	if p.header == nil {
		if m := accountRE.FindStringSubmatch(text); m != nil && p.pid == "" {
			p.pid = m[1]
		}
		return nil
	}
	p.ended = true
	text = strings.TrimSpace(text)
	switch {
	case strings.HasPrefix(text, "交易合计"):
		return p.readFooter(&p.payFooter, payFooterRE, text)
	case strings.HasPrefix(text, "退款合计"):
		return p.readFooter(&p.refundFooter, refundFooterRE, text)
	}
	return nil
}

func (p *billParser) readFooter(f *footer, re *regexp.Regexp, text string) error {
	if f.seen {
		return channels.Refuse(p.line, "The total line appears twice (first on line %d).",
			"合计行重复出现（首次在第 %d 行）。", f.line)
	}
	m := re.FindStringSubmatch(text)
	if m == nil {
		return channels.Refuse(p.line, "The total line cannot be read: %q.", "无法识别合计行：%q。", truncate(text, 80))
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return channels.Refuse(p.line, "The count in the total line is not a number: %q.", "合计行中的笔数不是数字：%q。", truncate(m[1], 32))
	}
	amount, err := channels.ParseYuan(m[2])
	if err != nil {
		return channels.Refuse(p.line, "The amount in the total line is not an amount in yuan: %q.",
			"合计行中的金额不是有效的元金额：%q。", truncate(m[2], 32))
	}
	*f = footer{seen: true, line: p.line, count: n, amount: amount}
	return nil
}

func (p *billParser) readHeader(line string) error {
	p.fields = splitFields(line, p.fields[:0])
	if p.fields == nil {
		return p.badQuotes()
	}
	p.header = make([]string, len(p.fields))
	p.col = make(map[string]int, len(p.fields))
	for i, f := range p.fields {
		name := strings.TrimSpace(f)
		norm := normHeader(name)
		if norm == "" {
			p.header[i] = fmt.Sprintf("(%d)", i+1) // an unnamed column keeps a name in Raw
			continue
		}
		p.header[i] = name
		if j, dup := p.col[norm]; dup {
			return channels.Refuse(p.line, "The header names the column %s twice (columns %d and %d).",
				"表头中 %s 列出现两次（第 %d 列和第 %d 列）。", truncate(name, 32), j+1, i+1)
		}
		p.col[norm] = i
	}
	var missing []string
	for _, c := range requiredCols {
		if _, ok := p.col[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return channels.Refuse(p.line,
			"This is not the header of an Alipay trade bill's detail file: the columns %s are missing.",
			"这不是支付宝交易账单明细文件的表头：缺少 %s 列。", strings.Join(missing, ", "))
	}
	return nil
}

// normHeader makes full-width and half-width brackets, and spacing, alike.
func normHeader(s string) string {
	return strings.Join(strings.Fields(headerReplacer.Replace(s)), "")
}

func (p *billParser) row(line string) error {
	p.fields = splitFields(line, p.fields[:0])
	if p.fields == nil {
		return p.badQuotes()
	}
	if allEmpty(p.fields) {
		return nil // a line of empty cells, as spreadsheets leave
	}
	if p.ended {
		return channels.Refuse(p.line, "A row follows the end of the table; the file is not in the bill's layout.",
			"表格结束后仍有数据行，文件不符合账单格式。")
	}
	if len(p.fields) < len(p.header) {
		return channels.Refuse(p.line, "The row has %d cells where the header has %d columns.",
			"该行有 %d 个单元格，而表头有 %d 列。", len(p.fields), len(p.header))
	}
	for _, extra := range p.fields[len(p.header):] {
		if strings.TrimSpace(extra) != "" {
			return channels.Refuse(p.line, "The row has %d cells where the header has %d columns.",
				"该行有 %d 个单元格，而表头有 %d 列。", len(p.fields), len(p.header))
		}
	}
	raw := make(map[string]string, len(p.header))
	for i, name := range p.header {
		raw[name] = strings.TrimSpace(p.fields[i])
	}
	get := func(col string) string {
		if i, ok := p.col[col]; ok {
			return raw[p.header[i]]
		}
		return ""
	}

	rec := channels.Record{
		Channel:         Code,
		ChannelRef:      get(colTradeNo),
		MerchantOrderNo: get(colOrderNo),
		Status:          channels.StatusSucceeded,
		NativeStatus:    get(colBizType),
		Currency:        "CNY",
		Payer:           channels.MaskPayer(get(colPayer)),
		AccountRef:      p.pid,
		Raw:             raw,
	}
	if rec.ChannelRef == "" {
		return channels.Refuse(p.line, "The row has no %s.", "该行缺少%s。", colTradeNo)
	}
	var refund bool
	switch rec.NativeStatus {
	case bizPayment:
		rec.Kind = channels.KindPayment
	case bizRefund:
		rec.Kind, refund = channels.KindRefund, true
	default:
		return channels.Refuse(p.line, "Unknown %s %q: a trade bill lists 交易 (payments) and 退款 (refunds).",
			"未知的%s“%s”：交易账单只列出“交易”和“退款”。", colBizType, truncate(rec.NativeStatus, 32))
	}

	orderAmount, err := p.amount(get(colAmount), colAmount, refund)
	if err != nil {
		return err
	}
	if orderAmount == 0 {
		return channels.Refuse(p.line, "The %s is zero.", "%s为零。", colAmount)
	}
	if rec.Amount, err = p.amount(get(colReceived), colReceived, refund); err != nil {
		return err
	}
	if s := get(colFee); s != "" {
		fee, err := channels.ParseYuan(s)
		if err != nil {
			return p.badAmount(colFee, s)
		}
		rec.Fee, rec.FeeKnown = abs(fee), true
	}

	finished, err := p.time(get(colFinished), colFinished, true)
	if err != nil {
		return err
	}
	created, err := p.time(get(colCreated), colCreated, false)
	if err != nil {
		return err
	}

	t := &p.totals
	ok := true
	if refund {
		reqNo := get(colRefundNo)
		if reqNo == "" {
			reqNo = rec.MerchantOrderNo
		}
		if reqNo == "" {
			return channels.Refuse(p.line, "The refund row has neither a %s nor a %s.",
				"该退款行既没有%s也没有%s。", colRefundNo, colOrderNo)
		}
		rec.PaymentRef = rec.ChannelRef
		rec.ChannelRef = rec.ChannelRef + "/" + reqNo
		rec.RefundNo = reqNo
		rec.CreatedAt, rec.RefundedAt = finished, finished
		t.Refunds++
		t.RefundAmount, ok = add(t.RefundAmount, rec.Amount, ok)
		t.Fees, ok = add(t.Fees, -rec.Fee, ok)
	} else {
		rec.CreatedAt, rec.PaidAt = created, finished
		if rec.CreatedAt.IsZero() {
			rec.CreatedAt = finished
		}
		t.Payments++
		t.PaymentAmount, ok = add(t.PaymentAmount, rec.Amount, ok)
		t.Fees, ok = add(t.Fees, rec.Fee, ok)
	}
	if !ok {
		return channels.Refuse(p.line, "The amounts add up past what can be counted; the file is not a real bill.",
			"金额累计超出可计数范围，该文件不是真实账单。")
	}
	if p.fn == nil {
		return nil
	}
	return p.fn(rec)
}

// amount parses a yuan cell into fen. Payments must not be negative; refunds
// are negative in the file (positive is tolerated) and are returned as their
// magnitude.
func (p *billParser) amount(s, col string, refund bool) (int64, error) {
	v, err := channels.ParseYuan(s)
	if err != nil {
		return 0, p.badAmount(col, s)
	}
	if v < 0 && !refund {
		return 0, channels.Refuse(p.line, "The %s of a payment is negative: %q.", "交易的%s为负数：%q。", col, truncate(s, 32))
	}
	return abs(v), nil
}

func (p *billParser) badAmount(col, s string) error {
	return channels.Refuse(p.line, "The %s is not an amount in yuan with at most two decimals: %q.",
		"%s不是最多两位小数的元金额：%q。", col, truncate(s, 32))
}

// time parses a Beijing time cell into UTC; an empty cell is the zero time
// unless the column is required.
func (p *billParser) time(s, col string, required bool) (time.Time, error) {
	if s == "" && !required {
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation(billLayout, s, beijing)
	if err != nil {
		return time.Time{}, channels.Refuse(p.line, "The %s is not a time like 2026-03-01 09:15:02: %q.",
			"%s不是形如 2026-03-01 09:15:02 的时间：%q。", col, truncate(s, 32))
	}
	return t.UTC(), nil
}

func (p *billParser) finish() error {
	if p.header == nil {
		return channels.Refuse(0, "No table found: an Alipay trade bill's detail file has a header row starting with %s.",
			"未找到表格：支付宝交易账单明细文件应有以“%s”开头的表头行。", colTradeNo)
	}
	t := p.totals
	if !p.payFooter.seen {
		return channels.Refuse(p.line, "The total line (#交易合计…) is missing: the file seems cut short. Download it again.",
			"缺少合计行（#交易合计…）：文件似乎不完整，请重新下载。")
	}
	if p.payFooter.count != t.Payments {
		return channels.Refuse(p.payFooter.line, "The bill says %d payments but lists %d.",
			"账单合计为 %d 笔交易，但明细列出 %d 笔。", p.payFooter.count, t.Payments)
	}
	if p.payFooter.amount != t.PaymentAmount {
		return channels.Refuse(p.payFooter.line, "The bill says the merchant received %s yuan but its payment rows add up to %s yuan.",
			"账单合计商家实收 %s 元，但交易明细合计为 %s 元。", yuan(p.payFooter.amount), yuan(t.PaymentAmount))
	}
	if !p.refundFooter.seen {
		if t.Refunds > 0 {
			return channels.Refuse(p.line, "The refund total line (#退款合计…) is missing: the file seems cut short. Download it again.",
				"缺少退款合计行（#退款合计…）：文件似乎不完整，请重新下载。")
		}
		return nil
	}
	if p.refundFooter.count != t.Refunds {
		return channels.Refuse(p.refundFooter.line, "The bill says %d refunds but lists %d.",
			"账单合计为 %d 笔退款，但明细列出 %d 笔。", p.refundFooter.count, t.Refunds)
	}
	if abs(p.refundFooter.amount) != t.RefundAmount {
		return channels.Refuse(p.refundFooter.line, "The bill says %s yuan was refunded from the merchant's receipts but its refund rows add up to %s yuan.",
			"账单合计商家实收退款 %s 元，但退款明细合计为 %s 元。", yuan(abs(p.refundFooter.amount)), yuan(t.RefundAmount))
	}
	return nil
}

// decode turns one line into text: GBK is decoded, UTF-8 is checked. ok is
// false when a file read as UTF-8 holds bytes that are not UTF-8. Decoding
// the whole line before splitting it keeps a row to a single string, its
// cells being parts of it.
func (p *billParser) decode(line []byte) (string, bool) {
	if p.dec == nil || isASCII(line) {
		if !utf8.Valid(line) {
			return "", false
		}
		return string(line), true
	}
	// Each GBK (GB18030) byte yields at most 3 bytes of UTF-8: U+FFFD for a
	// stray byte, a BMP character for a pair, 4 bytes for a 4-byte sequence.
	if need := 3*len(line) + utf8.UTFMax; cap(p.buf) < need {
		p.buf = make([]byte, need)
	}
	p.dec.Reset()
	n, _, err := p.dec.Transform(p.buf[:cap(p.buf)], line, true)
	if err != nil {
		return "", false
	}
	return string(p.buf[:n]), true
}

func (p *billParser) badEncoding() error {
	return channels.Refuse(p.line, "The line is not valid UTF-8 although the file began as UTF-8; save the file in one encoding (GBK or UTF-8).",
		"文件开头为 UTF-8 编码，但该行不是有效的 UTF-8；请以单一编码（GBK 或 UTF-8）保存文件。")
}

func (p *billParser) badQuotes() error {
	return channels.Refuse(p.line, "A quoted cell is not closed on its line.", "该行有引号未闭合的单元格。")
}

// splitFields splits one CSV line into its cells, appending to dst. Cells in
// double quotes may hold commas and doubled quotes; a quote inside an
// unquoted cell is taken as it is. Bills keep each row on one line, so a
// quoted cell left open at the end of the line makes the result nil.
func splitFields(line string, dst []string) []string {
	if strings.IndexByte(line, '"') < 0 {
		for {
			i := strings.IndexByte(line, ',')
			if i < 0 {
				return append(dst, line)
			}
			dst = append(dst, line[:i])
			line = line[i+1:]
		}
	}
	for {
		start := strings.TrimLeft(line, " \t")
		if start == "" || start[0] != '"' {
			i := strings.IndexByte(line, ',')
			if i < 0 {
				return append(dst, line)
			}
			dst = append(dst, line[:i])
			line = line[i+1:]
			continue
		}
		var cell strings.Builder
		rest := start[1:]
		for {
			i := strings.IndexByte(rest, '"')
			if i < 0 {
				return nil
			}
			cell.WriteString(rest[:i])
			rest = rest[i+1:]
			if rest != "" && rest[0] == '"' {
				cell.WriteByte('"')
				rest = rest[1:]
				continue
			}
			break
		}
		dst = append(dst, cell.String())
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			return dst
		}
		if rest[0] != ',' {
			return nil
		}
		line = rest[1:]
	}
}

func allEmpty(fields []string) bool {
	for _, f := range fields {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// dropPartialRune cuts a UTF-8 sequence left incomplete at the end of b (by
// a read that stopped in its middle).
func dropPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// isDetailName reports whether the zip entry is the detail CSV: its name,
// read as GBK unless the UTF-8 flag says otherwise (or as UTF-8 when it is
// valid UTF-8 without the flag, as some tools write), ends with 业务明细.csv
// and stays inside the archive.
func isDetailName(f *zip.File) bool {
	names := []string{f.Name}
	if f.Flags&0x800 == 0 {
		if n, err := simplifiedchinese.GB18030.NewDecoder().String(f.Name); err == nil {
			names = append(names, n)
		}
	}
	for _, n := range names {
		if !utf8.ValidString(n) || !isLocalName(n) {
			continue
		}
		if strings.HasSuffix(strings.ToLower(headerReplacer.Replace(n)), detailName) {
			return true
		}
	}
	return false
}

// isLocalName reports whether an entry name stays below the archive's root
// under both '/' and '\' separators.
func isLocalName(name string) bool {
	if name == "" || strings.ContainsAny(name, ":\x00") || name[0] == '/' || name[0] == '\\' {
		return false
	}
	for _, seg := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == ".." {
			return false
		}
	}
	return true
}

// isDamaged reports whether err says the zip or its compressed data is bad,
// as opposed to an I/O error of the reader underneath.
func isDamaged(err error) bool {
	var corrupt flate.CorruptInputError
	return errors.Is(err, zip.ErrFormat) || errors.Is(err, zip.ErrChecksum) || errors.Is(err, zip.ErrAlgorithm) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &corrupt)
}

func tooBig(limit int64) error {
	size := fmt.Sprintf("%d bytes", limit)
	if limit >= 1<<20 {
		size = fmt.Sprintf("%d MiB", limit>>20)
	}
	return channels.Refuse(0,
		"The zip inflates to more than %s, far more than any bill (a zip bomb?). The file was not read.",
		"该 zip 解压后超过 %s，远超任何账单（疑似 zip 炸弹），未读取。", size)
}

// inflateGuard stops reading an entry once more than limit bytes came out of
// it, whatever its header declared.
type inflateGuard struct {
	r     io.Reader
	left  int64 // limit+1 minus what was read
	limit int64
}

func (g *inflateGuard) Read(b []byte) (int, error) {
	if g.left <= 0 {
		return 0, tooBig(g.limit)
	}
	if int64(len(b)) > g.left {
		b = b[:g.left]
	}
	n, err := g.r.Read(b)
	g.left -= int64(n)
	if g.left <= 0 {
		return n, tooBig(g.limit)
	}
	return n, err
}

// add returns a+b and whether it (and everything before: ok) stayed in range.
func add(a, b int64, ok bool) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return s, false
	}
	return s, ok
}

func abs(v int64) int64 {
	if v < 0 {
		if v == math.MinInt64 {
			return math.MaxInt64
		}
		return -v
	}
	return v
}

// yuan formats fen as yuan for messages.
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", abs(fen)
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}
