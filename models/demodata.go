package models

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"payfuse/channels"
)

// Limits of the demo history generator.
const (
	DemoMaxTransactions = 20_000_000
	DemoMaxDays         = 366
	DemoDefaultDays     = 90
)

// DemoOptions says how much demo history to make, and where.
type DemoOptions struct {
	Transactions int       // payments to generate (refunds come on top), 1..DemoMaxTransactions
	Days         int       // days of history ending yesterday; 0 means DemoDefaultDays
	Seed         int64     // the same seed (and options, on the same day) makes the same history
	Now          time.Time // zero: the store's clock
	Merchants    []string  // merchant codes; none: the demo merchants that exist
	// PeriodDays is how many days one statement file covers. 0 picks by
	// volume (each file costs database transactions and their bookkeeping,
	// which a small history would spend most of its time on): a day when an
	// account takes 50 or more payments a day on average, a week from 8, else 30 days.
	PeriodDays int
	// OnlyIfEmpty makes GenerateDemoHistory do nothing when the ledger already
	// holds transactions (for serve --demo).
	OnlyIfEmpty bool
	// Progress, when set, is told how many payments have been brought in so far.
	Progress func(done, total int)
}

// DemoSummary says what GenerateDemoHistory generated and what the ledger took.
type DemoSummary struct {
	Skipped         bool // OnlyIfEmpty and the ledger was not empty
	Merchants       []string
	Accounts        int
	Days            int
	From, To        string // business dates covered
	Payments        int    // generated payments
	Refunds         int    // generated refunds
	Notifications   int    // payments also delivered as notifications
	Conflicts       int    // notifications made to disagree with the statement
	Files           int    // statement files
	AlreadyImported int    // of which were already imported
	IngestStats            // what the ledger did with all rows (statements and notifications)
	Elapsed         time.Duration
}

// Demo mixes: how a payment splits over channels, methods and statuses.
var (
	demoChannelWeight  = map[string]float64{"wechat": 55, "alipay": 35, "unionpay": 10}
	demoMerchantWeight = map[string]float64{"SHOP_SH": 45, "SHOP_BJ": 35, "SHOP_GZ": 20}
	demoMethodWeight   = map[string]map[string]float64{
		"wechat":   {"scan": 45, "quick": 35, "h5": 5, "app": 15},
		"alipay":   {"scan": 55, "quick": 15, "h5": 10, "app": 20},
		"unionpay": {"scan": 60, "quick": 25, "h5": 5, "app": 10},
	}
	// Retail traffic by local hour: quiet at night, a lunch and an evening peak.
	demoHourWeight = [24]float64{0.3, 0.15, 0.1, 0.05, 0.05, 0.1, 0.3, 1.2, 2.5, 2.2, 2.4, 3.5, 6.0, 5.5, 3.0, 2.5, 2.6, 3.5, 5.0, 5.8, 4.8, 3.2, 1.8, 0.8}
	// Busier weekends (Sunday first, as time.Weekday counts).
	demoWeekdayWeight = [7]float64{1.3, 0.9, 0.9, 0.95, 1.0, 1.1, 1.35}
)

const (
	demoNotifyShare = 0.20  // succeeded payments also delivered by notification
	demoRefundShare = 0.03  // succeeded payments refunded
	demoConflicts   = 0.002 // payments whose notification disagrees with the statement
)

// demoAccount is one channel account the history is generated for.
type demoAccount struct {
	acct     ChannelAccount
	merchant *Merchant
	loc      *time.Location
	ref      string // the channel merchant id records name
	shard    int    // digits of the channel ids that stay the same for the account
	prefix   string // merchant order number prefix
	methods  []string
	mcum     []float64
	weight   float64
	count    int
	days     []int       // payments per day
	first    time.Time   // local midnight of the first day
	feeBP    int64       // fee rate in basis points
	tags     [2][]string // NATIVE/MICROPAY etc.
}

type demoGen struct {
	s        *Store
	opts     DemoOptions
	actor    Actor
	key      [32]byte // identifies the run: seed, options, day
	seq      map[string]int64
	notified int // overlap notifications so far (across accounts, in order)
	stride   int // every stride-th notification disagrees
	sum      DemoSummary
	done     int
}

// GenerateDemoHistory makes realistic payment history for demo merchants and
// brings it in through the real ingest path: one statement file per account
// and day (or week) through ImportStatement, and a share of the payments also
// as notifications through Ingest, some before and some after their
// statement, a few of them disagreeing so the ledger shows conflicts. The
// history is the same for the same seed and options on the same day, so a
// second run finds its files already imported and adds nothing.
func (s *Store) GenerateDemoHistory(a Actor, opts DemoOptions) (DemoSummary, error) {
	start := time.Now()
	if opts.Transactions < 1 || opts.Transactions > DemoMaxTransactions {
		return DemoSummary{}, fmt.Errorf("demo data: the number of transactions must be between 1 and %d, not %d", DemoMaxTransactions, opts.Transactions)
	}
	if opts.Days == 0 {
		opts.Days = DemoDefaultDays
	}
	if opts.Days < 1 || opts.Days > DemoMaxDays {
		return DemoSummary{}, fmt.Errorf("demo data: the number of days must be between 1 and %d, not %d", DemoMaxDays, opts.Days)
	}
	if opts.PeriodDays < 0 || opts.PeriodDays > opts.Days {
		return DemoSummary{}, fmt.Errorf("demo data: a statement period of %d days does not fit %d days", opts.PeriodDays, opts.Days)
	}
	if opts.Now.IsZero() {
		opts.Now = s.now()
	}
	if opts.OnlyIfEmpty {
		var ids []uint64
		if err := s.DB.Model(&Transaction{}).Limit(1).Pluck("id", &ids).Error; err != nil {
			return DemoSummary{}, fmt.Errorf("demo data: unable to look at the ledger: %w", err)
		}
		if len(ids) > 0 {
			return DemoSummary{Skipped: true}, nil
		}
	}
	accts, codes, err := s.demoAccounts(opts.Merchants)
	if err != nil {
		return DemoSummary{}, err
	}
	g := &demoGen{s: s, opts: opts, actor: a, seq: map[string]int64{}}
	// The run is known by its options and each merchant's own today: the
	// history ends yesterday in the merchant's time zone.
	days := map[string]string{}
	for i := range accts {
		days[accts[i].merchant.Code] = accts[i].merchant.Code + "@" + opts.Now.In(accts[i].loc).Format(time.DateOnly)
	}
	var where []string
	for _, code := range codes {
		where = append(where, days[code])
	}
	g.key = sha256.Sum256(fmt.Appendf(nil, "payfuse-demo/v1|%d|%d|%d|%d|%s", opts.Seed, opts.Transactions, opts.Days, opts.PeriodDays, strings.Join(where, ",")))
	target := max(3, int(math.Round(float64(opts.Transactions)*demoConflicts)))
	g.stride = max(1, int(float64(opts.Transactions)*demoNotifyShare)/target)
	g.sum.Merchants, g.sum.Accounts, g.sum.Days = codes, len(accts), opts.Days
	g.plan(accts)
	if g.opts.PeriodDays == 0 {
		switch perDay := float64(opts.Transactions) / float64(len(accts)*opts.Days); {
		case perDay >= 50:
			g.opts.PeriodDays = 1
		case perDay >= 8:
			g.opts.PeriodDays = 7
		default:
			g.opts.PeriodDays = min(30, opts.Days)
		}
	}
	for i := range accts {
		if err := g.account(i, &accts[i]); err != nil {
			return g.sum, err
		}
	}
	g.sum.Elapsed = time.Since(start)
	return g.sum, nil
}

// demoAccounts lists the enabled WeChat Pay, Alipay and UnionPay accounts of
// the merchants, in a stable order.
func (s *Store) demoAccounts(codes []string) ([]demoAccount, []string, error) {
	explicit := len(codes) > 0
	if !explicit {
		codes = DemoMerchants
	}
	var out []demoAccount
	var used []string
	for _, code := range codes {
		code = strings.ToUpper(strings.TrimSpace(code))
		if slices.Contains(used, code) {
			continue
		}
		m, err := s.GetMerchantByCode(Scope{All: true}, code)
		if errors.Is(err, ErrNotFound) {
			if explicit {
				return nil, nil, fmt.Errorf("demo data: no merchant %q", code)
			}
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		var list []ChannelAccount
		if err := s.DB.Where("merchant_id = ? AND enabled = ? AND channel IN ?", m.ID, true, []string{"wechat", "alipay", "unionpay"}).
			Order("channel, id").Find(&list).Error; err != nil {
			return nil, nil, fmt.Errorf("demo data: unable to list channel accounts: %w", err)
		}
		if len(list) == 0 {
			if explicit {
				return nil, nil, fmt.Errorf("demo data: merchant %s has no enabled WeChat Pay, Alipay or UnionPay account", code)
			}
			continue
		}
		used = append(used, code)
		perChannel := map[string]int{}
		for _, ca := range list {
			perChannel[ca.Channel]++
		}
		mw := demoMerchantWeight[code]
		if mw == 0 {
			mw = 30
		}
		for _, ca := range list {
			da := demoAccount{acct: ca, merchant: m, loc: m.Location(), ref: ca.SettingsMap()[accountRefField[ca.Channel]],
				weight: mw * demoChannelWeight[ca.Channel] / float64(perChannel[ca.Channel]), feeBP: int64(ca.FeeRateBP)}
			h := sha256.Sum256([]byte(ca.Channel + "|" + da.ref + "|" + idStr(ca.ID)))
			da.shard = int(binary.BigEndian.Uint32(h[:4]) % 100000)
			da.prefix = demoOrderPrefix(code)
			for _, meth := range ca.MethodList() {
				if w := demoMethodWeight[ca.Channel][meth]; w > 0 {
					da.methods = append(da.methods, meth)
					da.mcum = append(da.mcum, w)
				}
			}
			if len(da.methods) == 0 {
				da.methods, da.mcum = []string{channels.MethodScan}, []float64{1}
			}
			demoCumulate(da.mcum)
			out = append(out, da)
		}
	}
	if len(out) == 0 {
		return nil, nil, errors.New("demo data: no demo merchant with an enabled WeChat Pay, Alipay or UnionPay account; create the demo merchants first")
	}
	return out, used, nil
}

// demoOrderPrefix makes a merchant order number prefix from a merchant code
// ("SHOP_SH" -> "SH").
func demoOrderPrefix(code string) string {
	if i := strings.LastIndexByte(code, '_'); i >= 0 && i < len(code)-1 {
		code = code[i+1:]
	}
	var b strings.Builder
	for _, r := range code {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	p := b.String()
	if len(p) > 6 {
		p = p[:6]
	}
	if p == "" {
		p = "PF"
	}
	return p
}

func demoCumulate(w []float64) {
	for i := 1; i < len(w); i++ {
		w[i] += w[i-1]
	}
}

func demoPick(rng *rand.Rand, cum []float64) int {
	x := rng.Float64() * cum[len(cum)-1]
	i := sort.SearchFloat64s(cum, x)
	return min(i, len(cum)-1)
}

// rng returns a generator for one account and day of the run.
func (g *demoGen) rng(acct, day int) *rand.Rand {
	a := binary.BigEndian.Uint64(g.key[:8]) ^ uint64(acct)<<32 ^ uint64(day)
	b := binary.BigEndian.Uint64(g.key[8:16]) + uint64(acct)*0x9E3779B97F4A7C15
	return rand.New(rand.NewPCG(a, b))
}

// demoAllocate splits total in proportion to weights, exactly (largest remainder).
func demoAllocate(total int, weights []float64) []int {
	sum := 0.0
	for _, w := range weights {
		sum += w
	}
	out := make([]int, len(weights))
	type rem struct {
		i int
		r float64
	}
	rems := make([]rem, len(weights))
	given := 0
	for i, w := range weights {
		x := float64(total) * w / sum
		out[i] = int(x)
		given += out[i]
		rems[i] = rem{i, x - float64(out[i])}
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].r > rems[b].r })
	for k := 0; given < total; k++ {
		out[rems[k%len(rems)].i]++
		given++
	}
	return out
}

// plan decides how many payments each account takes each day.
func (g *demoGen) plan(accts []demoAccount) {
	weights := make([]float64, len(accts))
	for i := range accts {
		weights[i] = accts[i].weight
	}
	for i, n := range demoAllocate(g.opts.Transactions, weights) {
		a := &accts[i]
		a.count = n
		y, m, d := g.opts.Now.In(a.loc).Date()
		a.first = time.Date(y, m, d-g.opts.Days, 0, 0, 0, 0, a.loc)
		rng := g.rng(i, -1)
		dw := make([]float64, g.opts.Days)
		for day := range dw {
			wd := a.first.AddDate(0, 0, day).Weekday()
			trend := 0.85 + 0.3*float64(day)/float64(g.opts.Days)
			dw[day] = demoWeekdayWeight[wd] * trend * (0.85 + 0.3*rng.Float64())
		}
		a.days = demoAllocate(n, dw)
	}
	g.sum.From = accts[0].first.Format(time.DateOnly)
	g.sum.To = accts[0].first.AddDate(0, 0, g.opts.Days-1).Format(time.DateOnly)
}

var demoHourCum = func() (c [2][]float64) {
	for weekend := range 2 {
		c[weekend] = make([]float64, 24)
		for h, w := range demoHourWeight {
			if weekend == 1 && h >= 10 && h <= 17 {
				w *= 1.4 // weekend afternoons fill up
			}
			c[weekend][h] = w
		}
		demoCumulate(c[weekend])
	}
	return c
}()

// next numbers the ids a channel hands out in one day, mapped so that they
// look random but never repeat within the run.
func (g *demoGen) next(channel, kind, date string, modulus int64) int64 {
	k := channel + "|" + kind + "|" + date
	n := g.seq[k]
	g.seq[k] = n + 1
	h := sha256.Sum256(append(g.key[:], k...))
	offset := int64(binary.BigEndian.Uint64(h[:8]) % uint64(modulus))
	const mul = 7_919_572_341 // odd and not a multiple of 5: a bijection modulo 10^k
	return (n%modulus*(mul%modulus)%modulus + offset) % modulus
}

// demoFee is amount × rate, rounded to the fen half away from zero.
func demoFee(amount, bp int64) int64 { return channels.RoundToFen(amount*bp, 6) }

// demoPay is one generated payment and what becomes of it.
type demoPay struct {
	rec      channels.Record // as the statement says it
	notify   *channels.Record
	after    bool // the notification arrives after the statement
	inBill   bool
	refundAt time.Time
}

func (g *demoGen) channelRef(a *demoAccount, kind string, at time.Time) string {
	local := at.In(a.loc)
	date := local.Format("20060102")
	switch a.acct.Channel {
	case "wechat":
		if kind == channels.KindRefund {
			return fmt.Sprintf("50300%05d%s%011d", a.shard, date, g.next("wechat", kind, date, 1e11))
		}
		return fmt.Sprintf("42000%05d%s%010d", a.shard, date, g.next("wechat", kind, date, 1e10))
	case "alipay":
		return fmt.Sprintf("%s22001%015d", date, g.next("alipay", kind, date, 1e15))
	}
	return fmt.Sprintf("%s%07d", local.Format("20060102150405"), g.next(a.acct.Channel, kind, date, 1e7))
}

func (a *demoAccount) payer(rng *rand.Rand) string {
	pool := max(50, a.count/3)
	k := rng.IntN(pool)
	h := sha256.Sum256(fmt.Appendf(nil, "%d|%d", a.acct.ID, k))
	switch a.acct.Channel {
	case "wechat":
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		b := make([]byte, 28)
		b[0] = 'o'
		for i := 1; i < 28; i++ {
			b[i] = alphabet[h[i]&63]
		}
		return channels.MaskPayer(string(b))
	case "alipay":
		return channels.MaskPayer(fmt.Sprintf("1%d%09d", 3+h[0]%7, binary.BigEndian.Uint64(h[1:9])%1e9))
	}
	return channels.MaskPayer(fmt.Sprintf("62%017d", binary.BigEndian.Uint64(h[:8])%1e17))
}

func demoAmount(rng *rand.Rand) int64 {
	y := math.Exp(math.Log(38) + 0.95*rng.NormFloat64())
	y = min(max(y, 5), 2000)
	fen := int64(math.Round(y * 100))
	switch r := rng.Float64(); {
	case r < 0.55:
		fen = max(500, fen/100*100) // whole yuan
	case r < 0.70:
		fen = max(500, fen/10*10)
	}
	return fen
}

// demoNative names a payment's status and method the channel's way.
func demoNative(channel, status, method string, rng *rand.Rand) (state, kind string) {
	switch channel {
	case "wechat":
		state = map[string]string{channels.StatusSucceeded: "SUCCESS", channels.StatusClosed: "CLOSED", channels.StatusFailed: "PAYERROR", channels.StatusRevoked: "REVOKED"}[status]
		kind = map[string]string{"quick": "JSAPI", "h5": "MWEB", "app": "APP"}[method]
		if kind == "" {
			kind = "NATIVE"
			if rng.IntN(2) == 0 {
				kind = "MICROPAY"
			}
		}
	case "alipay":
		state = "TRADE_SUCCESS"
		if status != channels.StatusSucceeded {
			state = "TRADE_CLOSED"
		}
		kind = map[string]string{"scan": "FACE_TO_FACE_PAYMENT", "quick": "JSAPI_PAY", "h5": "QUICK_WAP_WAY", "app": "QUICK_MSECURITY_PAY"}[method]
	default:
		state = map[string]string{channels.StatusSucceeded: "00", channels.StatusClosed: "03", channels.StatusRevoked: "04", channels.StatusFailed: "06"}[status]
		kind = map[string]string{"scan": "0000", "quick": "0001", "h5": "0002", "app": "0003"}[method]
	}
	return state, kind
}

// payment generates one payment of account a at time at.
func (g *demoGen) payment(a *demoAccount, rng *rand.Rand, at time.Time) demoPay {
	method := a.methods[demoPick(rng, a.mcum)]
	status := channels.StatusSucceeded
	switch r := rng.Float64(); {
	case r < 0.015:
		status = channels.StatusClosed
	case r < 0.025:
		status = channels.StatusFailed
	case r < 0.028:
		status = channels.StatusRevoked
	}
	if a.acct.Channel == "alipay" && status != channels.StatusSucceeded {
		status = channels.StatusClosed // Alipay closes what was not paid
	}
	amount := demoAmount(rng)
	created := at.Add(-time.Duration(3+rng.IntN(90)) * time.Second)
	ref := g.channelRef(a, channels.KindPayment, at)
	local := at.In(a.loc)
	order := a.prefix + local.Format("20060102150405") + fmt.Sprintf("%04d", rng.IntN(10000))
	state, tradeType := demoNative(a.acct.Channel, status, method, rng)
	r := channels.Record{Channel: a.acct.Channel, Kind: channels.KindPayment, ChannelRef: ref, MerchantOrderNo: order,
		Method: method, Status: status, NativeStatus: state, Amount: amount, FeeKnown: true, Currency: a.merchant.Currency,
		Payer: a.payer(rng), AccountRef: a.ref, CreatedAt: created.UTC()}
	if status == channels.StatusSucceeded || status == channels.StatusRevoked {
		r.PaidAt = at.UTC()
	}
	if status == channels.StatusSucceeded {
		r.Fee = demoFee(amount, a.feeBP)
	}
	p := demoPay{rec: r, inBill: true}
	when := local.Format(time.DateTime)
	switch a.acct.Channel {
	case "wechat":
		p.rec.Raw = map[string]string{"交易时间": when, "微信订单号": ref, "商户订单号": order, "交易类型": tradeType, "交易状态": state,
			"应结订单金额": money(amount), "手续费": fmt.Sprintf("%s000", money(r.Fee)), "费率": fmt.Sprintf("%.2f%%", float64(a.feeBP)/100)}
	case "alipay":
		p.rec.NativeStatus = "交易"
		p.rec.Raw = map[string]string{"支付宝交易号": ref, "商户订单号": order, "业务类型": "交易", "创建时间": created.In(a.loc).Format(time.DateTime),
			"完成时间": when, "订单金额（元）": money(amount), "商家实收（元）": money(amount), "服务费（元）": "-" + money(r.Fee)}
		// Alipay's trade bill lists paid trades only; a closed one is known from its notification.
		p.inBill = status == channels.StatusSucceeded
	default:
		p.rec.Raw = map[string]string{"queryId": ref, "orderId": order, "txnTime": local.Format("20060102150405"), "txnAmt": strconv.FormatInt(amount, 10),
			"origRespCode": state, "channelType": tradeType}
	}
	if !p.inBill {
		n := g.notification(a, p.rec, state, tradeType)
		p.notify = &n
		return p
	}
	if status == channels.StatusSucceeded && rng.Float64() < demoNotifyShare {
		g.sum.Notifications++
		n := g.notification(a, p.rec, state, tradeType)
		p.after = rng.IntN(2) == 0
		if g.notified%g.stride == g.stride/2 {
			g.sum.Conflicts++
			g.disagree(a, &p, &n, rng)
		}
		g.notified++
		p.notify = &n
	}
	if p.rec.Status == channels.StatusSucceeded && rng.Float64() < demoRefundShare {
		p.refundAt = at.Add(time.Duration(10+rng.IntN(170)) * time.Minute)
		if rng.Float64() > 0.35 {
			day := local.AddDate(0, 0, 1+rng.IntN(14))
			p.refundAt = time.Date(day.Year(), day.Month(), day.Day(), 9+rng.IntN(12), rng.IntN(60), rng.IntN(60), 0, a.loc)
		}
	}
	return p
}

// notification is what the channel's asynchronous notification says of a payment.
func (g *demoGen) notification(a *demoAccount, r channels.Record, state, tradeType string) channels.Record {
	r.Fee, r.FeeKnown = 0, false
	r.NativeStatus = state
	at := r.PaidAt
	if at.IsZero() {
		at = r.CreatedAt
	}
	when := at.In(a.loc).Format(time.RFC3339)
	switch a.acct.Channel {
	case "wechat":
		r.Raw = map[string]string{"event_type": "TRANSACTION.SUCCESS", "trade_state": state, "trade_type": tradeType, "success_time": when,
			"amount.total": strconv.FormatInt(r.Amount, 10)}
	case "alipay":
		r.Raw = map[string]string{"notify_type": "trade_status_sync", "trade_status": state, "product_code": tradeType, "gmt_payment": at.In(a.loc).Format(time.DateTime),
			"total_amount": money(r.Amount)}
	default:
		r.Raw = map[string]string{"respCode": "00", "origRespCode": state, "txnAmt": strconv.FormatInt(r.Amount, 10), "txnTime": at.In(a.loc).Format("20060102150405")}
	}
	return r
}

// disagree makes a notification and its statement row differ the way they
// do in real life: a merchant-funded coupon the statement deducted from the
// amount, or (not at Alipay, whose bill lists paid trades only) a payment
// reversed after the channel said it succeeded.
func (g *demoGen) disagree(a *demoAccount, p *demoPay, n *channels.Record, rng *rand.Rand) {
	if g.sum.Conflicts%2 == 1 || a.acct.Channel == "alipay" {
		coupon := []int64{100, 200, 500, 1000}[rng.IntN(4)]
		n.Amount = p.rec.Amount + coupon
		if n.Raw["amount.total"] != "" {
			n.Raw["amount.total"] = strconv.FormatInt(n.Amount, 10)
		}
		if n.Raw["total_amount"] != "" {
			n.Raw["total_amount"] = money(n.Amount)
		}
		if n.Raw["txnAmt"] != "" {
			n.Raw["txnAmt"] = strconv.FormatInt(n.Amount, 10)
		}
		return
	}
	// Reversed after the success notification: the statement says revoked.
	p.rec.Status, p.rec.Fee = channels.StatusRevoked, 0
	state, _ := demoNative(a.acct.Channel, channels.StatusRevoked, p.rec.Method, rng)
	p.rec.NativeStatus = state
	if a.acct.Channel == "wechat" {
		p.rec.Raw["交易状态"], p.rec.Raw["手续费"] = state, "0.00000"
	} else {
		p.rec.Raw["origRespCode"] = state
	}
}

// refund generates the refund of payment p at p.refundAt.
func (g *demoGen) refund(a *demoAccount, rng *rand.Rand, p *demoPay) channels.Record {
	pr := &p.rec
	amount, fee := pr.Amount, pr.Fee
	if rng.Float64() < 0.45 && pr.Amount >= 200 {
		amount = max(1, pr.Amount*int64(10+rng.IntN(80))/100)
		amount = amount / 100 * 100 // partial refunds are usually whole yuan
		if amount == 0 || amount >= pr.Amount {
			amount = pr.Amount / 2
		}
		fee = min(demoFee(amount, a.feeBP), pr.Fee)
	}
	at := p.refundAt
	local := at.In(a.loc)
	refundNo := "RF" + a.prefix + local.Format("20060102150405") + fmt.Sprintf("%04d", rng.IntN(10000))
	r := channels.Record{Channel: pr.Channel, Kind: channels.KindRefund, PaymentRef: pr.ChannelRef, MerchantOrderNo: pr.MerchantOrderNo,
		RefundNo: refundNo, Method: pr.Method, Status: channels.StatusSucceeded, Amount: amount, Fee: fee, FeeKnown: true,
		Currency: pr.Currency, Payer: pr.Payer, AccountRef: pr.AccountRef, CreatedAt: at.UTC(), RefundedAt: at.UTC()}
	when := local.Format(time.DateTime)
	switch a.acct.Channel {
	case "wechat":
		r.ChannelRef = g.channelRef(a, channels.KindRefund, at)
		r.NativeStatus = "SUCCESS"
		r.Raw = map[string]string{"交易时间": when, "微信订单号": pr.ChannelRef, "商户订单号": pr.MerchantOrderNo, "交易状态": "REFUND",
			"微信退款单号": r.ChannelRef, "商户退款单号": refundNo, "退款金额": money(amount), "退款状态": "SUCCESS", "手续费": fmt.Sprintf("-%s000", money(fee))}
	case "alipay":
		r.ChannelRef = pr.ChannelRef + "/" + refundNo
		r.NativeStatus = "退款"
		r.Raw = map[string]string{"支付宝交易号": pr.ChannelRef, "商户订单号": pr.MerchantOrderNo, "业务类型": "退款", "完成时间": when,
			"退款批次号/请求号": refundNo, "订单金额（元）": "-" + money(amount), "商家实收（元）": "-" + money(amount), "服务费（元）": money(fee)}
	default:
		r.ChannelRef = g.channelRef(a, channels.KindRefund, at)
		r.NativeStatus = "00"
		r.Raw = map[string]string{"queryId": r.ChannelRef, "origQryId": pr.ChannelRef, "orderId": refundNo, "txnType": "04",
			"txnTime": local.Format("20060102150405"), "txnAmt": strconv.FormatInt(amount, 10), "origRespCode": "00"}
	}
	return r
}

// account generates and ingests one account's history, period by period.
func (g *demoGen) account(idx int, a *demoAccount) error {
	period := g.opts.PeriodDays
	refunds := map[int][]channels.Record{} // day -> refunds that land on it
	var carried []channels.Record          // notifications arriving after the previous statement
	for p0 := 0; p0 < g.opts.Days; p0 += period {
		p1 := min(p0+period, g.opts.Days)
		var bill, before, after []channels.Record
		payments := 0
		for day := p0; day < p1; day++ {
			rng := g.rng(idx, day)
			date := a.first.AddDate(0, 0, day)
			weekend := 0
			if wd := date.Weekday(); wd == time.Saturday || wd == time.Sunday {
				weekend = 1
			}
			times := make([]time.Time, a.days[day])
			for i := range times {
				h := demoPick(rng, demoHourCum[weekend])
				times[i] = time.Date(date.Year(), date.Month(), date.Day(), h, rng.IntN(60), rng.IntN(60), 0, a.loc)
			}
			slices.SortFunc(times, func(x, y time.Time) int { return x.Compare(y) })
			end := time.Date(date.Year(), date.Month(), date.Day(), 0, 0, 0, 0, a.loc).AddDate(0, 0, g.opts.Days-day) // end of the last day
			for _, at := range times {
				pay := g.payment(a, rng, at)
				payments++
				if pay.inBill {
					bill = append(bill, pay.rec)
				}
				if pay.notify != nil {
					if pay.after {
						after = append(after, *pay.notify)
					} else {
						before = append(before, *pay.notify)
					}
				}
				if !pay.refundAt.IsZero() && pay.refundAt.Before(end) {
					rday := day + int(demoDaysBetween(date, pay.refundAt.In(a.loc)))
					refunds[rday] = append(refunds[rday], g.refund(a, rng, &pay))
				}
			}
		}
		for day := p0; day < p1; day++ {
			bill = append(bill, refunds[day]...)
			delete(refunds, day)
		}
		if err := g.notify(a, append(carried, before...)); err != nil {
			return err
		}
		carried = after
		if err := g.statement(a, p0, p1, bill); err != nil {
			return err
		}
		g.done += payments
		g.sum.Payments += payments
		if g.opts.Progress != nil {
			g.opts.Progress(g.done, g.opts.Transactions)
		}
	}
	return g.notify(a, carried)
}

func demoDaysBetween(from, to time.Time) int {
	a := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
	b := time.Date(to.Year(), to.Month(), to.Day(), 0, 0, 0, 0, time.UTC)
	return int(b.Sub(a).Hours() / 24)
}

func (g *demoGen) notify(a *demoAccount, recs []channels.Record) error {
	if len(recs) == 0 {
		return nil
	}
	st, err := g.s.Ingest(g.actor, a.acct.ID, SourceNotification, recs)
	if err != nil {
		return fmt.Errorf("demo data: notifications for %s %s: %w", a.merchant.Code, a.acct.Channel, err)
	}
	g.add(st)
	return nil
}

func (g *demoGen) add(st IngestStats) {
	g.sum.Rows += st.Rows
	g.sum.Inserted += st.Inserted
	g.sum.Merged += st.Merged
	g.sum.Duplicates += st.Duplicates
}

// statement imports one period's records of an account as a statement file.
func (g *demoGen) statement(a *demoAccount, p0, p1 int, recs []channels.Record) error {
	from := a.first.AddDate(0, 0, p0).Format(time.DateOnly)
	name := a.acct.Channel + "-" + from
	if p1-p0 > 1 {
		name += "_" + a.first.AddDate(0, 0, p1-1).Format(time.DateOnly)
	}
	name += ".demo"
	var tot channels.Totals
	for i := range recs {
		if recs[i].Kind == channels.KindPayment {
			tot.Payments++
			tot.PaymentAmount += recs[i].Amount
			tot.Fees += recs[i].Fee
			continue
		}
		tot.Refunds++
		tot.RefundAmount += recs[i].Amount
		tot.Fees -= recs[i].Fee
		g.sum.Refunds++
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%s|%d|%s|%d|%d|%d|%d", hex.EncodeToString(g.key[:]), a.acct.Channel, a.ref, a.acct.ID, name,
		tot.Payments, tot.Refunds, tot.PaymentAmount, tot.RefundAmount))
	f := StatementFile{Name: name, Hash: hex.EncodeToString(h[:]), Bytes: int64(len(recs)) * 180,
		Parse: func(fn func(channels.Record) error) (channels.Totals, error) {
			for _, r := range recs {
				if err := fn(r); err != nil {
					return channels.Totals{}, err
				}
			}
			return tot, nil
		}}
	res, err := g.s.ImportStatement(g.actor, a.acct.ID, f)
	if err != nil {
		return fmt.Errorf("demo data: statement %s for %s: %w", name, a.merchant.Code, err)
	}
	if res.Refused {
		return fmt.Errorf("demo data: statement %s for %s was refused: %s", name, a.merchant.Code, res.Reason.EN)
	}
	g.sum.Files++
	if res.AlreadyImported {
		g.sum.AlreadyImported++
	}
	g.add(res.IngestStats)
	return nil
}
