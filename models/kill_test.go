package models

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"payfuse/channels"
)

const killRows = 20000

// killStatement is a large synthetic statement; after its first few batches
// it prints "merging" so the parent knows rows are in the open transaction.
func killStatement(mch string, progress func()) StatementFile {
	return StatementFile{Name: "big.csv", Hash: strings.Repeat("k", 64), Bytes: killRows * 100,
		Parse: func(fn func(channels.Record) error) (channels.Totals, error) {
			at := time.Date(2026, 3, 6, 8, 0, 0, 0, bj)
			for i := 0; i < killRows; i++ {
				if err := fn(pay(fmt.Sprintf("K%07d", i), mch, 100, channels.StatusSucceeded, at)); err != nil {
					return channels.Totals{}, err
				}
				if i == 3*ingestBatch && progress != nil {
					progress()
				}
			}
			return channels.Totals{Payments: killRows}, nil
		}}
}

// TestKillDuringImport kills a process that is importing a large statement
// with SIGKILL; the ledger then holds none of the file, and running the
// import again takes it exactly once.
func TestKillDuringImport(t *testing.T) {
	if os.Getenv("PAYFUSE_KILL_CHILD") != "" {
		t.Skip("this process is the child of TestKillDuringImport")
	}
	s, acct, mch := ledgerFixture(t)
	dsn := TestDSN(t, s)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestKillChildImports$", "-test.v")
	cmd.Env = append(os.Environ(), "PAYFUSE_KILL_CHILD=1", "PAYFUSE_KILL_DSN="+dsn,
		"PAYFUSE_KILL_KEY="+hex.EncodeToString(s.Vault.master), fmt.Sprintf("PAYFUSE_KILL_ACCOUNT=%d", acct.ID), "PAYFUSE_KILL_MCH="+mch)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	merging := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "merging") {
			merging = true
			break
		}
	}
	if !merging {
		cmd.Wait()
		t.Fatal("the child never started merging")
	}
	cmd.Process.Kill() // SIGKILL: no deferred rollback, no cleanup
	cmd.Wait()

	var n int64
	s.DB.Model(&Transaction{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d transactions survived the killed import", n)
	}
	s.DB.Model(&Import{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d import records survived the killed import", n)
	}
	res, err := s.ImportStatement(web, acct.ID, killStatement(mch, nil))
	if err != nil || res.Inserted != killRows {
		t.Fatalf("re-run: %+v %v", res, err)
	}
	res, err = s.ImportStatement(web, acct.ID, killStatement(mch, nil))
	if err != nil || !res.AlreadyImported {
		t.Fatalf("second re-run: %+v %v", res, err)
	}
	s.DB.Model(&Transaction{}).Count(&n)
	if n != killRows {
		t.Fatalf("%d transactions, want exactly %d", n, killRows)
	}
}

// TestKillChildImports is the child side of TestKillDuringImport.
func TestKillChildImports(t *testing.T) {
	if os.Getenv("PAYFUSE_KILL_CHILD") == "" {
		t.Skip("run by TestKillDuringImport")
	}
	dsn, err := ParseDSN(os.Getenv("PAYFUSE_KILL_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(db, dsn.Dialect)
	key, _ := hex.DecodeString(os.Getenv("PAYFUSE_KILL_KEY"))
	s.Vault, _ = NewVault(key)
	var id uint64
	fmt.Sscan(os.Getenv("PAYFUSE_KILL_ACCOUNT"), &id)
	s.ImportStatement(web, id, killStatement(os.Getenv("PAYFUSE_KILL_MCH"), func() {
		fmt.Println("merging")
		time.Sleep(time.Minute) // hold the transaction open until killed
	}))
	t.Fatal("the child was not killed")
}
