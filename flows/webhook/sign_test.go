package webhook_test

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"payfuse/flows/webhook"
)

// The vector was computed independently:
//
//	printf '%s' '1700000000.{"event":"payment.large","amount":123456}' | openssl dgst -sha256 -hmac 'whsec-test-secret'
func ExampleSign() {
	body := []byte(`{"event":"payment.large","amount":123456}`)
	fmt.Println(webhook.Sign([]byte("whsec-test-secret"), 1700000000, body))
	// Output: sha256=254f29677820d5d35eeeaa679822f4cfdd7eee0837d8b9f4736769133551cdbd
}

func TestVerify(t *testing.T) {
	secret := []byte("whsec-test-secret")
	body := []byte(`{"event":"payment.large","amount":123456}`)
	const ts = int64(1700000000)
	at := time.Unix(ts, 0)
	sig := webhook.Sign(secret, ts, body)
	tsText := strconv.FormatInt(ts, 10)
	if err := webhook.Verify(secret, tsText, sig, body, at, 0); err != nil {
		t.Fatalf("Verify(own signature) = %v", err)
	}
	rotated := webhook.Sign([]byte("old secret"), ts, body) + ", " + sig
	tests := []struct {
		name, ts, sig string
		body          []byte
		now           time.Time
		tolerance     time.Duration
		reason        string
	}{
		{"ok", tsText, sig, body, at, 0, ""},
		{"4m59s late", tsText, sig, body, at.Add(4*time.Minute + 59*time.Second), 0, ""},
		{"4m59s early", tsText, sig, body, at.Add(-4*time.Minute - 59*time.Second), 0, ""},
		{"rotation: second signature matches", tsText, rotated, body, at, 0, ""},
		{"upper-case hex", tsText, "sha256=" + upper(sig[7:]), body, at, 0, ""},
		{"5m01s late", tsText, sig, body, at.Add(5*time.Minute + time.Second), 0, webhook.ReasonStaleTimestamp},
		{"an hour early", tsText, sig, body, at.Add(-time.Hour), 0, webhook.ReasonStaleTimestamp},
		{"wider tolerance", tsText, sig, body, at.Add(time.Hour), 2 * time.Hour, ""},
		{"body changed", tsText, sig, []byte(`{"event":"payment.large","amount":123457}`), at, 0, webhook.ReasonBadSignature},
		{"body with a trailing newline", tsText, sig, append(append([]byte{}, body...), '\n'), at, 0, webhook.ReasonBadSignature},
		{"timestamp changed", "1700000001", sig, body, at, 0, webhook.ReasonBadSignature},
		{"timestamp with a leading zero", "01700000000", sig, body, at, 0, webhook.ReasonBadTimestamp},
		{"timestamp in milliseconds", "1700000000000", sig, body, at, 0, webhook.ReasonStaleTimestamp},
		{"timestamp not a number", "yesterday", sig, body, at, 0, webhook.ReasonBadTimestamp},
		{"no scheme prefix", tsText, sig[7:], body, at, 0, webhook.ReasonBadSignature},
		{"other scheme", tsText, "sha1=" + sig[7:], body, at, 0, webhook.ReasonBadSignature},
		{"not hex", tsText, "sha256=zz", body, at, 0, webhook.ReasonBadSignature},
		{"truncated", tsText, sig[:len(sig)-2], body, at, 0, webhook.ReasonBadSignature},
		{"no signature", tsText, "", body, at, 0, webhook.ReasonMissingHeader},
		{"no timestamp", "", sig, body, at, 0, webhook.ReasonMissingHeader},
	}
	for _, tc := range tests {
		err := webhook.Verify(secret, tc.ts, tc.sig, tc.body, tc.now, tc.tolerance)
		var se *webhook.SignatureError
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("%s: Verify = %v, want nil", tc.name, err)
		case tc.reason != "" && (!errors.As(err, &se) || se.Reason != tc.reason):
			t.Errorf("%s: Verify = %v, want %s", tc.name, err, tc.reason)
		case se != nil && (se.Message.EN == "" || se.Message.ZH == ""):
			t.Errorf("%s: message not in both languages: %+v", tc.name, se.Message)
		}
	}
	h := http.Header{}
	h.Set(webhook.HeaderTimestamp, tsText)
	h.Set(webhook.HeaderSignature, sig)
	if err := webhook.VerifyRequest(secret, h, body, at); err != nil {
		t.Errorf("VerifyRequest = %v", err)
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestIDsAndSecrets(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 100 {
		id, secret := webhook.NewDeliveryID(), webhook.NewSecret()
		if !uuid.MatchString(id) || seen[id] || len(secret) != 43 || seen[secret] {
			t.Fatalf("NewDeliveryID() = %q, NewSecret() = %q", id, secret)
		}
		seen[id], seen[secret] = true, true
	}
}
