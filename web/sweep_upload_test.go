package web_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"payfuse/channels/generic"
	"payfuse/models"
	"payfuse/web"
)

// uploadWorld is a server with SHOP_SH holding a WeChat Pay account (the
// merchant id of channels/wechat/testdata), an Alipay account (the PID of
// channels/alipay/testdata) and a UnionPay account whose column mapping
// declares its files UTF-8; and opsh, its operator, signed in (English).
type uploadWorld struct {
	srv        *web.Server
	store      *models.Store
	op         *client
	wx, ap, up *models.ChannelAccount
}

func newUploadWorld(t *testing.T) *uploadWorld {
	t.Helper()
	srv, store := newServer(t)
	setup := models.Actor{Name: "setup"}
	m, err := store.CreateMerchant(setup, models.MerchantInput{Code: "SHOP_SH", Name: "Shanghai"})
	if err != nil {
		t.Fatal(err)
	}
	w := &uploadWorld{srv: srv, store: store}
	account := func(ch string, set map[string]string) *models.ChannelAccount {
		vals := map[string][]byte{}
		for k, v := range sweepCredentials()[ch] {
			vals[k] = v
		}
		for k, v := range set {
			vals[k] = []byte(v)
		}
		a, _, err := store.SaveAccount(setup, 0, models.AccountInput{MerchantID: m.ID, Channel: ch, DisplayName: "SH " + ch,
			Methods: []string{"scan"}, Enabled: true, Values: vals})
		if err != nil {
			t.Fatalf("%s account: %v", ch, err)
		}
		return a
	}
	w.wx = account("wechat", map[string]string{"mch_id": testBillMchID})
	w.ap = account("alipay", map[string]string{"pid": "2088123456789012"})
	w.up = account("unionpay", nil)
	if err := store.SaveMapping(setup, w.up.ID, generic.Mapping{
		Columns: map[string][]string{
			generic.FieldChannelRef: {"查询流水号"}, generic.FieldOrderNo: {"商户订单号"}, generic.FieldAmount: {"交易金额"},
			generic.FieldStatus: {"应答码"}, generic.FieldTime: {"交易时间"},
		},
		Statuses: map[string]string{"00": "succeeded"},
		Encoding: generic.EncodingUTF8,
	}); err != nil {
		t.Fatal(err)
	}
	models.MustCreateUser(t, store, "opsh", sweepOpPass, models.RoleOperator, "SHOP_SH")
	w.op = newClient(t, srv)
	w.op.header.Set("Accept-Language", "en")
	w.op.signIn("opsh", sweepOpPass) // no step-up: uploads need none
	return w
}

var (
	refusalRE = regexp.MustCompile(`(?s)id="refusal".*?<p class="mt-1">([^<]{10,})</p>`)
	failedRE  = regexp.MustCompile(`(?s)data-phase="failed".*?role="alert".*?<p class="mt-1">([^<]+)</p>`)
)

// refused uploads a file and checks it is refused whole, with a reason the
// page gives (containing want), and that the ledger did not change and no
// import was taken.
func (w *uploadWorld) refused(t *testing.T, acct *models.ChannelAccount, name string, data []byte, want string) {
	t.Helper()
	var before, taken int64
	w.store.DB.Model(&models.Transaction{}).Count(&before)
	r := w.op.follow(w.op.upload(acct.ID, name, data))
	reason := ""
	if m := refusalRE.FindStringSubmatch(r.Body); m != nil {
		reason = strings.TrimSpace(m[1])
	} else if m := failedRE.FindStringSubmatch(r.Body); m != nil {
		reason = strings.TrimSpace(m[1]) // failed before an import was recorded
	}
	switch {
	case r.StatusCode >= 500:
		t.Errorf("%s: status %d", name, r.StatusCode)
	case reason == "":
		t.Errorf("%s: no refusal with a reason on the page (%d): %s", name, r.StatusCode, clip(r.Body))
	case !strings.Contains(reason, want):
		t.Errorf("%s: refused because %q, want a reason containing %q", name, reason, want)
	}
	var after int64
	w.store.DB.Model(&models.Transaction{}).Count(&after)
	w.store.DB.Model(&models.Import{}).Where("file_name = ? AND status = ?", name, models.ImportTaken).Count(&taken)
	if after != before || taken != 0 {
		t.Errorf("%s: the ledger went from %d to %d rows, %d imports taken", name, before, after, taken)
	}
}

// TestSweepUploadsRefusedCleanly sends the statement upload what an
// attacker or a confused user would: files of the wrong type, compression
// bombs, zip entries whose names climb out of any folder, and text in an
// encoding other than the one declared. Each is refused whole, with a reason
// on the result page, before it costs the server its memory or disk;
// nothing is imported and nothing is written beside the upload's own
// temporary file, which is gone afterwards.
func TestSweepUploadsRefusedCleanly(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the upload is saved while it is imported
	w := newUploadWorld(t)
	bill := readTestBill(t, "all.csv")
	detail, err := os.ReadFile("../channels/alipay/testdata/trade_detail.csv")
	if err != nil {
		t.Fatal(err)
	}
	gbkDetail, err := simplifiedchinese.GBK.NewEncoder().Bytes(detail)
	if err != nil {
		t.Fatal(err)
	}
	const detailName = "20881234567890120156_20260301_业务明细.csv"
	marker := "sweep-" + randomHex(6)

	t.Run("wrong type", func(t *testing.T) {
		png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{0}, 64)...)
		w.refused(t, w.wx, "statement.csv", png, "")
		w.refused(t, w.ap, "bill.zip", []byte("%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n"), "not a readable zip")
		xlsx := zipOfEntries(t, map[string][]byte{"[Content_Types].xml": []byte("<Types/>"), "xl/workbook.xml": []byte("<workbook/>")})
		w.refused(t, w.ap, "bill.xlsx", xlsx, "no detail file")
		w.refused(t, w.wx, "bill.zip", xlsx, "")
		w.refused(t, w.up, "export.csv", []byte("\x7fELF\x02\x01\x01\x00"+strings.Repeat("\x00", 48)), "")
	})

	t.Run("compression bombs", func(t *testing.T) {
		zeros := zeroDeflateStream(1024) // 1 GiB of zeros in about 1 MiB
		honest := zipRaw(t, detailName, zeros, 1<<30)
		w.refused(t, w.ap, "honest-bomb.zip", honest, "times its compressed size")
		lying := zipRaw(t, detailName, zeros, 100<<10)
		w.refused(t, w.ap, "lying-bomb.zip", lying, "")
		// A gzip of the same zeros as a WeChat Pay bill: one endless line.
		gz := append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, zeros...)
		w.refused(t, w.wx, "bill.csv.gz", gz, "longer than")
	})

	t.Run("path traversal entry names", func(t *testing.T) {
		evil := map[string][]byte{
			"../../" + marker + "/" + detailName: gbkDetail,
			"/tmp/" + marker + "/" + detailName:  gbkDetail,
			`..\..\` + marker + `\` + detailName: gbkDetail,
			"../../../../" + marker + ".txt":     []byte("owned"),
		}
		w.refused(t, w.ap, "traversal.zip", zipOfEntries(t, evil), "no detail file")
	})

	t.Run("invalid encodings", func(t *testing.T) {
		// GBK text behind a UTF-8 byte-order mark: declared UTF-8, is not.
		bomGBK := zipOfEntries(t, map[string][]byte{detailName: append([]byte("\xef\xbb\xbf"), gbkDetail...)})
		w.refused(t, w.ap, "bom-gbk.zip", bomGBK, "")
		// A WeChat Pay bill (UTF-8 by definition) with bytes that are not UTF-8.
		// (The order number is a ledger column; the goods name goes to the raw record.)
		broken := bytes.Replace(bill, []byte("PF20260228000001"), []byte("PF\xff\xfe0228000001"), 1)
		broken = bytes.Replace(broken, []byte("年卡"), []byte("\xff\xfe\xc3("), 1)
		w.refused(t, w.wx, "broken-utf8.csv", broken, "UTF-8")
		// A GBK file for the account whose mapping says UTF-8.
		gbkCSV, _ := simplifiedchinese.GBK.NewEncoder().String("查询流水号,商户订单号,交易金额,应答码,交易时间\nU001,PF001,1.00,00,2026-03-01 10:00:00\n")
		w.refused(t, w.up, "gbk-as-utf8.csv", []byte(gbkCSV), "not valid UTF-8")
		// UTF-16, which none of the formats is.
		w.refused(t, w.up, "utf16.csv", append([]byte{0xff, 0xfe}, []byte("查\x00询\x00")...), "")
	})

	t.Run("mapping samples", func(t *testing.T) {
		// The column mapping's preview reads a sample the same way: what it
		// cannot read is said on the page (a text that is merely odd — one
		// endless line, bytes that happen to be ASCII — is previewed as
		// what it is), never a server error.
		for _, c := range []struct {
			name   string
			sample []byte
			said   bool
		}{
			{"gbk-as-utf8", gbkDetail, true},
			{"zip", zipOfEntries(t, map[string][]byte{"a.csv": detail}), true},
			{"gzip bomb", append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, zeroDeflateStream(64)...), true},
			{"utf16", append([]byte{0xff, 0xfe}, []byte("查\x00询\x00")...), true},
			{"binary", append([]byte("\x7fELF\x02\x01"), bytes.Repeat([]byte{0}, 4096)...), false},
			{"long line", append([]byte("查询流水号,"), bytes.Repeat([]byte("x"), 300<<10)...), false},
		} {
			r := w.op.postMultipart("/channels/"+id(w.up.ID)+"/mapping/preview", map[string]string{"encoding": generic.EncodingUTF8}, map[string][]byte{"sample_file": c.sample})
			if r.StatusCode >= 500 || c.said && !strings.Contains(r.Body, `role="alert"`) {
				t.Errorf("preview of a %s sample: %d, no message on the page", c.name, r.StatusCode)
			}
		}
	})

	// Nothing was written outside: no file under any name the entries gave,
	// and the uploads' temporary files are gone.
	for _, dir := range []string{tmp, ".", os.TempDir(), "/tmp"} {
		for _, rel := range []string{"../../" + marker, "../../../../" + marker + ".txt", marker, "tmp/" + marker} {
			if _, err := os.Stat(filepath.Join(dir, rel)); err == nil {
				t.Errorf("a file named by a zip entry was written: %s", filepath.Join(dir, rel))
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, _ := os.ReadDir(tmp)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("uploads left behind in the temporary folder: %v", left)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSweepOversizedBodiesRefusedBeforeReading sends request heads that
// announce bodies over the limits to a real listener: an upload of 300 MiB
// by a signed-in user (the upload limit is 256 MiB and a little), 5 MiB to
// the upload without a session and to an ordinary form (the general limit
// is 4 MiB). Each is answered at once, without the body being sent, with
// the 413 page that says so.
func TestSweepOversizedBodiesRefusedBeforeReading(t *testing.T) {
	w := newUploadWorld(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go w.srv.App.Listener(ln)
	t.Cleanup(func() { w.srv.App.ShutdownWithTimeout(5 * time.Second) })
	cookie := ""
	for k, v := range w.op.cookies {
		cookie += k + "=" + v + "; "
	}
	head := func(path, contentType string, length int64, cookie string) (int, string) {
		return rawHead(t, ln.Addr().String(), path, length, "Content-Type", contentType, "Cookie", cookie)
	}
	multi := "multipart/form-data; boundary=sweep"
	for _, c := range []struct {
		name        string
		path, ctype string
		length      int64
		cookie      string
	}{
		{"300 MiB upload, signed in", "/imports", multi, 300 << 20, cookie},
		{"5 MiB upload, no session", "/imports", multi, 5 << 20, ""},
		{"5 MiB form, signed in", "/merchants", "application/x-www-form-urlencoded", 5 << 20, cookie},
	} {
		got, body := head(c.path, c.ctype, c.length, c.cookie)
		if got != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: %d, want 413", c.name, got)
		}
		if !strings.Contains(body, "提交的内容超过了此页面允许的大小") && !strings.Contains(body, "larger than this page accepts") {
			t.Errorf("%s: the answer does not say the body is too large: %s", c.name, clip(body))
		}
	}
}

// rawHead sends only the head of a POST announcing a body of length bytes
// (with the headers given as name, value pairs) and reads the answer the
// server gives before any of the body arrives.
func rawHead(t *testing.T, addr, path string, length int64, hdr ...string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", path, addr, length)
	for i := 0; i+1 < len(hdr); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", hdr[i], hdr[i+1])
	}
	b.WriteString("\r\n")
	conn.Write([]byte(b.String()))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("POST %s of %d bytes: no answer before the body: %v", path, length, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, string(body)
}

// zipOfEntries builds a zip of the named entries (names kept as given).
func zipOfEntries(t *testing.T, entries map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range entries {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zipRaw stores an already deflated entry, declaring the inflated size
// given (the truth or a lie); the CRC is not computed, as the parser must
// refuse the entry before it reaches the end.
func zipRaw(t *testing.T, name string, deflated []byte, declared uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	fw, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate,
		CompressedSize64: uint64(len(deflated)), UncompressedSize64: declared})
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(deflated)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zeroDeflateStream is a raw deflate stream of mib MiB of zeros, made
// without compressing them all: after a sync flush, the stream of one more
// MiB of zeros is the same bytes each time, so it is repeated.
func zeroDeflateStream(mib int) []byte {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	zeros := make([]byte, 1<<20)
	fw.Write(zeros)
	fw.Flush()
	out := bytes.Clone(buf.Bytes())
	buf.Reset()
	fw.Write(zeros)
	fw.Flush()
	block := bytes.Clone(buf.Bytes())
	for range mib - 1 {
		out = append(out, block...)
	}
	return out // no final block: a reader runs out of input, if it ever gets there
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
