package handlers

import (
	"bufio"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/models"
	"payfuse/views"
)

// ledgerFields are the query parameters the ledger's filter form sends.
var ledgerFields = []string{"merchant", "channel", "method", "kind", "status", "from", "to", "min", "max", "q"}

// queryValues copies the request's query into url.Values. The copies
// outlive the request (fiber reuses its buffers once a handler returns,
// and an export streams after that).
func queryValues(c *fiber.Ctx) url.Values {
	v := url.Values{}
	c.Request().URI().QueryArgs().VisitAll(func(k, val []byte) { v.Add(string(k), string(val)) })
	return v
}

// ownScope is the user's scope with its own copy of the merchant list.
func ownScope(c *fiber.Ctx) models.Scope {
	s := scope(c)
	s.Merchants = slices.Clone(s.Merchants)
	return s
}

// LedgerList shows the merged ledger, newest first, filtered by the query
// (so a view can be shared as a link), one keyset page at a time. An htmx
// request (HX-Request) gets only the table fragment; a bad filter gets its
// messages and no query.
func (h *Handlers) LedgerList(c *fiber.Ctx) error {
	sc := scope(c)
	vals := queryValues(c)
	f, errs := models.ParseLedgerFilter(vals)
	d := views.LedgerList{Raw: map[string]string{}, Filter: f, Errors: errs}
	for _, k := range ledgerFields {
		d.Raw[k] = vals.Get(k)
	}
	merchants, _, err := h.Store.ListMerchants(sc, models.MerchantFilter{Size: 500})
	if err != nil {
		return err
	}
	d.Merchants = merchants
	lang := IdentityOf(c).Lang
	for _, s := range channelOptions() {
		d.Channels = append(d.Channels, views.Option{Value: s.Code, Label: s.Name.In(lang)})
	}
	status := fiber.StatusOK
	if len(errs) > 0 {
		status = fiber.StatusUnprocessableEntity
	} else {
		after := models.ParseLedgerCursor(vals.Get("after"))
		rows, next, err := h.Store.ListTransactions(sc, f, after, models.LedgerPageSize)
		switch {
		case errors.Is(err, models.ErrReadTooLong):
			// Said on the page like a filter mistake: the user can act on it.
			d.TooLong, status = true, fiber.StatusUnprocessableEntity
		case err != nil:
			return err
		}
		n, more := len(rows), false
		switch {
		case d.TooLong:
		case !after.IsZero() || !next.IsZero():
			// More than this page: count (up to the cap), unless the database
			// cannot in its short limit — then "at least this page".
			n, more, err = h.Store.CountTransactions(sc, f, models.LedgerCountCap)
			if errors.Is(err, models.ErrReadTooLong) {
				n, more, err = len(rows), true, nil
			}
			if err != nil {
				return err
			}
		}
		d.Rows, d.Count, d.More = rows, n, more
		q := f.Values()
		if !after.IsZero() {
			d.First = "/ledger"
			if len(q) > 0 {
				d.First += "?" + q.Encode()
			}
		}
		if !next.IsZero() {
			q.Set("after", next.String())
			d.Next = "/ledger?" + q.Encode()
		}
	}
	c.Vary("HX-Request")
	if c.Get("HX-Request") == "true" && c.Get("HX-History-Restore-Request") != "true" {
		// htmx swaps a 4xx response only if told to; a filter mistake is content.
		return h.Render(c, fiber.StatusOK, views.LedgerTable(d))
	}
	return h.Render(c, status, views.LedgerListPage(d))
}

// LedgerExport streams every row the filters select (not just a page) as
// CSV (UTF-8 with BOM) or XLSX. It changes nothing, so it is logged, not
// audited: user, format, filter and row count at Info.
func (h *Handlers) LedgerExport(c *fiber.Ctx) error {
	vals := queryValues(c)
	f, errs := models.ParseLedgerFilter(vals)
	format := vals.Get("format")
	if format == "" {
		format = "csv"
	}
	if len(errs) > 0 || (format != "csv" && format != "xlsx") {
		return h.LedgerList(c)
	}
	sc := ownScope(c)
	user := ""
	if u := IdentityOf(c).User; u != nil {
		user = u.Username
	}
	store, log, rid := h.Store, h.Log, requestID(c)
	name := "ledger-" + time.Now().In(views.DisplayZone).Format("20060102-150405") + "." + format
	if format == "csv" {
		c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	} else {
		c.Set(fiber.HeaderContentType, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
	}
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	c.Set(fiber.HeaderCacheControl, "no-store")
	filter := f.Values().Encode()
	// The writer runs after this handler returns: it uses only the copies above.
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		start := time.Now()
		var n int
		var err error
		if format == "csv" {
			n, err = store.WriteLedgerCSV(w, sc, f)
		} else {
			n, err = store.WriteLedgerXLSX(w, sc, f)
		}
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
		attrs := []any{"user", user, "format", format, "filter", filter, "rows", n, "ms", time.Since(start).Milliseconds(), "request_id", rid}
		if log == nil {
			log = slog.Default()
		}
		if err != nil {
			log.Error("ledger export failed", append(attrs, "err", err)...)
			return
		}
		log.Info("ledger export", attrs...)
	})
	return nil
}
