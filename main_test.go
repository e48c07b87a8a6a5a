package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"payfuse/channels/testkeys"
	"payfuse/models"
)

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func testDB(t *testing.T) string {
	if dsn := os.Getenv(models.TestMySQLEnv); dsn != "" {
		// The CLI against MySQL gets a database of its own through OpenTest.
		s := models.OpenTest(t)
		var name string
		s.DB.Raw("SELECT DATABASE()").Scan(&name)
		d, _ := models.ParseDSN(dsn)
		return "mysql://" + d.MySQL.User + "@" + d.MySQL.Addr + "/" + name
	}
	return "sqlite:" + filepath.Join(t.TempDir(), "cli.db")
}

func TestUserCreateReadsPasswordFromStdin(t *testing.T) {
	db := testDB(t)
	code, out, errs := runCLI(t, "a fine long password\n", "--db", db, "user", "create", "--username", "Fin", "--role", "finance",
		"--merchant", "SHOP_SH", "--merchant", "shop_bj", "--password-stdin", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		ID        uint64   `json:"id"`
		Username  string   `json:"username"`
		Merchants []string `json:"merchants"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Username != "fin" || strings.Join(got.Merchants, ",") != "SHOP_BJ,SHOP_SH" {
		t.Fatalf("output %q (%v)", out, err)
	}
	// The password works: sign in through the store.
	dsn, _ := models.ParseDSN(db)
	gdb, _ := models.Open(dsn)
	store := models.NewStore(gdb, dsn.Dialect)
	defer store.Close()
	if _, _, _, err := store.Login(models.CLIActor(), "fin", "a fine long password", "test"); err != nil {
		t.Fatalf("the created user cannot sign in: %v", err)
	}
	rows, _ := store.ListAudit(models.AuditFilter{Action: models.ActUserCreate})
	if len(rows.Rows) != 1 || rows.Rows[0].Actor != "cli" {
		t.Fatalf("CLI creation audit: %+v", rows.Rows)
	}
}

func TestUserCreateRefusals(t *testing.T) {
	db := testDB(t)
	cases := []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"password as argument", "", []string{"user", "create", "--username", "x1y", "--role", "admin", "hunter2hunter2"}, "unexpected argument"},
		{"no --password-stdin", "pw pw pw pw pw\n", []string{"user", "create", "--username", "x1y", "--role", "admin"}, "--password-stdin is required"},
		{"empty stdin", "", []string{"user", "create", "--username", "x1y", "--role", "admin", "--password-stdin"}, "no password on standard input"},
		{"bad role", "long enough password\n", []string{"user", "create", "--username", "x1y", "--role", "boss", "--password-stdin"}, "role: Choose one of the roles"},
		{"short password", "short\n", []string{"user", "create", "--username", "x1y", "--role", "admin", "--password-stdin"}, "at least 12 characters"},
		{"bad merchant", "long enough password\n", []string{"user", "create", "--username", "x1y", "--role", "operator", "--merchant", "no good!", "--password-stdin"}, "Merchant codes"},
		{"unknown subcommand", "", []string{"user", "explode"}, "unknown subcommand"},
		{"bad db", "", []string{"--db", "postgres://x", "migrate"}, "expected sqlite:PATH or mysql://"},
	}
	for _, c := range cases {
		code, _, errs := runCLI(t, c.stdin, append([]string{"--db", db}, c.args...)...)
		if code == 0 || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("%s: exit %d, stderr %q; want one line with %q", c.name, code, errs, c.want)
		}
	}
	if code, out, _ := runCLI(t, "", "--db", db, "user", "list"); code != 0 || strings.Contains(out, "x1y") {
		t.Errorf("a refused command created a user: %s", out)
	}
}

func TestHelpAndUnknownCommand(t *testing.T) {
	if code, _, errs := runCLI(t, "", "--help"); code != 0 || !strings.Contains(errs, "user create") || !strings.Contains(errs, "-master-key-file") {
		t.Errorf("--help: %d %s", code, errs)
	}
	if code, _, errs := runCLI(t, "", "serve", "--help"); code != 0 || !strings.Contains(errs, "-addr") || !strings.Contains(errs, "-demo") {
		t.Errorf("serve --help: %d %s", code, errs)
	}
	if code, _, _ := runCLI(t, "", "frobnicate"); code != 2 {
		t.Errorf("unknown command exit %d, want 2", code)
	}
}

func TestMigrateAndServeBootstrap(t *testing.T) {
	db := testDB(t)
	code, out, errs := runCLI(t, "", "--db", db, "migrate")
	if code != 0 || !strings.Contains(out, "schema version") {
		t.Fatalf("migrate: %d %s %s", code, out, errs)
	}
	var keyArgs []string
	mysql := strings.HasPrefix(db, "mysql://")
	if mysql {
		if code, _, errs := runCLI(t, "", "--db", db, "serve", "--addr", "127.0.0.1:0"); code == 0 || !strings.Contains(errs, "master key is required") {
			t.Fatalf("serve on MySQL without a key: %d %s", code, errs)
		}
		keyFile := filepath.Join(t.TempDir(), "master.key")
		if _, err := models.CreateMasterKey(keyFile); err != nil {
			t.Fatal(err)
		}
		keyArgs = []string{"--master-key-file", keyFile}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out1, err1 bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, append([]string{"--db", db, "serve", "--addr", "127.0.0.1:0", "--demo"}, keyArgs...), strings.NewReader(""), &out1, &err1)
	}()
	time.Sleep(1500 * time.Millisecond)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d: %s", code, err1.String())
	}
	m := regexp.MustCompile(`username: admin\s+password: (\S+)`).FindStringSubmatch(out1.String())
	if m == nil || !strings.Contains(out1.String(), "demo-operator") || !strings.Contains(out1.String(), "demo-finance") {
		t.Fatalf("first start printed %q", out1.String())
	}
	if !mysql {
		keyPath := strings.TrimPrefix(db, "sqlite:") + ".key"
		st, err := os.Stat(keyPath)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("generated master key: %v %v", st, err)
		}
		if !strings.Contains(err1.String(), "generated a new master key") {
			t.Error("no warning about the generated key")
		}
	}
	if strings.Contains(err1.String(), m[1]) {
		t.Error("the admin password reached the log")
	}
	// Second start: no new admin, the key is reused.
	ctx2, cancel2 := context.WithCancel(context.Background())
	var out2, err2 bytes.Buffer
	go func() {
		done <- run(ctx2, append([]string{"--db", db, "serve", "--addr", "127.0.0.1:0"}, keyArgs...), strings.NewReader(""), &out2, &err2)
	}()
	time.Sleep(1 * time.Second)
	cancel2()
	<-done
	if strings.Contains(out2.String(), "password:") {
		t.Fatal("a second start printed a new admin password")
	}
	dsn, _ := models.ParseDSN(db)
	gdb, _ := models.Open(dsn)
	store := models.NewStore(gdb, dsn.Dialect)
	defer store.Close()
	u, err := store.GetUserByUsername("admin")
	if err != nil || !u.MustChangePassword || u.Role != models.RoleAdmin {
		t.Fatalf("bootstrap admin: %+v %v", u, err)
	}
	if _, _, _, err := store.Login(models.CLIActor(), "admin", m[1], "t"); err != nil {
		t.Fatalf("the printed password does not work: %v", err)
	}
}

func TestMerchantAndChannelCLI(t *testing.T) {
	db := testDB(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	if _, err := models.CreateMasterKey(keyFile); err != nil {
		t.Fatal(err)
	}
	g := []string{"--db", db, "--master-key-file", keyFile}
	code, out, errs := runCLI(t, "", append(g, "merchant", "create", "--code", "SHOP_CLI", "--name", "CLI 店", "--json")...)
	if code != 0 || !strings.Contains(out, `"code":"SHOP_CLI"`) || !strings.Contains(out, `"timezone":"Asia/Shanghai"`) {
		t.Fatalf("merchant create: %d %s %s", code, out, errs)
	}
	if code, _, errs := runCLI(t, "", append(g, "merchant", "create", "--code", "SHOP_CLI", "--name", "again")...); code == 0 || !strings.Contains(errs, "exists already") {
		t.Fatalf("duplicate merchant: %d %s", code, errs)
	}
	values := testkeys.Credentials("wechat", time.Now())
	args := wechatConfigureArgs(t, g, dir, "SHOP_CLI", values, "--name", "WeChat CLI", "--json")
	// A secret on the command line is refused before anything happens.
	refused := append(append([]string{}, args...), "--set", "apiv3_key="+string(values["apiv3_key"]))
	if code, _, errs := runCLI(t, "", refused...); code == 0 || !strings.Contains(errs, "secret") || strings.Contains(errs, string(values["apiv3_key"])) {
		t.Fatalf("secret via --set: %d %s", code, errs)
	}
	code, out, errs = runCLI(t, "", args...)
	if code != 0 {
		t.Fatalf("channel configure: %d %s", code, errs)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got["merchant"] != "SHOP_CLI" || got["channel"] != "wechat" || !strings.HasPrefix(got["notify_path"].(string), "/notify/wechat/") || got["id"] == nil || got["created"] != true {
		t.Fatalf("configure output: %s", out)
	}
	// Reconfigure (same account): change the fee only; secrets stay.
	code, out, errs = runCLI(t, "", append(g, "channel", "configure", "--merchant", "SHOP_CLI", "--channel", "wechat", "--set", "fee_rate_bp=38", "--json")...)
	if code != 0 || !strings.Contains(out, `"fee_rate_bp":38`) || strings.Contains(out, `"created"`) {
		t.Fatalf("reconfigure: %d %s %s", code, out, errs)
	}
	// Bad credentials: a one-line refusal, nothing changed.
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("short"), 0o600)
	if code, _, errs := runCLI(t, "", append(g, "channel", "configure", "--merchant", "SHOP_CLI", "--channel", "wechat", "--file", "apiv3_key="+short)...); code == 0 || !strings.Contains(errs, "apiv3_key") || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
		t.Fatalf("bad key: %d %q", code, errs)
	}
	code, out, _ = runCLI(t, "", append(g, "channel", "list", "--merchant", "SHOP_CLI", "--json")...)
	if code != 0 || !strings.Contains(out, `"fingerprint"`) || !strings.Contains(out, `"check_ok":true`) {
		t.Fatalf("channel list: %s", out)
	}
	for _, secret := range [][]byte{values["apiv3_key"], values["merchant_private_key"][40:80]} {
		if strings.Contains(out, string(secret)) {
			t.Fatal("channel list prints a secret")
		}
	}
	// Rotation: the new key works, the old one no longer does; a second run is a no-op.
	newKey := filepath.Join(dir, "new.key")
	models.CreateMasterKey(newKey)
	code, out, errs = runCLI(t, "", append(g, "keys", "rotate", "--new-master-key-file", newKey)...)
	if code != 0 || !strings.Contains(out, "re-wrapped 1 data key") {
		t.Fatalf("rotate: %d %s %s", code, out, errs)
	}
	if code, out, _ := runCLI(t, "", "--db", db, "--master-key-file", keyFile, "keys", "rotate", "--new-master-key-file", newKey); code != 0 || !strings.Contains(out, "(1 already were)") {
		t.Fatalf("re-run of rotate: %d %s", code, out)
	}
	g2 := []string{"--db", db, "--master-key-file", newKey}
	if code, _, errs := runCLI(t, "", append(g2, "channel", "configure", "--merchant", "SHOP_CLI", "--channel", "wechat", "--set", "fee_rate_bp=40")...); code != 0 {
		t.Fatalf("with the new key: %s", errs)
	}
	if code, _, errs := runCLI(t, "", append(g, "channel", "configure", "--merchant", "SHOP_CLI", "--channel", "wechat", "--set", "fee_rate_bp=41")...); code == 0 || !strings.Contains(errs, "master key does not match") {
		t.Fatalf("with the old key: %d %s", code, errs)
	}
}

func TestImportCLI(t *testing.T) {
	db := testDB(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	models.CreateMasterKey(keyFile)
	g := []string{"--db", db, "--master-key-file", keyFile}
	runCLI(t, "", append(g, "merchant", "create", "--code", "SHOP_IMP", "--name", "Import shop")...)
	values := testkeys.Credentials("wechat", time.Now())
	values["mch_id"] = []byte("1612345678") // the merchant id in channels/wechat/testdata
	if code, _, errs := runCLI(t, "", wechatConfigureArgs(t, g, dir, "SHOP_IMP", values)...); code != 0 {
		t.Fatalf("configure: %s", errs)
	}
	bill := "channels/wechat/testdata/all.csv"
	code, out, errs := runCLI(t, "", append(g, "import", "--merchant", "SHOP_IMP", "--channel", "wechat", "--json", bill)...)
	var res struct {
		Rows, Inserted, Merged, Duplicates int
		Refused                            bool
		AlreadyImported                    bool `json:"already_imported"`
		Reason                             string
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Rows == 0 || res.Inserted != res.Rows || res.Refused {
		t.Fatalf("import: %d %s %s", code, out, errs)
	}
	code, out, _ = runCLI(t, "", append(g, "import", "--merchant", "SHOP_IMP", "--channel", "wechat", "--json", bill)...)
	res.Inserted = -1
	json.Unmarshal([]byte(out), &res)
	if code != 0 || !res.AlreadyImported || res.Inserted != 0 {
		t.Fatalf("re-import: %d %s", code, out)
	}
	code, out, errs = runCLI(t, "", append(g, "import", "--merchant", "SHOP_IMP", "--channel", "wechat", "--json", "channels/wechat/testdata/summary_mismatch.csv")...)
	json.Unmarshal([]byte(out), &res)
	if code == 0 || !res.Refused || res.Reason == "" || strings.Count(strings.TrimSpace(errs), "\n") > 0 || !strings.Contains(errs, "refused") {
		t.Fatalf("mismatched summary: %d %s %q", code, out, errs)
	}
	// A bill for another merchant id is refused whole.
	other := filepath.Join(dir, "other.csv")
	b, _ := os.ReadFile(bill)
	os.WriteFile(other, []byte(strings.ReplaceAll(string(b), "1612345678", "1699999999")), 0o600)
	if code, _, errs := runCLI(t, "", append(g, "import", "--merchant", "SHOP_IMP", "--channel", "wechat", other)...); code == 0 || !strings.Contains(errs, "1699999999") {
		t.Fatalf("foreign bill: %d %s", code, errs)
	}
}

// wechatConfigureArgs is a `channel configure` of a WeChat account: ids with
// --set, secrets written to files in dir and given with --file.
func wechatConfigureArgs(t *testing.T, global []string, dir, merchant string, values map[string][]byte, extra ...string) []string {
	t.Helper()
	args := append(append([]string{}, global...), "channel", "configure", "--merchant", merchant, "--channel", "wechat")
	args = append(args, extra...)
	for _, f := range []string{"app_id", "mch_id", "merchant_serial_no", "platform_public_key_id"} {
		args = append(args, "--set", f+"="+string(values[f]))
	}
	for _, f := range []string{"apiv3_key", "merchant_private_key", "platform_public_key"} {
		p := filepath.Join(dir, f)
		if err := os.WriteFile(p, values[f], 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--file", f+"="+p)
	}
	return args
}
