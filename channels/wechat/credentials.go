// Package wechat holds what PayFuse knows about WeChat Pay (API v3).
package wechat

import (
	"crypto/rsa"
	"regexp"
	"time"

	"payfuse/channels"
)

// Code is the channel's code.
const Code = "wechat"

// APIv3KeySize is the length of the APIv3 key in bytes: it is the AES-256-GCM
// key that decrypts notifications and certificate downloads.
const APIv3KeySize = 32

var name = channels.Text{EN: "WeChat Pay", ZH: "微信支付"}

var fields = []channels.Field{
	{
		Name:  "app_id",
		Label: channels.Text{EN: "AppID", ZH: "AppID（应用ID）"},
		Help: channels.Text{
			EN: "The AppID of the Official Account, Mini Program or mobile app bound to this merchant ID: \"wx\" followed by 16 letters or digits. " +
				"WeChat Pay Merchant Platform (pay.weixin.qq.com) → Product Center → AppID account management lists the bound AppIDs.",
			ZH: "与本商户号绑定的公众号、小程序或移动应用的 AppID，以“wx”开头，共 18 位。" +
				"可在微信支付商户平台（pay.weixin.qq.com）「产品中心 → AppID账号管理」查看已绑定的 AppID。",
		},
		Kind:     channels.KindText,
		Required: true,
	},
	{
		Name:  "mch_id",
		Label: channels.Text{EN: "Merchant ID (mchid)", ZH: "商户号（mchid）"},
		Help: channels.Text{
			EN: "The WeChat Pay merchant ID, 8 to 12 digits (usually 10). It is in the account-opening email and in Merchant Platform → Account Center → Merchant information.",
			ZH: "微信支付商户号，8–12 位数字（通常为 10 位）。见开户邮件，或微信支付商户平台「账户中心 → 商户信息」。",
		},
		Kind:     channels.KindText,
		Required: true,
	},
	{
		Name:  "apiv3_key",
		Label: channels.Text{EN: "APIv3 key", ZH: "APIv3密钥"},
		Help: channels.Text{
			EN: "The 32-character APIv3 key set in Merchant Platform → Account Center → API security → APIv3 key. " +
				"WeChat Pay never shows it again once set; if nobody kept it, set a new one there (and update every system that uses it).",
			ZH: "在微信支付商户平台「账户中心 → API安全 → APIv3密钥」设置的 32 位密钥。" +
				"设置后平台不再显示；如无人保存，可在该处重新设置（并同步更新所有使用它的系统）。",
		},
		Kind:     channels.KindSecretText,
		Secret:   true,
		Required: true,
	},
	{
		Name:  "merchant_serial_no",
		Label: channels.Text{EN: "Merchant API certificate serial number", ZH: "商户API证书序列号"},
		Help: channels.Text{
			EN: "The serial number of the merchant API certificate (apiclient_cert.pem), usually 40 hexadecimal characters. " +
				"Merchant Platform → Account Center → API security → API certificate → Manage certificate shows it.",
			ZH: "商户API证书（apiclient_cert.pem）的序列号，通常为 40 位十六进制字符。" +
				"见微信支付商户平台「账户中心 → API安全 → API证书 → 管理证书」。",
		},
		Kind:     channels.KindText,
		Required: true,
	},
	{
		Name:  "merchant_private_key",
		Label: channels.Text{EN: "Merchant API private key", ZH: "商户API私钥"},
		Help: channels.Text{
			EN: "The private key of the merchant API certificate, apiclient_key.pem (PEM), created by the WeChat Pay certificate tool when the API certificate was applied for. " +
				"WeChat Pay does not keep it: if it is lost, apply for a new API certificate.",
			ZH: "商户API证书的私钥文件 apiclient_key.pem（PEM 格式），申请API证书时由证书工具生成。" +
				"微信支付不保存该私钥，遗失后须重新申请API证书。",
		},
		Kind:     channels.KindPrivateKey,
		Secret:   true,
		Required: true,
	},
	{
		Name:  "platform_public_key_id",
		Label: channels.Text{EN: "WeChat Pay public key ID", ZH: "微信支付公钥ID"},
		Help: channels.Text{
			EN: "The ID shown next to the WeChat Pay public key, starting with PUB_KEY_ID_. WeChat Pay names the key with it in the Wechatpay-Serial header. Required when the public key is given.",
			ZH: "微信支付公钥旁显示的公钥ID，以 PUB_KEY_ID_ 开头；微信支付在应答头 Wechatpay-Serial 中用它指明所用公钥。填写微信支付公钥时必填。",
		},
		Kind: channels.KindText,
	},
	{
		Name:  "platform_public_key",
		Label: channels.Text{EN: "WeChat Pay public key", ZH: "微信支付公钥"},
		Help: channels.Text{
			EN: "The WeChat Pay public key (pub_key.pem) that verifies WeChat Pay's responses and notifications: Merchant Platform → Account Center → API security → WeChat Pay public key. " +
				"Give it with its ID, or give the platform certificate instead (or both while switching from one to the other).",
			ZH: "用于验证微信支付应答和回调通知签名的微信支付公钥（pub_key.pem），见微信支付商户平台「账户中心 → API安全 → 微信支付公钥」。" +
				"与公钥ID一并填写；也可改为填写平台证书（切换期间可两者都填）。",
		},
		Kind:   channels.KindPublicKey,
		Secret: true,
		OneOf:  "platform",
	},
	{
		Name:  "platform_certificate",
		Label: channels.Text{EN: "WeChat Pay platform certificate", ZH: "微信支付平台证书"},
		Help: channels.Text{
			EN: "The WeChat Pay platform certificate(s), PEM, for merchants that verify with platform certificates rather than the public key. " +
				"They are not on the Merchant Platform web pages: fetch them with the download certificates API (GET /v3/certificates) or WeChat Pay's CertificateDownloader tool. " +
				"During a certificate rotation paste the old and new certificates together.",
			ZH: "微信支付平台证书（PEM 格式），供使用平台证书而非微信支付公钥验签的商户填写。" +
				"商户平台网页上不提供下载：请通过「下载平台证书」接口（GET /v3/certificates）或微信支付提供的 CertificateDownloader 工具获取。" +
				"证书轮换期间可将新旧证书一并粘贴。",
		},
		Kind:   channels.KindCertificate,
		Secret: true,
		OneOf:  "platform",
	},
}

var (
	appIDRE    = regexp.MustCompile(`^wx[0-9A-Za-z]{16}$`)
	mchIDRE    = regexp.MustCompile(`^[0-9]{8,12}$`)
	serialRE   = regexp.MustCompile(`^[0-9A-Fa-f]{8,64}$`)
	pubKeyIDRE = regexp.MustCompile(`^PUB_KEY_ID_[0-9A-Za-z]{8,64}$`)
)

// Spec declares WeChat Pay's credentials and their checks.
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
	merchant    *rsa.PrivateKey
	platformKey *rsa.PublicKey
}

func read(values map[string][]byte) (*channels.Validation, parsed) {
	v := channels.NewValidation(name, fields, values)
	v.Fields()
	v.Pattern("app_id", appIDRE, channels.Text{
		EN: "\"wx\" followed by 16 letters or digits (18 characters)",
		ZH: "“wx”开头加 16 位字母或数字（共 18 位）",
	})
	v.Pattern("mch_id", mchIDRE, channels.Text{EN: "8 to 12 digits", ZH: "8–12 位数字"})
	v.Pattern("merchant_serial_no", serialRE, channels.Text{
		EN: "8 to 64 hexadecimal characters (usually 40)",
		ZH: "8–64 位十六进制字符（通常为 40 位）",
	})
	v.Pattern("platform_public_key_id", pubKeyIDRE, channels.Text{
		EN: "PUB_KEY_ID_ followed by letters and digits",
		ZH: "PUB_KEY_ID_ 开头加字母和数字",
	})
	checkAPIv3Key(v)

	var p parsed
	p.merchant = v.PrivateKey("merchant_private_key")
	p.platformKey = v.PublicKey("platform_public_key")
	platformCerts := v.Certificates("platform_certificate", true)

	hasKey, hasID, hasCert := v.Given("platform_public_key"), v.Given("platform_public_key_id"), v.Given("platform_certificate")
	switch {
	case !hasKey && !hasCert:
		v.Add("platform_public_key", channels.Textf(
			"Give the %s with its ID, or the %s.", "请填写%s及其ID，或填写%s。",
			v.Label("platform_public_key"), v.Label("platform_certificate")))
	case hasKey && !hasID:
		v.Add("platform_public_key_id", channels.Textf(
			"%s is required with the %s.", "填写%[2]s时，%[1]s为必填项。",
			v.Label("platform_public_key_id"), v.Label("platform_public_key")))
	case hasID && !hasKey:
		v.Add("platform_public_key", channels.Textf(
			"%s is set but the %s is not: give the key, or clear the ID.", "已填写%s但未填写%s：请填写公钥，或清空公钥ID。",
			v.Label("platform_public_key_id"), v.Label("platform_public_key")))
	}
	v.NotOwn("merchant_private_key", p.merchant, "platform_public_key", p.platformKey)
	for _, c := range platformCerts {
		if pub, ok := c.PublicKey.(*rsa.PublicKey); ok && !v.NotOwn("merchant_private_key", p.merchant, "platform_certificate", pub) {
			break
		}
	}
	return v, p
}

// checkAPIv3Key checks that the APIv3 key is exactly 32 visible ASCII
// characters, saying only its length when it is not.
func checkAPIv3Key(v *channels.Validation) {
	key := v.Value("apiv3_key")
	if key == nil {
		return
	}
	label := v.Label("apiv3_key")
	trimmed := len(key)
	for trimmed > 0 && isSpace(key[trimmed-1]) {
		trimmed--
	}
	lead := 0
	for lead < trimmed && isSpace(key[lead]) {
		lead++
	}
	switch {
	case len(key) != APIv3KeySize && trimmed-lead == APIv3KeySize:
		v.Add("apiv3_key", channels.Textf(
			"%s has white space or a line break at the start or end; remove it (the key itself is %d bytes).",
			"%s首尾含有空格或换行，请删除（密钥本身为 %d 字节）。", label, APIv3KeySize))
		return
	case len(key) != APIv3KeySize:
		v.Add("apiv3_key", channels.Textf(
			"%s must be exactly %d bytes; the value given has %d.",
			"%s必须正好为 %d 字节；当前填写的值为 %d 字节。", label, APIv3KeySize, len(key)))
		return
	}
	for _, b := range key {
		if b <= ' ' || b > '~' {
			v.Add("apiv3_key", channels.Textf(
				"%s must be %d letters and digits (visible ASCII characters), as set in the Merchant Platform.",
				"%s应为 %d 位字母和数字（可见 ASCII 字符），与商户平台设置的一致。", label, APIv3KeySize))
			return
		}
	}
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

func validate(values map[string][]byte) []channels.Problem {
	v, _ := read(values)
	return v.Problems()
}

// check signs with the merchant private key and verifies with its own public
// half (PayFuse does not hold the merchant certificate), reports whether the
// WeChat Pay public key reads, and the validity of each platform certificate.
func check(values map[string][]byte, now time.Time) channels.Report {
	v, p := read(values)
	var ownPublic *rsa.PublicKey
	if p.merchant != nil {
		ownPublic = &p.merchant.PublicKey
	}
	items := []channels.CheckItem{
		channels.SignItem(v.Label("merchant_private_key"), p.merchant,
			channels.Text{EN: "its own public key", ZH: "其自身对应的公钥"}, ownPublic),
	}
	if v.Given("platform_public_key") {
		items = append(items, channels.KeyItem(v.Label("platform_public_key"), p.platformKey))
	}
	return v.Report(now, items...)
}
