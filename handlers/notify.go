package handlers

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/channels/alipay"
	"payfuse/channels/wechat"
	"payfuse/flows"
	"payfuse/models"
)

// MaxAlipayNotificationBody caps an Alipay notification's form body; Alipay's
// are a few KiB.
const MaxAlipayNotificationBody = 64 << 10

// nonceMargin keeps a WeChat Pay nonce a little longer than its timestamp is
// accepted, for clocks that step.
const nonceMargin = time.Minute

// noncePurgeEvery is how often, at most, taking a notification also purges
// the expired nonces (in the background).
const noncePurgeEvery = time.Minute

// lastNoncePurge is when the last purge started (Unix nanoseconds).
var lastNoncePurge atomic.Int64

// Reasons a notification is refused that the channels' verifiers do not name.
const (
	reasonUnknownChannel = "unknown_channel" // not a channel that sends notifications here
	reasonUnknownAccount = "unknown_account" // no enabled account at that channel with that id
	reasonTooLarge       = "too_large"       // the body is over the cap
	reasonReplayed       = "replayed_nonce"  // a WeChat Pay nonce the account took already
	reasonRecordRefused  = "record_refused"  // the ledger refused the record (another merchant id, …)
	reasonBadForm        = "bad_form"        // an Alipay body that is not a form
	reasonInternal       = "internal"        // our side failed: credentials unreadable, database error
)

// refusal is why a notification was not taken: the reason code (logged), the
// HTTP status, and a message for the channel that never quotes secrets or
// the payload.
type refusal struct {
	status  int
	reason  string
	message string
	err     error // the underlying error, logged for internal failures only
}

// Notify takes a payment channel's notification, POST /notify/:channel/:account.
// The signature is the authentication: no session, no CSRF. A notification
// that verifies is merged into the ledger as a notification source
// (transaction_sources), not written to the audit log; one that does not is
// refused, logged with its reason, and leaves nothing behind. WeChat Pay gets
// 204 or a JSON {"code":"FAIL","message":…}; Alipay gets the bare text
// "success" or "failure". 4xx means the request is at fault; 5xx means ours
// (credentials that cannot be used, a database error), so the channel's
// retries may succeed later.
func (h *Handlers) Notify(c *fiber.Ctx) error {
	channel := c.Params("channel")
	switch channel {
	case wechat.Code:
		return h.notifyWechat(c)
	case alipay.Code:
		return h.notifyAlipay(c)
	}
	r := refusal{status: fiber.StatusNotFound, reason: reasonUnknownChannel, message: "no notification endpoint for this channel"}
	h.logRefusal(c, channel, r)
	return wechatAnswer(c, r)
}

// notifyAccountID reads :account; anything but a positive id finds nothing.
func notifyAccountID(c *fiber.Ctx) uint64 {
	id, err := strconv.ParseUint(c.Params("account"), 10, 64)
	if err != nil {
		return 0
	}
	return id
}

func (h *Handlers) notifyWechat(c *fiber.Ctx) error {
	r, ok := h.takeWechat(c)
	if ok {
		return c.SendStatus(fiber.StatusNoContent)
	}
	h.logRefusal(c, wechat.Code, r)
	return wechatAnswer(c, r)
}

func (h *Handlers) takeWechat(c *fiber.Ctx) (refusal, bool) {
	body := c.Body()
	if c.Request().Header.ContentLength() > wechat.MaxNotificationBody || len(body) > wechat.MaxNotificationBody {
		return tooLarge(wechat.MaxNotificationBody), false
	}
	acct, creds, r, ok := h.notifyAccount(c, wechat.Code)
	if !ok {
		return r, false
	}
	hdr := make(http.Header, 5)
	for _, name := range []string{wechat.HeaderSerial, wechat.HeaderSignature, wechat.HeaderTimestamp, wechat.HeaderNonce, wechat.HeaderSignatureType} {
		if v := c.Get(name); v != "" {
			hdr.Set(name, v)
		}
	}
	now := h.Store.Now()
	n, err := wechat.VerifyNotification(hdr, body, creds, now)
	clear(creds)
	if err != nil {
		var ne *wechat.NotifyError
		if !errors.As(err, &ne) {
			return internal(err), false
		}
		status := fiber.StatusUnauthorized
		switch ne.Reason {
		case wechat.ReasonBadPayload:
			status = fiber.StatusBadRequest
		case wechat.ReasonBadCredentials, wechat.ReasonDecryptFailed:
			// Signed by WeChat Pay, yet our key cannot open it, or we have
			// no usable key: ours to fix; WeChat Pay retries later.
			status = fiber.StatusInternalServerError
		}
		return refusal{status: status, reason: ne.Reason, message: ne.Message.EN}, false
	}
	keepUntil := n.Timestamp.Add(wechat.NotificationWindow + nonceMargin)
	if err := h.Store.IngestNotification(acct.ID, n.Nonce, keepUntil, n.Record); err != nil {
		return ingestRefusal(err), false
	}
	h.purgeNonces(now)
	h.nudgeTriggers(acct.MerchantCode)
	return refusal{}, true
}

func (h *Handlers) notifyAlipay(c *fiber.Ctx) error {
	r, ok := h.takeAlipay(c)
	if ok {
		c.Type("txt")
		return c.Status(fiber.StatusOK).SendString("success")
	}
	h.logRefusal(c, alipay.Code, r)
	c.Type("txt")
	return c.Status(r.status).SendString("failure")
}

func (h *Handlers) takeAlipay(c *fiber.Ctx) (refusal, bool) {
	body := c.Body()
	if c.Request().Header.ContentLength() > MaxAlipayNotificationBody || len(body) > MaxAlipayNotificationBody {
		return tooLarge(MaxAlipayNotificationBody), false
	}
	acct, creds, r, ok := h.notifyAccount(c, alipay.Code)
	if !ok {
		return r, false
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || len(form) == 0 {
		clear(creds)
		return refusal{status: fiber.StatusBadRequest, reason: reasonBadForm, message: "the body is not a form"}, false
	}
	rec, err := alipay.VerifyNotification(form, creds)
	clear(creds)
	if err != nil {
		var ne *alipay.NotifyError
		if !errors.As(err, &ne) {
			return internal(err), false
		}
		status := fiber.StatusBadRequest
		switch ne.Reason {
		case alipay.ReasonBadSignature:
			status = fiber.StatusUnauthorized
		case alipay.ReasonBadCredentials:
			status = fiber.StatusInternalServerError
		}
		return refusal{status: status, reason: ne.Reason, message: ne.Message.EN}, false
	}
	// Alipay sends the same notification again until it reads "success";
	// the ledger takes a repeat as a duplicate, which changes nothing.
	if err := h.Store.IngestNotification(acct.ID, "", time.Time{}, rec); err != nil {
		return ingestRefusal(err), false
	}
	h.nudgeTriggers(acct.MerchantCode)
	return refusal{}, true
}

// nudgeEvery bounds how often notifications start a merchant's trigger
// evaluation: a burst of payments is one evaluation, not one each.
const nudgeEvery = 5 * time.Second

// triggerNudges remembers when each server last nudged each merchant.
var triggerNudges sync.Map // "handlers pointer|merchant" -> time.Time

// nudgeTriggers lets the merchant's trigger rules see a notification as it
// arrives: its enabled trigger_eval flows start now (in the background,
// after the answer), rather than at their next scheduled minute. A flow
// already running, or one nudged in the last few seconds, is left alone:
// that run or the next sees the notification too.
func (h *Handlers) nudgeTriggers(merchant string) {
	if h.Flows == nil {
		return
	}
	key := fmt.Sprintf("%p|%s", h, merchant)
	now := time.Now()
	if last, ok := triggerNudges.Load(key); ok && now.Sub(last.(time.Time)) < nudgeEvery {
		return
	}
	triggerNudges.Store(key, now)
	go func() {
		list, err := h.Store.ListFlows(models.Scope{All: true}, models.FlowFilter{MerchantCode: merchant, Kind: models.FlowTriggerEval})
		if err != nil {
			h.Log.Warn("trigger nudge: unable to list flows", "merchant", merchant, "err", err)
			return
		}
		for _, f := range list {
			if !f.Enabled {
				continue
			}
			if _, err := h.Flows.RunEvent(f.ID, "notification"); err != nil && !errors.Is(err, flows.ErrBusy) {
				h.Log.Info("trigger nudge: flow not started", "flow", f.Name, "err", err)
			}
		}
	}()
}

// notifyAccount finds the enabled account at channel named by :account, with
// its credentials.
func (h *Handlers) notifyAccount(c *fiber.Ctx, channel string) (*models.ChannelAccount, map[string][]byte, refusal, bool) {
	id := notifyAccountID(c)
	if id == 0 {
		return nil, nil, unknownAccount(), false
	}
	acct, creds, err := h.Store.NotificationAccount(channel, id)
	switch {
	case errors.Is(err, models.ErrNotFound):
		return nil, nil, unknownAccount(), false
	case err != nil:
		return nil, nil, internal(err), false
	}
	return acct, creds, refusal{}, true
}

func unknownAccount() refusal {
	return refusal{status: fiber.StatusNotFound, reason: reasonUnknownAccount, message: "no enabled account at this channel with this id"}
}

func tooLarge(limit int) refusal {
	return refusal{status: fiber.StatusRequestEntityTooLarge, reason: reasonTooLarge,
		message: "the body is larger than " + strconv.Itoa(limit) + " bytes"}
}

func internal(err error) refusal {
	status := fiber.StatusInternalServerError
	if models.IsUnavailable(err) || models.IsBusy(err) {
		status = fiber.StatusServiceUnavailable // the database is away or locked: nothing stored; the channel's retry will be taken
	}
	return refusal{status: status, reason: reasonInternal, message: "the notification could not be processed now; retry later", err: err}
}

// ingestRefusal maps a ledger error.
func ingestRefusal(err error) refusal {
	var re *models.RecordError
	switch {
	case errors.Is(err, models.ErrReplayedNonce):
		return refusal{status: fiber.StatusUnauthorized, reason: reasonReplayed, message: "this notification was received already (repeated nonce)"}
	case errors.Is(err, models.ErrNonceTooLong):
		return refusal{status: fiber.StatusBadRequest, reason: "bad_nonce", message: "the nonce is too long"}
	case errors.As(err, &re):
		return refusal{status: fiber.StatusBadRequest, reason: reasonRecordRefused, message: "the ledger refused the notification: " + re.Message.EN}
	case errors.Is(err, models.ErrNotFound):
		return unknownAccount()
	}
	return internal(err)
}

// wechatAnswer writes WeChat Pay's error answer.
func wechatAnswer(c *fiber.Ctx, r refusal) error {
	return c.Status(r.status).JSON(fiber.Map{"code": "FAIL", "message": r.message})
}

// logRefusal logs a refused notification: reason, account, sender and
// request id — never the payload, its signature or the credentials.
func (h *Handlers) logRefusal(c *fiber.Ctx, channel string, r refusal) {
	h.Store.Metrics.NotificationRefused(channel, r.reason)
	// With the database away the refusal cannot be counted there either;
	// trying would only delay the answer.
	if !models.IsUnavailable(r.err) {
		if err := h.Store.RecordNotifyRefusal(notifyAccountID(c), r.reason, h.Store.Now()); err != nil && h.Log != nil {
			h.Log.Warn("notification refusal not recorded", "err", err)
		}
	}
	if h.Log == nil {
		return
	}
	attrs := []any{
		"channel", channel, "account", c.Params("account"), "reason", r.reason, "status", r.status,
		"detail", r.message, "ip", ClientIP(c), "request_id", requestID(c),
	}
	level := slog.LevelWarn
	if r.status >= 500 {
		level = slog.LevelError
		if r.err != nil {
			attrs = append(attrs, "err", r.err.Error())
		}
	}
	h.Log.Log(c.Context(), level, "notification refused", attrs...)
}

// purgeNonces starts a background purge of expired nonces, at most once per
// noncePurgeEvery across the process.
func (h *Handlers) purgeNonces(now time.Time) {
	last := lastNoncePurge.Load()
	if now.UnixNano()-last < int64(noncePurgeEvery) || !lastNoncePurge.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	store, log := h.Store, h.Log
	go func() {
		n, err := store.PurgeNotifyNonces(now)
		switch {
		case err != nil && log != nil:
			log.Warn("notification nonce purge failed", "err", err)
		case n > 0 && log != nil:
			log.Info("expired notification nonces purged", "count", n)
		}
	}()
}
