// Package unionpay holds what PayFuse knows about UnionPay cloud QuickPass
// through its online payment gateway (ACP, version 5.1.0).
package unionpay

import (
	"crypto/rsa"
	"crypto/x509"
	"regexp"
	"time"

	"payfuse/channels"
)

// Code is the channel's code.
const Code = "unionpay"

var name = channels.Text{EN: "UnionPay", ZH: "银联云闪付"}

var fields = []channels.Field{
	{
		Name:  "mer_id",
		Label: channels.Text{EN: "Merchant number (merId)", ZH: "商户号（merId）"},
		Help: channels.Text{
			EN: "The 15-digit UnionPay merchant number (merId), given in UnionPay's access notice and shown in the UnionPay merchant service platform.",
			ZH: "银联商户号（merId），15 位数字，见银联入网通知，也可在银联商户服务平台查看。",
		},
		Kind:     channels.KindText,
		Required: true,
	},
	{
		Name:  "sign_cert_pfx",
		Label: channels.Text{EN: "Signing certificate (.pfx)", ZH: "签名证书（.pfx）"},
		Help: channels.Text{
			EN: "The merchant signing certificate with its private key, a PKCS#12 (.pfx) file. It is issued through the UnionPay merchant service platform's certificate download and exported with its private key; in the test environment UnionPay provides acp_test_sign.pfx.",
			ZH: "商户签名证书及其私钥，PKCS#12（.pfx）格式文件。通过银联商户服务平台的证书下载功能获取，导出时须包含私钥；测试环境使用银联提供的 acp_test_sign.pfx。",
		},
		Kind:     channels.KindPFX,
		Secret:   true,
		Required: true,
	},
	{
		Name:  "sign_cert_password",
		Label: channels.Text{EN: "Signing certificate password", ZH: "签名证书密码"},
		Help: channels.Text{
			EN: "The password that opens the .pfx file, set when it was exported (UnionPay's test certificates use 000000).",
			ZH: "打开 .pfx 文件的密码，即导出证书时设置的密码（银联测试证书为 000000）。",
		},
		Kind:     channels.KindSecretText,
		Secret:   true,
		Required: true,
	},
	{
		Name:  "verify_cert",
		Label: channels.Text{EN: "Verification certificate", ZH: "验签证书"},
		Help: channels.Text{
			EN: "UnionPay's certificates for checking UnionPay's signatures, PEM (.cer). For ACP 5.1.0 paste the intermediate and root certificates together (acp_prod_middle.cer and acp_prod_root.cer; acp_test_*.cer in the test environment); " +
				"for 5.0.0 the verification certificate acp_prod_verify_sign.cer. They come with UnionPay's SDK on open.unionpay.com. Not your own signing certificate.",
			ZH: "用于验证银联签名的银联证书，PEM 格式（.cer）。ACP 5.1.0 请将中级证书和根证书（acp_prod_middle.cer 与 acp_prod_root.cer，测试环境为 acp_test_*.cer）一并粘贴；" +
				"5.0.0 版本填写验签证书 acp_prod_verify_sign.cer。这些证书随银联开放平台（open.unionpay.com）的 SDK 提供。注意不是商户自己的签名证书。",
		},
		Kind:     channels.KindCertificate,
		Secret:   true,
		Required: true,
	},
}

var merIDRE = regexp.MustCompile(`^[0-9]{15}$`)

// Spec declares UnionPay's credentials and their checks.
//
// Methods: ACP covers QR-code payment (scan), in-wallet payment in the
// UnionPay QuickPass app (quick), mobile web payment (h5) and in-app
// payment through UnionPay's SDK (app).
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
	signKey  *rsa.PrivateKey
	signCert *x509.Certificate
}

func read(values map[string][]byte) (*channels.Validation, parsed) {
	v := channels.NewValidation(name, fields, values)
	v.Fields()
	v.Pattern("mer_id", merIDRE, channels.Text{EN: "15 digits", ZH: "15 位数字"})

	var p parsed
	p.signKey, p.signCert = v.PFX("sign_cert_pfx", "sign_cert_password")
	for _, c := range v.Certificates("verify_cert", true) {
		if pub, ok := c.PublicKey.(*rsa.PublicKey); ok && !v.NotOwn("sign_cert_pfx", p.signKey, "verify_cert", pub) {
			break
		}
	}
	return v, p
}

func validate(values map[string][]byte) []channels.Problem {
	v, _ := read(values)
	return v.Problems()
}

// check signs with the signing certificate's private key and verifies with
// the certificate's public key, then reports the validity of the signing
// certificate and of every verification certificate.
func check(values map[string][]byte, now time.Time) channels.Report {
	v, p := read(values)
	var certKey *rsa.PublicKey
	if p.signCert != nil {
		certKey, _ = p.signCert.PublicKey.(*rsa.PublicKey)
	}
	item := channels.SignItem(v.Label("sign_cert_pfx"), p.signKey,
		channels.Text{EN: "its certificate", ZH: "其证书"}, certKey)
	return v.Report(now, item)
}
