package models

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// memoryLimitMB is the promise: a 1,000,000-row statement imports
// in under 200 MB of resident memory.
const memoryLimitMB = 200

// TestImportMemory imports a large WeChat Pay bill from a file in a child
// process and checks the child's peak resident set size (the kernel's
// ru_maxrss: everything, Go heap, SQLite's page cache and all). It takes
// minutes, so it runs on request:
//
//	PAYFUSE_MEMORY_ROWS=1000000 go test ./models -run TestImportMemory -v -timeout 1h
//
// (add PAYFUSE_TEST_MYSQL=… for MariaDB).
func TestImportMemory(t *testing.T) {
	if os.Getenv("PAYFUSE_MEMORY_CHILD") != "" {
		t.Skip("this process is the child of TestImportMemory")
	}
	rows, _ := strconv.Atoi(os.Getenv("PAYFUSE_MEMORY_ROWS"))
	if rows <= 0 {
		t.Skip("large import (minutes): set PAYFUSE_MEMORY_ROWS=1000000 to run it")
	}
	s, acct, mch := ledgerFixture(t)
	path := filepath.Join(t.TempDir(), "bill.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	writeWechatBill(w, mch, rows)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestImportMemoryChild$", "-test.v")
	cmd.Env = append(os.Environ(), "PAYFUSE_MEMORY_CHILD=1", "PAYFUSE_MEMORY_DSN="+TestDSN(t, s),
		"PAYFUSE_MEMORY_KEY="+hex.EncodeToString(s.Vault.master), fmt.Sprintf("PAYFUSE_MEMORY_ACCOUNT=%d", acct.ID),
		"PAYFUSE_MEMORY_FILE="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss / 1024 // KiB on Linux
	var n int64
	s.DB.Model(&Transaction{}).Count(&n)
	if n != int64(rows) {
		t.Fatalf("%d transactions after importing %d rows", n, rows)
	}
	t.Logf("%d rows imported with a peak RSS of %d MiB", rows, rss)
	if rss >= memoryLimitMB {
		t.Errorf("peak RSS %d MiB, want under %d MB", rss, memoryLimitMB)
	}
}

// TestImportMemoryChild is the child side of TestImportMemory.
func TestImportMemoryChild(t *testing.T) {
	if os.Getenv("PAYFUSE_MEMORY_CHILD") == "" {
		t.Skip("run by TestImportMemory")
	}
	dsn, err := ParseDSN(os.Getenv("PAYFUSE_MEMORY_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(db, dsn.Dialect)
	key, _ := hex.DecodeString(os.Getenv("PAYFUSE_MEMORY_KEY"))
	s.Vault, _ = NewVault(key)
	id, _ := strconv.ParseUint(os.Getenv("PAYFUSE_MEMORY_ACCOUNT"), 10, 64)
	acct, err := s.GetAccount(Scope{All: true}, id)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(os.Getenv("PAYFUSE_MEMORY_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	sf, err := s.OpenStatement(acct, "big.csv", f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.ImportStatement(web, id, sf)
	if err != nil || res.Refused {
		t.Fatalf("%+v %v", res, err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM") || strings.HasPrefix(line, "VmRSS") {
			fmt.Println(line)
		}
	}
	fmt.Printf("go heap: sys %d MiB, heap sys %d MiB, heap in use %d MiB, total alloc %d MiB\n",
		ms.Sys>>20, ms.HeapSys>>20, ms.HeapInuse>>20, ms.TotalAlloc>>20)
	if p := os.Getenv("PAYFUSE_MEMORY_HEAPPROFILE"); p != "" {
		hf, _ := os.Create(p)
		pprof.WriteHeapProfile(hf)
		hf.Close()
	}
}
