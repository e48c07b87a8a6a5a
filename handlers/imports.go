package handlers

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/gofiber/fiber/v2"
	"github.com/gorilla/securecookie"
	"github.com/valyala/fasthttp"

	"payfuse/channels"
	"payfuse/models"
	"payfuse/views"
)

// MaxUploadBytes caps a statement file uploaded in the browser. A month of a
// busy merchant's WeChat Pay bill (a million rows) is about 250 MB uncompressed;
// larger files go through the CLI or a gzip.
const MaxUploadBytes = 256 << 20

// maxUploadBody is the largest upload request: the file, the form's other
// fields and the multipart framing.
const maxUploadBody = MaxUploadBytes + 1<<20

// UploadRequestConfig raises the body limit (and the time to receive it) for
// statement uploads only; every other request keeps the server's small
// limit. Install it as the fasthttp server's HeaderReceived hook. It applies
// only to a POST /imports with a multipart body of declared length (fasthttp
// then spools file parts over 16 MiB to disk instead of memory) that carries
// the sealed cookie of a signed-in session (checked without the database;
// the route's guard still checks the session, role and CSRF token before the
// handler sees the file). Anyone else gets the small limit: 413.
func (h *Handlers) UploadRequestConfig(hdr *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if !bytes.Equal(hdr.Method(), []byte(fiber.MethodPost)) || !bytes.Equal(hdr.RequestURI(), []byte("/imports")) ||
		hdr.ContentLength() <= 0 || !bytes.HasPrefix(hdr.ContentType(), []byte(fiber.MIMEMultipartForm)) {
		return fasthttp.RequestConfig{}
	}
	raw := hdr.Cookie(h.Sessions.name)
	var p cookiePayload
	if len(raw) == 0 || securecookie.DecodeMulti(h.Sessions.name, string(raw), &p, h.Sessions.codecs...) != nil || p.Token == "" {
		return fasthttp.RequestConfig{}
	}
	return fasthttp.RequestConfig{MaxRequestBodySize: maxUploadBody, ReadTimeout: 30 * time.Minute}
}

// importWait is how long an upload waits for its import before answering
// with the progress page; small files go straight to their result.
const importWait = 1500 * time.Millisecond

// maxJobsPerUser bounds the imports one user may have queued or running.
const maxJobsPerUser = 3

// Import job phases.
const (
	phaseQueued    = "queued"
	phaseReading   = "reading"
	phaseImporting = "importing"
	phaseDone      = "done"
	phaseFailed    = "failed"
)

// importJob is one upload being imported in the background. It lives in
// memory only: after a restart the import either committed (and is in the
// history) or rolled back.
type importJob struct {
	id, fileName, merchantCode, channel, accountName string
	userID, accountID                                uint64
	size                                             int64
	started                                          time.Time
	read, rows                                       atomic.Int64
	done                                             chan struct{}

	mu      sync.Mutex
	phase   string
	res     models.ImportResult
	failMsg channels.Text // why it failed, when it did
	ended   time.Time
}

func (j *importJob) setPhase(p string) {
	j.mu.Lock()
	j.phase = p
	j.mu.Unlock()
}

// importJobs holds the jobs of this process, by id.
var importJobs = struct {
	sync.Mutex
	m map[string]*importJob
}{m: map[string]*importJob{}}

// importSlots lets one import run at a time on SQLite (one writer at a
// time; a second long write transaction would only time out waiting) and
// two on MySQL (imports of one account queue on its row lock anyway).
var (
	importSlotsOnce sync.Once
	importSlotsCh   chan struct{}
)

func (h *Handlers) importSlots() chan struct{} {
	importSlotsOnce.Do(func() {
		n := 2
		if h.Store.Dialect == models.SQLite {
			n = 1
		}
		importSlotsCh = make(chan struct{}, n)
	})
	return importSlotsCh
}

// countingReaderAt counts the bytes the parser has read, for the progress bar.
type countingReaderAt struct {
	r io.ReaderAt
	n *atomic.Int64
}

func (c countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// ImportList shows the upload form, this user's imports in progress and the
// history of imports in scope. With ?job= it shows that upload's progress
// (and, asked by htmx, only the progress panel).
func (h *Handlers) ImportList(c *fiber.Ctx) error {
	if job := c.Query("job"); job != "" {
		return h.importProgress(c, job)
	}
	acct, _ := strconv.ParseUint(c.Query("account"), 10, 64)
	return h.importsPage(c, fiber.StatusOK, views.ImportForm{AccountID: acct}, nil)
}

func (h *Handlers) importsPage(c *fiber.Ctx, status int, form views.ImportForm, progress *views.ImportProgress) error {
	sc := scope(c)
	accounts, err := h.Store.ListAccounts(sc, models.AccountFilter{})
	if err != nil {
		return err
	}
	list, err := h.Store.ListImports(sc, 0, 50)
	if err != nil {
		return err
	}
	d := views.ImportsPage{Accounts: accounts, Imports: list, Form: form, Progress: progress, MaxBytes: MaxUploadBytes,
		AccountNames: map[uint64]string{}}
	for _, a := range accounts {
		d.AccountNames[a.ID] = a.DisplayName
	}
	for _, j := range userJobs(IdentityOf(c).User.ID, sc) {
		if progress == nil || j.id != progress.ID {
			d.Running = append(d.Running, jobView(j, IdentityOf(c).Lang))
		}
	}
	return h.Render(c, status, views.ImportsListPage(d))
}

// ImportUpload takes a statement file for a channel account in scope, saves
// it to a temporary file and imports it in the background; it answers with
// the result when the import is quick, else with the progress page.
func (h *Handlers) ImportUpload(c *fiber.Ctx) error {
	form := views.ImportForm{Errors: models.FieldErrors{}}
	form.AccountID = parseID(c.FormValue("account"))
	if form.AccountID == 0 {
		form.Errors["account"] = "imports.err_account"
		return h.importsPage(c, fiber.StatusUnprocessableEntity, form, nil)
	}
	acct, err := h.Store.GetAccount(scope(c), form.AccountID)
	if err != nil {
		return storeErr(err)
	}
	fh, err := c.FormFile("file")
	switch {
	case err != nil:
		form.Errors["file"] = "imports.err_file"
	case fh.Size > MaxUploadBytes:
		form.Errors["file"] = "imports.err_too_large"
	case fh.Size == 0:
		form.Errors["file"] = "imports.err_empty"
	}
	user := IdentityOf(c).User
	if len(form.Errors) == 0 && runningJobs(user.ID) >= maxJobsPerUser {
		form.Errors["file"] = "imports.err_busy"
	}
	if len(form.Errors) > 0 {
		return h.importsPage(c, fiber.StatusUnprocessableEntity, form, nil)
	}
	tmp, err := os.CreateTemp("", "payfuse-import-*.upload")
	if err != nil {
		return fmt.Errorf("imports: unable to create a temporary file: %w", err)
	}
	path := tmp.Name()
	tmp.Close()
	if err := c.SaveFile(fh, path); err != nil {
		os.Remove(path)
		return fmt.Errorf("imports: unable to save the upload: %w", err)
	}
	job := &importJob{id: newJobID(), fileName: uploadName(fh.Filename), merchantCode: acct.MerchantCode, channel: acct.Channel,
		accountName: acct.DisplayName, userID: user.ID, accountID: acct.ID, size: fh.Size, started: time.Now(),
		done: make(chan struct{}), phase: phaseQueued}
	addJob(job)
	// Not tied to the request: the import goes on when the browser leaves.
	go h.runImport(job, actor(c), acct, path)
	select {
	case <-job.done:
		return sendTo(c, h.jobFinished(c, job))
	case <-time.After(importWait):
		return sendTo(c, "/imports?job="+job.id)
	}
}

// runImport hashes, parses and merges the saved upload, then removes it.
func (h *Handlers) runImport(job *importJob, a models.Actor, acct *models.ChannelAccount, path string) {
	defer close(job.done)
	defer os.Remove(path)
	fail := func(err error) {
		msg := channels.Text{EN: views.Translate(views.LangEN, "imports.failed"), ZH: views.Translate(views.LangZH, "imports.failed")}
		var be *channels.BillError
		if errors.As(err, &be) {
			msg = channels.Text{EN: be.Error(), ZH: be.Message.ZH}
			if be.Line > 0 {
				msg.ZH = fmt.Sprintf("第 %d 行：%s", be.Line, be.Message.ZH)
			}
		} else {
			h.Log.Error("statement import failed", "job", job.id, "account", job.accountID, "file", job.fileName, "err", err.Error(), "request_id", a.RequestID)
		}
		job.mu.Lock()
		job.phase, job.failMsg, job.ended = phaseFailed, msg, time.Now()
		job.mu.Unlock()
	}
	defer func() {
		if r := recover(); r != nil {
			fail(fmt.Errorf("panic: %v", r))
		}
	}()
	slots := h.importSlots()
	slots <- struct{}{}
	defer func() { <-slots }()

	f, err := os.Open(path)
	if err != nil {
		fail(err)
		return
	}
	defer f.Close()
	job.setPhase(phaseReading)
	r := countingReaderAt{r: f, n: &job.read}
	sf, err := h.Store.OpenStatement(acct, job.fileName, r, job.size)
	if err != nil {
		fail(err)
		return
	}
	job.read.Store(0)
	sf.Progress = func(rows int) { job.rows.Store(int64(rows)) }
	job.setPhase(phaseImporting)
	res, err := h.Store.ImportStatement(a, acct.ID, sf)
	if err != nil {
		fail(err)
		return
	}
	job.mu.Lock()
	job.phase, job.res, job.ended = phaseDone, res, time.Now()
	job.mu.Unlock()
}

// jobFinished sets the flash for a finished job and says where to go: its
// import's page, or (when it failed before an import was recorded) its
// progress page, which shows why.
func (h *Handlers) jobFinished(c *fiber.Ctx, job *importJob) string {
	job.mu.Lock()
	phase, res := job.phase, job.res
	job.mu.Unlock()
	if phase != phaseDone {
		return "/imports?job=" + job.id
	}
	switch {
	case res.AlreadyImported:
		h.flash(c, "info", "imports.already")
	case res.Refused:
		h.flash(c, "error", "imports.refused_flash")
	default:
		h.flash(c, "success", "imports.taken_flash")
	}
	return fmt.Sprintf("/imports/%d", res.ImportID)
}

// sendTo answers with a redirect: 303 for the browser, or for a script
// (htmx, or the upload form's progress script) an HX-Redirect header, so the
// script does not follow the redirect itself and use up the flash.
func sendTo(c *fiber.Ctx, to string) error {
	if c.Get("HX-Request") == "true" {
		c.Set("HX-Redirect", to)
		return c.SendStatus(fiber.StatusNoContent)
	}
	return redirect(c, to)
}

// importProgress shows one of the user's own uploads; anyone else's is not found.
func (h *Handlers) importProgress(c *fiber.Ctx, id string) error {
	job := getJob(id)
	user := IdentityOf(c).User
	if job == nil || job.userID != user.ID || !scope(c).Allows(job.merchantCode) {
		return fiber.ErrNotFound
	}
	htmx := c.Get("HX-Request") == "true"
	select {
	case <-job.done:
		if to := h.jobFinished(c, job); !strings.HasPrefix(to, "/imports?") {
			return sendTo(c, to)
		}
		// Failed: the panel (or page) below says why, and polling stops.
	default:
	}
	if htmx {
		return h.renderProgress(c, job)
	}
	p := jobView(job, IdentityOf(c).Lang)
	return h.importsPage(c, fiber.StatusOK, views.ImportForm{AccountID: job.accountID}, &p)
}

// renderProgress draws only the progress panel (for htmx polls), with a frame
// that leaves the flash for the page that follows.
func (h *Handlers) renderProgress(c *fiber.Ctx, job *importJob) error {
	id := IdentityOf(c)
	f := &views.Frame{Lang: id.Lang, CSRF: id.CSRF, User: id.User, Path: c.Path(), RequestID: requestID(c)}
	return h.RenderFrame(c, fiber.StatusOK, f, views.ImportProgressPanel(jobView(job, id.Lang)))
}

// ImportShow shows one import's result: counts, or why the file was refused.
func (h *Handlers) ImportShow(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	im, err := h.Store.ImportByID(scope(c), id)
	if err != nil {
		return storeErr(err)
	}
	d := views.ImportResultData{Import: im}
	if acct, err := h.Store.GetAccount(scope(c), im.AccountID); err == nil {
		d.AccountName = acct.DisplayName
	} else if !errors.Is(err, models.ErrNotFound) {
		return err
	}
	return h.Render(c, fiber.StatusOK, views.ImportResultPage(d))
}

func jobView(j *importJob, lang string) views.ImportProgress {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := views.ImportProgress{ID: j.id, FileName: j.fileName, MerchantCode: j.merchantCode, Channel: j.channel, AccountName: j.accountName,
		Bytes: j.size, Phase: j.phase, Rows: j.rows.Load(), Started: j.started}
	if j.size > 0 {
		p.Percent = int(min(j.read.Load()*100/j.size, 100))
	}
	switch j.phase {
	case phaseImporting:
		p.Percent = min(p.Percent, 99)
	case phaseDone:
		p.Percent, p.ImportID = 100, j.res.ImportID
	case phaseFailed:
		p.Failure = j.failMsg.In(lang)
	}
	return p
}

func newJobID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// uploadName keeps the file's own name, without any path a browser sent
// or control characters.
func uploadName(name string) string {
	name = filepath.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, name)
	if name == "." || name == "/" || name == "" {
		return "upload"
	}
	return name
}

// jobRetention is how long a finished job's progress page stays available.
const jobRetention = time.Hour

func addJob(j *importJob) {
	importJobs.Lock()
	defer importJobs.Unlock()
	for id, old := range importJobs.m {
		old.mu.Lock()
		expired := !old.ended.IsZero() && time.Since(old.ended) > jobRetention
		old.mu.Unlock()
		if expired {
			delete(importJobs.m, id)
		}
	}
	importJobs.m[j.id] = j
}

func getJob(id string) *importJob {
	importJobs.Lock()
	defer importJobs.Unlock()
	return importJobs.m[id]
}

// userJobs lists a user's jobs still running (in scope), oldest first.
func userJobs(userID uint64, sc models.Scope) []*importJob {
	importJobs.Lock()
	defer importJobs.Unlock()
	var out []*importJob
	for _, j := range importJobs.m {
		select {
		case <-j.done:
			continue
		default:
		}
		if j.userID == userID && sc.Allows(j.merchantCode) {
			out = append(out, j)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].started.Before(out[b].started) })
	return out
}

// runningJobs counts a user's unfinished jobs whatever their scope.
func runningJobs(userID uint64) int {
	return len(userJobs(userID, models.Scope{All: true}))
}
