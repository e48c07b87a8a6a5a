package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"payfuse/channels/generic"
	"payfuse/channels/testkeys"
	"payfuse/models"
)

// TestImportUnionPayCLI imports a UnionPay CSV statement through the saved
// column mapping of the account: taken, then "already imported", and a
// statement of another UnionPay merchant refused with its merchant id.
func TestImportUnionPayCLI(t *testing.T) {
	db := testDB(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	models.CreateMasterKey(keyFile)
	g := []string{"--db", db, "--master-key-file", keyFile}
	if code, _, errs := runCLI(t, "", append(g, "merchant", "create", "--code", "SHOP_UP", "--name", "UnionPay shop")...); code != 0 {
		t.Fatalf("merchant: %s", errs)
	}
	values := testkeys.Credentials("unionpay", time.Now())
	merID := string(values["mer_id"])
	args := append(append([]string{}, g...), "channel", "configure", "--merchant", "SHOP_UP", "--channel", "unionpay",
		"--set", "mer_id="+merID)
	for _, f := range []string{"sign_cert_pfx", "sign_cert_password", "verify_cert"} {
		p := filepath.Join(dir, f)
		os.WriteFile(p, values[f], 0o600)
		args = append(args, "--file", f+"="+p)
	}
	if code, out, errs := runCLI(t, "", args...); code != 0 {
		t.Fatalf("configure: %s %s", out, errs)
	}

	file := filepath.Join(dir, "unionpay-20260301.csv")
	csv := "查询流水号,商户订单号,交易金额,应答码,交易时间,商户代码\r\n" +
		"`512603010915020000001,`ORD-1,100.00,00,2026-03-01 09:15:02," + merID + "\r\n" +
		"`512603011000000000002,`ORD-2,8.00,06,2026-03-01 10:00:00," + merID + "\r\n" +
		"合计,2,108.00,,,\r\n"
	os.WriteFile(file, []byte(csv), 0o600)
	importArgs := append(append([]string{}, g...), "import", "--merchant", "SHOP_UP", "--channel", "unionpay", "--json", file)

	// Without a saved mapping the import says where to set one.
	code, _, errs := runCLI(t, "", importArgs...)
	if code == 0 || !strings.Contains(errs, "/mapping") {
		t.Fatalf("import without a mapping: %d %q", code, errs)
	}

	dsn, err := models.ParseDSN(db)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := models.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	store := models.NewStore(conn, dsn.Dialect)
	acct, err := store.FindAccount(mustMerchantID(t, store, "SHOP_UP"), "unionpay", "")
	if err != nil {
		t.Fatal(err)
	}
	err = store.SaveMapping(models.CLIActor(), acct.ID, generic.Mapping{
		Columns: map[string][]string{
			generic.FieldChannelRef: {"查询流水号"}, generic.FieldOrderNo: {"商户订单号"}, generic.FieldAmount: {"交易金额"},
			generic.FieldStatus: {"应答码"}, generic.FieldTime: {"交易时间"}, generic.FieldAccountRef: {"商户代码"},
		},
		Statuses: map[string]string{"00": "succeeded", "06": "failed"},
		Footer:   &generic.Footer{Marker: "合计", CountColumn: "商户订单号", AmountColumn: "交易金额"},
	})
	store.Close()
	if err != nil {
		t.Fatal(err)
	}

	var res struct {
		Rows, Inserted  int
		Refused         bool
		AlreadyImported bool `json:"already_imported"`
		Reason          string
	}
	code, out, errs := runCLI(t, "", importArgs...)
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Rows != 2 || res.Inserted != 2 || res.Refused {
		t.Fatalf("import: %d %s %s", code, out, errs)
	}
	code, out, _ = runCLI(t, "", importArgs...)
	res = struct {
		Rows, Inserted  int
		Refused         bool
		AlreadyImported bool `json:"already_imported"`
		Reason          string
	}{}
	if json.Unmarshal([]byte(out), &res); code != 0 || !res.AlreadyImported || res.Inserted != 0 {
		t.Fatalf("re-import: %d %s", code, out)
	}
	other := filepath.Join(dir, "other.csv")
	os.WriteFile(other, []byte(strings.ReplaceAll(strings.ReplaceAll(csv, merID, "898000000000999"), "5126", "6126")), 0o600)
	code, _, errs = runCLI(t, "", append(append([]string{}, g...), "import", "--merchant", "SHOP_UP", "--channel", "unionpay", other)...)
	if code == 0 || !strings.Contains(errs, "898000000000999") {
		t.Fatalf("another merchant's statement: %d %q", code, errs)
	}
}

func mustMerchantID(t *testing.T, s *models.Store, code string) uint64 {
	t.Helper()
	m, err := s.GetMerchantByCode(models.Scope{All: true}, code)
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}
