package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"payfuse/channels"
)

// The headers of a delivery (see the package documentation).
const (
	HeaderEvent     = "X-PayFuse-Event"
	HeaderDelivery  = "X-PayFuse-Delivery"
	HeaderTimestamp = "X-PayFuse-Timestamp"
	HeaderSignature = "X-PayFuse-Signature"
	UserAgent       = "PayFuse-Webhook/1"
)

// DefaultTolerance is how far a delivery's timestamp may be from the
// receiver's clock: long enough for clock skew and a slow network, short
// enough that a captured request cannot be replayed much later.
const DefaultTolerance = 5 * time.Minute

// signaturePrefix names the scheme inside X-PayFuse-Signature.
const signaturePrefix = "sha256="

// Sign returns the X-PayFuse-Signature value for body sent at ts:
// "sha256=" and the hex HMAC-SHA256 of "<ts>.<body>" keyed with secret.
func Sign(secret []byte, ts int64, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(secret, strconv.FormatInt(ts, 10), body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Reasons a signature is refused (SignatureError.Reason).
const (
	ReasonMissingHeader  = "missing_header"  // no timestamp or signature header
	ReasonBadTimestamp   = "bad_timestamp"   // the timestamp is not whole Unix seconds
	ReasonStaleTimestamp = "stale_timestamp" // the timestamp is further from now than the tolerance
	ReasonBadSignature   = "bad_signature"   // no signature in the header matches
)

// SignatureError says why a delivery's signature was refused. Its message
// never quotes the secret or the signatures.
type SignatureError struct {
	Reason  string
	Message channels.Text
}

func (e *SignatureError) Error() string {
	return "webhook: signature refused (" + e.Reason + "): " + e.Message.EN
}

// Verify checks a delivery as a receiver does: timestamp is the
// X-PayFuse-Timestamp header, signature the X-PayFuse-Signature header (one
// or more comma-separated "sha256=<hex>" values; one match is enough), body
// the raw body. The timestamp must be within tolerance of now (0 means
// DefaultTolerance). The comparison takes the same time whatever the
// signature. Errors are *SignatureError.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	timestamp, signature = strings.TrimSpace(timestamp), strings.TrimSpace(signature)
	if timestamp == "" || signature == "" {
		return &SignatureError{ReasonMissingHeader, channels.Textf(
			"The %s or %s header is missing.", "缺少 %s 或 %s 请求头。", HeaderTimestamp, HeaderSignature)}
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || ts < 0 || strconv.FormatInt(ts, 10) != timestamp {
		return &SignatureError{ReasonBadTimestamp, channels.Textf(
			"%s is not a time in whole Unix seconds.", "%s 不是以秒为单位的 Unix 时间。", HeaderTimestamp)}
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return &SignatureError{ReasonStaleTimestamp, channels.Textf(
			"The delivery was signed at %s, more than %s from now.", "该投递的签名时间为 %s，与当前时间相差超过 %s。",
			time.Unix(ts, 0).UTC().Format(time.RFC3339), tolerance)}
	}
	want := mac(secret, timestamp, body)
	matched := 0
	for _, s := range strings.Split(signature, ",") {
		s = strings.TrimSpace(s)
		if !strings.HasPrefix(s, signaturePrefix) {
			continue
		}
		got, err := hex.DecodeString(s[len(signaturePrefix):])
		if err == nil && hmac.Equal(got, want) {
			matched++
		}
	}
	if matched == 0 {
		return &SignatureError{ReasonBadSignature, channels.Text{
			EN: "The signature does not match the body, the timestamp and the webhook's secret.",
			ZH: "签名与请求体、时间戳和 Webhook 密钥不符。"}}
	}
	return nil
}

// VerifyRequest is Verify with the headers of a received request and
// DefaultTolerance.
func VerifyRequest(secret []byte, h http.Header, body []byte, now time.Time) error {
	return Verify(secret, h.Get(HeaderTimestamp), h.Get(HeaderSignature), body, now, DefaultTolerance)
}

// NewSecret returns a fresh random signing secret (32 bytes, base64url
// text), for an endpoint's "generate" button.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewDeliveryID returns a fresh random delivery id (a version 4 UUID). Use
// one per delivery and keep it on every retry: receivers drop repeats by it.
func NewDeliveryID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
