package models

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"payfuse/channels"
	"payfuse/channels/all"
)

// Methods are the canonical payment methods.
var Methods = []string{"scan", "quick", "h5", "app"}

// ChannelAccount is a merchant's account at one channel. Its secrets live
// sealed in channel_secrets; Settings holds only the non-secret fields.
type ChannelAccount struct {
	ID           uint64 `gorm:"primaryKey"`
	MerchantID   uint64
	MerchantCode string
	Channel      string
	DisplayName  string
	Methods      string // comma-separated canonical methods
	FeeRateBP    int    `gorm:"column:fee_rate_bp"`
	Enabled      bool
	Settings     string // JSON object of the non-secret credential fields
	DataKeyID    uint64
	CertNotAfter *time.Time
	CheckOK      bool   `gorm:"column:check_ok"`
	CheckSummary string // JSON list of the check's failed or warning items, in both languages
	CheckedAt    *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
	UpdatedBy    string
}

// MethodList returns the enabled methods.
func (a *ChannelAccount) MethodList() []string {
	if a.Methods == "" {
		return nil
	}
	return strings.Split(a.Methods, ",")
}

// SettingsMap returns the non-secret credential fields.
func (a *ChannelAccount) SettingsMap() map[string]string {
	m := map[string]string{}
	if a.Settings != "" {
		json.Unmarshal([]byte(a.Settings), &m)
	}
	return m
}

// NotifyPath is where the channel posts notifications for this account.
func (a *ChannelAccount) NotifyPath() string { return "/notify/" + a.Channel + "/" + idStr(a.ID) }

// CheckNotes returns the stored check's failed and warning items.
func (a *ChannelAccount) CheckNotes() []channels.Text {
	var out []channels.Text
	if a.CheckSummary != "" {
		json.Unmarshal([]byte(a.CheckSummary), &out)
	}
	return out
}

// CertExpiresWithin reports whether a certificate of the account expires
// (or has expired) before now+d.
func (a *ChannelAccount) CertExpiresWithin(now time.Time, d time.Duration) bool {
	return a.CertNotAfter != nil && a.CertNotAfter.Before(now.Add(d))
}

// ChannelSecret is one sealed credential value.
type ChannelSecret struct {
	ID          uint64 `gorm:"primaryKey"`
	AccountID   uint64
	Field       string
	Ciphertext  []byte
	DataKeyID   uint64
	Fingerprint string
	Size        int
	Meta        string // non-secret description, e.g. a certificate's subject and expiry
	UpdatedAt   time.Time
	UpdatedBy   string
}

// SecretStatus is everything the console may show about a secret: that it is
// set, its fingerprint, and when and by whom it was last written.
type SecretStatus struct {
	Field       string
	Fingerprint string
	Size        int
	Meta        string
	UpdatedAt   time.Time
	UpdatedBy   string
}

// AccountInput creates or updates a channel account. In Values, a text field
// that is present is set (empty clears it) and a secret field replaces the
// stored value only when non-empty; Clear lists secret fields to remove.
type AccountInput struct {
	MerchantID  uint64
	Channel     string
	DisplayName string
	Methods     []string
	FeeRateBP   int
	Enabled     bool
	Values      map[string][]byte
	Clear       []string
}

// CredentialError carries what the channel's checks found wrong; nothing was stored.
type CredentialError struct {
	Problems []channels.Problem
}

func (e *CredentialError) Error() string {
	parts := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		if p.Field != "" {
			parts = append(parts, p.Field+": "+p.Message.EN)
		} else {
			parts = append(parts, p.Message.EN)
		}
	}
	return "credentials refused: " + strings.Join(parts, "; ")
}

// LookupChannel returns a channel's spec, or false.
func LookupChannel(code string) (channels.Spec, bool) { return all.Lookup(code) }

// ChannelSpecs lists every channel PayFuse knows, in display order.
func ChannelSpecs() []channels.Spec { return all.Specs() }

func fieldOf(spec channels.Spec, name string) (channels.Field, bool) {
	for _, f := range spec.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return channels.Field{}, false
}

func (in *AccountInput) validate(spec channels.Spec) FieldErrors {
	errs := FieldErrors{}
	in.DisplayName = strings.TrimSpace(in.DisplayName)
	if in.DisplayName == "" {
		in.DisplayName = spec.Name.EN
	}
	if utf8.RuneCountInString(in.DisplayName) > 128 {
		errs["display_name"] = "err.too_long"
	}
	var methods []string
	for _, m := range in.Methods {
		for _, part := range strings.Split(m, ",") {
			part = strings.TrimSpace(strings.ToLower(part))
			if part == "" {
				continue
			}
			if !slices.Contains(spec.Methods, part) {
				errs["methods"] = "err.method_unsupported"
			} else if !slices.Contains(methods, part) {
				methods = append(methods, part)
			}
		}
	}
	sort.SliceStable(methods, func(i, j int) bool { return slices.Index(Methods, methods[i]) < slices.Index(Methods, methods[j]) })
	in.Methods = methods
	if in.FeeRateBP < 0 || in.FeeRateBP > 10000 {
		errs["fee_rate_bp"] = "err.fee_rate"
	}
	for name := range in.Values {
		if _, ok := fieldOf(spec, name); !ok {
			errs[name] = "err.unknown_field"
		}
	}
	for _, name := range in.Clear {
		f, ok := fieldOf(spec, name)
		if !ok || !f.Secret {
			errs[name] = "err.unknown_field"
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// fingerprint names a secret without revealing it. Keys and certificates get
// the SHA-256 of their public half (a private key and its public key or
// certificate show the same fingerprint, and operators can compute it with
// openssl); other secrets an HMAC under the account's data key.
func fingerprint(kind channels.Kind, field string, value, dataKey []byte) string {
	var pub any
	switch kind {
	case channels.KindPrivateKey:
		if k, err := channels.ParsePrivateKey(value); err == nil {
			pub = &k.PublicKey
		}
	case channels.KindPublicKey:
		if k, err := channels.ParsePublicKey(value); err == nil {
			pub = k
		}
	case channels.KindCertificate:
		if certs, err := channels.ParseCertificates(value); err == nil && len(certs) > 0 {
			pub = certs[0].PublicKey
		}
	}
	if pub != nil {
		if der, err := x509.MarshalPKIXPublicKey(pub); err == nil {
			sum := sha256.Sum256(der)
			return "SHA256:" + groupHex(sum[:8])
		}
	}
	mac := hmac.New(sha256.New, dataKey)
	mac.Write([]byte("payfuse fingerprint v1|" + field + "|"))
	mac.Write(value)
	return "HMAC:" + groupHex(mac.Sum(nil)[:8])
}

func groupHex(b []byte) string {
	h := hex.EncodeToString(b)
	var parts []string
	for i := 0; i < len(h); i += 4 {
		parts = append(parts, h[i:i+4])
	}
	return strings.Join(parts, ":")
}

// secretsOf unseals every secret of an account.
func (s *Store) secretsOf(db *gorm.DB, acct *ChannelAccount) (map[string][]byte, []ChannelSecret, []byte, error) {
	if s.Vault == nil {
		return nil, nil, nil, ErrNoMasterKey
	}
	dk, err := s.Vault.dataKey(db, acct.DataKeyID)
	if err != nil {
		return nil, nil, nil, err
	}
	var rows []ChannelSecret
	if err := db.Where("account_id = ?", acct.ID).Order("field").Find(&rows).Error; err != nil {
		return nil, nil, nil, fmt.Errorf("store: unable to read credentials: %w", err)
	}
	out := map[string][]byte{}
	for _, r := range rows {
		if r.DataKeyID != acct.DataKeyID {
			return nil, nil, nil, ErrSealBroken
		}
		plain, err := unseal(dk, secretAAD(r.ID, acct.ID, r.Field), r.Ciphertext)
		if err != nil {
			return nil, nil, nil, err
		}
		out[r.Field] = plain
	}
	return out, rows, dk, nil
}

// AccountCredentials returns an account's full credential set (non-secret
// settings and unsealed secrets) for the code that talks to the channel.
// It must never reach a page, an export, a log or the audit log.
func (s *Store) AccountCredentials(id uint64) (channels.Spec, map[string][]byte, error) {
	var acct ChannelAccount
	if err := s.DB.First(&acct, id).Error; err != nil {
		return channels.Spec{}, nil, notFound(err)
	}
	spec, ok := all.Lookup(acct.Channel)
	if !ok {
		return channels.Spec{}, nil, fmt.Errorf("store: account %d has unknown channel %q", id, acct.Channel)
	}
	secrets, _, _, err := s.secretsOf(s.DB, &acct)
	if err != nil {
		return spec, nil, err
	}
	for k, v := range acct.SettingsMap() {
		secrets[k] = []byte(v)
	}
	return spec, secrets, nil
}

type secretRef struct {
	Field       string `json:"field"`
	Fingerprint string `json:"fingerprint"`
}

func accountView(a *ChannelAccount, secrets []secretRef) map[string]any {
	return map[string]any{
		"merchant": a.MerchantCode, "channel": a.Channel, "display_name": a.DisplayName, "methods": a.MethodList(),
		"fee_rate_bp": a.FeeRateBP, "enabled": a.Enabled, "settings": a.SettingsMap(), "secrets": secrets,
	}
}

func secretRefs(rows map[string]*ChannelSecret) []secretRef {
	out := []secretRef{}
	for f, r := range rows {
		out = append(out, secretRef{Field: f, Fingerprint: r.Fingerprint})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// SaveAccount creates (id 0) or updates a channel account. The merged
// credential set is checked by the channel before anything is written; when it
// fails, a *CredentialError says why and nothing changes. Secrets are sealed,
// and the audit record names fields and fingerprints only.
func (s *Store) SaveAccount(a Actor, id uint64, in AccountInput) (*ChannelAccount, channels.Report, error) {
	var report channels.Report
	if s.Vault == nil {
		return nil, report, ErrNoMasterKey
	}
	var out *ChannelAccount
	err := s.Tx(func(tx *gorm.DB) error {
		now := s.now()
		var acct ChannelAccount
		var dk []byte
		existing := map[string][]byte{}
		rows := map[string]*ChannelSecret{}
		beforeRefs := []secretRef{}
		var before map[string]any
		if id == 0 {
			var m Merchant
			if err := tx.First(&m, in.MerchantID).Error; err != nil {
				return FieldErrors{"merchant": "err.merchant_unknown"}
			}
			acct = ChannelAccount{MerchantID: m.ID, MerchantCode: m.Code, Channel: in.Channel, CreatedAt: now}
		} else {
			if err := s.forUpdate(tx).First(&acct, id).Error; err != nil {
				return notFound(err)
			}
			in.Channel = acct.Channel
			var list []ChannelSecret
			var err error
			existing, list, dk, err = s.secretsOf(tx, &acct)
			if err != nil {
				return err
			}
			for i := range list {
				rows[list[i].Field] = &list[i]
			}
			beforeRefs = secretRefs(rows)
			before = accountView(&acct, beforeRefs)
		}
		spec, ok := all.Lookup(in.Channel)
		if !ok {
			return FieldErrors{"channel": "err.channel_unknown"}
		}
		if errs := in.validate(spec); errs != nil {
			return errs
		}
		// The credential set as it will be: stored values, then the input.
		merged := map[string][]byte{}
		settings := acct.SettingsMap()
		for k, v := range settings {
			merged[k] = []byte(v)
		}
		for k, v := range existing {
			merged[k] = v
		}
		changed := map[string]bool{}
		for name, v := range in.Values {
			f, _ := fieldOf(spec, name)
			if f.Secret {
				if len(v) == 0 {
					continue
				}
				if string(existing[name]) != string(v) {
					changed[name] = true
				}
				merged[name] = v
			} else {
				val := strings.TrimSpace(string(v))
				if val == "" {
					delete(merged, name)
					delete(settings, name)
				} else {
					merged[name] = []byte(val)
					settings[name] = val
				}
			}
		}
		for _, name := range in.Clear {
			if _, had := existing[name]; had && !changed[name] {
				delete(merged, name)
				changed[name] = true
			}
		}
		report = spec.Check(merged, now)
		if len(report.Problems) > 0 {
			return &CredentialError{Problems: report.Problems}
		}
		settingsJSON, _ := json.Marshal(settings)
		acct.DisplayName, acct.Methods, acct.FeeRateBP, acct.Enabled = in.DisplayName, strings.Join(in.Methods, ","), in.FeeRateBP, in.Enabled
		acct.Settings, acct.UpdatedAt, acct.UpdatedBy = string(settingsJSON), now, a.Name
		applyReport(&acct, report, now)
		if id == 0 {
			var err error
			acct.DataKeyID, dk, err = s.Vault.newDataKey(tx, now)
			if err != nil {
				return err
			}
			if err := tx.Create(&acct).Error; err != nil {
				return fmt.Errorf("store: unable to create channel account: %w", err)
			}
		} else if err := tx.Model(&ChannelAccount{}).Where("id = ?", acct.ID).Select("*").Omit("id", "created_at").Updates(&acct).Error; err != nil {
			return fmt.Errorf("store: unable to update channel account: %w", err)
		}
		certMeta := map[string]string{}
		for _, c := range report.Certs {
			if _, seen := certMeta[c.Field]; !seen {
				certMeta[c.Field] = fmt.Sprintf("%s · serial %s · valid until %s", c.Subject, c.Serial, c.NotAfter.UTC().Format("2006-01-02"))
			}
		}
		names := make([]string, 0, len(changed))
		for name := range changed {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			f, _ := fieldOf(spec, name)
			v, keep := merged[name]
			if !keep {
				if err := tx.Where("account_id = ? AND field = ?", acct.ID, name).Delete(&ChannelSecret{}).Error; err != nil {
					return fmt.Errorf("store: unable to remove credential %s: %w", name, err)
				}
				delete(rows, name)
				continue
			}
			row := rows[name]
			if row == nil {
				row = &ChannelSecret{AccountID: acct.ID, Field: name, DataKeyID: acct.DataKeyID, Ciphertext: []byte{0}}
				if err := tx.Create(row).Error; err != nil {
					return fmt.Errorf("store: unable to store credential %s: %w", name, err)
				}
				rows[name] = row
			}
			sealed, err := seal(dk, secretAAD(row.ID, acct.ID, name), v)
			if err != nil {
				return err
			}
			row.Ciphertext, row.Fingerprint, row.Size, row.Meta = sealed, fingerprint(f.Kind, name, v, dk), len(v), certMeta[name]
			row.UpdatedAt, row.UpdatedBy = now, a.Name
			if err := tx.Model(&ChannelSecret{}).Where("id = ?", row.ID).Updates(map[string]any{
				"ciphertext": row.Ciphertext, "fingerprint": row.Fingerprint, "size": row.Size, "meta": row.Meta,
				"updated_at": now, "updated_by": a.Name,
			}).Error; err != nil {
				return fmt.Errorf("store: unable to store credential %s: %w", name, err)
			}
		}
		action := ActAccountUpdate
		if id == 0 {
			action = ActAccountCreate
		}
		detail := ""
		if len(names) > 0 {
			detail = "credentials written: " + strings.Join(names, ", ")
		}
		out = &acct
		return writeAudit(tx, a, now, AuditEvent{Action: action, ObjectType: "channel_account", ObjectID: idStr(acct.ID),
			MerchantCode: acct.MerchantCode, Detail: detail, Before: before, After: accountView(&acct, secretRefs(rows))})
	})
	return out, report, err
}

// applyReport stores what a check found on the account: failed items,
// problems, and certificates that expire within 30 days.
func applyReport(acct *ChannelAccount, r channels.Report, now time.Time) {
	acct.CheckOK = r.OK
	acct.CheckedAt = &now
	notes := []channels.Text{}
	for _, it := range r.Items {
		if !it.OK {
			notes = append(notes, channels.Text{EN: it.Name.EN + ": " + it.Detail.EN, ZH: it.Name.ZH + "：" + it.Detail.ZH})
		}
	}
	for _, p := range r.Problems {
		notes = append(notes, p.Message)
	}
	acct.CertNotAfter = nil
	for _, c := range r.Certs {
		if c.State(now) == channels.CertExpiringSoon {
			day := c.NotAfter.UTC().Format("2006-01-02")
			notes = append(notes, channels.Text{
				EN: fmt.Sprintf("Certificate %s (%s) expires on %s: replace it before then.", c.Subject, c.Field, day),
				ZH: fmt.Sprintf("证书 %s（%s）将于 %s 到期，请在此之前更换。", c.Subject, c.Field, day),
			})
		}
		if acct.CertNotAfter == nil || c.NotAfter.Before(*acct.CertNotAfter) {
			t := c.NotAfter.UTC()
			acct.CertNotAfter = &t
		}
	}
	raw, _ := json.Marshal(notes)
	acct.CheckSummary = string(raw)
}

// CheckAccount re-runs the channel's checks on the stored credentials,
// records the result on the account and returns the report.
func (s *Store) CheckAccount(a Actor, scope Scope, id uint64) (channels.Report, error) {
	var report channels.Report
	err := s.Tx(func(tx *gorm.DB) error {
		var acct ChannelAccount
		if err := tx.Scopes(scope.Filter("merchant_code")).First(&acct, id).Error; err != nil {
			return notFound(err)
		}
		spec, ok := all.Lookup(acct.Channel)
		if !ok {
			return fmt.Errorf("store: account %d has unknown channel %q", id, acct.Channel)
		}
		values, _, _, err := s.secretsOf(tx, &acct)
		if err != nil {
			return err
		}
		for k, v := range acct.SettingsMap() {
			values[k] = []byte(v)
		}
		now := s.now()
		report = spec.Check(values, now)
		applyReport(&acct, report, now)
		if err := tx.Model(&ChannelAccount{}).Where("id = ?", id).Updates(map[string]any{
			"check_ok": acct.CheckOK, "check_summary": acct.CheckSummary, "checked_at": now, "cert_not_after": acct.CertNotAfter,
		}).Error; err != nil {
			return fmt.Errorf("store: unable to record the check: %w", err)
		}
		result := "passed"
		if !report.OK {
			result = "found problems"
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActAccountCheck, ObjectType: "channel_account", ObjectID: idStr(id),
			MerchantCode: acct.MerchantCode, Detail: "credential check " + result})
	})
	return report, err
}

// DeleteAccount removes an account, its sealed secrets and its data key, audited.
func (s *Store) DeleteAccount(a Actor, id uint64) error {
	return s.Tx(func(tx *gorm.DB) error {
		var acct ChannelAccount
		if err := tx.First(&acct, id).Error; err != nil {
			return notFound(err)
		}
		var rows []ChannelSecret
		tx.Where("account_id = ?", id).Find(&rows)
		refs := map[string]*ChannelSecret{}
		for i := range rows {
			refs[rows[i].Field] = &rows[i]
		}
		for _, q := range []struct {
			model any
			where string
			arg   uint64
		}{{&ChannelSecret{}, "account_id = ?", id}, {&ColumnMapping{}, "account_id = ?", id}, {&ChannelAccount{}, "id = ?", id}, {&DataKey{}, "id = ?", acct.DataKeyID}} {
			if err := tx.Where(q.where, q.arg).Delete(q.model).Error; err != nil {
				return fmt.Errorf("store: unable to delete channel account: %w", err)
			}
		}
		return writeAudit(tx, a, s.now(), AuditEvent{Action: ActAccountDelete, ObjectType: "channel_account", ObjectID: idStr(id),
			MerchantCode: acct.MerchantCode, Before: accountView(&acct, secretRefs(refs))})
	})
}

// GetAccount returns an account when its merchant is in scope, else ErrNotFound.
func (s *Store) GetAccount(scope Scope, id uint64) (*ChannelAccount, error) {
	var acct ChannelAccount
	if err := s.DB.Scopes(scope.Filter("merchant_code")).First(&acct, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &acct, nil
}

// SecretStatuses lists what may be shown of an account's secrets.
func (s *Store) SecretStatuses(accountID uint64) ([]SecretStatus, error) {
	var rows []ChannelSecret
	if err := s.DB.Select("field", "fingerprint", "size", "meta", "updated_at", "updated_by").
		Where("account_id = ?", accountID).Order("field").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("store: unable to read credential status: %w", err)
	}
	out := make([]SecretStatus, len(rows))
	for i, r := range rows {
		out[i] = SecretStatus{Field: r.Field, Fingerprint: r.Fingerprint, Size: r.Size, Meta: r.Meta, UpdatedAt: r.UpdatedAt, UpdatedBy: r.UpdatedBy}
	}
	return out, nil
}

// AccountFilter selects channel accounts.
type AccountFilter struct {
	MerchantID uint64
	Channel    string
	Query      string // in display name or merchant code
}

// ListAccounts returns the accounts in scope, by merchant code and channel.
func (s *Store) ListAccounts(scope Scope, f AccountFilter) ([]ChannelAccount, error) {
	q := s.DB.Model(&ChannelAccount{}).Scopes(scope.Filter("merchant_code"))
	if f.MerchantID != 0 {
		q = q.Where("merchant_id = ?", f.MerchantID)
	}
	if f.Channel != "" {
		q = q.Where("channel = ?", f.Channel)
	}
	if f.Query != "" {
		like := "%" + escapeLike(f.Query) + "%"
		q = q.Where("display_name LIKE ? OR merchant_code LIKE ?", like, strings.ToUpper(like))
	}
	var out []ChannelAccount
	if err := q.Order("merchant_code, channel, id").Limit(1000).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("store: unable to list channel accounts: %w", err)
	}
	return out, nil
}

// ExpiringAccounts lists accounts in scope with a certificate that expires before now+within.
func (s *Store) ExpiringAccounts(scope Scope, now time.Time, within time.Duration) ([]ChannelAccount, error) {
	var out []ChannelAccount
	err := s.DB.Scopes(scope.Filter("merchant_code")).Where("cert_not_after IS NOT NULL AND cert_not_after < ?", now.Add(within)).
		Order("cert_not_after").Limit(100).Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to list expiring certificates: %w", err)
	}
	return out, nil
}

// FindAccount picks a merchant's account at a channel for the CLI: by display
// name when one is given, else the only one. It returns ErrNotFound when there
// is none, and an error naming the choice when there are several.
func (s *Store) FindAccount(merchantID uint64, channel, name string) (*ChannelAccount, error) {
	var list []ChannelAccount
	q := s.DB.Where("merchant_id = ? AND channel = ?", merchantID, channel)
	if name != "" {
		q = q.Where("display_name = ?", name)
	}
	if err := q.Order("id").Find(&list).Error; err != nil {
		return nil, err
	}
	switch len(list) {
	case 0:
		return nil, ErrNotFound
	case 1:
		return &list[0], nil
	}
	return nil, errors.New("the merchant has several " + channel + " accounts; name one with --name")
}
