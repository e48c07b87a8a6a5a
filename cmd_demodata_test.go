package main

import (
	"path/filepath"
	"strings"
	"testing"

	"payfuse/models"
)

func TestDemoDataCLI(t *testing.T) {
	db := testDB(t)
	keyFile := filepath.Join(t.TempDir(), "master.key")
	if _, err := models.CreateMasterKey(keyFile); err != nil {
		t.Fatal(err)
	}
	args := []string{"--db", db, "--master-key-file", keyFile, "demo-data", "--transactions", "400", "--days", "30", "--seed", "9"}
	code, out, errs := runCLI(t, "", args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "Demo merchants SHOP_BJ, SHOP_GZ, SHOP_SH") || !strings.Contains(out, "(seed 9): 400 payments") || !strings.Contains(out, "conflicts") || !strings.Contains(out, "new ledger rows; took") {
		t.Fatalf("output %q", out)
	}
	dsn, _ := models.ParseDSN(db)
	gdb, _ := models.Open(dsn)
	store := models.NewStore(gdb, dsn.Dialect)
	defer store.Close()
	count := func(where string) int64 {
		var n int64
		store.DB.Model(&models.Transaction{}).Where(where).Count(&n)
		return n
	}
	if got := count("kind = 'payment'"); got != 400 {
		t.Errorf("%d payments in the ledger", got)
	}
	var merchants []string
	store.DB.Model(&models.Transaction{}).Distinct("merchant_code").Order("merchant_code").Pluck("merchant_code", &merchants)
	if strings.Join(merchants, ",") != "SHOP_BJ,SHOP_GZ,SHOP_SH" || count("conflict = true") == 0 || count("kind = 'refund'") == 0 {
		t.Errorf("merchants %v, %d conflicts, %d refunds", merchants, count("conflict = true"), count("kind = 'refund'"))
	}
	imports, _ := store.ListImports(models.Scope{All: true}, 0, 200)
	if len(imports) == 0 || imports[0].CreatedBy != "cli" || !strings.HasSuffix(imports[0].FileName, ".demo") {
		t.Errorf("imports %+v", imports)
	}
	// The same command again adds nothing; another seed adds more.
	code, out, errs = runCLI(t, "", args...)
	if code != 0 || !strings.Contains(out, "all already imported: nothing added") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("re-run: exit %d, %q %s", code, out, errs)
	}
	if got := count("kind = 'payment'"); got != 400 {
		t.Errorf("re-run left %d payments", got)
	}
	code, out, errs = runCLI(t, "", "--db", db, "--master-key-file", keyFile, "demo-data", "--transactions", "50", "--days", "30", "--seed", "10", "--merchant", "shop_gz")
	if code != 0 || !strings.Contains(out, "demo data for SHOP_GZ") {
		t.Fatalf("another seed: exit %d, %q %s", code, out, errs)
	}
	if got := count("kind = 'payment'"); got != 450 {
		t.Errorf("after another seed %d payments, want 450", got)
	}
}

func TestDemoDataCLIRefusals(t *testing.T) {
	db := testDB(t)
	keyFile := filepath.Join(t.TempDir(), "master.key")
	if _, err := models.CreateMasterKey(keyFile); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--transactions", "0"}, "--transactions must be between 1 and 20000000, not 0"},
		{[]string{"--transactions", "20000001"}, "--transactions must be between 1 and 20000000"},
		{[]string{"--transactions", "many"}, "invalid value"},
		{[]string{"--days", "0"}, "--days must be between 1 and 366"},
		{[]string{"--merchant", "NO_SUCH"}, `no merchant "NO_SUCH"`},
		{[]string{"extra"}, "unexpected argument"},
	} {
		code, _, errs := runCLI(t, "", append([]string{"--db", db, "--master-key-file", keyFile, "demo-data"}, c.args...)...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", c.args, code, errs, c.want)
		}
	}
}
