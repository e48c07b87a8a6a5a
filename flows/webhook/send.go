package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"payfuse/channels"
)

// Limits of one attempt.
const (
	DefaultTimeout  = 10 * time.Second // the whole attempt: connect, send, answer
	MaxPayload      = 256 << 10        // the largest JSON body sent
	MaxResponseRead = 4 << 10          // how much of the answer is read
	MaxSnippet      = 512              // how much of it is kept in the Attempt
)

// Delivery is one webhook to send. The caller keeps it (and its ID) across
// retries.
type Delivery struct {
	ID      string // X-PayFuse-Delivery; see NewDeliveryID
	URL     string
	Event   string // X-PayFuse-Event, e.g. payment.large
	Secret  []byte // the endpoint's signing secret
	Payload []byte // the JSON body, sent as it is
}

// Outcome is how an attempt ended.
type Outcome string

// The outcomes of an attempt.
const (
	Delivered Outcome = "delivered" // the receiver answered 2xx
	Retry     Outcome = "retry"     // worth trying again later (408, 429, 5xx, timeout, network)
	Failed    Outcome = "failed"    // trying again will not help (other answers, refused, malformed)
)

// Reasons an attempt did not deliver (Attempt.Reason), beside the
// RefusedError reasons.
const (
	ReasonStatus     = "status"      // the receiver answered with a non-2xx status
	ReasonRedirect   = "redirect"    // the receiver answered 3xx; redirects are not followed
	ReasonTimeout    = "timeout"     // no full answer within the timeout
	ReasonNetwork    = "network"     // name resolution, connection or TLS failed
	ReasonCanceled   = "canceled"    // the caller stopped the attempt (shutdown)
	ReasonBadRequest = "bad_request" // the Delivery itself is unusable (payload, id, event, secret)
)

// Attempt is what one try of a delivery did, for the delivery log. Its
// texts never contain the secret, the signature or the URL's path or query.
type Attempt struct {
	DeliveryID string
	Start      time.Time // UTC
	Duration   time.Duration
	Timestamp  int64 // the X-PayFuse-Timestamp sent; 0 when nothing was sent
	StatusCode int   // 0 when there was no answer
	Outcome    Outcome
	Reason     string        // "" when delivered
	Error      channels.Text // empty when delivered
	Response   string        // the start of the answer's body, at most MaxSnippet bytes of valid UTF-8
	RetryAfter time.Duration // the receiver's Retry-After on 429 and 503, capped at MaxRetryDelay
}

// Sender sends deliveries through a Guard. It is safe for concurrent use.
type Sender struct {
	client  *http.Client
	allow   AllowList
	timeout time.Duration
	now     func() time.Time
}

// NewSender returns a Sender that connects only where g admits, giving each
// attempt timeout (0 means DefaultTimeout).
func NewSender(g Guard, timeout time.Duration) *Sender {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Sender{client: g.Client(timeout), allow: g.Allow, timeout: timeout, now: time.Now}
}

// Send makes one attempt at d and says how it went. It never retries by
// itself; see Attempt.NextAt.
func (s *Sender) Send(ctx context.Context, d Delivery) (a Attempt) {
	start := s.now()
	a = Attempt{DeliveryID: d.ID, Start: start.UTC()}
	defer func() { a.Duration = s.now().Sub(start) }()
	fail := func(o Outcome, reason string, msg channels.Text) Attempt {
		a.Outcome, a.Reason, a.Error = o, reason, msg
		return a
	}
	if msg, ok := d.check(); !ok {
		return fail(Failed, ReasonBadRequest, msg)
	}
	if _, re := parseTarget(d.URL, s.allow); re != nil {
		return fail(Failed, re.Reason, re.Message)
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return fail(Failed, ReasonBadURL, channels.Text{EN: "The URL cannot be used for a request.", ZH: "该网址无法用于发送请求。"})
	}
	a.Timestamp = start.Unix()
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["User-Agent"] = []string{UserAgent}
	req.Header[HeaderEvent] = []string{d.Event}
	req.Header[HeaderDelivery] = []string{d.ID}
	req.Header[HeaderTimestamp] = []string{strconv.FormatInt(a.Timestamp, 10)}
	req.Header[HeaderSignature] = []string{Sign(d.Secret, a.Timestamp, d.Payload)}

	resp, err := s.client.Do(req)
	if err != nil {
		o, reason, msg := classifyError(ctx, err, s.timeout)
		return fail(o, reason, msg)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseRead))
	a.StatusCode, a.Response = resp.StatusCode, snippet(body)

	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		a.Outcome = Delivered
		return a
	case code >= 300 && code < 400:
		return fail(Failed, ReasonRedirect, channels.Textf(
			"The receiver answered %d, a redirect; webhooks do not follow redirects, so configure the final URL.",
			"接收方返回 %d 重定向；Webhook 不跟随重定向，请直接配置最终地址。", code))
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			a.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), s.now())
		}
		return fail(Retry, ReasonStatus, channels.Textf(
			"The receiver answered %d %s; it will be tried again.", "接收方返回 %d %s；稍后将重试。", code, http.StatusText(code)))
	}
	return fail(Failed, ReasonStatus, channels.Textf(
		"The receiver answered %d %s; it will not be tried again.", "接收方返回 %d %s；不再重试。", code, http.StatusText(code)))
}

// check says what is wrong with d, if anything, before anything is sent.
func (d Delivery) check() (channels.Text, bool) {
	switch {
	case !headerToken(d.ID):
		return channels.Text{EN: "The delivery id is missing or has characters other than letters, digits and -_.:",
			ZH: "投递 ID 为空或含有字母、数字和 -_.: 以外的字符。"}, false
	case !headerToken(d.Event):
		return channels.Text{EN: "The event type is missing or has characters other than letters, digits and -_.:",
			ZH: "事件类型为空或含有字母、数字和 -_.: 以外的字符。"}, false
	case len(d.Secret) == 0:
		return channels.Text{EN: "The webhook has no signing secret.", ZH: "该 Webhook 没有签名密钥。"}, false
	case len(d.Payload) > MaxPayload:
		return channels.Textf("The payload is %d bytes; at most %d are sent.", "请求体为 %d 字节，最多发送 %d 字节。",
			len(d.Payload), MaxPayload), false
	case !json.Valid(d.Payload):
		return channels.Text{EN: "The payload is not valid JSON.", ZH: "请求体不是有效的 JSON。"}, false
	}
	return channels.Text{}, true
}

// headerToken reports whether s is 1 to 128 letters, digits and -_.:
func headerToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// classifyError turns a failed request into an outcome. The texts describe
// the failure in our own words: the errors from net/http quote the full URL.
func classifyError(ctx context.Context, err error, timeout time.Duration) (Outcome, string, channels.Text) {
	var re *RefusedError
	if errors.As(err, &re) {
		return Failed, re.Reason, re.Message
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return Retry, ReasonCanceled, channels.Text{EN: "The attempt was interrupted (PayFuse was stopping); it will be tried again.",
			ZH: "本次发送被中断（PayFuse 正在停止）；稍后将重试。"}
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return Retry, ReasonTimeout, channels.Textf("No answer within %s; it will be tried again.",
			"%s 内没有响应；稍后将重试。", timeout)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return Retry, ReasonNetwork, channels.Textf("The host name %s could not be resolved; it will be tried again.",
			"无法解析主机名 %s；稍后将重试。", dnsErr.Name)
	}
	var certErr *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var authErr x509.UnknownAuthorityError
	var invalidErr x509.CertificateInvalidError
	if errors.As(err, &certErr) || errors.As(err, &hostErr) || errors.As(err, &authErr) || errors.As(err, &invalidErr) {
		return Retry, ReasonNetwork, channels.Text{EN: "The receiver's TLS certificate is not trusted for this host; it will be tried again.",
			ZH: "接收方的 TLS 证书对该主机不受信任；稍后将重试。"}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		detail := opErr.Op
		if opErr.Err != nil {
			detail = short(opErr.Err.Error())
		}
		return Retry, ReasonNetwork, channels.Textf("The connection failed (%s); it will be tried again.",
			"连接失败（%s）；稍后将重试。", detail)
	}
	return Retry, ReasonNetwork, channels.Text{EN: "The request failed before an answer came; it will be tried again.",
		ZH: "在收到响应前请求失败；稍后将重试。"}
}

// short cuts s to 120 bytes on a rune boundary.
func short(s string) string {
	if len(s) <= 120 {
		return s
	}
	i := 120
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// snippet keeps the start of an answer's body as valid UTF-8.
func snippet(b []byte) string {
	cut := len(b) > MaxSnippet
	if cut {
		b = b[:MaxSnippet]
		for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
			if utf8.RuneStart(b[i]) {
				if !utf8.FullRune(b[i:]) {
					b = b[:i]
				}
				break
			}
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// retryAfter reads a Retry-After header (seconds or an HTTP date), capped at MaxRetryDelay.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > 0 {
			d = time.Duration(min(n, int64(MaxRetryDelay/time.Second))) * time.Second
		}
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, MaxRetryDelay))
}
