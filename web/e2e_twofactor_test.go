package web_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"payfuse/channels/testkeys"
	"payfuse/models"
)

// TestBrowserTwoFactor drives a new admin through two-factor sign-in in
// Chromium: the first sign-in sends them to enrolment, where the test reads
// the manual key off the page (and checks the QR code image loads) and types
// the code an authenticator would show; recovery codes are shown once; they
// sign out and in again with a code; opening a channel account's credentials
// asks for a step-up check (password and a code) and then carries on to the
// form, where they change the APIv3 key.
//
// Codes are accepted once only, and the test uses three within one 30-second
// window (enrolment, sign-in, step-up): the previous, current and next step's,
// all inside the ±1 tolerance; the helper waits for the next step when the
// window's codes are spent.
//
// It runs only with PAYFUSE_E2E=1. With PAYFUSE_E2E_SHOTS=<dir> it also saves a
// full-page PNG of each key page there, for a human to look at.
func TestBrowserTwoFactor(t *testing.T) {
	if os.Getenv("PAYFUSE_E2E") != "1" {
		t.Skip("browser test: set PAYFUSE_E2E=1 (needs Debian's chromium at /usr/bin/chromium)")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("PAYFUSE_E2E=1 but Chromium is not usable at %s: %v", chromiumPath, err)
	}
	creds := testkeys.Credentials("wechat", time.Now())
	var store *models.Store
	var acct *models.ChannelAccount
	base := startServer(t, func(s *models.Store) {
		store = s
		models.MustCreateUser(t, s, "root", "root admin password", models.RoleAdmin)
		m, err := s.CreateMerchant(models.SystemActor, models.MerchantInput{Code: "SHOP_2FA", Name: "Two-factor shop"})
		if err != nil {
			t.Fatal(err)
		}
		acct, _, err = s.SaveAccount(models.SystemActor, 0, models.AccountInput{MerchantID: m.ID, Channel: "wechat", DisplayName: "WeChat 2FA",
			Methods: []string{"scan"}, Enabled: true, Values: creds})
		if err != nil {
			t.Fatal(err)
		}
	})
	before, err := store.SecretStatuses(acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, base)

	// First sign-in: straight to enrolment.
	b.navigate("open /", "/", 200)
	if b.signIn("root", "root admin password") {
		b.failf("first sign-in", "asked for a code before enrolment")
	}
	b.wantPath("/account/2fa")
	if flash := b.text("enrolment notice", `main [role="status"]`); !strings.Contains(flash, "must use two-factor sign-in") {
		b.failf("enrolment notice", "want a notice that 2FA is required, got %q", flash)
	}
	// Admin pages send the admin back to the enrolment until it is done.
	b.navigate("users before enrolling", "/users", 200)
	b.wantPath("/account/2fa")
	b.wait("QR code", `img[src="/account/2fa/qr.png"]`)
	if w := evaluate[int](b, "QR code loaded", `(() => { const i = document.querySelector('img[src="/account/2fa/qr.png"]'); return i.complete ? i.naturalWidth : -1; })()`); w < 100 {
		b.failf("QR code loaded", "the QR code image did not load (natural width %d)", w)
	}
	key := strings.ReplaceAll(b.text("manual key", `[data-manual-key]`), " ", "")
	if len(key) != 32 {
		b.failf("manual key", "manual key %q is not a 160-bit base32 key", key)
	}
	rememberTOTP(store, "root", key)
	b.shot("40-2fa-enrol")
	b.noSidewaysScroll("enrolment page")
	b.do("type the first code", chromedp.SendKeys(chromedp.CSS(`form[action="/account/2fa/enable"] input[name="code"]`), b.totpCode("root")))
	b.submit("turn on 2FA", `form[action="/account/2fa/enable"] button[type="submit"]`, 200)
	codes := evaluate[[]string](b, "recovery codes", `Array.from(document.querySelectorAll("[data-recovery-codes] li"), li => li.textContent.trim())`)
	if len(codes) != models.RecoveryCodeCount {
		b.failf("recovery codes", "%d recovery codes shown, want %d", len(codes), models.RecoveryCodeCount)
	}
	b.shot("41-2fa-recovery-codes")
	b.submit("codes saved", `main a.btn-primary[href="/"]`, 200)
	b.wantPath("/")
	b.wait("dashboard after enrolling", `aside nav`)

	// Sign out, and in again with a code on the second page.
	b.do("open the user menu", chromedp.Click(chromedp.CSS(`[data-toggle="user-menu"]`)))
	b.wait("user menu", `form[action="/logout"] button[type="submit"]`)
	b.submit("sign out", `form[action="/logout"] button[type="submit"]`, 200)
	b.wantPath("/login")
	if !b.signIn("root", "root admin password") {
		b.failf("second sign-in", "no code was asked for")
	}
	b.wantPath("/")
	b.wait("dashboard after the code", `aside nav`)

	// Opening the credentials asks for a step-up, then carries on to the form.
	accountPath := "/channels/" + id(acct.ID)
	b.navigate("open the edit form", accountPath+"/edit", 200)
	b.wantPath("/account/step-up")
	b.shot("42-step-up")
	b.fillStepUp("root", "root admin password")
	b.submit("confirm identity", `form[action="/account/step-up"] button[type="submit"]`, 200)
	b.wantPath(accountPath + "/edit")
	if flash := b.flash("step-up done"); !strings.Contains(flash, "Identity confirmed") {
		b.failf("step-up done", "want a confirmation, got %q", flash)
	}
	editForm := `form[action="` + accountPath + `"]`
	newKey := "0123456789abcdefABCDEF0123456789"
	b.do("type a new APIv3 key", chromedp.SendKeys(chromedp.CSS(editForm+` input[name="apiv3_key"]`), newKey))
	b.submit("save the new secret", editForm+` button[type="submit"]`, 200)
	b.wantPath(accountPath)
	if flash := b.flash("secret saved"); !strings.Contains(flash, "Channel account saved") {
		b.failf("secret saved", "want a success message, got %q", flash)
	}
	after, err := store.SecretStatuses(acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	changed := false
	for i := range before {
		if before[i].Field == "apiv3_key" {
			for _, a := range after {
				changed = changed || a.Field == "apiv3_key" && a.Fingerprint != before[i].Fingerprint
			}
		}
	}
	if !changed {
		b.failf("secret saved", "the APIv3 key's fingerprint did not change")
	}
	for _, action := range []string{models.ActTwoFactorEnrol, models.ActStepUp, models.ActAccountUpdate} {
		if page, _ := store.ListAudit(models.AuditFilter{Action: action}); len(page.Rows) == 0 {
			b.failf("audit", "no %s record", action)
		}
	}
	b.checkConsole()
}
