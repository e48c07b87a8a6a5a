package web_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"payfuse/channels/testkeys"
)

// fingerprintRE matches the SHA-256 fingerprints the console shows for stored
// keys and certificates.
var fingerprintRE = regexp.MustCompile(`SHA256:[0-9a-f]{4}(:[0-9a-f]{4}){3}`)

// TestBrowserChannelAccount drives an admin through setting up a merchant's
// WeChat Pay account in Chromium: create the merchant, paste the credentials
// (once with a bad APIv3 key, which must be refused without echoing any
// secret), see only fingerprints afterwards, rename the account without
// touching its secrets, and run the credential check.
//
// It runs only with PAYFUSE_E2E=1. With PAYFUSE_E2E_SHOTS=<dir> it also saves a
// full-page PNG of each key page there, for a human to look at.
func TestBrowserChannelAccount(t *testing.T) {
	if os.Getenv("PAYFUSE_E2E") != "1" {
		t.Skip("browser test: set PAYFUSE_E2E=1 (needs Debian's chromium at /usr/bin/chromium)")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("PAYFUSE_E2E=1 but Chromium is not usable at %s: %v", chromiumPath, err)
	}

	// Make the keys before the browser starts: its deadline covers only the session.
	creds := testkeys.Credentials("wechat", time.Now())
	apiv3Key := string(creds["apiv3_key"])

	base := startServer(t)
	b := newBrowser(t, base)

	b.navigate("open /", "/", 200)
	b.login("admin", "correct horse battery", "/")
	b.wait("dashboard sidebar", `aside nav`)

	// The admin creates the merchant; time zone and currency keep their defaults.
	const merchantForm = `form[action="/merchants"]`
	b.navigate("open the new-merchant form", "/merchants/new", 200)
	b.wait("new-merchant form", merchantForm+` input[name="code"]`)
	if tz := b.value("new-merchant form", merchantForm+` input[name="timezone"]`); tz != "Asia/Shanghai" {
		b.failf("new-merchant form", "time zone prefilled with %q, want Asia/Shanghai", tz)
	}
	if cur := b.value("new-merchant form", merchantForm+` input[name="currency"]`); cur != "CNY" {
		b.failf("new-merchant form", "currency prefilled with %q, want CNY", cur)
	}
	b.do("fill the new-merchant form",
		chromedp.SendKeys(chromedp.CSS(merchantForm+` input[name="code"]`), "SHOP_E2E"),
		chromedp.SendKeys(chromedp.CSS(merchantForm+` input[name="name"]`), "E2E 测试店"),
	)
	b.submit("create the merchant", merchantForm+` button[type="submit"]`, 200)
	merchantPath := b.path()
	if !regexp.MustCompile(`^/merchants/[0-9]+$`).MatchString(merchantPath) {
		b.failf("create the merchant", "want to land on /merchants/<id>, got %s", merchantPath)
	}
	merchantID := strings.TrimPrefix(merchantPath, "/merchants/")
	if flash := b.flash("merchant created"); !strings.Contains(flash, "SHOP_E2E") {
		b.failf("merchant created", "want a success message naming SHOP_E2E, got %q", flash)
	}
	b.shot("20-merchant")

	// Add a WeChat Pay account from the merchant's page.
	addLink := `a[href*="/channels/new?merchant=` + merchantID + `&channel=wechat"]`
	b.wait("add-account link", addLink)
	if text := b.text("add-account link", addLink); !strings.Contains(text, "Add WeChat Pay") {
		b.failf("add-account link", "link reads %q, want Add WeChat Pay", text)
	}
	b.response("open the new-account form", 200, chromedp.Click(chromedp.CSS(addLink)))
	b.wantPath("/channels/new")
	const accountForm = `form[action="/channels"]`
	b.wait("new-account form", accountForm+` input[name="app_id"]`)
	if enc := evaluate[string](b, "new-account form", `document.querySelector('form[action="/channels"]').enctype`); enc != "multipart/form-data" {
		b.failf("new-account form", "form enctype is %q, want multipart/form-data", enc)
	}

	// First try: a short APIv3 key. It is refused, next to its field, and no
	// secret comes back in the page.
	fillAccountForm(b, accountForm, creds, "too-short", "WeChat E2E")
	b.submit("submit a short APIv3 key", accountForm+` button[type="submit"]`, 422)
	b.wantPath("/channels")
	b.wait("refused form", accountForm+` input[name="apiv3_key"]`)
	keyMsg := evaluate[string](b, "APIv3 key message", `(() => {
		const input = document.querySelector('form[action="/channels"] input[name="apiv3_key"]');
		const msg = input && input.parentElement.querySelector("p.text-red-600");
		return msg ? msg.innerText : "";
	})()`)
	if !strings.Contains(keyMsg, "32") {
		b.failf("APIv3 key message", "want a message mentioning 32 next to the APIv3 key, got %q", keyMsg)
	}
	assertNoSecrets(b, "refused form", "too-short", apiv3Key)
	if v := b.value("refused form", accountForm+` input[name="apiv3_key"]`); v != "" {
		b.failf("refused form", "the APIv3 key field was filled back with %q", v)
	}
	for _, name := range []string{"merchant_private_key", "platform_public_key", "platform_certificate"} {
		if v := b.value("refused form", accountForm+` textarea[name="`+name+`"]`); v != "" {
			b.failf("refused form", "the %s field was filled back (%d characters)", name, len(v))
		}
	}

	// Second try: everything valid, secrets pasted again.
	fillAccountForm(b, accountForm, creds, apiv3Key, "WeChat E2E")
	b.shot("21-account-new")
	b.submit("create the account", accountForm+` button[type="submit"]`, 200)
	accountPath := b.path()
	if !regexp.MustCompile(`^/channels/[0-9]+$`).MatchString(accountPath) {
		b.failf("create the account", "want to land on /channels/<id>, got %s", accountPath)
	}
	if flash := b.flash("account created"); !strings.Contains(flash, "Channel account created") {
		b.failf("account created", "want a success message, got %q", flash)
	}
	if h := b.text("account header", `main h1`); h != "WeChat E2E" {
		b.failf("account header", "header reads %q, want WeChat E2E", h)
	}

	// The account page shows fingerprints, never the secrets.
	fingerprints := accountFingerprints(b, "account page")
	if len(fingerprints) < 2 {
		b.failf("account page", "want at least two SHA256 fingerprints, found %q", fingerprints)
	}
	t.Logf("fingerprints on the account page: %q", fingerprints)
	if text := b.text("account page", `main`); strings.Count(text, "HMAC:") < 1 {
		b.failf("account page", "want an HMAC fingerprint of the APIv3 key, main shows %q", clip(text))
	}
	assertNoSecrets(b, "account page", apiv3Key)
	b.shot("22-account")
	b.noSidewaysScroll("account page")

	// Edit: the secrets stay write-only; renaming keeps them.
	editLink := `a[href="` + accountPath + `/edit"]`
	b.response("open the edit form", 200, chromedp.Click(chromedp.CSS(editLink)))
	b.wantPath(accountPath + "/edit")
	editForm := `form[action="` + accountPath + `"]`
	b.wait("edit form", editForm+` input[name="display_name"]`)
	for _, sel := range []string{
		`input[name="apiv3_key"]`,
		`textarea[name="merchant_private_key"]`,
		`textarea[name="platform_public_key"]`,
		`textarea[name="platform_certificate"]`,
	} {
		type field struct {
			Value       string `json:"value"`
			Placeholder string `json:"placeholder"`
		}
		f := evaluate[field](b, "edit form secrets", `(() => {
			const el = document.querySelector('`+editForm+` `+sel+`');
			return el ? {value: el.value, placeholder: el.placeholder} : {value: "", placeholder: "(no such field)"};
		})()`)
		if f.Value != "" {
			b.failf("edit form secrets", "%s shows a stored value (%d characters); secrets must not be echoed", sel, len(f.Value))
		}
		if f.Placeholder != "Stored — leave blank to keep" {
			b.failf("edit form secrets", "%s placeholder is %q, want %q", sel, f.Placeholder, "Stored — leave blank to keep")
		}
	}
	assertNoSecrets(b, "edit form", apiv3Key)
	b.shot("23-account-edit")
	b.noSidewaysScroll("edit form")
	b.do("rename the account",
		chromedp.Clear(chromedp.CSS(editForm+` input[name="display_name"]`)),
		chromedp.SendKeys(chromedp.CSS(editForm+` input[name="display_name"]`), "WeChat E2E renamed"),
	)
	b.submit("save the account", editForm+` button[type="submit"]`, 200)
	b.wantPath(accountPath)
	if flash := b.flash("account saved"); !strings.Contains(flash, "Channel account saved") {
		b.failf("account saved", "want a success message, got %q", flash)
	}
	if h := b.text("renamed header", `main h1`); h != "WeChat E2E renamed" {
		b.failf("renamed header", "header reads %q, want WeChat E2E renamed", h)
	}
	if after := accountFingerprints(b, "account page after the rename"); !slices.Equal(after, fingerprints) {
		b.failf("account page after the rename", "fingerprints changed from %q to %q; blank secret fields must keep the stored values", fingerprints, after)
	}
	assertNoSecrets(b, "account page after the rename", apiv3Key)

	// The credential check passes on the stored credentials.
	checkButton := `form[action="` + accountPath + `/check"] button`
	b.submit("check the credentials", checkButton, 200)
	b.wantPath(accountPath + "/check")
	if report := b.flash("check report"); !strings.Contains(report, "All checks passed.") {
		b.failf("check report", "want All checks passed., the report reads %q", report)
	}
	b.shot("24-check")

	b.checkConsole()
}

// fillAccountForm fills the channel account form as a person would: typing
// the ids and the APIv3 key, pasting the PEM blocks.
func fillAccountForm(b *browser, form string, creds map[string][]byte, apiv3Key, displayName string) {
	b.t.Helper()
	field := func(tag, name string) chromedp.CSS {
		return chromedp.CSS(form + ` ` + tag + `[name="` + name + `"]`)
	}
	actions := []chromedp.Action[chromedp.Void]{
		chromedp.Clear(field("input", "display_name")),
		chromedp.SendKeys(field("input", "display_name"), displayName),
	}
	for _, name := range []string{"app_id", "mch_id", "merchant_serial_no", "platform_public_key_id"} {
		// After a refusal the form keeps what was typed in the plain fields.
		actions = append(actions, chromedp.Clear(field("input", name)), chromedp.SendKeys(field("input", name), string(creds[name])))
	}
	actions = append(actions, chromedp.SendKeys(field("input", "apiv3_key"), apiv3Key))
	for _, name := range []string{"merchant_private_key", "platform_public_key", "platform_certificate"} {
		actions = append(actions, chromedp.SetValue(field("textarea", name), string(creds[name])))
	}
	b.do("fill the account form", actions...)
	for _, name := range []string{"app_id", "mch_id", "merchant_serial_no", "platform_public_key_id"} {
		if v := b.value("fill the account form", form+` input[name="`+name+`"]`); v != string(creds[name]) {
			b.failf("fill the account form", "%s holds %q after typing %q", name, v, creds[name])
		}
	}
}

// accountFingerprints lists, in page order, the SHA256 fingerprints on the
// account page.
func accountFingerprints(b *browser, step string) []string {
	b.t.Helper()
	return fingerprintRE.FindAllString(b.text(step, `main`), -1)
}

// assertNoSecrets fails when the page's text or markup holds a private key or
// any of the given secret values.
func assertNoSecrets(b *browser, step string, secrets ...string) {
	b.t.Helper()
	html := evaluate[string](b, step, `document.documentElement.outerHTML`)
	text := evaluate[string](b, step, `document.body.innerText`)
	for _, s := range append([]string{"PRIVATE KEY"}, secrets...) {
		if strings.Contains(html, s) || strings.Contains(text, s) {
			b.failf(step, "the page shows %q", s)
		}
	}
}
