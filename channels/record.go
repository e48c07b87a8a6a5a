package channels

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Record kinds.
const (
	KindPayment = "payment"
	KindRefund  = "refund"
)

// Canonical payment statuses (refunds use processing, succeeded, failed, closed).
const (
	StatusPending    = "pending"
	StatusProcessing = "processing"
	StatusSucceeded  = "succeeded"
	StatusFailed     = "failed"
	StatusClosed     = "closed"
	StatusRevoked    = "revoked"
)

// Canonical payment methods.
const (
	MethodScan  = "scan"
	MethodQuick = "quick"
	MethodH5    = "h5"
	MethodApp   = "app"
)

// Record is one payment or refund as one source (a statement row, a
// notification) saw it, in PayFuse's canonical vocabulary. Amounts are
// positive minor units (fen); the kind tells a payment from a refund.
type Record struct {
	Channel         string // wechat, alipay, unionpay
	Kind            string // payment or refund
	ChannelRef      string // the channel's transaction id (payment) or refund id (refund)
	PaymentRef      string // refunds: the channel transaction id of the refunded payment
	MerchantOrderNo string
	RefundNo        string // refunds: the merchant's refund number
	Method          string // scan, quick, h5, app; "" when the source does not say
	Status          string // canonical status
	NativeStatus    string // the channel's own status word, as given
	Amount          int64  // minor units, >= 0 (0 when a merchant-funded coupon paid it all)
	Fee             int64  // minor units, >= 0 (for a refund: the fee returned)
	FeeKnown        bool
	Currency        string // ISO 4217
	Payer           string // masked payer identity, or ""
	AccountRef      string // the channel merchant id the source names (mch_id, pid, mer_id)
	CreatedAt       time.Time
	PaidAt          time.Time // payments: when paid; zero when unknown
	RefundedAt      time.Time // refunds: when refunded; zero when unknown
	// Raw holds the source's own fields by their names, for the audit trail.
	// It never holds secrets (notifications are decrypted into it, keys never are).
	Raw map[string]string
}

// Totals are what a statement says about itself (its summary or footer), and
// what its rows add up to; the two must agree.
type Totals struct {
	Payments      int   // payment rows
	Refunds       int   // refund rows
	PaymentAmount int64 // minor units
	RefundAmount  int64 // minor units
	Fees          int64 // net fees in minor units (payments' fees minus refunded fees) when the source gives them
}

// BillError says why a statement was refused: where, and what, in both languages.
type BillError struct {
	Line    int // 1-based line (or row) number; 0 for the file as a whole
	Message Text
}

func (e *BillError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Message.EN)
	}
	return e.Message.EN
}

// Refuse builds a BillError.
func Refuse(line int, en, zh string, args ...any) *BillError {
	return &BillError{Line: line, Message: Text{EN: fmt.Sprintf(en, args...), ZH: fmt.Sprintf(zh, args...)}}
}

// ErrBadDecimal is wrapped by ParseDecimal's errors.
var ErrBadDecimal = errors.New("not a decimal amount")

// ParseDecimal parses decimal text ("12.34", "-0.5", "1,234.56", "¥8.00")
// straight into an integer count of 10^-scale units, exactly: never through
// float64. More fractional digits than scale is an error, as is anything
// that is not a number. Thousands separators and a leading currency sign are
// tolerated; white space around the number is trimmed.
func ParseDecimal(s string, scale int) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimPrefix(t, "¥")
	t = strings.TrimPrefix(t, "￥")
	t = strings.ReplaceAll(t, ",", "")
	if t == "" {
		return 0, fmt.Errorf("%w: empty", ErrBadDecimal)
	}
	neg := false
	switch t[0] {
	case '-':
		neg, t = true, t[1:]
	case '+':
		t = t[1:]
	}
	intPart, frac, hasDot := strings.Cut(t, ".")
	if intPart == "" && (!hasDot || frac == "") {
		return 0, fmt.Errorf("%w: %q", ErrBadDecimal, s)
	}
	if len(frac) > scale {
		return 0, fmt.Errorf("%w: %q has more than %d decimal places", ErrBadDecimal, s, scale)
	}
	var v int64
	for _, part := range []string{intPart, frac + strings.Repeat("0", scale-len(frac))} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("%w: %q", ErrBadDecimal, s)
			}
			if v > (1<<62)/10 {
				return 0, fmt.Errorf("%w: %q is too large", ErrBadDecimal, s)
			}
			v = v*10 + int64(c-'0')
		}
	}
	if neg {
		v = -v
	}
	return v, nil
}

// ParseYuan parses a yuan amount with at most two decimals into fen.
func ParseYuan(s string) (int64, error) { return ParseDecimal(s, 2) }

// RoundToFen turns a count of 10^-scale yuan units into fen, rounding half
// away from zero (WeChat gives fees with five decimals).
func RoundToFen(v int64, scale int) int64 {
	if scale <= 2 {
		for i := scale; i < 2; i++ {
			v *= 10
		}
		return v
	}
	div := int64(1)
	for i := 2; i < scale; i++ {
		div *= 10
	}
	q, r := v/div, v%div
	if r < 0 {
		r = -r
	}
	if 2*r >= div {
		if v < 0 {
			q--
		} else {
			q++
		}
	}
	return q
}

// MaskPayer keeps the first and last two characters of a payer identity.
func MaskPayer(s string) string {
	r := []rune(strings.TrimSpace(s))
	if len(r) <= 4 {
		return strings.Repeat("*", len(r))
	}
	return string(r[:2]) + strings.Repeat("*", min(len(r)-4, 6)) + string(r[len(r)-2:])
}
