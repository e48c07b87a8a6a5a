// Package channels holds what every payment channel shares: the credential
// schema a channel declares (Spec and its Fields), the reports its checks
// produce, and the helpers that read keys, certificates and PKCS#12 files.
//
// One sub-package per channel (channels/wechat, channels/alipay,
// channels/unionpay) declares its Spec; channels/all lists them. Nothing here
// speaks HTTP or touches the database.
package channels

import (
	"strings"
	"time"
)

// Text is a message in both console languages.
type Text struct{ EN, ZH string }

// In returns the text in the console language lang: Chinese for "zh-CN" (and
// its spellings "zh", "zh_CN", "zh-Hans"), English for anything else. When the
// chosen language is empty it falls back to the other one.
func (t Text) In(lang string) string {
	out, other := t.EN, t.ZH
	switch strings.ReplaceAll(strings.ToLower(lang), "_", "-") {
	case "zh-cn", "zh", "zh-hans", "zh-hans-cn":
		out, other = t.ZH, t.EN
	}
	if out == "" {
		return other
	}
	return out
}

// Kind says what a credential field holds and how the UI takes it.
type Kind string

// The kinds of credential field.
const (
	KindText        Kind = "text"        // short plain text (ids); not secret
	KindSecretText  Kind = "secret_text" // short secret text (APIv3 key, PFX password)
	KindPrivateKey  Kind = "private_key" // PEM private key
	KindPublicKey   Kind = "public_key"  // PEM public key (Alipay also gives bare base64 DER: accept it)
	KindCertificate Kind = "certificate" // PEM certificate(s)
	KindPFX         Kind = "pfx"         // binary PKCS#12 file
)

// Field is one credential field of a channel.
type Field struct {
	Name     string // stable field name used by the CLI and the database
	Label    Text
	Help     Text // what it is and where in the channel's merchant platform to find it
	Kind     Kind
	Secret   bool // stored encrypted, write-only in the UI
	Required bool
	// OneOf names a group of alternatives: fields with the same non-empty
	// OneOf are not required one by one, but the group must be satisfied by
	// one complete alternative (which fields make an alternative is the
	// channel's rule, explained in the fields' Help and enforced by Validate).
	OneOf string
}

// Problem is one thing wrong with a credential set; Field is "" for the set as a whole.
type Problem struct {
	Field   string
	Message Text
}

// CertInfo describes a certificate found in the credentials.
type CertInfo struct {
	Field     string
	Subject   string
	Serial    string // hex, upper-case
	NotBefore time.Time
	NotAfter  time.Time
}

// CertState is where a certificate stands in its validity period at a given time.
type CertState string

// The certificate states, from best to worst.
const (
	CertValid        CertState = "valid"
	CertExpiringSoon CertState = "expiring_soon" // valid, but expires within ExpiringSoon
	CertNotYetValid  CertState = "not_yet_valid"
	CertExpired      CertState = "expired"
)

// State says whether the certificate is valid at now, expires within
// ExpiringSoon of now, has expired, or is not valid yet.
func (c CertInfo) State(now time.Time) CertState {
	switch {
	case now.After(c.NotAfter):
		return CertExpired
	case now.Before(c.NotBefore):
		return CertNotYetValid
	case c.NotAfter.Sub(now) < ExpiringSoon:
		return CertExpiringSoon
	}
	return CertValid
}

// CheckItem is one line of a Check report.
type CheckItem struct {
	Name   Text
	OK     bool
	Detail Text
}

// Report is what Check found.
type Report struct {
	OK       bool // no problems and every item OK
	Items    []CheckItem
	Certs    []CertInfo // every certificate parsed, for expiry display/flags
	Problems []Problem
}

// Spec declares a channel: its credential schema and its checks.
type Spec struct {
	Code    string   // "wechat", "alipay", "unionpay"
	Name    Text     // 微信支付 / WeChat Pay, 支付宝 / Alipay, 银联云闪付 / UnionPay
	Methods []string // payment methods it supports, from: scan, quick, h5, app
	Fields  []Field
	// Validate checks a full credential set (field name -> raw bytes; absent or empty = not set):
	// required fields, one-of groups, formats of text fields, that keys/certs/PFX parse (with the password),
	// key sizes (RSA >= 2048), that a private key matches its certificate/public key where both are given.
	// It returns nil when all is well.
	Validate func(values map[string][]byte) []Problem
	// Check runs Validate, then reports every certificate's validity (expired / not yet valid / expires
	// within 30 days of now are Items with OK=false for the first two and a warning Detail for the third),
	// and signs a fixed test message with the configured private key (SHA256withRSA) and verifies it with
	// the matching public key/certificate where the channel's credentials allow it.
	Check func(values map[string][]byte, now time.Time) Report
}

// Field returns the spec's field called name.
func (s Spec) Field(name string) (Field, bool) {
	for _, f := range s.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// ExpiringSoon is the warning window for certificates.
const ExpiringSoon = 30 * 24 * time.Hour
