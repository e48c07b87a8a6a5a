package generic

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"

	"payfuse/channels"
)

const (
	maxLineBytes = 256 << 10 // longest line read; statement rows are a few hundred bytes
	// maxPreamble is how many non-blank lines may come before the header
	// row (titles, merchant id, date range) before the file is refused.
	maxPreamble = 100
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// requiredColumns are the fields a header row must have for the table to start.
var requiredColumns = []string{FieldChannelRef, FieldAmount, FieldTime}

// Parse streams a CSV statement through the mapping m: each detail row
// becomes a channels.Record of the given channel and goes to fn as it is
// read; at the end the rows are checked against the file's summary when the
// mapping declares one. Anything malformed — a missing column, a number
// that is not a number, an unknown status word, a summary that disagrees, a
// file cut short — refuses the whole file with a *channels.BillError (both
// languages, with the line number). fn must treat records as provisional
// until Parse returns nil. An error from fn stops the parse and is returned
// as it is; I/O errors are returned wrapped. Memory stays bounded: lines
// longer than 256 KiB are refused and nothing but the current row is kept.
//
// The file may start with a UTF-8 byte-order mark, use CRLF line ends, hold
// title lines and "#" comment lines before and after the table, blank lines,
// cells quoted with double quotes, cells guarded for spreadsheets with a
// leading backtick or written as ="…", and cells padded with spaces or tabs.
// The header row is the first line naming the columns of the channel
// reference, the amount and the time (any of their mapped names).
func Parse(r io.Reader, m Mapping, channel string, fn func(channels.Record) error) (channels.Totals, error) {
	p, err := newParser(r, m, channel, fn)
	if err != nil {
		return channels.Totals{}, err
	}
	if err := p.run(); err != nil {
		return channels.Totals{}, err
	}
	return p.totals, nil
}

type lineReader struct {
	br    *bufio.Reader
	dec   *encoding.Decoder // nil for UTF-8
	buf   []byte
	line  int
	delim byte
	cells []string
}

func newLineReader(r io.Reader, enc, delim string) (*lineReader, error) {
	br := bufio.NewReaderSize(r, maxLineBytes)
	peek, err := br.Peek(64 << 10)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("generic: unable to read the statement: %w", err)
	}
	lr := &lineReader{br: br, delim: ','}
	if delim != "" {
		lr.delim = delim[0]
	}
	switch {
	case bytes.HasPrefix(peek, utf8BOM):
		br.Discard(len(utf8BOM))
	case enc == EncodingGBK:
		lr.dec = simplifiedchinese.GB18030.NewDecoder()
	case enc == EncodingUTF8:
	case !utf8.Valid(dropPartialRune(peek)):
		lr.dec = simplifiedchinese.GB18030.NewDecoder()
	}
	return lr, nil
}

// next returns the next line's text, its line ending removed.
func (lr *lineReader) next() (string, error) {
	b, err := lr.br.ReadSlice('\n')
	switch {
	case err == nil:
	case errors.Is(err, bufio.ErrBufferFull):
		return "", channels.Refuse(lr.line+1, "The line is longer than %d KiB; statement lines are far shorter. Is this the right file?",
			"该行超过 %d KiB，对账单的行远比这短。请确认文件是否正确。", maxLineBytes>>10)
	case errors.Is(err, io.EOF):
		if len(b) == 0 {
			return "", io.EOF
		}
	default:
		return "", fmt.Errorf("generic: unable to read the statement: %w", err)
	}
	lr.line++
	b = bytes.TrimRight(b, "\r\n")
	if lr.dec == nil || isASCII(b) {
		if !utf8.Valid(b) {
			return "", channels.Refuse(lr.line, "The line is not valid UTF-8; choose the file's encoding (GBK or UTF-8) in the column mapping.",
				"该行不是有效的 UTF-8；请在列映射中选择文件的编码（GBK 或 UTF-8）。")
		}
		return string(b), nil
	}
	if need := 3*len(b) + utf8.UTFMax; cap(lr.buf) < need {
		lr.buf = make([]byte, need)
	}
	lr.dec.Reset()
	n, _, err := lr.dec.Transform(lr.buf[:cap(lr.buf)], b, true)
	if err != nil {
		return "", channels.Refuse(lr.line, "The line is not valid GBK text.", "该行不是有效的 GBK 文本。")
	}
	return string(lr.buf[:n]), nil
}

// split cuts a line into cleaned cells (reusing its slice); ok is false when a
// quoted cell is not closed on its line.
func (lr *lineReader) split(text string) ([]string, bool) {
	lr.cells = splitCells(text, lr.delim, lr.cells[:0])
	if lr.cells == nil {
		return nil, false
	}
	for i, c := range lr.cells {
		lr.cells[i] = cleanCell(c)
	}
	return lr.cells, true
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// dropPartialRune cuts an incomplete UTF-8 sequence off the end of a peek.
func dropPartialRune(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			break
		}
	}
	return b
}

// cleanCell removes what spreadsheets and channels wrap values in: padding
// spaces and tabs, a leading backtick (WeChat-style), and the ="…" guard.
func cleanCell(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 3 && strings.HasPrefix(s, `="`) && strings.HasSuffix(s, `"`) {
		s = s[2 : len(s)-1]
	}
	s = strings.TrimPrefix(s, "`")
	return strings.TrimSpace(s)
}

// splitCells splits one line at delim, appending to dst. Cells in double
// quotes may hold the delimiter and doubled quotes; a quote inside an
// unquoted cell is kept as it is. A quoted cell left open makes the result nil.
func splitCells(line string, delim byte, dst []string) []string {
	if dst == nil {
		dst = []string{}
	}
	for {
		start := strings.TrimLeft(line, " ")
		if delim != '\t' {
			start = strings.TrimLeft(start, "\t")
		}
		if start == "" || start[0] != '"' {
			i := strings.IndexByte(line, delim)
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
		if rest[0] != delim {
			return nil
		}
		line = rest[1:]
	}
}

func allEmpty(cells []string) bool {
	for _, c := range cells {
		if c != "" {
			return false
		}
	}
	return true
}

type parser struct {
	m       Mapping
	channel string
	fn      func(channels.Record) error
	lr      *lineReader
	loc     *time.Location
	layouts []string
	unit    string
	preview bool // a sample: a missing summary is noted, not refused

	header   []string       // names as the file gives them
	col      map[string]int // normalised name -> index
	idx      map[string]int // canonical field -> index
	preamble int

	accountRef  string
	statuses    map[string]string
	refundWords map[string]bool
	payWords    map[string]bool
	methods     map[string]string

	totals  channels.Totals
	rows    int
	written int64 // the amount column summed as written, in minor units

	footerSeen    bool
	footerLine    int
	footerPending []int // summary header seen: positions of count and amount in the next line
	footerCount   int64
	footerAmount  int64
	hasCount      bool
	hasAmount     bool
}

func newParser(r io.Reader, m Mapping, channel string, fn func(channels.Record) error) (*parser, error) {
	m = m.Normalize()
	if ps := m.Validate(); len(ps) > 0 {
		t := ps[0].Message
		return nil, &channels.BillError{Message: channels.Text{EN: "The column mapping is incomplete: " + t.EN, ZH: "列映射不完整：" + t.ZH}}
	}
	lr, err := newLineReader(r, m.Encoding, m.Delimiter)
	if err != nil {
		return nil, err
	}
	loc, err := m.location()
	if err != nil {
		return nil, channels.Refuse(0, "Unknown time zone %q in the column mapping.", "列映射中的时区 %q 无效。", m.TimeZone)
	}
	p := &parser{m: m, channel: channel, fn: fn, lr: lr, loc: loc, unit: m.AmountUnit,
		statuses: map[string]string{}, refundWords: map[string]bool{}, payWords: map[string]bool{}, methods: map[string]string{}}
	if p.unit == "" {
		p.unit = UnitYuan
	}
	layouts := m.TimeLayouts
	if len(layouts) == 0 {
		layouts = []string{DefaultTimeLayout}
	}
	for _, l := range layouts {
		gl, _ := goLayout(l)
		p.layouts = append(p.layouts, gl)
	}
	for w, s := range m.Statuses {
		p.statuses[foldWord(w)] = s
	}
	for _, w := range m.RefundWords {
		p.refundWords[foldWord(w)] = true
	}
	for _, w := range m.PaymentWords {
		p.payWords[foldWord(w)] = true
	}
	for w, s := range m.Methods {
		p.methods[foldWord(w)] = s
	}
	return p, nil
}

func (p *parser) line() int { return p.lr.line }

func (p *parser) run() error {
	for {
		text, err := p.lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		cells, ok := p.lr.split(text)
		if !ok {
			return channels.Refuse(p.line(), "A quoted cell is not closed on its line.", "该行有引号未闭合的单元格。")
		}
		if allEmpty(cells) {
			continue // a line of empty cells, as spreadsheets leave
		}
		first := firstCell(cells)
		if p.header != nil && p.m.Footer != nil && strings.HasPrefix(first, p.m.Footer.Marker) {
			if err := p.footer(cells); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(first, "#") {
			if p.header == nil {
				if err := p.findAccount(text); err != nil {
					return err
				}
			}
			continue
		}
		switch {
		case p.header == nil:
			if err := p.headerOrPreamble(text, cells); err != nil {
				return err
			}
		case p.footerPending != nil:
			if err := p.footerValues(cells); err != nil {
				return err
			}
		case p.footerSeen:
			return channels.Refuse(p.line(), "A row follows the summary line (line %d); the file is not in the mapped layout.",
				"汇总行（第 %d 行）之后仍有数据行，文件不符合映射的格式。", p.footerLine)
		default:
			if err := p.row(cells); err != nil {
				return err
			}
		}
	}
	return p.finish()
}

func firstCell(cells []string) string {
	for _, c := range cells {
		if c != "" {
			return c
		}
	}
	return ""
}

// findAccount reads the channel merchant id from a line before the table.
func (p *parser) findAccount(text string) error {
	for _, label := range p.m.AccountLabels {
		i := strings.Index(text, label)
		if i < 0 {
			continue
		}
		rest := strings.TrimLeft(text[i+len(label):], " \t:：=[【(（,\"'`")
		end := 0
		for end < len(rest) && (rest[end] >= '0' && rest[end] <= '9' || rest[end] >= 'A' && rest[end] <= 'Z' || rest[end] >= 'a' && rest[end] <= 'z') {
			end++
		}
		if end == 0 {
			continue
		}
		id := rest[:end]
		if p.accountRef != "" && p.accountRef != id {
			return channels.Refuse(p.line(), "The file names two merchant ids, %s and %s.", "文件中出现两个商户号：%s 和 %s。", p.accountRef, id)
		}
		p.accountRef = id
		return nil
	}
	return nil
}

// headerOrPreamble takes the line as the header row when it names the
// required columns; otherwise it is a title line before the table.
func (p *parser) headerOrPreamble(text string, cells []string) error {
	col := make(map[string]int, len(cells))
	for i, c := range cells {
		if k := normHeader(c); k != "" {
			if _, dup := col[k]; !dup {
				col[k] = i
			}
		}
	}
	for _, f := range requiredColumns {
		if resolve(col, p.m.Column(f)) < 0 {
			p.preamble++
			if p.preamble > maxPreamble {
				return p.noHeader()
			}
			return p.findAccount(text)
		}
	}
	p.header = make([]string, len(cells))
	for i, c := range cells {
		if c == "" {
			c = fmt.Sprintf("(%d)", i+1) // an unnamed column keeps a name in Raw
		}
		for slices.Contains(p.header[:i], c) {
			c += "'"
		}
		p.header[i] = c
	}
	p.col = col
	p.idx = map[string]int{}
	for _, f := range Fields {
		names := p.m.Column(f)
		if len(names) == 0 {
			continue
		}
		i := resolve(col, names)
		if i < 0 {
			if f == FieldStatus && p.m.FixedStatus == "" || f == FieldKind {
				alts := strings.Join(names, " / ")
				return &channels.BillError{Line: p.line(), Message: channels.Text{
					EN: fmt.Sprintf("The header has no %s column (%s).", fieldText(f).EN, alts),
					ZH: fmt.Sprintf("表头中没有%s列（%s）。", fieldText(f).ZH, alts)}}
			}
			continue // an optional column this file does not have
		}
		for j, c := range cells {
			if j != i && normHeader(c) == normHeader(cells[i]) {
				return channels.Refuse(p.line(), "The header names the column %s twice (columns %d and %d).",
					"表头中 %s 列出现两次（第 %d 列和第 %d 列）。", cells[i], i+1, j+1)
			}
		}
		p.idx[f] = i
	}
	return nil
}

func (p *parser) noHeader() error {
	var names []string
	for _, f := range requiredColumns {
		names = append(names, strings.Join(p.m.Column(f), " / "))
	}
	return channels.Refuse(p.line(), "No header row naming the columns %s was found: is this the right file, or does the column mapping need the file's column names?",
		"未找到含有 %s 列的表头行：请确认文件是否正确，或在列映射中加入该文件的列名。", strings.Join(names, ", "))
}

// resolve returns the index of the first of names present, or -1.
func resolve(col map[string]int, names []string) int {
	for _, n := range names {
		if i, ok := col[normHeader(n)]; ok {
			return i
		}
	}
	return -1
}

func (p *parser) get(cells []string, f string) string {
	if i, ok := p.idx[f]; ok && i < len(cells) {
		return cells[i]
	}
	return ""
}

func (p *parser) colName(f string) string {
	if i, ok := p.idx[f]; ok {
		return p.header[i]
	}
	return fieldText(f).ZH
}

func (p *parser) row(cells []string) error {
	if len(cells) < len(p.header) {
		return channels.Refuse(p.line(), "The row has %d cells where the header has %d columns.",
			"该行有 %d 个单元格，而表头有 %d 列。", len(cells), len(p.header))
	}
	for _, extra := range cells[len(p.header):] {
		if extra != "" {
			return channels.Refuse(p.line(), "The row has %d cells where the header has %d columns.",
				"该行有 %d 个单元格，而表头有 %d 列。", len(cells), len(p.header))
		}
	}
	raw := make(map[string]string, len(p.header))
	for i, name := range p.header {
		raw[name] = cells[i]
	}
	rec := channels.Record{
		Channel:         p.channel,
		ChannelRef:      p.get(cells, FieldChannelRef),
		MerchantOrderNo: p.get(cells, FieldOrderNo),
		Currency:        p.m.Currency,
		Raw:             raw,
	}
	if rec.ChannelRef == "" {
		return channels.Refuse(p.line(), "The row has no %s.", "该行缺少%s。", p.colName(FieldChannelRef))
	}
	if c := strings.ToUpper(p.get(cells, FieldCurrency)); c != "" {
		if !currencyOK(c) {
			return channels.Refuse(p.line(), "The currency %q is not a three-letter ISO 4217 code.", "币种 %q 不是三位 ISO 4217 代码。", truncate(c, 16))
		}
		rec.Currency = c
	}

	// Status and kind.
	refund := false
	if _, ok := p.idx[FieldStatus]; ok {
		word := p.get(cells, FieldStatus)
		rec.NativeStatus = word
		st, known := p.statuses[foldWord(word)]
		switch {
		case known:
			rec.Status = st
		case word != "" && p.refundWords[foldWord(word)]:
			rec.Status = channels.StatusSucceeded // a status column that says only "refund"
		case word == "":
			return channels.Refuse(p.line(), "The row has no %s.", "该行缺少%s。", p.colName(FieldStatus))
		default:
			return channels.Refuse(p.line(), "Unknown status word %q in column %s: add it to the column mapping's status table.",
				"%[2]s 列中有未知状态词 %[1]q：请将其加入列映射的状态对照表。", truncate(word, 32), p.colName(FieldStatus))
		}
	} else {
		rec.Status = p.m.FixedStatus
	}
	if _, ok := p.idx[FieldKind]; ok {
		word := p.get(cells, FieldKind)
		switch {
		case p.refundWords[foldWord(word)]:
			refund = true
		case len(p.payWords) > 0 && !p.payWords[foldWord(word)]:
			return channels.Refuse(p.line(), "Unknown transaction type %q in column %s: add it to the mapping's payment or refund words.",
				"%[2]s 列中有未知交易类型 %[1]q：请将其加入列映射的支付词或退款词。", truncate(word, 32), p.colName(FieldKind))
		}
		if rec.NativeStatus == "" {
			rec.NativeStatus = word
		}
	} else if p.refundWords[foldWord(rec.NativeStatus)] {
		refund = true
	}

	// Amounts.
	amountText := p.get(cells, FieldAmount)
	amount, err := p.amount(amountText)
	if err != nil {
		return p.badAmount(p.colName(FieldAmount), amountText)
	}
	var ok bool
	if p.written, ok = add(p.written, amount, true); !ok {
		return p.overflow()
	}
	if amount < 0 {
		switch {
		case p.m.NegativeRefunds:
			refund = true
		case !refund:
			return channels.Refuse(p.line(), "The %s of a payment is negative: %q.", "交易的%s为负数：%q。", p.colName(FieldAmount), truncate(amountText, 32))
		}
	}
	rec.Amount = abs(amount)
	if s := p.get(cells, FieldFee); s != "" {
		fee, err := p.amount(s)
		if err != nil {
			return p.badAmount(p.colName(FieldFee), s)
		}
		rec.Fee, rec.FeeKnown = abs(fee), true
	}

	// Times.
	at, err := p.time(cells, FieldTime, true)
	if err != nil {
		return err
	}
	created, err := p.time(cells, FieldCreated, false)
	if err != nil {
		return err
	}
	if created.IsZero() {
		created = at
	}
	rec.CreatedAt = created

	// The rest.
	rec.Payer = channels.MaskPayer(p.get(cells, FieldPayer))
	if _, ok := p.idx[FieldMethod]; ok {
		rec.Method = p.methods[foldWord(p.get(cells, FieldMethod))]
	} else {
		rec.Method = p.m.FixedMethod
	}
	rec.AccountRef = p.accountRef
	if ref := p.get(cells, FieldAccountRef); ref != "" {
		if p.accountRef != "" && ref != p.accountRef {
			return channels.Refuse(p.line(), "The row names merchant id %s, but the file's header names %s.",
				"该行的商户号为 %s，而文件开头写的是 %s。", truncate(ref, 32), p.accountRef)
		}
		rec.AccountRef = ref
	}

	t := &p.totals
	ok = true
	if refund {
		rec.Kind = channels.KindRefund
		rec.RefundNo = p.get(cells, FieldRefundNo)
		rec.PaymentRef = p.get(cells, FieldPaymentRef)
		switch rec.Status {
		case channels.StatusPending:
			rec.Status = channels.StatusProcessing // a refund is asked for, not yet done
		case channels.StatusRevoked:
			return channels.Refuse(p.line(), "A refund row has the status %q, which means revoked: refunds are not revoked.",
				"退款行的状态为 %q（已撤销），退款不存在撤销状态。", truncate(rec.NativeStatus, 32))
		}
		if rec.Status == channels.StatusSucceeded {
			rec.RefundedAt = at
		}
		t.Refunds++
		t.RefundAmount, ok = add(t.RefundAmount, rec.Amount, ok)
		t.Fees, ok = add(t.Fees, -rec.Fee, ok)
	} else {
		rec.Kind = channels.KindPayment
		if rec.Status == channels.StatusSucceeded {
			rec.PaidAt = at
		}
		t.Payments++
		t.PaymentAmount, ok = add(t.PaymentAmount, rec.Amount, ok)
		t.Fees, ok = add(t.Fees, rec.Fee, ok)
	}
	if !ok {
		return p.overflow()
	}
	p.rows++
	if p.fn == nil {
		return nil
	}
	return p.fn(rec)
}

func (p *parser) overflow() error {
	return channels.Refuse(p.line(), "The amounts add up past what can be counted; the file is not a real statement.",
		"金额累计超出可计数范围，该文件不是真实对账单。")
}

// amount parses a cell in the mapping's unit into minor units.
func (p *parser) amount(s string) (int64, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "元")
	if p.unit == UnitFen {
		return channels.ParseDecimal(s, 0)
	}
	return channels.ParseYuan(s)
}

func (p *parser) badAmount(col, s string) error {
	if p.unit == UnitFen {
		return channels.Refuse(p.line(), "The %s is not a whole number of fen: %q.", "%s不是以分为单位的整数：%q。", col, truncate(s, 32))
	}
	return channels.Refuse(p.line(), "The %s is not an amount in yuan with at most two decimals: %q.",
		"%s不是最多两位小数的元金额：%q。", col, truncate(s, 32))
}

func (p *parser) time(cells []string, f string, required bool) (time.Time, error) {
	s := p.get(cells, f)
	if s == "" {
		if required {
			return time.Time{}, channels.Refuse(p.line(), "The row has no %s.", "该行缺少%s。", p.colName(f))
		}
		return time.Time{}, nil
	}
	for _, l := range p.layouts {
		if t, err := time.ParseInLocation(l, s, p.loc); err == nil {
			return t.UTC(), nil
		}
	}
	layouts := strings.Join(p.m.TimeLayouts, " | ")
	if layouts == "" {
		layouts = DefaultTimeLayout
	}
	return time.Time{}, channels.Refuse(p.line(), "The %s %q is not a time written as %s.", "%s %q 不符合时间格式 %s。",
		p.colName(f), truncate(s, 40), layouts)
}

// footer reads the summary line (or the summary header before it).
func (p *parser) footer(cells []string) error {
	if p.footerSeen {
		return channels.Refuse(p.line(), "The summary line appears twice (first on line %d).", "汇总行重复出现（首次在第 %d 行）。", p.footerLine)
	}
	p.footerSeen, p.footerLine = true, p.line()
	f := p.m.Footer
	// A summary header: the marker line names the summary's own columns.
	own := map[string]int{}
	for i, c := range cells {
		own[normHeader(c)] = i
	}
	ci, cok := own[normHeader(f.CountColumn)]
	ai, aok := own[normHeader(f.AmountColumn)]
	if (f.CountColumn == "" || cok) && (f.AmountColumn == "" || aok) {
		p.footerPending = []int{-1, -1}
		if cok {
			p.footerPending[0] = ci
		}
		if aok {
			p.footerPending[1] = ai
		}
		return nil
	}
	// A total row under the table's own columns.
	idx := []int{-1, -1}
	for k, name := range []string{f.CountColumn, f.AmountColumn} {
		if name == "" {
			continue
		}
		i, ok := p.col[normHeader(name)]
		if !ok {
			return channels.Refuse(p.line(), "The summary column %s is neither in the table's header nor in the summary line.",
				"汇总列 %s 既不在表头中，也不在汇总行中。", name)
		}
		idx[k] = i
	}
	return p.readFooter(cells, idx)
}

func (p *parser) footerValues(cells []string) error {
	idx := p.footerPending
	p.footerPending = nil
	p.footerLine = p.line()
	return p.readFooter(cells, idx)
}

func (p *parser) readFooter(cells []string, idx []int) error {
	cell := func(i int) string {
		if i >= 0 && i < len(cells) {
			return cells[i]
		}
		return ""
	}
	if idx[0] >= 0 {
		s := strings.TrimSuffix(cell(idx[0]), "笔")
		n, err := channels.ParseDecimal(s, 0)
		if err != nil || n < 0 {
			return channels.Refuse(p.line(), "The summary's count is not a number: %q.", "汇总行的笔数不是数字：%q。", truncate(cell(idx[0]), 32))
		}
		p.footerCount, p.hasCount = n, true
	}
	if idx[1] >= 0 {
		s := cell(idx[1])
		v, err := p.amount(s)
		if err != nil {
			return p.badAmount(p.m.Footer.AmountColumn, s)
		}
		p.footerAmount, p.hasAmount = v, true
	}
	return nil
}

func (p *parser) finish() error {
	if p.header == nil {
		return p.noHeader()
	}
	f := p.m.Footer
	if f == nil {
		return nil
	}
	if p.footerPending != nil || !p.footerSeen {
		if p.preview {
			return nil
		}
		return channels.Refuse(p.line(), "The summary line (starting with %s) is missing: the file seems cut short. Download it again.",
			"缺少汇总行（以 %s 开头）：文件似乎不完整，请重新下载。", f.Marker)
	}
	if p.hasCount && p.footerCount != int64(p.rows) {
		return channels.Refuse(p.footerLine, "The summary says %d transactions but the file lists %d.",
			"汇总行为 %d 笔，但明细列出 %d 笔。", p.footerCount, p.rows)
	}
	if p.hasAmount && p.footerAmount != p.written {
		return channels.Refuse(p.footerLine, "The summary says %s but the rows' amounts add up to %s.",
			"汇总金额为 %s，但明细金额合计为 %s。", p.money(p.footerAmount), p.money(p.written))
	}
	return nil
}

func (p *parser) money(v int64) string {
	if p.unit == UnitFen {
		return fmt.Sprintf("%d", v)
	}
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
}

func add(a, b int64, ok bool) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return s, false
	}
	return s, ok
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
