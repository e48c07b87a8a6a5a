package models

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestTOTPRFC6238Vectors checks the code generator against the SHA-1 test
// vectors of RFC 6238, appendix B (8 digits, key "12345678901234567890").
func TestTOTPRFC6238Vectors(t *testing.T) {
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte("12345678901234567890"))
	for _, v := range []struct {
		unix int64
		want string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	} {
		got, err := TOTPCode(secret, TOTPStep(time.Unix(v.unix, 0)), 8)
		if err != nil {
			t.Fatal(err)
		}
		if got != v.want {
			t.Errorf("T=%d: %s, want %s", v.unix, got, v.want)
		}
	}
	// The 6-digit code apps show is the same value's last six digits.
	six, _ := TOTPCode(secret, TOTPStep(time.Unix(59, 0)), 6)
	if six != "287082" {
		t.Errorf("6-digit code at T=59: %s, want 287082", six)
	}
}

func code(t *testing.T, secret string, at time.Time, steps int64) string {
	t.Helper()
	c, err := TOTPCode(secret, TOTPStep(at)+steps, TOTPDigits)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrol gives a user a second factor as the enrolment page does, confirming
// with the code of the previous step (so the current and next steps stay
// usable), and returns the secret and the recovery codes.
func enrol(t *testing.T, s *Store, c *clock, u *User) (string, []string) {
	t.Helper()
	secret, err := s.PendingTOTP(u.ID)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := s.PendingTOTP(u.ID)
	if again != secret {
		t.Fatal("a second visit to the enrolment made another secret")
	}
	if _, err := s.ConfirmTOTP(web, u.ID, "000000"+"x"); !errors.Is(err, ErrBadCode) {
		t.Fatalf("nonsense code: %v", err)
	}
	codes, err := s.ConfirmTOTP(web, u.ID, code(t, secret, c.Now(), -1))
	if err != nil {
		t.Fatalf("confirm: %v", err)
	}
	if len(codes) != RecoveryCodeCount {
		t.Fatalf("%d recovery codes", len(codes))
	}
	return secret, codes
}

func TestTwoFactorEnrolmentSealsTheSecret(t *testing.T) {
	s, c := vaultStore(t)
	u := MustCreateUser(t, s, "ada", "adas password!!", RoleAdmin)
	secret, codes := enrol(t, s, c, u)
	got, _ := s.GetUser(u.ID)
	if !got.TwoFactor || got.PrivVersion != u.PrivVersion+1 {
		t.Fatalf("after enrolment: two_factor=%v priv %d→%d", got.TwoFactor, u.PrivVersion, got.PrivVersion)
	}
	if _, err := s.PendingTOTP(u.ID); !errors.Is(err, ErrTwoFactorEnabled) {
		t.Fatalf("enrolling twice: %v", err)
	}
	// Neither the secret nor a recovery code is in the database in plain text.
	var row UserTOTP
	s.DB.First(&row, "user_id = ?", u.ID)
	raw, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if len(row.SecretSealed) == 0 || bytes.Contains(row.SecretSealed, []byte(secret)) || bytes.Contains(row.SecretSealed, raw) || row.PendingSealed != nil {
		t.Fatalf("secret not sealed: %+v", row)
	}
	var hashes []RecoveryCode
	s.DB.Where("user_id = ?", u.ID).Find(&hashes)
	for _, h := range hashes {
		for _, c := range codes {
			if strings.Contains(h.CodeHash, normalizeRecovery(c)) {
				t.Fatal("a recovery code is stored in plain text")
			}
		}
		if len(h.CodeHash) != 64 {
			t.Fatalf("hash %q", h.CodeHash)
		}
	}
	if n := len(auditActions(t, s, ActTwoFactorEnrol)); n != 1 {
		t.Fatalf("%d enrol audit records", n)
	}
	// Rotating the master key keeps the secret readable (its data key is re-wrapped).
	key := make([]byte, 32)
	rand.Read(key)
	next, _ := NewVault(key)
	if _, _, err := s.RotateMasterKey(web, s.Vault, next, 0); err != nil {
		t.Fatal(err)
	}
	s.Vault = next
	out, err := s.LoginStart(web, "ada", "adas password!!", "ua")
	if err != nil || out.Challenge == "" {
		t.Fatalf("password step: %v %+v", err, out)
	}
	if _, _, _, err := s.LoginSecondFactor(web, out.Challenge, code(t, secret, c.Now(), 0)); err != nil {
		t.Fatalf("code after key rotation: %v", err)
	}
}

func TestTwoFactorCodeOnceOnlyAndSkew(t *testing.T) {
	s, c := vaultStore(t)
	u := MustCreateUser(t, s, "bea", "beas password!!", RoleOperator)
	secret, _ := enrol(t, s, c, u) // used the previous step
	signIn := func(code string) error {
		t.Helper()
		out, err := s.LoginStart(web, "bea", "beas password!!", "ua")
		if err != nil {
			t.Fatalf("password step: %v", err)
		}
		if out.Session != nil || out.Token != "" {
			t.Fatal("the password alone opened a session")
		}
		_, token, sess, err := s.LoginSecondFactor(web, out.Challenge, code)
		if err == nil && (token == "" || sess == nil) {
			t.Fatal("no session after the second step")
		}
		return err
	}
	if _, _, _, err := s.Login(web, "bea", "beas password!!", "ua"); !errors.Is(err, ErrSecondFactorRequired) {
		t.Fatalf("Login without a code: %v", err)
	}
	// The enrolment's code (previous step) cannot be used again.
	if err := signIn(code(t, secret, c.Now(), -1)); !errors.Is(err, ErrBadCode) {
		t.Fatalf("the enrolment's code again: %v", err)
	}
	now := code(t, secret, c.Now(), 0)
	if err := signIn(now); err != nil {
		t.Fatalf("current code: %v", err)
	}
	if err := signIn(now); !errors.Is(err, ErrBadCode) {
		t.Fatalf("replayed code: %v", err)
	}
	// One step ahead (a phone clock 30 s fast) is accepted; two are not.
	if err := signIn(code(t, secret, c.Now(), 2)); !errors.Is(err, ErrBadCode) {
		t.Fatalf("code two steps ahead: %v", err)
	}
	if err := signIn(code(t, secret, c.Now(), 1)); err != nil {
		t.Fatalf("code one step ahead: %v", err)
	}
	// Two minutes later, a code one step behind (a slow phone) is accepted; two behind is not.
	c.Add(2 * time.Minute)
	if err := signIn(code(t, secret, c.Now(), -2)); !errors.Is(err, ErrBadCode) {
		t.Fatalf("code two steps behind: %v", err)
	}
	if err := signIn(code(t, secret, c.Now(), -1)); err != nil {
		t.Fatalf("code one step behind: %v", err)
	}
	// After a later step was used, an earlier one (still in the window) is refused.
	if err := signIn(code(t, secret, c.Now(), 1)); err != nil {
		t.Fatalf("next step: %v", err)
	}
	if err := signIn(code(t, secret, c.Now(), 0)); !errors.Is(err, ErrBadCode) {
		t.Fatalf("a step older than the last used one: %v", err)
	}
}

func TestRecoveryCodesAreSingleUse(t *testing.T) {
	s, c := vaultStore(t)
	u := MustCreateUser(t, s, "cyd", "cyds password!!!", RoleFinance)
	_, codes := enrol(t, s, c, u)
	use := func(code string) error {
		t.Helper()
		out, err := s.LoginStart(web, "cyd", "cyds password!!!", "ua")
		if err != nil {
			t.Fatal(err)
		}
		_, _, _, err = s.LoginSecondFactor(web, out.Challenge, code)
		return err
	}
	// Typed in upper case with spaces: still the same code.
	if err := use(strings.ToUpper(strings.ReplaceAll(codes[0], "-", " "))); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	if err := use(codes[0]); !errors.Is(err, ErrBadCode) {
		t.Fatalf("recovery code used twice: %v", err)
	}
	st, _ := s.TwoFactorState(u.ID)
	if st.RecoveryLeft != RecoveryCodeCount-1 {
		t.Fatalf("%d left", st.RecoveryLeft)
	}
	used := auditActions(t, s, ActTwoFactorRecovery)
	if len(used) != 1 || !strings.Contains(used[0].Detail, "9 left") {
		t.Fatalf("recovery use audit %+v", used)
	}
	// Regenerating replaces them all.
	fresh, err := s.RegenerateRecoveryCodes(web, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := use(codes[1]); !errors.Is(err, ErrBadCode) {
		t.Fatalf("an old code after regeneration: %v", err)
	}
	if err := use(fresh[9]); err != nil {
		t.Fatalf("a new code: %v", err)
	}
	if n := len(auditActions(t, s, ActTwoFactorRegenerate)); n != 1 {
		t.Fatalf("%d regenerate audit records", n)
	}
}

func TestLockoutCountsBothSignInSteps(t *testing.T) {
	s, c := vaultStore(t)
	u := MustCreateUser(t, s, "dee", "dees password!!", RoleOperator)
	secret, _ := enrol(t, s, c, u)
	fails := 0
	for fails < LockThreshold {
		// A wrong password...
		if _, err := s.LoginStart(web, "dee", "wrong password!", "ua"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
		fails++
		if fails == LockThreshold {
			break
		}
		// ...then the right password and a wrong code: the right password
		// does not clear the count, the wrong code adds to it.
		out, err := s.LoginStart(web, "dee", "dees password!!", "ua")
		if err != nil {
			t.Fatalf("after %d failures the password step failed: %v", fails, err)
		}
		if _, _, _, err := s.LoginSecondFactor(web, out.Challenge, "000000"); !errors.Is(err, ErrBadCode) {
			t.Fatalf("wrong code: %v", err)
		}
		fails++
	}
	if n := len(auditActions(t, s, ActUserLocked)); n != 1 {
		t.Fatalf("%d lock records after %d mixed failures, want 1", n, fails)
	}
	if _, err := s.LoginStart(web, "dee", "dees password!!", "ua"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("locked account passed the password step: %v", err)
	}
	// A challenge opened before the lock does not get through it either.
	c.Add(LockDuration + time.Minute)
	out, err := s.LoginStart(web, "dee", "dees password!!", "ua")
	if err != nil {
		t.Fatal(err)
	}
	// (locked meanwhile, as by ten failures from elsewhere)
	s.DB.Model(&User{}).Where("id = ?", u.ID).Update("locked_until", c.Now().Add(LockDuration))
	if _, _, _, err := s.LoginSecondFactor(web, out.Challenge, code(t, secret, c.Now(), 0)); !errors.Is(err, ErrChallengeExpired) {
		t.Fatalf("second step on a locked account: %v", err)
	}
}

func TestLoginChallengeLimits(t *testing.T) {
	s, c := vaultStore(t)
	u := MustCreateUser(t, s, "eli", "elis password!!", RoleOperator)
	secret, _ := enrol(t, s, c, u)
	out, _ := s.LoginStart(web, "eli", "elis password!!", "ua")
	for i := 0; i < LoginChallengeAttempts; i++ {
		if _, _, _, err := s.LoginSecondFactor(web, out.Challenge, "123456"); !errors.Is(err, ErrBadCode) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, _, _, err := s.LoginSecondFactor(web, out.Challenge, code(t, secret, c.Now(), 0)); !errors.Is(err, ErrChallengeExpired) {
		t.Fatalf("right code after %d wrong ones: %v", LoginChallengeAttempts, err)
	}
	out, _ = s.LoginStart(web, "eli", "elis password!!", "ua")
	c.Add(LoginChallengeTTL)
	if _, _, _, err := s.LoginSecondFactor(web, out.Challenge, code(t, secret, c.Now(), 0)); !errors.Is(err, ErrChallengeExpired) {
		t.Fatalf("late second step: %v", err)
	}
	out, _ = s.LoginStart(web, "eli", "elis password!!", "ua")
	if _, _, _, err := s.LoginSecondFactor(web, out.Challenge, code(t, secret, c.Now(), 0)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.LoginSecondFactor(web, out.Challenge, code(t, secret, c.Now(), 1)); !errors.Is(err, ErrChallengeExpired) {
		t.Fatalf("a spent challenge was accepted again: %v", err)
	}
}

func TestStepUpFreshForTenMinutes(t *testing.T) {
	s, c := vaultStore(t)
	u := MustCreateUser(t, s, "fox", "foxs password!!", RoleAdmin)
	plain := MustCreateUser(t, s, "gus", "guss password!!", RoleOperator)
	secret, codes := enrol(t, s, c, u)
	out, _ := s.LoginStart(web, "fox", "foxs password!!", "ua")
	_, _, sess, err := s.LoginSecondFactor(web, out.Challenge, code(t, secret, c.Now(), 0))
	if err != nil {
		t.Fatal(err)
	}
	if s.StepUpFresh(sess) {
		t.Fatal("a new session counts as stepped up")
	}
	if err := s.StepUp(web, sess, "foxs password!!", ""); !errors.Is(err, ErrStepUpFailed) {
		t.Fatalf("step-up without a code: %v", err)
	}
	if err := s.StepUp(web, sess, "wrong password!", code(t, secret, c.Now(), 1)); !errors.Is(err, ErrStepUpFailed) {
		t.Fatalf("step-up with a wrong password: %v", err)
	}
	if err := s.StepUp(web, sess, "foxs password!!", code(t, secret, c.Now(), 0)); !errors.Is(err, ErrStepUpFailed) {
		t.Fatalf("step-up with the sign-in's code: %v", err)
	}
	if err := s.StepUp(web, sess, "foxs password!!", code(t, secret, c.Now(), 1)); err != nil {
		t.Fatalf("step-up: %v", err)
	}
	got, _, _ := s.LookupSession(out.Challenge) // not a session token
	if got != nil {
		t.Fatal("a challenge token works as a session")
	}
	var stored Session
	s.DB.First(&stored, sess.ID)
	if !s.StepUpFresh(&stored) {
		t.Fatal("not fresh right after the step-up")
	}
	c.Add(StepUpTTL - time.Second)
	if !s.StepUpFresh(&stored) {
		t.Fatal("not fresh just before 10 minutes")
	}
	c.Add(time.Second)
	if s.StepUpFresh(&stored) {
		t.Fatal("still fresh after 10 minutes")
	}
	// A recovery code works for the step-up too, once.
	if err := s.StepUp(web, sess, "foxs password!!", codes[3]); err != nil {
		t.Fatalf("step-up with a recovery code: %v", err)
	}
	if n := len(auditActions(t, s, ActStepUp)); n != 2 {
		t.Fatalf("%d step-up audit records", n)
	}
	if n := len(auditActions(t, s, ActStepUpFailure)); n != 3 {
		t.Fatalf("%d step-up failure records", n)
	}
	// Users without a second factor step up with their password.
	_, _, psess, err := s.Login(web, "gus", "guss password!!", "ua")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StepUp(web, psess, "guss password!!", ""); err != nil {
		t.Fatalf("password-only step-up: %v", err)
	}
	_ = plain
}

func TestTwoFactorDisableResetAndPolicy(t *testing.T) {
	s, c := vaultStore(t)
	admin := MustCreateUser(t, s, "hub", "hubs password!!", RoleAdmin)
	op := MustCreateUser(t, s, "ivy", "ivys password!!", RoleOperator)
	opSecret, _ := enrol(t, s, c, op)
	adminSecret, _ := enrol(t, s, c, admin)
	boss := Actor{UserID: admin.ID, Name: "hub"}

	// Policy: admins must enrol; others only when the setting says so.
	plain := MustCreateUser(t, s, "jon", "jons password!!!", RoleFinance)
	if must, _ := s.MustEnrol(plain); must {
		t.Fatal("finance must enrol by default")
	}
	fresh := MustCreateUser(t, s, "kit", "kits password!!", RoleAdmin)
	if must, _ := s.MustEnrol(fresh); !must {
		t.Fatal("an admin need not enrol")
	}
	if err := s.SetTwoFactorRequiredForAll(boss, true); err != nil {
		t.Fatal(err)
	}
	if must, _ := s.MustEnrol(plain); !must {
		t.Fatal("the setting does not require finance to enrol")
	}
	if on, _ := s.TwoFactorRequiredForAll(); !on {
		t.Fatal("setting not stored")
	}
	s.SetTwoFactorRequiredForAll(boss, true) // no change, no record
	if n := len(auditActions(t, s, ActTwoFactorPolicy)); n != 1 {
		t.Fatalf("%d policy audit records", n)
	}

	// Admin reset: a reason is required, not for oneself, sessions end.
	_, _, _, _ = s.Login(web, "ivy", "ivys password!!", "ua")
	out, _ := s.LoginStart(web, "ivy", "ivys password!!", "ua")
	_, token, _, err := s.LoginSecondFactor(web, out.Challenge, code(t, opSecret, c.Now(), 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ResetTwoFactor(boss, op.ID, "  "); err == nil {
		t.Fatal("reset without a reason")
	}
	if err := s.ResetTwoFactor(boss, admin.ID, "mine"); !errors.Is(err, ErrSelfChange) {
		t.Fatalf("own reset: %v", err)
	}
	if err := s.ResetTwoFactor(boss, op.ID, "lost phone, confirmed by call"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.LookupSession(token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the user's session survived the reset: %v", err)
	}
	got, _ := s.GetUser(op.ID)
	if got.TwoFactor {
		t.Fatal("still enrolled after the reset")
	}
	rs := auditActions(t, s, ActTwoFactorReset)
	if len(rs) != 1 || !strings.Contains(rs[0].Detail, "lost phone") {
		t.Fatalf("reset audit %+v", rs)
	}
	var left int64
	s.DB.Model(&UserTOTP{}).Where("user_id = ?", op.ID).Count(&left)
	if left != 0 {
		t.Fatal("the secret survived the reset")
	}

	// Disable takes a current code.
	if err := s.DisableTOTP(boss, admin.ID, "000000"); !errors.Is(err, ErrBadCode) {
		t.Fatalf("disable with a wrong code: %v", err)
	}
	if err := s.DisableTOTP(boss, admin.ID, code(t, adminSecret, c.Now(), 0)); err != nil {
		t.Fatal(err)
	}
	if n := len(auditActions(t, s, ActTwoFactorDisable)); n != 1 {
		t.Fatalf("%d disable audit records", n)
	}
	if must, _ := s.MustEnrol(admin); must {
		// admin is the old copy (TwoFactor true); reload
	}
	again, _ := s.GetUser(admin.ID)
	if must, _ := s.MustEnrol(again); !must {
		t.Fatal("an admin without a second factor need not enrol")
	}
}
