package models

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Credential errors. Their text is safe to show: it never holds secret material.
var (
	// ErrMasterKeyMismatch means the configured master key is not the one the
	// stored data keys were wrapped with.
	ErrMasterKeyMismatch = errors.New("master key does not match: the credentials were sealed under another master key (check --master-key-file)")
	// ErrNoMasterKey means the process was started without a master key.
	ErrNoMasterKey = errors.New("no master key is configured, so credentials cannot be read or written")
	// ErrSealBroken means a ciphertext failed authentication: it was altered,
	// or moved from another record.
	ErrSealBroken = errors.New("a sealed credential failed its integrity check (altered or moved between records); nothing was changed")
)

// Vault seals channel credentials with envelope encryption: each channel
// account has its own random 256-bit data key; every secret value is sealed
// with AES-256-GCM under that data key, with the secret's record id, account
// and field bound as additional authenticated data so a ciphertext cannot be
// moved to another row; the data keys are wrapped (AES-256-GCM) by the master
// key-encrypting key, which lives outside the database. Each wrapped data key
// carries the id of the master key that wrapped it, so keys can rotate.
type Vault struct {
	master []byte
	id     string
}

// NewVault returns a vault over a 32-byte master key.
func NewVault(master []byte) (*Vault, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("vault: master key must be %d bytes", MasterKeySize)
	}
	return &Vault{master: append([]byte(nil), master...), id: MasterKeyID(master)}, nil
}

// KeyID is the id of the vault's master key.
func (v *Vault) KeyID() string { return v.id }

// DataKey is a per-account data key, wrapped by a master key.
type DataKey struct {
	ID          uint64 `gorm:"primaryKey"`
	MasterKeyID string
	Wrapped     []byte
	CreatedAt   time.Time
	RotatedAt   *time.Time
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func seal(key []byte, aad string, plaintext []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, plaintext, []byte(aad)), nil
}

func unseal(key []byte, aad string, sealed []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize()+gcm.Overhead() {
		return nil, ErrSealBroken
	}
	out, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], []byte(aad))
	if err != nil {
		return nil, ErrSealBroken
	}
	return out, nil
}

func dataKeyAAD(id uint64) string { return "payfuse data key v1|" + idStr(id) }

func secretAAD(secretID, accountID uint64, field string) string {
	return "payfuse secret v1|" + idStr(secretID) + "|" + idStr(accountID) + "|" + field
}

// newDataKey creates and stores a fresh data key wrapped by the vault's master
// key. It refuses when the database already holds data keys wrapped by another
// master key: a wrong key must never start a second, incompatible key family.
func (v *Vault) newDataKey(tx *gorm.DB, now time.Time) (uint64, []byte, error) {
	var foreign int64
	if err := tx.Model(&DataKey{}).Where("master_key_id <> ?", v.id).Count(&foreign).Error; err != nil {
		return 0, nil, err
	}
	if foreign > 0 {
		return 0, nil, ErrMasterKeyMismatch
	}
	dk := make([]byte, 32)
	if _, err := rand.Read(dk); err != nil {
		return 0, nil, err
	}
	row := DataKey{MasterKeyID: v.id, Wrapped: []byte{0}, CreatedAt: now}
	if err := tx.Create(&row).Error; err != nil {
		return 0, nil, fmt.Errorf("vault: unable to store data key: %w", err)
	}
	wrapped, err := seal(v.master, dataKeyAAD(row.ID), dk)
	if err != nil {
		return 0, nil, err
	}
	if err := tx.Model(&DataKey{}).Where("id = ?", row.ID).Update("wrapped", wrapped).Error; err != nil {
		return 0, nil, fmt.Errorf("vault: unable to store data key: %w", err)
	}
	return row.ID, dk, nil
}

// dataKey loads and unwraps the data key with id.
func (v *Vault) dataKey(db *gorm.DB, id uint64) ([]byte, error) {
	var row DataKey
	if err := db.First(&row, id).Error; err != nil {
		return nil, fmt.Errorf("vault: data key %d: %w", id, notFound(err))
	}
	if row.MasterKeyID != v.id {
		return nil, ErrMasterKeyMismatch
	}
	dk, err := unseal(v.master, dataKeyAAD(row.ID), row.Wrapped)
	if err != nil {
		return nil, ErrSealBroken
	}
	return dk, nil
}

// ForeignDataKeys counts data keys wrapped by a master key other than the
// vault's: credentials this process cannot open.
func (s *Store) ForeignDataKeys() (int64, error) {
	if s.Vault == nil {
		return 0, ErrNoMasterKey
	}
	var n int64
	err := s.DB.Model(&DataKey{}).Where("master_key_id <> ?", s.Vault.id).Count(&n).Error
	return n, err
}

// RotateMasterKey re-wraps every data key under next, in one transaction.
// Data keys already wrapped by next are left alone, so the command can be run
// again after a crash or a success; afterwards only next opens the secrets.
// failAfter, when positive, aborts after that many re-wraps (tests simulate a
// crash with it). It returns how many keys were re-wrapped and how many were
// already under the new key.
func (s *Store) RotateMasterKey(a Actor, current, next *Vault, failAfter int) (rewrapped, skipped int, err error) {
	if current.id == next.id {
		return 0, 0, errors.New("the new master key is the same as the current one")
	}
	err = s.Tx(func(tx *gorm.DB) error {
		var rows []DataKey
		if err := s.forUpdate(tx).Order("id").Find(&rows).Error; err != nil {
			return fmt.Errorf("vault: unable to read data keys: %w", err)
		}
		now := s.now()
		for _, row := range rows {
			switch row.MasterKeyID {
			case next.id:
				skipped++
				continue
			case current.id:
			default:
				return fmt.Errorf("data key %d is wrapped by master key %s, which is neither the current (%s) nor the new key (%s)", row.ID, row.MasterKeyID, current.id, next.id)
			}
			dk, err := unseal(current.master, dataKeyAAD(row.ID), row.Wrapped)
			if err != nil {
				return fmt.Errorf("data key %d: %w", row.ID, ErrSealBroken)
			}
			wrapped, err := seal(next.master, dataKeyAAD(row.ID), dk)
			if err != nil {
				return err
			}
			if err := tx.Model(&DataKey{}).Where("id = ?", row.ID).Updates(map[string]any{
				"master_key_id": next.id, "wrapped": wrapped, "rotated_at": now,
			}).Error; err != nil {
				return fmt.Errorf("vault: unable to store re-wrapped data key %d: %w", row.ID, err)
			}
			rewrapped++
			if failAfter > 0 && rewrapped >= failAfter {
				return errors.New("simulated crash during rotation")
			}
		}
		return writeAudit(tx, a, now, AuditEvent{Action: ActKeysRotate, ObjectType: "master_key", ObjectID: next.id,
			Detail: fmt.Sprintf("%d data key(s) re-wrapped, %d already under the new key", rewrapped, skipped),
			Before: map[string]any{"master_key_id": current.id}, After: map[string]any{"master_key_id": next.id}})
	})
	if err != nil {
		return 0, 0, err
	}
	return rewrapped, skipped, nil
}
