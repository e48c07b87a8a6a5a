package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"payfuse/channels/testkeys"
	"payfuse/models"
)

func id(n uint64) string { return strconv.FormatUint(n, 10) }

func TestMerchantAndChannelScopes(t *testing.T) {
	srv, store := newServer(t)
	admin := models.Actor{Name: "setup"}
	sh, _ := store.CreateMerchant(admin, models.MerchantInput{Code: "SHOP_SH", Name: "Shanghai"})
	bj, _ := store.CreateMerchant(admin, models.MerchantInput{Code: "SHOP_BJ", Name: "Beijing"})
	values := testkeys.Credentials("wechat", time.Now())
	acctSH, _, err := store.SaveAccount(admin, 0, models.AccountInput{MerchantID: sh.ID, Channel: "wechat", Methods: []string{"scan"}, Enabled: true, Values: values})
	if err != nil {
		t.Fatal(err)
	}
	acctBJ, _, err := store.SaveAccount(admin, 0, models.AccountInput{MerchantID: bj.ID, Channel: "alipay", Enabled: true, Values: testkeys.Credentials("alipay", time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	models.MustCreateUser(t, store, "opsh", "operator sh pass", models.RoleOperator, "SHOP_SH")
	models.MustCreateUser(t, store, "finsh", "finance sh pass", models.RoleFinance, "SHOP_SH")
	op := loggedIn(t, srv, "opsh", "operator sh pass")
	fin := loggedIn(t, srv, "finsh", "finance sh pass")

	// Own merchant and account: visible, without any secret field or fingerprint.
	page := op.get("/channels/" + id(acctSH.ID))
	if page.StatusCode != http.StatusOK {
		t.Fatalf("operator's own account: %d", page.StatusCode)
	}
	for _, leak := range []string{"SHA256:", "HMAC:", "apiv3_key", "BEGIN", string(values["apiv3_key"])} {
		if strings.Contains(page.Body, leak) {
			t.Errorf("operator's account page shows %q", leak)
		}
	}
	if !strings.Contains(page.Body, "/notify/wechat/"+id(acctSH.ID)) || !strings.Contains(page.Body, string(values["mch_id"])) {
		t.Error("operator's account page lacks the notify URL or the merchant id")
	}
	if r := op.get("/merchants"); !strings.Contains(r.Body, "SHOP_SH") || strings.Contains(r.Body, "SHOP_BJ") {
		t.Error("merchant list leaks or lacks merchants")
	}
	// Credentials: 403 for operators everywhere.
	for _, p := range []string{"/channels/" + id(acctSH.ID) + "/edit", "/channels/new?merchant=" + id(sh.ID) + "&channel=wechat"} {
		if r := op.get(p); r.StatusCode != http.StatusForbidden {
			t.Errorf("operator GET %s: %d, want 403", p, r.StatusCode)
		}
	}
	for _, p := range []string{"/channels/" + id(acctSH.ID), "/channels", "/channels/" + id(acctSH.ID) + "/delete"} {
		if r := op.post(p, url.Values{"apiv3_key": {"0123456789abcdef0123456789abcdef"}}); r.StatusCode != http.StatusForbidden {
			t.Errorf("operator POST %s: %d, want 403", p, r.StatusCode)
		}
	}
	// Other merchants: 404, as if they did not exist — also by guessing ids.
	for _, p := range []string{"/merchants/" + id(bj.ID), "/channels/" + id(acctBJ.ID), "/merchants/999999"} {
		if r := op.get(p); r.StatusCode != http.StatusNotFound {
			t.Errorf("operator GET %s: %d, want 404", p, r.StatusCode)
		}
	}
	if r := op.post("/channels/"+id(acctBJ.ID)+"/check", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("operator checks a foreign account: %d, want 404", r.StatusCode)
	}
	if r := fin.get("/merchants/" + id(bj.ID)); r.StatusCode != http.StatusNotFound {
		t.Errorf("finance reads a foreign merchant: %d", r.StatusCode)
	}
	if r := fin.get("/merchants/" + id(sh.ID)); r.StatusCode != http.StatusOK || strings.Contains(r.Body, `href="/channels/`) {
		t.Errorf("finance reads its merchant: %d (and must get no links into /channels, which it may not open)", r.StatusCode)
	}
	// The operator may re-run the check on their own account.
	if r := op.post("/channels/"+id(acctSH.ID)+"/check", nil); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "All checks passed") && !strings.Contains(r.Body, "全部检查通过") {
		t.Errorf("operator check: %d", r.StatusCode)
	}
}

func TestAdminConfiguresWeChatAccountByPastingKeys(t *testing.T) {
	srv, store := newServer(t)
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	c := loggedIn(t, srv, "boss", "bosses password")
	c.header.Set("Accept-Language", "en")

	r := c.post("/merchants", url.Values{"code": {"shop_gz"}, "name": {"广州天河店"}, "timezone": {"Asia/Shanghai"}, "currency": {"CNY"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("create merchant: %d", r.StatusCode)
	}
	mloc := r.Header.Get("Location")
	mid := strings.TrimPrefix(mloc, "/merchants/")
	if b := c.get(mloc).Body; !strings.Contains(b, "SHOP_GZ") || !strings.Contains(b, "/channels/new?merchant="+mid+"&amp;channel=wechat") {
		t.Fatal("merchant page lacks its code or the add-account link")
	}

	v := testkeys.Credentials("wechat", time.Now())
	fields := map[string]string{"merchant": mid, "channel": "wechat", "display_name": "WeChat GZ", "methods": "scan\x00quick", "fee_rate_bp": "60", "enabled": "1"}
	for k, val := range v {
		fields[k] = string(val)
	}
	// A bad APIv3 key: the form comes back with the problem next to the field and no secret echoed.
	bad := map[string]string{}
	for k, val := range fields {
		bad[k] = val
	}
	bad["apiv3_key"] = "short-key"
	r = c.postMultipart("/channels", bad, nil)
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "32") {
		t.Fatalf("bad APIv3 key: %d", r.StatusCode)
	}
	if strings.Contains(r.Body, "short-key") || strings.Contains(r.Body, "PRIVATE KEY-----") {
		t.Fatal("the refused form echoes secrets back")
	}
	r = c.postMultipart("/channels", fields, nil)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("create account: %d\n%s", r.StatusCode, r.Body[:min(len(r.Body), 2000)])
	}
	aloc := r.Header.Get("Location")
	page := c.get(aloc).Body
	fps := regexp.MustCompile(`(SHA256|HMAC):[0-9a-f:]{19}`).FindAllString(page, -1)
	if len(fps) < 3 {
		t.Fatalf("the account page shows %d fingerprints, want the secrets' fingerprints", len(fps))
	}
	for _, secret := range []string{string(v["apiv3_key"]), "PRIVATE KEY-----"} {
		if strings.Contains(page, secret) {
			t.Fatal("the account page shows a secret")
		}
	}
	if edit := c.get(aloc + "/edit").Body; strings.Contains(edit, string(v["apiv3_key"])) || strings.Contains(edit, "PRIVATE KEY-----") {
		t.Fatal("the edit form shows a secret")
	}
	// Rename with every secret left blank: the secrets stay and still verify.
	r = c.postMultipart(aloc, map[string]string{"display_name": "WeChat Guangzhou", "methods": "scan", "fee_rate_bp": "55", "enabled": "1",
		"app_id": string(v["app_id"]), "mch_id": string(v["mch_id"]), "merchant_serial_no": string(v["merchant_serial_no"]),
		"platform_public_key_id": string(v["platform_public_key_id"])}, nil)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("rename: %d", r.StatusCode)
	}
	page = c.get(aloc).Body
	if !strings.Contains(page, "WeChat Guangzhou") {
		t.Fatal("rename not shown")
	}
	if fps2 := regexp.MustCompile(`(SHA256|HMAC):[0-9a-f:]{19}`).FindAllString(page, -1); strings.Join(fps2, ",") != strings.Join(fps, ",") {
		t.Fatalf("fingerprints changed on a rename:\n%v\n%v", fps, fps2)
	}
	if r := c.post(aloc+"/check", nil); !strings.Contains(r.Body, "All checks passed") {
		t.Fatal("after the rename the credentials no longer pass the check")
	}
	audit := c.get("/audit?action=channel_account.update").Body
	if !strings.Contains(audit, "WeChat Guangzhou") || strings.Contains(audit, string(v["apiv3_key"])) {
		t.Fatal("the update is not audited, or the audit shows a secret")
	}
	if b := c.get("/").Body; strings.Contains(b, "Certificates expiring") {
		t.Fatal("fresh certificates flagged on the dashboard")
	}
}

// TestWrongMasterKeyStillServesPages: with another master key every page
// still renders; using the credentials fails with a clear message and
// nothing is overwritten.
func TestWrongMasterKeyStillServesPages(t *testing.T) {
	srv, store := newServer(t)
	m, _ := store.CreateMerchant(models.SystemActor, models.MerchantInput{Code: "SHOP_SH", Name: "Shanghai"})
	v := testkeys.Credentials("unionpay", time.Now())
	acct, _, err := store.SaveAccount(models.SystemActor, 0, models.AccountInput{MerchantID: m.ID, Channel: "unionpay", Enabled: true, Values: v})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := store.SecretStatuses(acct.ID)
	// The admin signs in (enrolling a second factor, sealed under the right
	// key) before the key goes wrong: with the wrong key the authenticator
	// secret cannot be opened, so only a recovery code would sign them in.
	models.MustCreateUser(t, store, "boss", "bosses password", models.RoleAdmin)
	c := loggedIn(t, srv, "boss", "bosses password")
	other := make([]byte, 32)
	other[0] = 1
	store.Vault, _ = models.NewVault(other)
	c.header.Set("Accept-Language", "en")
	for _, p := range []string{"/", "/merchants", "/merchants/" + id(m.ID), "/channels", "/channels/" + id(acct.ID), "/channels/" + id(acct.ID) + "/edit"} {
		if r := c.get(p); r.StatusCode != http.StatusOK {
			t.Errorf("GET %s with the wrong key: %d", p, r.StatusCode)
		}
	}
	if r := c.post("/channels/"+id(acct.ID)+"/check", nil); !strings.Contains(r.Body, "master key does not match") {
		t.Error("check with the wrong key does not say the master key does not match")
	}
	r := c.postMultipart("/channels/"+id(acct.ID), map[string]string{"display_name": "x", "enabled": "1", "mer_id": string(v["mer_id"]), "sign_cert_password": "new password"}, nil)
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "master key does not match") {
		t.Fatalf("save with the wrong key: %d %s", r.StatusCode, regexp.MustCompile(`(?s)role="alert".{0,400}`).FindString(r.Body))
	}
	after, _ := store.SecretStatuses(acct.ID)
	if len(before) != len(after) || before[0].Fingerprint != after[0].Fingerprint || !before[0].UpdatedAt.Equal(after[0].UpdatedAt) {
		t.Fatal("a save under the wrong key changed the stored credentials")
	}
}

// TestExpiringCertificatesFlaggedOnPages: an account whose certificate ends
// within 30 days shows on the dashboard and, flagged, on its merchant's page.
func TestExpiringCertificatesFlaggedOnPages(t *testing.T) {
	srv, store := newServer(t)
	m, _ := store.CreateMerchant(models.SystemActor, models.MerchantInput{Code: "SHOP_SH", Name: "Shanghai"})
	// Certificates issued 355 days ago run out in 10 days.
	values := testkeys.Credentials("alipay", time.Now().AddDate(0, 0, -355))
	acct, _, err := store.SaveAccount(models.SystemActor, 0, models.AccountInput{MerchantID: m.ID, Channel: "alipay", DisplayName: "Alipay SH", Enabled: true, Values: values})
	if err != nil {
		t.Fatal(err)
	}
	models.MustCreateUser(t, store, "opsh", "operator sh pass", models.RoleOperator, "SHOP_SH")
	models.MustCreateUser(t, store, "opbj", "operator bj pass", models.RoleOperator, "SHOP_BJ")
	c := loggedIn(t, srv, "opsh", "operator sh pass")
	c.header.Set("Accept-Language", "en")
	dash := c.get("/").Body
	if !strings.Contains(dash, "Certificates expiring") || !strings.Contains(dash, "Alipay SH") || !strings.Contains(dash, "/channels/"+id(acct.ID)) {
		t.Fatal("the dashboard does not flag the expiring certificate")
	}
	if page := c.get("/merchants/" + id(m.ID)).Body; !strings.Contains(page, "Certificate expiring") || !regexp.MustCompile(`In (9|10|11) days`).MatchString(page) {
		t.Fatal("the merchant page does not flag the expiring certificate")
	}
	// Someone outside the merchant's scope is not told about it.
	other := loggedIn(t, srv, "opbj", "operator bj pass")
	if strings.Contains(other.get("/").Body, "Alipay SH") {
		t.Fatal("another merchant's expiring certificate shows on the dashboard")
	}
}
