package channels

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"time"
)

// MinRSABits is the smallest RSA key the channels accept.
const MinRSABits = 2048

// Textf formats a message in both languages. Arguments that are Text are
// replaced by their English text in en and their Chinese text in zh; other
// arguments are used as they are in both.
func Textf(en, zh string, args ...any) Text {
	enArgs := make([]any, len(args))
	zhArgs := make([]any, len(args))
	for i, a := range args {
		if t, ok := a.(Text); ok {
			enArgs[i], zhArgs[i] = t.EN, t.ZH
		} else {
			enArgs[i], zhArgs[i] = a, a
		}
	}
	return Text{EN: fmt.Sprintf(en, enArgs...), ZH: fmt.Sprintf(zh, zhArgs...)}
}

// Validation reads one credential set against a channel's fields and collects
// what is wrong with it, and the certificates it found. The channel packages
// build their Validate and Check on it: each reading method records a Problem
// on its field when the value is missing or bad, and returns nil then, so a
// channel can go on with what did parse.
//
// Messages name fields by their labels and describe values only by length,
// subject, serial and dates; they never quote a value.
type Validation struct {
	channel  Text
	fields   []Field
	values   map[string][]byte
	problems []Problem
	certs    []CertInfo
	notes    []CheckItem
}

// NewValidation starts reading values against the fields of the channel called name.
func NewValidation(name Text, fields []Field, values map[string][]byte) *Validation {
	return &Validation{channel: name, fields: fields, values: values}
}

// field returns the declared field called name, or a bare one naming itself.
func (v *Validation) field(name string) Field {
	for _, f := range v.fields {
		if f.Name == name {
			return f
		}
	}
	return Field{Name: name, Label: Text{name, name}}
}

// Label returns the label of the field called name.
func (v *Validation) Label(name string) Text { return v.field(name).Label }

// Given reports whether the field is set. Text fields made only of white
// space count as not set.
func (v *Validation) Given(name string) bool {
	b := v.values[name]
	switch v.field(name).Kind {
	case KindText, KindPrivateKey, KindPublicKey, KindCertificate:
		return len(bytes.TrimSpace(b)) > 0
	}
	return len(b) > 0
}

// Value returns the raw bytes of the field (nil when not set).
func (v *Validation) Value(name string) []byte {
	if !v.Given(name) {
		return nil
	}
	return v.values[name]
}

// Add records a problem on field ("" for the set as a whole).
func (v *Validation) Add(field string, msg Text) {
	v.problems = append(v.problems, Problem{Field: field, Message: msg})
}

// Has reports whether a problem was recorded on field.
func (v *Validation) Has(field string) bool {
	for _, p := range v.problems {
		if p.Field == field {
			return true
		}
	}
	return false
}

// Note adds an item to the Check report, for things found while reading
// that are not problems (a skipped certificate, say).
func (v *Validation) Note(item CheckItem) { v.notes = append(v.notes, item) }

// Fields records a problem for every value whose name is not a field of the
// channel and for every required field that is not set.
func (v *Validation) Fields() {
	var unknown []string
	for name := range v.values {
		known := false
		for _, f := range v.fields {
			known = known || f.Name == name
		}
		if !known {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		v.Add(name, Textf("%q is not a credential field of %s.", "%q 不是%s的凭证字段。", name, v.channel))
	}
	for _, f := range v.fields {
		if f.Required && !v.Given(f.Name) {
			v.Add(f.Name, Required(f.Label))
		}
	}
}

// Required says that the field labelled label must be set.
func Required(label Text) Text {
	return Textf("%s is required.", "%s为必填项。", label)
}

// Pattern checks that a text field, when set, matches re once surrounding
// white space is removed; want describes the expected form for the message.
func (v *Validation) Pattern(name string, re *regexp.Regexp, want Text) {
	if !v.Given(name) {
		return
	}
	s := string(bytes.TrimSpace(v.values[name]))
	if !re.MatchString(s) {
		v.Add(name, Textf("%s must be %s; the value given has %d characters.", "%s应为%s；当前填写的值为 %d 个字符。",
			v.Label(name), want, len([]rune(s))))
	}
}

// problemFrom records a parse error on the field.
func (v *Validation) problemFrom(name string, err error) {
	var pe *ParseError
	reason := Text{"It cannot be read.", "无法读取。"}
	if errors.As(err, &pe) {
		reason = pe.Reason
	}
	v.Add(name, Textf("%s: %s", "%s：%s", v.Label(name), reason))
}

// keySize records a problem when an RSA key is smaller than MinRSABits.
func (v *Validation) keySize(name string, pub *rsa.PublicKey) bool {
	if bits := pub.N.BitLen(); bits < MinRSABits {
		v.Add(name, Textf("%s is a %d-bit RSA key; at least %d bits are required.", "%s为 %d 位 RSA 密钥，至少需要 %d 位。",
			v.Label(name), bits, MinRSABits))
		return false
	}
	return true
}

// PrivateKey reads the field as an RSA private key of at least MinRSABits.
func (v *Validation) PrivateKey(name string) *rsa.PrivateKey {
	if !v.Given(name) {
		return nil
	}
	k, err := ParsePrivateKey(v.values[name])
	if err != nil {
		v.problemFrom(name, err)
		return nil
	}
	if !v.keySize(name, &k.PublicKey) {
		return nil
	}
	return k
}

// PublicKey reads the field as an RSA public key of at least MinRSABits.
func (v *Validation) PublicKey(name string) *rsa.PublicKey {
	if !v.Given(name) {
		return nil
	}
	k, err := ParsePublicKey(v.values[name])
	if err != nil {
		v.problemFrom(name, err)
		return nil
	}
	if !v.keySize(name, k) {
		return nil
	}
	return k
}

// Certificates reads the field as one or more certificates and records them
// for the report. With needRSA, the first certificate must carry an RSA key
// and every RSA key among them must have at least MinRSABits; root bundles
// pass false. Blocks that cannot be parsed are skipped with a note.
func (v *Validation) Certificates(name string, needRSA bool) []*x509.Certificate {
	if !v.Given(name) {
		return nil
	}
	certs, skipped, err := parseCertificates(v.values[name])
	if err != nil {
		v.problemFrom(name, err)
		return nil
	}
	for _, c := range certs {
		v.certs = append(v.certs, CertInfoOf(name, c))
	}
	if skipped > 0 {
		v.Note(CheckItem{
			Name: Textf("%s: certificates read", "%s：证书读取", v.Label(name)),
			OK:   true,
			Detail: Textf("%d of %d certificates read; %d use an algorithm that cannot be read here (such as SM2) and were skipped.",
				"共 %d/%d 个证书已读取；%d 个使用无法在此读取的算法（如 SM2），已跳过。",
				len(certs), len(certs)+skipped, skipped),
		})
	}
	if needRSA {
		ok := true
		for i, c := range certs {
			pub, isRSA := c.PublicKey.(*rsa.PublicKey)
			switch {
			case !isRSA && i == 0:
				v.Add(name, Textf("%s: the certificate %s does not carry an RSA key; this channel needs RSA.",
					"%s：证书 %s 不是 RSA 密钥证书，本渠道需要 RSA。", v.Label(name), c.Subject.String()))
				ok = false
			case isRSA && pub.N.BitLen() < MinRSABits:
				v.Add(name, Textf("%s: the certificate %s carries a %d-bit RSA key; at least %d bits are required.",
					"%s：证书 %s 的 RSA 密钥为 %d 位，至少需要 %d 位。", v.Label(name), c.Subject.String(), pub.N.BitLen(), MinRSABits))
				ok = false
			}
		}
		if !ok {
			return nil
		}
	}
	return certs
}

// PFX opens the PKCS#12 field with the password field. It records a problem
// when the file does not open (a wrong password is reported on the file's
// field, without the password), holds no RSA key of at least MinRSABits, or
// holds no certificate for its key. The certificate is recorded for the report.
func (v *Validation) PFX(pfxName, passwordName string) (*rsa.PrivateKey, *x509.Certificate) {
	if !v.Given(pfxName) || !v.Given(passwordName) {
		return nil, nil
	}
	password := string(v.values[passwordName])
	key, cert, err := ParsePFX(v.values[pfxName], password)
	if errors.Is(err, ErrPFXPassword) {
		if trimmed := string(bytes.TrimSpace([]byte(password))); trimmed != password && trimmed != "" {
			if _, _, err2 := ParsePFX(v.values[pfxName], trimmed); err2 == nil {
				v.Add(passwordName, Textf("%s has white space or a line break at the start or end; remove it.",
					"%s首尾含有空格或换行，请删除。", v.Label(passwordName)))
				return nil, nil
			}
		}
		v.Add(pfxName, Textf("%s does not open %s: check the password set when the file was exported.",
			"%s无法打开%s，请核对导出该文件时设置的密码。", v.Label(passwordName), v.Label(pfxName)))
		return nil, nil
	}
	if err != nil {
		v.problemFrom(pfxName, err)
		return nil, nil
	}
	v.certs = append(v.certs, CertInfoOf(pfxName, cert))
	if !KeyMatches(key, cert.PublicKey) {
		v.Add(pfxName, Textf("%s: its private key does not match its certificate %s (serial %X).",
			"%s：其中的私钥与证书 %s（序列号 %X）不匹配。", v.Label(pfxName), cert.Subject.String(), cert.SerialNumber))
		return nil, nil
	}
	if !v.keySize(pfxName, &key.PublicKey) {
		return nil, nil
	}
	return key, cert
}

// Match records a problem on pubName when pub is not the public half of priv.
func (v *Validation) Match(privName string, priv *rsa.PrivateKey, pubName string, pub *rsa.PublicKey) bool {
	if priv == nil || pub == nil {
		return false
	}
	if !KeyMatches(priv, pub) {
		v.Add(pubName, Textf("%s does not match %s: they are not one key pair.", "%s与%s不匹配：二者不是同一对密钥。",
			v.Label(pubName), v.Label(privName)))
		return false
	}
	return true
}

// NotOwn records a problem on theirName when their key — which must be the
// channel's — is the public half of the merchant's own private key: a common
// slip when copying keys from a channel's console.
func (v *Validation) NotOwn(ownName string, own *rsa.PrivateKey, theirName string, their *rsa.PublicKey) bool {
	if own == nil || their == nil || !KeyMatches(own, their) {
		return true
	}
	v.Add(theirName, Textf("%s is the public half of %s; it must be %s's own key.", "%s是%s对应的公钥，应填写%s的公钥。",
		v.Label(theirName), v.Label(ownName), v.channel))
	return false
}

// Problems returns the problems recorded, or nil when there are none.
func (v *Validation) Problems() []Problem {
	if len(v.problems) == 0 {
		return nil
	}
	return append([]Problem(nil), v.problems...)
}

// Certs returns the certificates read so far.
func (v *Validation) Certs() []CertInfo { return append([]CertInfo(nil), v.certs...) }

// Report assembles a Check report at now: the problems, then the given items,
// the notes, and one validity item per certificate read.
func (v *Validation) Report(now time.Time, items ...CheckItem) Report {
	r := Report{Problems: v.Problems(), Certs: v.Certs()}
	r.Items = append(r.Items, items...)
	r.Items = append(r.Items, v.notes...)
	perField := map[string]int{}
	for _, c := range v.certs {
		perField[c.Field]++
	}
	seen := map[string]int{}
	for _, c := range v.certs {
		label := v.Label(c.Field)
		if perField[c.Field] > 1 {
			seen[c.Field]++
			label = Textf("%s #%d", "%s（第 %d 个）", label, seen[c.Field])
		}
		r.Items = append(r.Items, CertItem(label, c, now))
	}
	r.OK = len(r.Problems) == 0
	for _, it := range r.Items {
		r.OK = r.OK && it.OK
	}
	return r
}

// stamp formats a certificate time for messages.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// daysUntil counts the days from now to t, rounding up.
func daysUntil(now, t time.Time) int { return int(math.Ceil(t.Sub(now).Hours() / 24)) }

// CertItem reports the validity at now of certificate c shown under label:
// not OK when it has expired or is not yet valid, OK with a detail that
// starts with "Warning:" ("警告：") when it expires within ExpiringSoon.
func CertItem(label Text, c CertInfo, now time.Time) CheckItem {
	name := Textf("%s validity", "%s有效期", label)
	switch c.State(now) {
	case CertExpired:
		return CheckItem{Name: name, OK: false, Detail: Textf(
			"%s (serial %s) expired on %s, %d days ago; replace it.",
			"%s（序列号 %s）已于 %s 过期（%d 天前），请更换。",
			c.Subject, c.Serial, stamp(c.NotAfter), daysUntil(c.NotAfter, now))}
	case CertNotYetValid:
		return CheckItem{Name: name, OK: false, Detail: Textf(
			"%s (serial %s) is not valid until %s.",
			"%s（序列号 %s）尚未生效，生效时间为 %s。",
			c.Subject, c.Serial, stamp(c.NotBefore))}
	case CertExpiringSoon:
		return CheckItem{Name: name, OK: true, Detail: Textf(
			"Warning: %s (serial %s) expires in %d days, on %s; renew it before then.",
			"警告：%s（序列号 %s）将在 %d 天后（%s）过期，请在此之前更新。",
			c.Subject, c.Serial, daysUntil(now, c.NotAfter), stamp(c.NotAfter))}
	}
	return CheckItem{Name: name, OK: true, Detail: Textf(
		"%s (serial %s) is valid until %s (%d days left).",
		"%s（序列号 %s）有效期至 %s（剩余 %d 天）。",
		c.Subject, c.Serial, stamp(c.NotAfter), daysUntil(now, c.NotAfter))}
}

// SignItem signs the fixed test message with the private key shown as
// privLabel and verifies it with the public key shown as pubLabel. When
// either key is missing (it was not set or did not read), the item says the
// test was not run and is not OK.
func SignItem(privLabel Text, priv *rsa.PrivateKey, pubLabel Text, pub *rsa.PublicKey) CheckItem {
	name := Textf("Test signature with %s", "%s签名测试", privLabel)
	if priv == nil || pub == nil {
		missing := privLabel
		if priv != nil {
			missing = pubLabel
		}
		return CheckItem{Name: name, OK: false, Detail: Textf(
			"Not run: %s is missing or could not be read.", "未执行：%s缺失或无法读取。", missing)}
	}
	if err := SignVerify(priv, pub); err != nil {
		return CheckItem{Name: name, OK: false, Detail: Textf(
			"A test message signed with %s (SHA256withRSA) does not verify with %s.",
			"用%s签名的测试报文（SHA256withRSA）无法用%s验签。", privLabel, pubLabel)}
	}
	return CheckItem{Name: name, OK: true, Detail: Textf(
		"A test message signed with %s (SHA256withRSA, %d-bit key) verifies with %s.",
		"已用%s（SHA256withRSA，%d 位密钥）签名测试报文，并用%s验签通过。", privLabel, priv.N.BitLen(), pubLabel)}
}

// KeyItem reports that the public key shown as label was read, or not.
func KeyItem(label Text, pub *rsa.PublicKey) CheckItem {
	name := Textf("%s readable", "%s可读取", label)
	if pub == nil {
		return CheckItem{Name: name, OK: false, Detail: Textf(
			"%s is missing or could not be read.", "%s缺失或无法读取。", label)}
	}
	return CheckItem{Name: name, OK: true, Detail: Textf(
		"An RSA public key of %d bits.", "RSA 公钥，%d 位。", pub.N.BitLen())}
}
