package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/channels"
)

// apiImport is a statement import's result.
type apiImport struct {
	ID              uint64    `json:"id"`
	AccountID       uint64    `json:"account_id"`
	Merchant        string    `json:"merchant"`
	Channel         string    `json:"channel"`
	FileName        string    `json:"file_name"`
	FileSHA256      string    `json:"file_sha256"`
	Bytes           int64     `json:"bytes"`
	Status          string    `json:"status"`
	AlreadyImported bool      `json:"already_imported"`
	Rows            int       `json:"rows"`
	Inserted        int       `json:"inserted"`
	Merged          int       `json:"merged"`
	Duplicates      int       `json:"duplicates"`
	CreatedBy       string    `json:"created_by"`
	CreatedAt       time.Time `json:"created_at"`
}

// APIImportCreate is POST /api/v1/imports: a statement file (multipart field
// "file") for a channel account (field account_id, or merchant and channel),
// imported through the console's path (the same parser, whole or not at all,
// audited with the token's name) before the answer: 201 with the counts; 200
// when the same file was imported before (nothing changed); a refused file
// is 422 statement_refused with the reason (and is in the import history).
func (h *Handlers) APIImportCreate(c *fiber.Ctx) error {
	if !strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEMultipartForm) {
		return apiErr(http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the statement as multipart/form-data with the file in the field \"file\".")
	}
	form, err := c.MultipartForm()
	if err != nil {
		return apiErr(http.StatusBadRequest, "bad_request", "The multipart body could not be read.")
	}
	for k := range form.Value {
		if k != "account_id" && k != "merchant" && k != "channel" {
			return bad(k, "Unknown field "+strconv.Quote(k)+".")
		}
	}
	var accountID uint64
	if raw := c.FormValue("account_id"); raw != "" {
		if accountID = parseID(raw); accountID == 0 {
			return bad("account_id", "Give account_id as a positive whole number.")
		}
	}
	sc := APIAuthOf(c).Scope
	acct, err := h.apiAccount(sc, accountID, strings.ToUpper(strings.TrimSpace(c.FormValue("merchant"))), c.FormValue("channel"))
	if err != nil {
		return err
	}
	files := form.File["file"]
	if len(files) != 1 {
		return bad("file", "Send one statement file in the field \"file\".")
	}
	fh := files[0]
	if fh.Size == 0 {
		return bad("file", apiMessage("imports.err_empty"))
	}
	f, err := fh.Open()
	if err != nil {
		return fmt.Errorf("api import: unable to open the upload: %w", err)
	}
	defer f.Close()
	a := apiActor(c)
	sf, err := h.Store.OpenStatement(acct, uploadName(fh.Filename), f, fh.Size)
	var be *channels.BillError
	if errors.As(err, &be) {
		return apiFieldErr(http.StatusUnprocessableEntity, "statement_refused", "file", be.Error())
	}
	if err != nil {
		return err
	}
	slots := h.importSlots() // the console's imports and these queue together
	slots <- struct{}{}
	res, err := h.Store.ImportStatement(a, acct.ID, sf)
	<-slots
	if err != nil {
		return err
	}
	if res.Refused {
		return apiFieldErr(http.StatusUnprocessableEntity, "statement_refused", "file", "The statement was refused (import "+strconv.FormatUint(res.ImportID, 10)+"): "+res.Reason.EN)
	}
	im, err := h.Store.ImportByID(sc, res.ImportID)
	if err != nil {
		return err
	}
	out := apiImport{ID: im.ID, AccountID: im.AccountID, Merchant: im.MerchantCode, Channel: im.Channel, FileName: im.FileName,
		FileSHA256: im.FileHash, Bytes: im.Bytes, Status: im.Status, AlreadyImported: res.AlreadyImported, Rows: im.Rows,
		Inserted: im.Inserted, Merged: im.Merged, Duplicates: im.Duplicates, CreatedBy: im.CreatedBy, CreatedAt: im.CreatedAt.UTC()}
	status := http.StatusCreated
	if res.AlreadyImported {
		status = http.StatusOK
	}
	return apiData(c, status, out)
}
