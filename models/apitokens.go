package models

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"
)

// API tokens: bearer credentials for the REST API under /api/v1. A token has
// a name, a merchant scope, permissions, an optional expiry and optional
// allowed source addresses. The token itself is shown once, when made; only
// its SHA-256 is stored (it carries 256 random bits, so a fast hash cannot be
// searched back, and a lookup by hash needs no constant-time compare).
//
// A token made by a user never reaches further than its maker could today:
// each request intersects the token's scope with the maker's current scope and
// its permissions with what the maker's current role may use, and a disabled
// (or deleted) maker's tokens stop working. Tokens made by the system (the
// demo token) have no maker and keep what they were given.

// API token permissions.
const (
	PermLedgerRead   = "ledger:read"
	PermLedgerWrite  = "ledger:write"
	PermReportsRead  = "reports:read"
	PermImportsWrite = "imports:write"
)

// APIPermissions lists every permission, in display order.
var APIPermissions = []string{PermLedgerRead, PermLedgerWrite, PermReportsRead, PermImportsWrite}

// Audit actions of API tokens and of the writes made through them (imports
// and corrections through the API keep their own actions, with the token as
// the actor).
const (
	ActAPITokenCreate = "api_token.create"
	ActAPITokenRevoke = "api_token.revoke"
	ActAPIRecord      = "api.transaction.record"
	ActAPIAnnotate    = "api.transaction.annotate"
)

// A token is "pf_" and 43 base64url characters; the first 8 after "pf_" are
// kept (with it) as the prefix the console lists.
const (
	apiTokenPrefix     = "pf_"
	apiTokenShownChars = 8
)

func init() {
	AuditActions = append(AuditActions, ActAPITokenCreate, ActAPITokenRevoke, ActAPIRecord, ActAPIAnnotate)
}

// PermissionsFor lists the permissions a role may give a token: those it
// could use itself in the console. Operators look up and import (they record
// the merchant's own view of payments too); finance reads reports and corrects;
// admins do everything. Corrections through ledger:write need a finance or
// admin maker as well (see APIAuth.CanCorrect).
func PermissionsFor(role Role) []string {
	switch role {
	case RoleAdmin, RoleFinance:
		return APIPermissions
	case RoleOperator:
		return []string{PermLedgerRead, PermLedgerWrite, PermImportsWrite}
	}
	return nil
}

// APIToken is a bearer token for the REST API (the secret is never stored).
type APIToken struct {
	ID           uint64 `gorm:"primaryKey"`
	Name         string
	Prefix       string
	TokenHash    string `json:"-"`
	Permissions  string // comma-separated, in APIPermissions order
	AllMerchants bool
	Merchants    string // comma-separated merchant codes, sorted
	AllowedIPs   string // comma-separated addresses or CIDR prefixes; "" = anywhere
	ExpiresAt    *time.Time
	CreatedByID  *uint64
	CreatedBy    string
	CreatedAt    time.Time
	LastUsedAt   *time.Time
	LastUsedIP   string
	RevokedAt    *time.Time
	RevokedBy    string
}

// TableName is api_tokens.
func (APIToken) TableName() string { return "api_tokens" }

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// PermissionList returns the token's permissions.
func (t *APIToken) PermissionList() []string { return splitList(t.Permissions) }

// MerchantList returns the token's merchant codes (empty for all merchants).
func (t *APIToken) MerchantList() []string { return splitList(t.Merchants) }

// AllowedIPList returns the addresses the token may be used from (empty: any).
func (t *APIToken) AllowedIPList() []string { return splitList(t.AllowedIPs) }

// Scope is the token's own merchant scope (before the maker's is applied).
func (t *APIToken) Scope() Scope {
	if t.AllMerchants {
		return Scope{All: true}
	}
	return Scope{Merchants: t.MerchantList()}
}

// API token states, as the console lists them.
const (
	TokenActive  = "active"
	TokenExpired = "expired"
	TokenRevoked = "revoked"
)

// State says whether the token works at now.
func (t *APIToken) State(now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return TokenRevoked
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return TokenExpired
	}
	return TokenActive
}

// APITokenInput is what a user asks for when making a token.
type APITokenInput struct {
	Name         string
	AllMerchants bool
	Merchants    []string
	Permissions  []string
	ExpiresAt    *time.Time // nil: never
	AllowedIPs   string     // addresses or CIDR prefixes, separated by commas, spaces or lines
}

// Limits of a token's fields.
const (
	maxTokenName       = 64
	maxTokenAllowedIPs = 20
)

// parseAllowedIPs normalises a list of addresses and CIDR prefixes.
func parseAllowedIPs(raw string) ([]string, bool) {
	var out []string
	for _, f := range strings.FieldsFunc(raw, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked().String())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, false
		}
		out = append(out, a.Unmap().String())
	}
	slices.Sort(out)
	return slices.Compact(out), len(out) <= maxTokenAllowedIPs
}

// ipAllowed reports whether ip is one of the allowed addresses or prefixes.
func ipAllowed(allowed []string, ip string) bool {
	if len(allowed) == 0 {
		return true
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, s := range allowed {
		if p, err := netip.ParsePrefix(s); err == nil {
			if p.Contains(a) {
				return true
			}
		} else if b, err := netip.ParseAddr(s); err == nil && b == a {
			return true
		}
	}
	return false
}

// validate checks the input against what the maker may give (maker nil: the
// system, which may give anything) and normalises it. Errors are translation
// keys by form field.
func (in *APITokenInput) validate(tx *gorm.DB, maker *User, now time.Time) (FieldErrors, error) {
	errs := FieldErrors{}
	in.Name = strings.TrimSpace(in.Name)
	if n := utf8.RuneCountInString(in.Name); n == 0 || n > maxTokenName || strings.ContainsFunc(in.Name, unicode.IsControl) || strings.Contains(in.Name, ",") {
		errs["name"] = "apitokens.err_name"
	} else if n, err := countWhere(tx, &APIToken{}, "name = ?", in.Name); err != nil {
		return nil, err
	} else if n > 0 {
		errs["name"] = "apitokens.err_name_taken"
	}
	allowedPerms := APIPermissions
	makerScope := Scope{All: true}
	if maker != nil {
		allowedPerms = PermissionsFor(maker.Role)
		makerScope = maker.Scope()
	}
	var perms []string
	for _, p := range APIPermissions { // keep the canonical order, drop repeats
		if slices.Contains(in.Permissions, p) {
			perms = append(perms, p)
		}
	}
	switch {
	case len(in.Permissions) == 0:
		errs["permissions"] = "apitokens.err_permissions"
	case len(perms) != len(slices.Compact(slices.Sorted(slices.Values(in.Permissions)))):
		errs["permissions"] = "apitokens.err_permissions"
	default:
		for _, p := range perms {
			if !slices.Contains(allowedPerms, p) {
				errs["permissions"] = "apitokens.err_permission_denied"
			}
		}
	}
	in.Permissions = perms
	if in.AllMerchants {
		if !makerScope.All {
			errs["merchants"] = "apitokens.err_merchants"
		}
		in.Merchants = nil
	} else {
		var codes []string
		for _, m := range in.Merchants {
			if m = strings.ToUpper(strings.TrimSpace(m)); m != "" {
				codes = append(codes, m)
			}
		}
		slices.Sort(codes)
		codes = slices.Compact(codes)
		if len(codes) == 0 {
			errs["merchants"] = "apitokens.err_merchants"
		}
		for _, code := range codes {
			if !ValidMerchantCode(code) || !makerScope.Allows(code) {
				errs["merchants"] = "apitokens.err_merchants"
				break
			}
			if n, err := countWhere(tx, &Merchant{}, "code = ?", code); err != nil {
				return nil, err
			} else if n == 0 {
				errs["merchants"] = "apitokens.err_merchants"
				break
			}
		}
		in.Merchants = codes
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		errs["expires"] = "apitokens.err_expires"
	}
	ips, ok := parseAllowedIPs(in.AllowedIPs)
	if !ok {
		errs["allowed_ips"] = "apitokens.err_allowed_ips"
	}
	in.AllowedIPs = strings.Join(ips, ",")
	if len(errs) > 0 {
		return errs, nil
	}
	return nil, nil
}

// newTokenSecret makes a token: "pf_" and 256 random bits (43 base64url characters).
func newTokenSecret() (secret, prefix, hash string) {
	secret = apiTokenPrefix + RandomToken(32)
	return secret, secret[:len(apiTokenPrefix)+apiTokenShownChars], hashToken(secret)
}

// tokenView is what the audit log records of a token (never the secret or its hash).
func tokenView(t *APIToken) map[string]any {
	v := map[string]any{"name": t.Name, "prefix": t.Prefix, "permissions": t.PermissionList(), "all_merchants": t.AllMerchants,
		"merchants": t.MerchantList(), "allowed_ips": t.AllowedIPList()}
	if t.ExpiresAt != nil {
		v["expires_at"] = t.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return v
}

// CreateAPIToken makes a token for maker (nil: the system) and returns it
// with its secret, which is never available again. Bad input is a FieldErrors
// of translation keys and changes nothing.
func (s *Store) CreateAPIToken(a Actor, maker *User, in APITokenInput) (*APIToken, string, error) {
	now := s.now()
	var out *APIToken
	secret, prefix, hash := newTokenSecret()
	err := s.Tx(func(tx *gorm.DB) error {
		errs, err := in.validate(tx, maker, now)
		if err != nil {
			return fmt.Errorf("api tokens: unable to check the new token: %w", err)
		}
		if errs != nil {
			return errs
		}
		t := &APIToken{Name: in.Name, Prefix: prefix, TokenHash: hash, Permissions: strings.Join(in.Permissions, ","),
			AllMerchants: in.AllMerchants, Merchants: strings.Join(in.Merchants, ","), AllowedIPs: in.AllowedIPs,
			CreatedBy: truncate(a.Name, 64), CreatedAt: now}
		if in.ExpiresAt != nil {
			e := in.ExpiresAt.UTC()
			t.ExpiresAt = &e
		}
		if maker != nil {
			id := maker.ID
			t.CreatedByID, t.CreatedBy = &id, truncate(maker.Username, 64)
		}
		if err := tx.Create(t).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return FieldErrors{"name": "apitokens.err_name_taken"}
			}
			return fmt.Errorf("api tokens: unable to store the token: %w", err)
		}
		out = t
		return writeAudit(tx, a, now, AuditEvent{Action: ActAPITokenCreate, ObjectType: "api_token", ObjectID: idStr(t.ID),
			MerchantCode: auditMerchant(t), Detail: fmt.Sprintf("%s (%s…): %s", t.Name, t.Prefix, t.Permissions), After: tokenView(t)})
	})
	if err != nil {
		return nil, "", err
	}
	return out, secret, nil
}

// auditMerchant is the merchant an audit record of t is filed under: its
// only merchant, else none.
func auditMerchant(t *APIToken) string {
	if m := t.MerchantList(); len(m) == 1 && !t.AllMerchants {
		return m[0]
	}
	return ""
}

// tokenVisible reports whether a user of scope may see (and revoke) t: admins
// see every token; others those whose merchants all lie in their scope.
func tokenVisible(scope Scope, t *APIToken) bool {
	if scope.All {
		return true
	}
	if t.AllMerchants {
		return false
	}
	for _, m := range t.MerchantList() {
		if !scope.Allows(m) {
			return false
		}
	}
	return true
}

// ListAPITokens lists the tokens a user of scope may see, newest first.
func (s *Store) ListAPITokens(scope Scope) ([]APIToken, error) {
	var rows []APIToken
	q := s.DB.Order("id DESC").Limit(1000)
	if !scope.All {
		q = q.Where("all_merchants = ?", false)
	}
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("api tokens: unable to list tokens: %w", err)
	}
	out := rows[:0]
	for i := range rows {
		if tokenVisible(scope, &rows[i]) {
			out = append(out, rows[i])
		}
	}
	return out, nil
}

// GetAPIToken returns a token a user of scope may see, else ErrNotFound.
func (s *Store) GetAPIToken(scope Scope, id uint64) (*APIToken, error) {
	var t APIToken
	if err := s.DB.First(&t, id).Error; err != nil {
		return nil, notFound(err)
	}
	if !tokenVisible(scope, &t) {
		return nil, ErrNotFound
	}
	return &t, nil
}

// RevokeAPIToken stops a token at once (the next request with it gets 401).
// Revoking a revoked token changes nothing.
func (s *Store) RevokeAPIToken(a Actor, scope Scope, id uint64) (*APIToken, error) {
	var out APIToken
	err := s.Tx(func(tx *gorm.DB) error {
		if err := s.forUpdate(tx).First(&out, id).Error; err != nil {
			return notFound(err)
		}
		if !tokenVisible(scope, &out) {
			return ErrNotFound
		}
		if out.RevokedAt != nil {
			return nil
		}
		now := s.now()
		out.RevokedAt, out.RevokedBy = &now, truncate(a.Name, 64)
		if err := tx.Model(&APIToken{}).Where("id = ?", id).Updates(map[string]any{"revoked_at": now, "revoked_by": out.RevokedBy}).Error; err != nil {
			return fmt.Errorf("api tokens: unable to revoke token %d: %w", id, err)
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActAPITokenRevoke, ObjectType: "api_token", ObjectID: idStr(id),
			MerchantCode: auditMerchant(&out), Detail: fmt.Sprintf("%s (%s…)", out.Name, out.Prefix)})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Why a token was refused. ErrTokenAddress is a 403 (the token is good, the
// place is not); the others are 401.
var (
	ErrTokenInvalid = errors.New("the API token is not valid")
	ErrTokenExpired = errors.New("the API token has expired")
	ErrTokenRevoked = errors.New("the API token was revoked")
	ErrTokenMaker   = errors.New("the API token's maker is disabled or gone")
	ErrTokenAddress = errors.New("the API token may not be used from this address")
)

// APIAuth is an authenticated API request's token and what it may do now.
type APIAuth struct {
	Token *APIToken
	// Scope is the token's scope within its maker's current scope.
	Scope Scope
	// Perms are the token's permissions its maker's role still allows.
	Perms []string
	// CanCorrect says whether finance corrections are allowed: the maker is
	// finance or an admin (or the token is the system's).
	CanCorrect bool
}

// Has reports whether the request may use perm.
func (a *APIAuth) Has(perm string) bool { return slices.Contains(a.Perms, perm) }

// Actor is who the audit log names for a write through the token.
func (a *APIAuth) Actor(ip, requestID string) Actor {
	return Actor{Name: truncate("token:"+a.Token.Name, 64), IP: ip, RequestID: requestID}
}

// intersectScopes is the merchants both scopes allow.
func intersectScopes(a, b Scope) Scope {
	switch {
	case a.All:
		return Scope{All: b.All, Merchants: slices.Clone(b.Merchants)}
	case b.All:
		return Scope{Merchants: slices.Clone(a.Merchants)}
	}
	out := Scope{Merchants: []string{}}
	for _, m := range a.Merchants {
		if slices.Contains(b.Merchants, m) {
			out.Merchants = append(out.Merchants, m)
		}
	}
	sort.Strings(out.Merchants)
	return out
}

// lastUsedEvery is how stale a token's last-used time may get before a
// request writes it again (a write per request would queue on SQLite).
const lastUsedEvery = time.Minute

// AuthenticateAPIToken finds the token secret names and checks it can be
// used now from ip: not revoked, not expired, its maker still enabled, the
// address allowed. Every request looks the token up afresh, so revocation
// takes effect at once. It notes when (and from where) the token was last used.
func (s *Store) AuthenticateAPIToken(secret, ip string) (*APIAuth, error) {
	if !strings.HasPrefix(secret, apiTokenPrefix) || len(secret) < len(apiTokenPrefix)+32 || len(secret) > 128 {
		return nil, ErrTokenInvalid
	}
	var t APIToken
	if err := s.DB.Where("token_hash = ?", hashToken(secret)).First(&t).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrTokenInvalid
		}
		return nil, fmt.Errorf("api tokens: unable to look the token up: %w", err)
	}
	now := s.now()
	switch t.State(now) {
	case TokenRevoked:
		return nil, ErrTokenRevoked
	case TokenExpired:
		return nil, ErrTokenExpired
	}
	auth := &APIAuth{Token: &t, Scope: t.Scope(), Perms: t.PermissionList(), CanCorrect: true}
	if t.CreatedByID != nil {
		u, err := s.GetUser(*t.CreatedByID)
		if errors.Is(err, ErrNotFound) {
			return nil, ErrTokenMaker
		}
		if err != nil {
			return nil, fmt.Errorf("api tokens: unable to read the token's maker: %w", err)
		}
		if u.Disabled {
			return nil, ErrTokenMaker
		}
		auth.Scope = intersectScopes(auth.Scope, u.Scope())
		allowed := PermissionsFor(u.Role)
		auth.Perms = slices.DeleteFunc(auth.Perms, func(p string) bool { return !slices.Contains(allowed, p) })
		auth.CanCorrect = u.Role == RoleFinance || u.Role == RoleAdmin
	}
	if !ipAllowed(t.AllowedIPList(), ip) {
		return nil, ErrTokenAddress
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= lastUsedEvery || t.LastUsedIP != ip {
		if err := s.DB.Model(&APIToken{}).Where("id = ?", t.ID).
			Updates(map[string]any{"last_used_at": now, "last_used_ip": truncate(ip, 64)}).Error; err != nil && !IsBusy(err) {
			return nil, fmt.Errorf("api tokens: unable to note the token's use: %w", err)
		}
		t.LastUsedAt, t.LastUsedIP = &now, ip
	}
	return auth, nil
}

// DemoAPITokenName names the token demo starts make.
const DemoAPITokenName = "demo"

// EnsureDemoAPIToken makes the demo token (every permission, the demo
// merchants) when it is missing, or with renew gives it a fresh secret (like
// the demo passwords, it changes on every demo start), and returns the new
// secret; "" when the token exists and renew is false.
func (s *Store) EnsureDemoAPIToken(a Actor, renew bool) (string, error) {
	var existing APIToken
	err := s.DB.Where("name = ?", DemoAPITokenName).First(&existing).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		_, secret, err := s.CreateAPIToken(a, nil, APITokenInput{Name: DemoAPITokenName, Merchants: DemoMerchants, Permissions: APIPermissions})
		return secret, err
	}
	if err != nil {
		return "", fmt.Errorf("api tokens: unable to read the demo token: %w", err)
	}
	if !renew {
		return "", nil
	}
	secret, prefix, hash := newTokenSecret()
	now := s.now()
	err = s.Tx(func(tx *gorm.DB) error {
		if err := tx.Model(&APIToken{}).Where("id = ?", existing.ID).Updates(map[string]any{
			"prefix": prefix, "token_hash": hash, "revoked_at": nil, "revoked_by": "", "expires_at": nil,
		}).Error; err != nil {
			return fmt.Errorf("api tokens: unable to renew the demo token: %w", err)
		}
		existing.Prefix = prefix
		return writeAudit(tx, a, now, AuditEvent{Action: ActAPITokenCreate, ObjectType: "api_token", ObjectID: idStr(existing.ID),
			Detail: fmt.Sprintf("%s (%s…) renewed for a demo start", existing.Name, prefix), After: tokenView(&existing)})
	})
	return secret, err
}
