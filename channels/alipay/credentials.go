// Package alipay holds what PayFuse knows about Alipay (open platform, RSA2).
package alipay

import (
	"crypto/rsa"
	"crypto/x509"
	"regexp"
	"time"

	"payfuse/channels"
)

// Code is the channel's code.
const Code = "alipay"

var name = channels.Text{EN: "Alipay", ZH: "支付宝"}

// certFields are the certificate-mode trio: given one, all three are needed.
var certFields = []string{"app_cert", "alipay_cert", "alipay_root_cert"}

var fields = []channels.Field{
	{
		Name:  "app_id",
		Label: channels.Text{EN: "APPID", ZH: "APPID（应用ID）"},
		Help: channels.Text{
			EN: "The 16-digit APPID of the application, in Alipay Open Platform (open.alipay.com) → Console → the application's page.",
			ZH: "应用的 APPID，16 位数字，见支付宝开放平台（open.alipay.com）「控制台」中该应用的页面。",
		},
		Kind:     channels.KindText,
		Required: true,
	},
	{
		Name:  "pid",
		Label: channels.Text{EN: "Partner ID (PID)", ZH: "合作伙伴身份（PID）"},
		Help: channels.Text{
			EN: "The merchant account's partner ID: 16 digits starting with 2088. It is shown in the account center of Alipay Open Platform and of the Alipay merchant platform (b.alipay.com), and it prefixes the names of Alipay's bill files.",
			ZH: "商户账号的合作伙伴身份（PID），以 2088 开头的 16 位数字。可在支付宝开放平台及支付宝商家平台（b.alipay.com）的账号中心查看，支付宝对账单文件名也以它开头。",
		},
		Kind:     channels.KindText,
		Required: true,
	},
	{
		Name:  "app_private_key",
		Label: channels.Text{EN: "Application private key", ZH: "应用私钥"},
		Help: channels.Text{
			EN: "The application private key (RSA2, 2048 bits) made with Alipay's key tool (支付宝开放平台密钥工具) when the interface signing method was set. It stays with the merchant; Alipay does not have it. " +
				"PEM, or the bare base64 text the key tool shows (PKCS#8 or PKCS#1).",
			ZH: "设置接口加签方式时用「支付宝开放平台密钥工具」生成的应用私钥（RSA2，2048 位），由商户自行保管，支付宝不持有。" +
				"可填 PEM 格式，或密钥工具显示的纯 base64 文本（PKCS#8 或 PKCS#1 均可）。",
		},
		Kind:     channels.KindPrivateKey,
		Secret:   true,
		Required: true,
	},
	{
		Name:  "alipay_public_key",
		Label: channels.Text{EN: "Alipay public key", ZH: "支付宝公钥"},
		Help: channels.Text{
			EN: "Public-key mode: the Alipay public key, shown in Open Platform → the application → Development settings → Interface signing method → View, after the application public key was uploaded. " +
				"Paste it as shown (bare base64) or as PEM. Not the application public key. Leave it empty in certificate mode.",
			ZH: "公钥模式：上传应用公钥后，在开放平台该应用「开发设置 → 接口加签方式 → 查看」中显示的支付宝公钥。" +
				"按页面显示的纯 base64 文本粘贴即可，也可填 PEM 格式。注意不是应用公钥。证书模式下留空。",
		},
		Kind:   channels.KindPublicKey,
		Secret: true,
		OneOf:  "alipay_verify",
	},
	{
		Name:  "app_cert",
		Label: channels.Text{EN: "Application public key certificate", ZH: "应用公钥证书"},
		Help: channels.Text{
			EN: "Certificate mode: appCertPublicKey_<APPID>.crt, downloaded from Open Platform → the application → Development settings → Interface signing method after uploading the CSR made by the key tool. " +
				"Certificate mode needs all three certificates.",
			ZH: "证书模式：上传密钥工具生成的 CSR 文件后，在开放平台该应用「开发设置 → 接口加签方式」下载的 appCertPublicKey_<APPID>.crt。" +
				"证书模式须同时填写三个证书。",
		},
		Kind:   channels.KindCertificate,
		Secret: true,
		OneOf:  "alipay_verify",
	},
	{
		Name:  "alipay_cert",
		Label: channels.Text{EN: "Alipay public key certificate", ZH: "支付宝公钥证书"},
		Help: channels.Text{
			EN: "Certificate mode: alipayCertPublicKey_RSA2.crt, downloaded from the same Interface signing method page.",
			ZH: "证书模式：在同一「接口加签方式」页面下载的 alipayCertPublicKey_RSA2.crt。",
		},
		Kind:   channels.KindCertificate,
		Secret: true,
		OneOf:  "alipay_verify",
	},
	{
		Name:  "alipay_root_cert",
		Label: channels.Text{EN: "Alipay root certificate", ZH: "支付宝根证书"},
		Help: channels.Text{
			EN: "Certificate mode: alipayRootCert.crt, downloaded from the same page. It holds several root certificates; one of them uses SM2, which cannot be read here and is skipped.",
			ZH: "证书模式：在同一页面下载的 alipayRootCert.crt。文件中含多个根证书，其中使用 SM2 算法的证书无法在此读取，会被跳过。",
		},
		Kind:   channels.KindCertificate,
		Secret: true,
		OneOf:  "alipay_verify",
	},
}

var (
	appIDRE = regexp.MustCompile(`^[0-9]{16}$`)
	pidRE   = regexp.MustCompile(`^2088[0-9]{12}$`)
)

// Spec declares Alipay's credentials and their checks.
var Spec = channels.Spec{
	Code:     Code,
	Name:     name,
	Methods:  []string{"scan", "quick", "h5", "app"},
	Fields:   fields,
	Validate: validate,
	Check:    check,
}

// parsed is what reading a credential set produced.
type parsed struct {
	appKey    *rsa.PrivateKey
	alipayKey *rsa.PublicKey // public-key mode
	appCert   *rsa.PublicKey // certificate mode: the certificate key matching appKey, or the first
	certMode  bool
}

// certKey returns the RSA key of the certificate matching priv among certs,
// or of the first certificate when none matches.
func certKey(priv *rsa.PrivateKey, certs []*x509.Certificate) *rsa.PublicKey {
	var first *rsa.PublicKey
	for _, c := range certs {
		pub, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok {
			continue
		}
		if first == nil {
			first = pub
		}
		if channels.KeyMatches(priv, pub) {
			return pub
		}
	}
	return first
}

func read(values map[string][]byte) (*channels.Validation, parsed) {
	v := channels.NewValidation(name, fields, values)
	v.Fields()
	v.Pattern("app_id", appIDRE, channels.Text{EN: "16 digits", ZH: "16 位数字"})
	v.Pattern("pid", pidRE, channels.Text{EN: "2088 followed by 12 digits (16 digits)", ZH: "2088 开头的 16 位数字"})

	var p parsed
	p.appKey = v.PrivateKey("app_private_key")
	p.alipayKey = v.PublicKey("alipay_public_key")
	appCerts := v.Certificates("app_cert", true)
	alipayCerts := v.Certificates("alipay_cert", true)
	v.Certificates("alipay_root_cert", false)

	var given int
	for _, f := range certFields {
		if v.Given(f) {
			given++
		}
	}
	p.certMode = given > 0
	switch {
	case given == 0 && !v.Given("alipay_public_key"):
		v.Add("alipay_public_key", channels.Textf(
			"Give the %s (public-key mode) or all three certificates: %s, %s and %s (certificate mode).",
			"请填写%s（公钥模式），或同时填写%s、%s和%s三个证书（证书模式）。",
			v.Label("alipay_public_key"), v.Label("app_cert"), v.Label("alipay_cert"), v.Label("alipay_root_cert")))
	case given > 0 && given < len(certFields):
		for _, f := range certFields {
			if !v.Given(f) {
				v.Add(f, channels.Textf(
					"%s is required in certificate mode: the other certificates of the three are given.",
					"证书模式下%s为必填项：三个证书中的其他证书已填写。", v.Label(f)))
			}
		}
	}

	v.NotOwn("app_private_key", p.appKey, "alipay_public_key", p.alipayKey)
	if appCerts != nil {
		p.appCert = certKey(p.appKey, appCerts)
		v.Match("app_private_key", p.appKey, "app_cert", p.appCert)
	}
	if alipayCerts != nil {
		v.NotOwn("app_private_key", p.appKey, "alipay_cert", certKey(p.appKey, alipayCerts))
	}
	return v, p
}

func validate(values map[string][]byte) []channels.Problem {
	v, _ := read(values)
	return v.Problems()
}

// check signs with the application private key and verifies with its own
// public half; in certificate mode it also verifies with the application
// public key certificate, which proves the two belong together. It says which
// mode the set is in, whether the Alipay public key reads, and the validity of
// every certificate, root certificates included.
func check(values map[string][]byte, now time.Time) channels.Report {
	v, p := read(values)
	var ownPublic *rsa.PublicKey
	if p.appKey != nil {
		ownPublic = &p.appKey.PublicKey
	}
	items := []channels.CheckItem{modeItem(v, p)}
	items = append(items, channels.SignItem(v.Label("app_private_key"), p.appKey,
		channels.Text{EN: "its own public key", ZH: "其自身对应的公钥"}, ownPublic))
	if p.certMode {
		match := channels.SignItem(v.Label("app_private_key"), p.appKey, v.Label("app_cert"), p.appCert)
		match.Name = channels.Textf("%s matches %s", "%s与%s匹配", v.Label("app_private_key"), v.Label("app_cert"))
		items = append(items, match)
	}
	if v.Given("alipay_public_key") {
		items = append(items, channels.KeyItem(v.Label("alipay_public_key"), p.alipayKey))
	}
	return v.Report(now, items...)
}

// modeItem says whether the set verifies Alipay with certificates or with the public key.
func modeItem(v *channels.Validation, p parsed) channels.CheckItem {
	it := channels.CheckItem{Name: channels.Text{EN: "Verification mode", ZH: "验签模式"}, OK: true}
	switch {
	case p.certMode && v.Given("alipay_public_key"):
		it.Detail = channels.Textf(
			"Certificate mode. The %s is set too but is not used in this mode.",
			"证书模式。%s也已填写，但证书模式下不使用。", v.Label("alipay_public_key"))
	case p.certMode:
		it.Detail = channels.Text{EN: "Certificate mode.", ZH: "证书模式。"}
	case v.Given("alipay_public_key"):
		it.Detail = channels.Text{EN: "Public-key mode.", ZH: "公钥模式。"}
	default:
		it.OK = false
		it.Detail = channels.Text{EN: "Neither mode is configured.", ZH: "两种模式均未配置。"}
	}
	return it
}
