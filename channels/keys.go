package channels

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"software.sslmate.com/src/go-pkcs12"
)

// ParseError says why key, certificate or PKCS#12 material could not be
// read. Reason is a sentence in both languages that is safe to show: it never
// quotes the material it is about.
type ParseError struct {
	Reason Text
	Err    error // the underlying error, if any
}

// Error returns the English reason, with the underlying error when there is one.
func (e *ParseError) Error() string {
	if e.Err != nil {
		return "channels: " + e.Reason.EN + " (" + e.Err.Error() + ")"
	}
	return "channels: " + e.Reason.EN
}

// Unwrap returns the underlying error.
func (e *ParseError) Unwrap() error { return e.Err }

// ErrPFXPassword is wrapped by the error ParsePFX returns when the password
// does not open the file.
var ErrPFXPassword = errors.New("channels: the password does not open the PKCS#12 file")

func parseErr(reason Text, err error) error { return &ParseError{Reason: reason, Err: err} }

// The reasons material is refused. Each is a sentence shown after the field's label.
var (
	reasonEmpty      = Text{"It is empty.", "内容为空。"}
	reasonPEMDamaged = Text{
		"The PEM text is damaged (its base64 does not decode); copy the whole file again, including the -----BEGIN and -----END lines.",
		"PEM 文本已损坏（其中的 base64 无法解码），请重新完整复制文件内容，包括 -----BEGIN 和 -----END 两行。",
	}
	reasonKeyNotFound = Text{
		"No private key found: expected PEM (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----) or the bare base64 of a key.",
		"未找到私钥：应为 PEM 格式（-----BEGIN PRIVATE KEY----- 或 -----BEGIN RSA PRIVATE KEY-----），或私钥的纯 base64 文本。",
	}
	reasonKeyEncrypted = Text{
		"The private key is protected by a passphrase; give the unencrypted key.",
		"私钥已用口令加密，请提供未加密的私钥。",
	}
	reasonKeyIsCert    = Text{"This is a certificate, not a private key.", "这是证书，不是私钥。"}
	reasonKeyIsPublic  = Text{"This is a public key, not a private key.", "这是公钥，不是私钥。"}
	reasonKeyMany      = Text{"It holds more than one private key; give exactly one.", "其中包含多个私钥，请只提供一个。"}
	reasonKeyUnreadble = Text{
		"It is not a readable PKCS#1 or PKCS#8 RSA private key.",
		"无法读取为 PKCS#1 或 PKCS#8 格式的 RSA 私钥。",
	}
	reasonPubNotFound = Text{
		"No public key found: expected PEM (-----BEGIN PUBLIC KEY-----) or the bare base64 text the channel's console shows.",
		"未找到公钥：应为 PEM 格式（-----BEGIN PUBLIC KEY-----），或渠道控制台显示的纯 base64 文本。",
	}
	reasonPubIsCert    = Text{"This is a certificate, not a public key.", "这是证书，不是公钥。"}
	reasonPubIsPrivate = Text{
		"This is a PRIVATE key, not a public key; never share it with anyone.",
		"这是私钥，不是公钥；私钥不应交给任何人。",
	}
	reasonPubMany       = Text{"It holds more than one public key; give exactly one.", "其中包含多个公钥，请只提供一个。"}
	reasonPubUnreadable = Text{"It is not a readable RSA public key.", "无法读取为 RSA 公钥。"}
	reasonCertNotFound  = Text{
		"No certificate found: expected PEM (-----BEGIN CERTIFICATE-----) or a DER certificate file.",
		"未找到证书：应为 PEM 格式（-----BEGIN CERTIFICATE-----）或 DER 格式的证书文件。",
	}
	reasonCertIsPrivate = Text{
		"This is a PRIVATE key, not a certificate; never share it with anyone.",
		"这是私钥，不是证书；私钥不应交给任何人。",
	}
	reasonCertIsPublic   = Text{"This is a public key, not a certificate.", "这是公钥，不是证书。"}
	reasonCertUnreadable = Text{"None of its certificates can be read.", "其中的证书均无法读取。"}
	reasonPFXNotPFX      = Text{
		"It is not a PKCS#12 (.pfx/.p12) file.",
		"不是 PKCS#12（.pfx/.p12）格式的文件。",
	}
	reasonPFXPassword = Text{
		"The password does not open it.",
		"密码无法打开该文件。",
	}
	reasonPFXUnsupported = Text{
		"It uses a PKCS#12 variant that cannot be read here; export it again as a standard .pfx with its private key.",
		"该 PKCS#12 文件的格式变体无法读取，请重新导出为包含私钥的标准 .pfx 文件。",
	}
	reasonPFXNoKey  = Text{"It holds no private key; export it again with the private key.", "其中没有私钥，请导出时选择包含私钥。"}
	reasonPFXNoCert = Text{"It holds no certificate.", "其中没有证书。"}
)

func reasonNotRSA(alg string) Text {
	return Textf("This is an %s key; this channel needs an RSA key.", "这是 %s 密钥，本渠道需要 RSA 密钥。", alg)
}

// keyAlgorithm names the algorithm of a key Go parsed, for messages.
func keyAlgorithm(k any) string {
	switch k.(type) {
	case *ecdsa.PrivateKey, *ecdsa.PublicKey:
		return "ECDSA"
	case ed25519.PrivateKey, ed25519.PublicKey:
		return "Ed25519"
	}
	return "unsupported"
}

// pemBlocks decodes every PEM block in b. damaged reports text that announces
// PEM ("-----BEGIN") of which no block could be decoded.
func pemBlocks(b []byte) (blocks []*pem.Block, damaged bool) {
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		blocks = append(blocks, blk)
	}
	return blocks, len(blocks) == 0 && bytes.Contains(b, []byte("-----BEGIN"))
}

// bareDER returns the DER bytes in b when b is base64 text without PEM
// armour (white space anywhere is ignored), or b itself when it looks like
// raw DER (an ASN.1 SEQUENCE). Otherwise it returns nil.
func bareDER(b []byte) []byte {
	if len(b) > 0 && b[0] == 0x30 {
		return b
	}
	compact := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, string(b))
	if compact == "" {
		return nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if der, err := enc.DecodeString(compact); err == nil && len(der) > 0 && der[0] == 0x30 {
			return der
		}
	}
	return nil
}

func isEncryptedPEM(blk *pem.Block) bool {
	return blk.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(blk.Headers["Proc-Type"], "ENCRYPTED")
}

// ParsePrivateKey reads an RSA private key: PEM ("PRIVATE KEY" for PKCS#8,
// "RSA PRIVATE KEY" for PKCS#1), or the same DER as bare base64 text (what
// Alipay's key tool shows) or raw bytes. Other PEM blocks beside the key (a
// certificate, say) are ignored. Errors are *ParseError.
func ParsePrivateKey(b []byte) (*rsa.PrivateKey, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, parseErr(reasonEmpty, nil)
	}
	blocks, damaged := pemBlocks(b)
	if damaged {
		return nil, parseErr(reasonPEMDamaged, nil)
	}
	if len(blocks) == 0 {
		der := bareDER(b)
		if der == nil {
			return nil, parseErr(reasonKeyNotFound, nil)
		}
		return privateKeyFromDER(der)
	}
	var keys []*pem.Block
	var sawCert, sawPublic bool
	for _, blk := range blocks {
		switch {
		case isEncryptedPEM(blk):
			return nil, parseErr(reasonKeyEncrypted, nil)
		case blk.Type == "PRIVATE KEY" || blk.Type == "RSA PRIVATE KEY":
			keys = append(keys, blk)
		case blk.Type == "EC PRIVATE KEY":
			return nil, parseErr(reasonNotRSA("ECDSA"), nil)
		case strings.HasSuffix(blk.Type, "PRIVATE KEY"):
			return nil, parseErr(reasonKeyUnreadble, nil)
		case strings.HasSuffix(blk.Type, "CERTIFICATE"):
			sawCert = true
		case strings.HasSuffix(blk.Type, "PUBLIC KEY"):
			sawPublic = true
		}
	}
	switch {
	case len(keys) > 1:
		return nil, parseErr(reasonKeyMany, nil)
	case len(keys) == 1:
		return privateKeyFromDER(keys[0].Bytes)
	case sawCert:
		return nil, parseErr(reasonKeyIsCert, nil)
	case sawPublic:
		return nil, parseErr(reasonKeyIsPublic, nil)
	}
	return nil, parseErr(reasonKeyNotFound, nil)
}

func privateKeyFromDER(der []byte) (*rsa.PrivateKey, error) {
	k, err8 := x509.ParsePKCS8PrivateKey(der)
	if err8 == nil {
		if rk, ok := k.(*rsa.PrivateKey); ok {
			return rk, nil
		}
		return nil, parseErr(reasonNotRSA(keyAlgorithm(k)), nil)
	}
	if rk, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return rk, nil
	}
	if _, err := x509.ParseECPrivateKey(der); err == nil {
		return nil, parseErr(reasonNotRSA("ECDSA"), nil)
	}
	if _, err := x509.ParseCertificate(der); err == nil {
		return nil, parseErr(reasonKeyIsCert, nil)
	}
	if _, err := x509.ParsePKIXPublicKey(der); err == nil {
		return nil, parseErr(reasonKeyIsPublic, nil)
	}
	return nil, parseErr(reasonKeyUnreadble, err8)
}

// ParsePublicKey reads an RSA public key: PEM ("PUBLIC KEY" for PKIX, "RSA
// PUBLIC KEY" for PKCS#1), or the same DER as bare base64 text — the form
// Alipay's console shows, line breaks and spaces tolerated — or raw bytes.
// Errors are *ParseError.
func ParsePublicKey(b []byte) (*rsa.PublicKey, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, parseErr(reasonEmpty, nil)
	}
	blocks, damaged := pemBlocks(b)
	if damaged {
		return nil, parseErr(reasonPEMDamaged, nil)
	}
	if len(blocks) == 0 {
		der := bareDER(b)
		if der == nil {
			return nil, parseErr(reasonPubNotFound, nil)
		}
		return publicKeyFromDER(der)
	}
	var keys []*pem.Block
	var sawCert, sawPrivate bool
	for _, blk := range blocks {
		switch {
		case blk.Type == "PUBLIC KEY" || blk.Type == "RSA PUBLIC KEY":
			keys = append(keys, blk)
		case strings.HasSuffix(blk.Type, "PRIVATE KEY"):
			sawPrivate = true
		case strings.HasSuffix(blk.Type, "CERTIFICATE"):
			sawCert = true
		}
	}
	switch {
	case sawPrivate:
		return nil, parseErr(reasonPubIsPrivate, nil)
	case len(keys) > 1:
		return nil, parseErr(reasonPubMany, nil)
	case len(keys) == 1:
		return publicKeyFromDER(keys[0].Bytes)
	case sawCert:
		return nil, parseErr(reasonPubIsCert, nil)
	}
	return nil, parseErr(reasonPubNotFound, nil)
}

func publicKeyFromDER(der []byte) (*rsa.PublicKey, error) {
	k, errPKIX := x509.ParsePKIXPublicKey(der)
	if errPKIX == nil {
		if rk, ok := k.(*rsa.PublicKey); ok {
			return rk, nil
		}
		return nil, parseErr(reasonNotRSA(keyAlgorithm(k)), nil)
	}
	if rk, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return rk, nil
	}
	if _, err := x509.ParseCertificate(der); err == nil {
		return nil, parseErr(reasonPubIsCert, nil)
	}
	if looksPrivate(der) {
		return nil, parseErr(reasonPubIsPrivate, nil)
	}
	return nil, parseErr(reasonPubUnreadable, errPKIX)
}

// ParseCertificates reads one or more certificates: PEM with one or several
// CERTIFICATE blocks, or a DER certificate (raw or as bare base64). Blocks Go
// cannot parse — such as the SM2 root inside Alipay's alipayRootCert.crt —
// are skipped as long as at least one certificate is read. Errors are
// *ParseError.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	certs, _, err := parseCertificates(b)
	return certs, err
}

// parseCertificates is ParseCertificates that also counts the skipped blocks.
func parseCertificates(b []byte) (certs []*x509.Certificate, skipped int, err error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, 0, parseErr(reasonEmpty, nil)
	}
	blocks, damaged := pemBlocks(b)
	if damaged {
		return nil, 0, parseErr(reasonPEMDamaged, nil)
	}
	if len(blocks) == 0 {
		der := bareDER(b)
		if der == nil {
			return nil, 0, parseErr(reasonCertNotFound, nil)
		}
		certs, err := x509.ParseCertificates(der)
		if err != nil || len(certs) == 0 {
			if looksPrivate(der) {
				return nil, 0, parseErr(reasonCertIsPrivate, nil)
			}
			if _, perr := x509.ParsePKIXPublicKey(der); perr == nil {
				return nil, 0, parseErr(reasonCertIsPublic, nil)
			}
			return nil, 0, parseErr(reasonCertUnreadable, err)
		}
		return certs, 0, nil
	}
	var sawCertBlock, sawPrivate, sawPublic bool
	var firstErr error
	for _, blk := range blocks {
		switch {
		case blk.Type == "CERTIFICATE" || blk.Type == "X509 CERTIFICATE":
			sawCertBlock = true
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				skipped++
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			certs = append(certs, c)
		case strings.HasSuffix(blk.Type, "PRIVATE KEY"):
			sawPrivate = true
		case strings.HasSuffix(blk.Type, "PUBLIC KEY"):
			sawPublic = true
		}
	}
	switch {
	case sawPrivate:
		// A private key pasted into a certificate field is refused outright, so
		// it is not stored where certificates go.
		return nil, 0, parseErr(reasonCertIsPrivate, nil)
	case len(certs) > 0:
		return certs, skipped, nil
	case sawCertBlock:
		return nil, 0, parseErr(reasonCertUnreadable, firstErr)
	case sawPublic:
		return nil, 0, parseErr(reasonCertIsPublic, nil)
	}
	return nil, 0, parseErr(reasonCertNotFound, nil)
}

// looksPrivate reports whether der is a private key in any format Go reads.
func looksPrivate(der []byte) bool {
	if _, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return true
	}
	_, err := x509.ParseECPrivateKey(der)
	return err == nil
}

// ParsePFX opens a PKCS#12 (.pfx/.p12) file with password and returns its RSA
// private key and the certificate that goes with it: the certificate whose
// public key matches the private key when the file holds one, else the first
// certificate. Callers that need the pair to match check it with KeyMatches.
// A file given as base64 text is accepted too. A wrong password gives a
// *ParseError wrapping ErrPFXPassword; errors never include the password.
func ParsePFX(data []byte, password string) (*rsa.PrivateKey, *x509.Certificate, error) {
	if len(data) == 0 {
		return nil, nil, parseErr(reasonEmpty, nil)
	}
	key, leaf, chain, err := pkcs12.DecodeChain(data, password)
	if err != nil && data[0] != 0x30 {
		if der := bareDER(data); der != nil {
			key, leaf, chain, err = pkcs12.DecodeChain(der, password)
		}
	}
	if err != nil {
		return nil, nil, pfxError(err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, nil, parseErr(reasonNotRSA(keyAlgorithm(key)), nil)
	}
	for _, c := range append([]*x509.Certificate{leaf}, chain...) {
		if KeyMatches(rk, c.PublicKey) {
			return rk, c, nil
		}
	}
	return rk, leaf, nil
}

// pfxError turns a go-pkcs12 error into a *ParseError. The library's errors
// carry no key material or password, but only its sentinels and the shape of
// its messages are relied upon here.
func pfxError(err error) error {
	var notImpl pkcs12.NotImplementedError
	msg := err.Error()
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword), errors.Is(err, pkcs12.ErrDecryption):
		return &ParseError{Reason: reasonPFXPassword, Err: ErrPFXPassword}
	case errors.As(err, &notImpl):
		return parseErr(reasonPFXUnsupported, err)
	case strings.Contains(msg, "error reading P12 data"):
		return parseErr(reasonPFXNotPFX, nil)
	case strings.Contains(msg, "private key missing"):
		return parseErr(reasonPFXNoKey, nil)
	case strings.Contains(msg, "certificate missing"):
		return parseErr(reasonPFXNoCert, nil)
	case strings.Contains(msg, "decrypt"), strings.Contains(msg, "UCS-2"), strings.Contains(msg, "no MAC"):
		// A key bag that does not decrypt, a password the format cannot
		// encode, or a password given for a file that has none: all mean the
		// password does not open the file.
		return &ParseError{Reason: reasonPFXPassword, Err: ErrPFXPassword}
	}
	return parseErr(reasonPFXUnsupported, err)
}

// KeyMatches reports whether pub is the public half of priv.
func KeyMatches(priv *rsa.PrivateKey, pub crypto.PublicKey) bool {
	return priv != nil && pub != nil && priv.PublicKey.Equal(pub)
}

// checkMessage is what the credential checks sign.
var checkMessage = []byte("PayFuse credential check: SHA256withRSA test message")

// SignVerify signs a fixed test message with priv (SHA256withRSA, PKCS#1
// v1.5, as the channels sign) and verifies the signature with pub. A nil
// error means priv can sign and pub verifies what it signs.
func SignVerify(priv *rsa.PrivateKey, pub *rsa.PublicKey) error {
	if priv == nil || pub == nil {
		return errors.New("channels: sign test: missing key")
	}
	sum := sha256.Sum256(checkMessage)
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
	if err != nil {
		return fmt.Errorf("channels: sign test: unable to sign: %w", err)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("channels: sign test: signature does not verify: %w", err)
	}
	return nil
}

// CertInfoOf describes certificate c found in field.
func CertInfoOf(field string, c *x509.Certificate) CertInfo {
	return CertInfo{
		Field:     field,
		Subject:   c.Subject.String(),
		Serial:    fmt.Sprintf("%X", c.SerialNumber),
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
	}
}
