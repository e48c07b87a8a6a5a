package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"payfuse/channels"
	"payfuse/models"
	"payfuse/views"
)

// LedgerShow shows one transaction: every field, the sources that saw it,
// its conflict, linked payment or refunds, raw payloads and the corrections.
func (h *Handlers) LedgerShow(c *fiber.Ctx) error {
	return h.ledgerShow(c, fiber.StatusOK, nil)
}

// LedgerCorrect records a finance user's correction of one field, with a
// reason; bad input shows the page again with the messages and changes nothing.
func (h *Handlers) LedgerCorrect(c *fiber.Ctx) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	in := models.CorrectionInput{Field: c.FormValue("field"), NewValue: c.FormValue("new_value"), Reason: c.FormValue("reason")}
	_, err = h.Store.CorrectTransaction(actor(c), scope(c), id, in)
	var fe models.FieldErrors
	switch {
	case err == nil:
		h.flash(c, "success", "correction.saved")
		return redirect(c, fmt.Sprintf("/ledger/%d", id))
	case errors.As(err, &fe):
		return h.ledgerShow(c, fiber.StatusUnprocessableEntity, &views.CorrectionForm{Field: in.Field, NewValue: in.NewValue, Reason: in.Reason, Errors: fe})
	default:
		return storeErr(err)
	}
}

func (h *Handlers) ledgerShow(c *fiber.Ctx, status int, form *views.CorrectionForm) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	sc := scope(c)
	t, err := h.Store.GetTransaction(sc, id)
	if err != nil {
		return storeErr(err)
	}
	d := views.LedgerDetail{Txn: t}
	if d.Merchant, err = h.Store.GetMerchant(sc, t.MerchantID); err != nil {
		return storeErr(err)
	}
	if acct, err := h.Store.GetAccount(sc, t.AccountID); err == nil {
		d.AccountName = acct.DisplayName
	} else if !errors.Is(err, models.ErrNotFound) {
		return err
	}
	srcs, err := h.Store.TransactionSources(t.ID)
	if err != nil {
		return err
	}
	for _, s := range srcs {
		d.Sources = append(d.Sources, views.DetailSource{TransactionSource: s, Pretty: prettyRaw(s.Raw)})
	}
	if d.Linked, err = h.Store.LinkedTransactions(sc, t); err != nil {
		return err
	}
	if d.Corrections, err = h.Store.TransactionCorrections(t.ID); err != nil {
		return err
	}
	role := IdentityOf(c).User.Role
	d.CanCorrect = role == models.RoleFinance || role == models.RoleAdmin
	if form == nil {
		form = &views.CorrectionForm{Field: models.CorrectAmount}
	}
	d.Form = *form
	return h.Render(c, status, views.LedgerDetailPage(d))
}

// payerFields are raw field names that carry a payer's identity at a
// channel; the page shows them masked like the record's own payer field.
var payerFields = map[string]bool{
	"用户标识": true, "payer.openid": true, "payer.sub_openid": true, "payer.sp_openid": true,
	"buyer_id": true, "buyer_logon_id": true, "buyer_open_id": true, "对方账户": true, "买家账号": true, "买家账户": true,
}

// prettyRaw indents a source's raw fields for the page. Raw never holds key
// material, but a field named like a secret is still replaced, and payer
// identities are masked as the record's payer is.
func prettyRaw(raw string) string {
	if strings.TrimSpace(raw) == "" || raw == "null" {
		return ""
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return raw
	}
	for k, v := range m {
		switch {
		case models.IsSecretField(k):
			m[k] = models.Redacted
		case payerFields[k]:
			if s, ok := v.(string); ok {
				m[k] = channels.MaskPayer(strings.TrimPrefix(s, "`"))
			}
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return raw
	}
	return string(b)
}
