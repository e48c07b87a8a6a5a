package handlers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"payfuse/models"
	"payfuse/views"
)

// The REST API under /api/v1. Its routes authenticate by bearer token
// (Authorization: Bearer pf_…), never by the console's session cookie: a
// token is not an ambient credential a browser sends by itself, so the API
// needs no CSRF token, and the session middleware does not run for it.
// Every answer is JSON; every error has one shape,
//
//	{"error": {"code": "…", "message": "…", "field": "…" | null}}
//
// with the HTTP status that fits, and never internal text (SQL, stack
// traces): 5xx errors are logged with the request id (the X-Request-ID
// response header) and answered with a generic message.

// APIPrefix is where the REST API lives.
const APIPrefix = "/api/v1"

// IsAPIPath reports whether path belongs to the REST API.
func IsAPIPath(path string) bool {
	p := strings.ToLower(path)
	return p == APIPrefix || strings.HasPrefix(p, APIPrefix+"/")
}

// APIError is an error the API answers with its status and the error shape.
type APIError struct {
	Status  int
	Code    string
	Message string
	Field   string // the input the error is about ("" for none)
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

func apiErr(status int, code, message string) *APIError {
	return &APIError{Status: status, Code: code, Message: message}
}

func apiFieldErr(status int, code, field, message string) *APIError {
	return &APIError{Status: status, Code: code, Field: field, Message: message}
}

// apiBody is the error shape.
type apiErrorBody struct {
	Error apiErrorDetail `json:"error"`
}

type apiErrorDetail struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Field   *string `json:"field"`
}

// apiStatusCodes names the error code of a bare HTTP status.
var apiStatusCodes = map[int]string{
	400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
	409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_failed",
	429: "rate_limited", 503: "busy",
}

// apiMessage translates a model's translation key for the API (English:
// the API speaks to programs and their authors).
func apiMessage(key string) string { return views.Translate(views.LangEN, key) }

// toAPIError turns any error into the API's answer.
func (h *Handlers) toAPIError(c *fiber.Ctx, err error) *APIError {
	var ae *APIError
	var fe models.FieldErrors
	var fbe *fiber.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &fe):
		fields := make([]string, 0, len(fe))
		for k := range fe {
			fields = append(fields, k)
		}
		sort.Strings(fields)
		return apiFieldErr(http.StatusUnprocessableEntity, "validation_failed", fields[0], apiMessage(fe[fields[0]]))
	case errors.Is(err, models.ErrNotFound):
		return apiErr(http.StatusNotFound, "not_found", "No such object (or not in the token's merchant scope).")
	case errors.Is(err, models.ErrReadTooLong):
		return apiErr(http.StatusUnprocessableEntity, "filter_too_broad", "The database stopped this query at its time limit: the filter matches too few rows of a large ledger to find them quickly. Add a date range (from/to) or a merchant, or narrow the amount range.")
	case models.IsBusy(err):
		c.Set(fiber.HeaderRetryAfter, "30")
		return apiErr(http.StatusServiceUnavailable, "busy", "The database is busy with a large write; nothing changed. Retry shortly.")
	case models.IsUnavailable(err):
		c.Set(fiber.HeaderRetryAfter, "5")
		return apiErr(http.StatusServiceUnavailable, "database_unavailable", "The database cannot be reached just now; nothing changed. Retry shortly.")
	case models.IsFull(err):
		return apiErr(http.StatusInsufficientStorage, "database_full", "The database has no room left; nothing changed. Tell the operators of this console.")
	case errors.As(err, &fbe) && fbe.Code < 500:
		code := apiStatusCodes[fbe.Code]
		if code == "" {
			code = "bad_request"
		}
		msg := http.StatusText(fbe.Code)
		if fbe.Code == http.StatusNotFound {
			msg = "No such endpoint or object. See " + APIPrefix + "/openapi.json."
		}
		return apiErr(fbe.Code, code, msg)
	}
	if h.Log != nil {
		h.Log.Error("api request failed", "err", err.Error(), "method", c.Method(), "path", c.Path(), "request_id", requestID(c))
	}
	return apiErr(http.StatusInternalServerError, "internal_error", "Something went wrong on our side; nothing is known to have changed. Quote the X-Request-ID header when you report it.")
}

// WriteAPIError answers with err in the API's error shape. The server's
// error handler calls it for every error under /api/v1 (unknown paths, panics).
func (h *Handlers) WriteAPIError(c *fiber.Ctx, err error) error {
	ae := h.toAPIError(c, err)
	body := apiErrorBody{Error: apiErrorDetail{Code: ae.Code, Message: ae.Message}}
	if ae.Field != "" {
		body.Error.Field = &ae.Field
	}
	if ae.Status == http.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="PayFuse API"`)
	}
	c.Response().ResetBody()
	return apiJSON(c, ae.Status, body)
}

// apiJSON writes v as the JSON response.
func apiJSON(c *fiber.Ctx, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, "application/json; charset=utf-8")
	return c.Send(b)
}

// apiData answers {"data": v}.
func apiData(c *fiber.Ctx, status int, v any) error {
	return apiJSON(c, status, map[string]any{"data": v})
}

const apiAuthKey = "payfuse.apiauth"

// APIAuthOf returns the token of an authenticated API request (nil elsewhere).
func APIAuthOf(c *fiber.Ctx) *models.APIAuth {
	a, _ := c.Locals(apiAuthKey).(*models.APIAuth)
	return a
}

// apiActor is who the audit log names for a write through the request's token.
func apiActor(c *fiber.Ctx) models.Actor {
	return APIAuthOf(c).Actor(ClientIP(c), requestID(c))
}

// DefaultAPIRate is how many requests a token may make per minute (bursts
// up to the same number).
const DefaultAPIRate = 600

// APIGuard authenticates an API request by its bearer token and checks, in
// order: the token (401 when missing, wrong, expired or revoked, or its maker
// disabled), the source address (403), the token's rate (429 with
// Retry-After) and the permission perm (403). Writes with an Idempotency-Key
// go through the idempotency check. Every error the route's handler returns
// is answered here in the error shape.
func (h *Handlers) APIGuard(perm string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		auth, err := h.apiAuthenticate(c, perm)
		if err != nil {
			return h.WriteAPIError(c, err)
		}
		c.Locals(apiAuthKey, auth)
		if c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead && c.Get("Idempotency-Key") != "" {
			return h.idempotent(c, auth)
		}
		if err := c.Next(); err != nil {
			return h.WriteAPIError(c, err)
		}
		return nil
	}
}

func (h *Handlers) apiAuthenticate(c *fiber.Ctx, perm string) (*models.APIAuth, error) {
	scheme, secret, _ := strings.Cut(strings.TrimSpace(c.Get(fiber.HeaderAuthorization)), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return nil, apiErr(http.StatusUnauthorized, "unauthorized", "Send an API token: Authorization: Bearer <token>.")
	}
	auth, err := h.Store.AuthenticateAPIToken(strings.TrimSpace(secret), ClientIP(c))
	switch {
	case errors.Is(err, models.ErrTokenExpired):
		return nil, apiErr(http.StatusUnauthorized, "token_expired", "The API token has expired.")
	case errors.Is(err, models.ErrTokenRevoked):
		return nil, apiErr(http.StatusUnauthorized, "token_revoked", "The API token was revoked.")
	case errors.Is(err, models.ErrTokenInvalid), errors.Is(err, models.ErrTokenMaker):
		return nil, apiErr(http.StatusUnauthorized, "invalid_token", "The API token is not valid.")
	case errors.Is(err, models.ErrTokenAddress):
		return nil, apiErr(http.StatusForbidden, "address_not_allowed", "The API token may not be used from this address ("+ClientIP(c)+").")
	case err != nil:
		return nil, err
	}
	if h.APILimiter != nil {
		if ok, wait := h.APILimiter.Allow(auth.Token.ID); !ok {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			return nil, apiErr(http.StatusTooManyRequests, "rate_limited", "Too many requests with this token; retry after the number of seconds in Retry-After.")
		}
	}
	if perm != "" && !auth.Has(perm) {
		return nil, apiErr(http.StatusForbidden, "insufficient_permission", "The API token lacks the "+perm+" permission.")
	}
	return auth, nil
}

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 255

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > maxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// idempotent runs a write once per token and Idempotency-Key: the first
// response (success or client error) is stored for 24 hours and replayed for
// the same key and request (with Idempotent-Replayed: true); the same key
// with another request is 422; a request while the first still runs is 409.
// Server errors, 409 and 429 are not stored: the client may retry them.
func (h *Handlers) idempotent(c *fiber.Ctx, auth *models.APIAuth) (err error) {
	key := c.Get("Idempotency-Key")
	if !validIdempotencyKey(key) {
		return h.WriteAPIError(c, apiFieldErr(http.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key",
			"The Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice)."))
	}
	hash, err := requestFingerprint(c)
	if err != nil {
		return h.WriteAPIError(c, err)
	}
	stored, err := h.Store.BeginIdempotent(auth.Token.ID, key, hash)
	switch {
	case errors.Is(err, models.ErrIdempotencyMismatch):
		return h.WriteAPIError(c, apiFieldErr(http.StatusUnprocessableEntity, "idempotency_key_reused", "Idempotency-Key",
			"This Idempotency-Key was used for a different request; use a new key for a new request."))
	case errors.Is(err, models.ErrIdempotencyInProgress):
		c.Set(fiber.HeaderRetryAfter, "1")
		return h.WriteAPIError(c, apiFieldErr(http.StatusConflict, "idempotency_in_progress", "Idempotency-Key",
			"A request with this Idempotency-Key is still in progress; retry shortly to get its response."))
	case err != nil:
		return h.WriteAPIError(c, err)
	case stored != nil:
		c.Set("Idempotent-Replayed", "true")
		if stored.Location != "" {
			c.Set(fiber.HeaderLocation, stored.Location)
		}
		c.Status(stored.Status)
		c.Set(fiber.HeaderContentType, "application/json; charset=utf-8")
		return c.SendString(stored.Body)
	}
	finished := false
	defer func() {
		if !finished { // a panic: let the key be used again
			if aerr := h.Store.AbandonIdempotent(auth.Token.ID, key); aerr != nil && h.Log != nil {
				h.Log.Error("idempotency key not released", "err", aerr.Error(), "request_id", requestID(c))
			}
		}
	}()
	if herr := c.Next(); herr != nil {
		h.WriteAPIError(c, herr)
	}
	finished = true
	status := c.Response().StatusCode()
	if status >= 500 || status == http.StatusConflict || status == http.StatusTooManyRequests {
		if aerr := h.Store.AbandonIdempotent(auth.Token.ID, key); aerr != nil && h.Log != nil {
			h.Log.Error("idempotency key not released", "err", aerr.Error(), "request_id", requestID(c))
		}
		return nil
	}
	if ferr := h.Store.FinishIdempotent(auth.Token.ID, key, status, c.Response().Body(), string(c.Response().Header.Peek(fiber.HeaderLocation))); ferr != nil && h.Log != nil {
		h.Log.Error("idempotent response not stored", "err", ferr.Error(), "request_id", requestID(c))
	}
	return nil
}

// requestFingerprint identifies a write for its idempotency key: method,
// path, query and body. A JSON body counts by its content (key order and
// spacing do not matter); a multipart body by its fields and its files'
// names and SHA-256 (the boundary does not matter).
func requestFingerprint(c *fiber.Ctx) (string, error) {
	h := sha256.New()
	h.Write([]byte(c.Method() + "\n" + c.Path() + "\n" + string(c.Request().URI().QueryString()) + "\n"))
	ct := strings.ToLower(c.Get(fiber.HeaderContentType))
	switch {
	case strings.HasPrefix(ct, fiber.MIMEMultipartForm):
		form, err := c.MultipartForm()
		if err != nil {
			return "", apiErr(http.StatusBadRequest, "bad_request", "The multipart body could not be read.")
		}
		keys := make([]string, 0, len(form.Value))
		for k := range form.Value {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			for _, v := range form.Value[k] {
				h.Write([]byte("v\x00" + k + "\x00" + v + "\x00"))
			}
		}
		fkeys := make([]string, 0, len(form.File))
		for k := range form.File {
			fkeys = append(fkeys, k)
		}
		sort.Strings(fkeys)
		for _, k := range fkeys {
			for _, fh := range form.File[k] {
				f, err := fh.Open()
				if err != nil {
					return "", err
				}
				fsum := sha256.New()
				_, err = io.Copy(fsum, f)
				f.Close()
				if err != nil {
					return "", err
				}
				h.Write([]byte("f\x00" + k + "\x00" + fh.Filename + "\x00" + hex.EncodeToString(fsum.Sum(nil)) + "\x00"))
			}
		}
	default:
		body := c.Body()
		var v any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&v) == nil {
			if canon, err := json.Marshal(v); err == nil {
				body = canon
			}
		}
		h.Write(body)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// apiQuery checks that the query names only the parameters allowed (a
// misspelt filter would otherwise be ignored and select more than meant).
func apiQuery(c *fiber.Ctx, allowed ...string) error {
	var bad string
	c.Request().URI().QueryArgs().VisitAll(func(k, _ []byte) {
		if bad == "" && !slices.Contains(allowed, string(k)) {
			bad = string(k)
		}
	})
	if bad != "" {
		return apiFieldErr(http.StatusBadRequest, "unknown_parameter", bad, "Unknown query parameter "+strconv.Quote(bad)+"; see "+APIPrefix+"/openapi.json.")
	}
	return nil
}

// decodeJSON reads a JSON request body into dst, refusing unknown fields,
// trailing data and other content types.
func decodeJSON(c *fiber.Ctx, dst any) error {
	if ct := strings.ToLower(c.Get(fiber.HeaderContentType)); !strings.HasPrefix(ct, fiber.MIMEApplicationJSON) {
		return apiErr(http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the body as JSON (Content-Type: application/json).")
	}
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil && dec.More() {
		err = errors.New("trailing data")
	}
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return apiFieldErr(http.StatusUnprocessableEntity, "validation_failed", te.Field, "The field "+strconv.Quote(te.Field)+" must be "+jsonKind(te.Type.Kind())+".")
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		field := strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`)
		return apiFieldErr(http.StatusUnprocessableEntity, "validation_failed", field, "Unknown field "+strconv.Quote(field)+".")
	}
	return apiErr(http.StatusBadRequest, "invalid_json", "The body is not valid JSON.")
}

// jsonKind names what JSON value a Go kind takes.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}
