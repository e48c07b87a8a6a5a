package models

import (
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"

	"payfuse/channels"
)

// NotifyNonce is a notification nonce (WeChat Pay's Wechatpay-Nonce) that an
// account has taken. It is kept until ExpiresAt, after which the
// notification's timestamp is refused anyway, so a replay inside the window
// finds it and one outside the window fails the timestamp check.
type NotifyNonce struct {
	ID        uint64 `gorm:"primaryKey"`
	AccountID uint64
	Nonce     string
	ExpiresAt time.Time
}

// MaxNonceLength is the longest nonce the table holds (notify_nonces.nonce).
const MaxNonceLength = 64

// ErrReplayedNonce is returned by IngestNotification when the account has
// already taken a notification with the same nonce that has not expired.
var ErrReplayedNonce = errors.New("notification nonce already used")

// ErrNonceTooLong refuses a nonce longer than MaxNonceLength.
var ErrNonceTooLong = errors.New("notification nonce too long")

// NotificationAccount returns an enabled channel account at channel (its id,
// channel, settings and data key id; not the other columns) with its full
// credential set (non-secret settings and unsealed secrets), for verifying a
// notification sent to it. An account that does not exist, is disabled or is
// at another channel is ErrNotFound. The credentials must never reach a page,
// an export, a log or the audit log.
//
// It runs on every notification, so it reads the account, its data key and
// its secrets in one query rather than three, and unseals them as secretsOf
// does (the same checks, the same errors).
func (s *Store) NotificationAccount(channel string, id uint64) (*ChannelAccount, map[string][]byte, error) {
	rows, err := s.DB.Raw(`SELECT a.channel, a.enabled, a.settings, a.data_key_id, d.master_key_id, d.wrapped,
			cs.id, cs.field, cs.ciphertext, cs.data_key_id
		FROM channel_accounts a
		LEFT JOIN data_keys d ON d.id = a.data_key_id
		LEFT JOIN channel_secrets cs ON cs.account_id = a.id
		WHERE a.id = ?`, id).Rows()
	if err != nil {
		return nil, nil, fmt.Errorf("store: unable to read channel account %d: %w", id, err)
	}
	defer rows.Close()
	acct := ChannelAccount{ID: id}
	var masterKeyID sql.NullString
	var wrapped []byte
	type sealed struct {
		id        uint64
		field     string
		data      []byte
		dataKeyID uint64
	}
	var secrets []sealed
	found := false
	for rows.Next() {
		var settings, field sql.NullString
		var secretID, secretKeyID sql.NullInt64
		var ct []byte
		if err := rows.Scan(&acct.Channel, &acct.Enabled, &settings, &acct.DataKeyID, &masterKeyID, &wrapped,
			&secretID, &field, &ct, &secretKeyID); err != nil {
			return nil, nil, fmt.Errorf("store: unable to read channel account %d: %w", id, err)
		}
		found, acct.Settings = true, settings.String
		if secretID.Valid {
			secrets = append(secrets, sealed{uint64(secretID.Int64), field.String, ct, uint64(secretKeyID.Int64)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("store: unable to read channel account %d: %w", id, err)
	}
	if !found || acct.Channel != channel || !acct.Enabled {
		return nil, nil, ErrNotFound
	}
	fail := func(err error) (*ChannelAccount, map[string][]byte, error) {
		return &acct, nil, fmt.Errorf("store: unable to open the credentials of channel account %d: %w", id, err)
	}
	switch {
	case s.Vault == nil:
		return fail(ErrNoMasterKey)
	case !masterKeyID.Valid:
		return fail(fmt.Errorf("vault: data key %d: %w", acct.DataKeyID, ErrNotFound))
	case masterKeyID.String != s.Vault.id:
		return fail(ErrMasterKeyMismatch)
	}
	dk, err := unseal(s.Vault.master, dataKeyAAD(acct.DataKeyID), wrapped)
	if err != nil {
		return fail(ErrSealBroken)
	}
	creds := make(map[string][]byte, len(secrets)+4)
	for _, sc := range secrets {
		if sc.dataKeyID != acct.DataKeyID {
			return fail(ErrSealBroken)
		}
		plain, err := unseal(dk, secretAAD(sc.id, id, sc.field), sc.data)
		if err != nil {
			return fail(err)
		}
		creds[sc.field] = plain
	}
	clear(dk)
	for k, v := range acct.SettingsMap() {
		creds[k] = []byte(v)
	}
	return &acct, creds, nil
}

// IngestNotification merges one verified notification's record into the
// ledger as SourceNotification, and, when nonce is not empty, records the
// nonce for the account until keepUntil — in one database transaction, so a
// notification the ledger refuses (a *RecordError) or fails to store leaves
// its nonce unused, and one it takes cannot be taken again. A nonce the
// account already took, and that has not expired, is ErrReplayedNonce and
// changes nothing. An expired nonce left behind (PurgeNotifyNonces has not
// run yet) is treated as absent. A record the ledger holds already (the
// channel sent the same notification again) is a duplicate: no error, no
// change.
//
// Notifications for one account that arrive while an earlier one is being
// stored are stored together, in one transaction (group commit): each call
// still returns its own notification's outcome, and a refused record or a
// replayed nonce affects only its own call.
//
// Notifications are not written to the audit log (there would be one entry
// per payment); each one is recorded as a transaction source instead.
func (s *Store) IngestNotification(accountID uint64, nonce string, keepUntil time.Time, rec channels.Record) error {
	if len(nonce) > MaxNonceLength {
		return ErrNonceTooLong
	}
	it := &notifyItem{nonce: nonce, keepUntil: keepUntil.UTC(), rec: rec, wake: make(chan struct{})}
	key := notifyQueueKey{s, accountID}
	v, _ := notifyQueues.LoadOrStore(key, &notifyQueue{})
	q := v.(*notifyQueue)
	q.mu.Lock()
	q.pending = append(q.pending, it)
	lead := !q.busy
	q.busy = true
	q.mu.Unlock()
	if !lead {
		<-it.wake
		if !it.lead {
			return it.err
		}
	}
	// The leader: store the oldest pending notifications (its own first),
	// then hand the queue to the next waiting one, or close it.
	q.mu.Lock()
	n := min(len(q.pending), maxNotifyBatch)
	batch := append([]*notifyItem(nil), q.pending[:n]...)
	q.pending = append(q.pending[:0:0], q.pending[n:]...)
	q.mu.Unlock()
	s.ingestNotifications(accountID, batch)
	q.mu.Lock()
	if len(q.pending) > 0 {
		next := q.pending[0]
		next.lead = true
		close(next.wake)
	} else {
		q.busy = false
		notifyQueues.CompareAndDelete(key, q)
	}
	q.mu.Unlock()
	for _, o := range batch {
		if o != it {
			close(o.wake)
		}
	}
	return it.err
}

// maxNotifyBatch is the most notifications stored in one transaction.
const maxNotifyBatch = 100

// notifyQueues holds a *notifyQueue per store and account while
// notifications for it are being stored.
var notifyQueues sync.Map

type notifyQueueKey struct {
	s       *Store
	account uint64
}

// notifyQueue holds the notifications waiting for the one being stored.
// While busy, exactly one caller (the leader) stores a batch.
type notifyQueue struct {
	mu      sync.Mutex
	busy    bool
	pending []*notifyItem
}

// notifyItem is one IngestNotification call.
type notifyItem struct {
	nonce     string
	keepUntil time.Time
	rec       channels.Record
	err       error
	done      bool          // the outcome is known
	lead      bool          // woken to lead the next batch
	wake      chan struct{} // closed when done, or to lead
}

// ingestNotifications stores a batch of notifications for one account in one
// transaction, setting each item's err. When the transaction fails as a
// whole, each notification not yet decided is tried again on its own, so one
// cannot fail another.
func (s *Store) ingestNotifications(accountID uint64, items []*notifyItem) {
	var merged *ingester // the batch's records, counted once committed
	err := s.Tx(func(tx *gorm.DB) error {
		// The ingester locks the account row first: nonces of one account
		// are taken one transaction at a time.
		g, err := s.newIngester(tx, accountID, SourceNotification)
		if err != nil {
			return err
		}
		var nonces []string
		for _, it := range items {
			if it.nonce != "" {
				nonces = append(nonces, it.nonce)
			}
		}
		taken := map[string]bool{}
		var expired []uint64
		if len(nonces) > 0 {
			var rows []NotifyNonce
			if err := tx.Where("account_id = ? AND nonce IN ?", accountID, nonces).Find(&rows).Error; err != nil {
				return fmt.Errorf("store: unable to read notification nonces: %w", err)
			}
			for _, r := range rows {
				if r.ExpiresAt.After(g.now) {
					taken[r.Nonce] = true
				} else {
					expired = append(expired, r.ID)
				}
			}
		}
		var records []channels.Record
		var fresh []NotifyNonce
		for _, it := range items {
			if it.nonce != "" && taken[it.nonce] {
				it.err, it.done = ErrReplayedNonce, true
				continue
			}
			if err := g.check(0, &it.rec); err != nil {
				it.err, it.done = err, true
				continue
			}
			if it.nonce != "" {
				taken[it.nonce] = true
				fresh = append(fresh, NotifyNonce{AccountID: accountID, Nonce: it.nonce, ExpiresAt: it.keepUntil})
			}
			records = append(records, it.rec)
		}
		if len(expired) > 0 {
			if err := tx.Where("id IN ?", expired).Delete(&NotifyNonce{}).Error; err != nil {
				return fmt.Errorf("store: unable to drop expired notification nonces: %w", err)
			}
		}
		if len(fresh) > 0 {
			if err := tx.CreateInBatches(fresh, s.insertBatch()).Error; err != nil {
				return fmt.Errorf("store: unable to record notification nonces: %w", err)
			}
		}
		if len(records) == 0 {
			return nil
		}
		if err := g.add(records, 0); err != nil {
			return err
		}
		merged = g
		return g.finish()
	})
	if err == nil && merged != nil {
		s.Metrics.NotificationsTaken(merged.acct.Channel, merged.stats)
	}
	var open []*notifyItem
	for _, it := range items {
		if !it.done {
			open = append(open, it)
		}
	}
	switch {
	case err == nil || len(open) == 0:
		for _, it := range open {
			it.done = true
		}
	case len(open) == 1 || errors.Is(err, ErrNotFound):
		for _, it := range open {
			it.err, it.done = err, true
		}
	default:
		for _, it := range open {
			s.ingestNotifications(accountID, []*notifyItem{it})
		}
	}
}

// purgeNonceBatch is how many expired nonces one DELETE removes, so that the
// purge never holds the table's locks for long.
const purgeNonceBatch = 1000

// PurgeNotifyNonces deletes the nonces that expired before now, in batches of
// purgeNonceBatch rows (each its own statement), and returns how many it
// deleted. The replay check does not need it (an expired nonce counts as
// unused); it keeps the table small.
func (s *Store) PurgeNotifyNonces(now time.Time) (int64, error) {
	var total int64
	for {
		var res *gorm.DB
		if s.Dialect == MySQL {
			res = s.DB.Exec("DELETE FROM notify_nonces WHERE expires_at < ? ORDER BY expires_at LIMIT ?", now.UTC(), purgeNonceBatch)
		} else {
			res = s.DB.Exec("DELETE FROM notify_nonces WHERE id IN (SELECT id FROM notify_nonces WHERE expires_at < ? ORDER BY expires_at LIMIT ?)", now.UTC(), purgeNonceBatch)
		}
		if res.Error != nil {
			return total, fmt.Errorf("store: unable to purge notification nonces: %w", res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < purgeNonceBatch {
			return total, nil
		}
	}
}
