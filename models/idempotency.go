package models

import (
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Idempotency keys: a write to the REST API sent with an Idempotency-Key
// header is done once per token and key. The first request claims the key by
// inserting a row ("in progress") that the unique key (token_id, idem_key)
// lets only one request insert, on SQLite and MySQL alike; its response is
// stored for IdempotencyTTL and replayed to every later request with the same
// key and the same request. A different request under the same key is
// refused (ErrIdempotencyMismatch); a request arriving while the first is
// still running is told so (ErrIdempotencyInProgress) rather than run twice.

// IdempotencyTTL is how long a response is kept for replay.
const IdempotencyTTL = 24 * time.Hour

// idempotencyStale is how long a claim may stay in progress before it is
// taken for abandoned (its process died midway) and may be claimed again.
const idempotencyStale = 10 * time.Minute

// MaxIdempotentBody is the largest response kept for replay; larger ones
// are not kept (the request may then be retried and run again).
const MaxIdempotentBody = 1 << 20

// IdempotencyKey is a claimed key and, once the first request ended, its response.
type IdempotencyKey struct {
	ID          uint64 `gorm:"primaryKey"`
	TokenID     uint64
	IdemKey     string
	RequestHash string
	Status      int // 0 while the first request runs
	Body        string
	Location    string
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// Why a request with an idempotency key may not run.
var (
	ErrIdempotencyMismatch   = errors.New("the idempotency key was used for a different request")
	ErrIdempotencyInProgress = errors.New("a request with this idempotency key is still in progress")
)

// BeginIdempotent claims key for a token's request (requestHash identifies
// the request: method, path and body). It returns (nil, nil) when the caller
// has the claim and must end it with FinishIdempotent or AbandonIdempotent;
// the stored response when the same request already completed; or one of
// ErrIdempotencyMismatch and ErrIdempotencyInProgress.
func (s *Store) BeginIdempotent(tokenID uint64, key, requestHash string) (*IdempotencyKey, error) {
	for range 3 {
		now := s.now()
		row := IdempotencyKey{TokenID: tokenID, IdemKey: key, RequestHash: requestHash, CreatedAt: now, ExpiresAt: now.Add(IdempotencyTTL)}
		err := s.DB.Create(&row).Error
		if err == nil {
			return nil, nil
		}
		if !errors.Is(err, gorm.ErrDuplicatedKey) {
			return nil, fmt.Errorf("idempotency: unable to claim the key: %w", err)
		}
		var got IdempotencyKey
		err = s.DB.Where("token_id = ? AND idem_key = ?", tokenID, key).First(&got).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			continue // removed meanwhile: claim it again
		}
		if err != nil {
			return nil, fmt.Errorf("idempotency: unable to read the key: %w", err)
		}
		expired := !now.Before(got.ExpiresAt)
		abandoned := got.Status == 0 && now.Sub(got.CreatedAt) > idempotencyStale
		if expired || abandoned {
			if err := s.DB.Where("id = ? AND status = ?", got.ID, got.Status).Delete(&IdempotencyKey{}).Error; err != nil {
				return nil, fmt.Errorf("idempotency: unable to drop an expired key: %w", err)
			}
			continue
		}
		if got.RequestHash != requestHash {
			return nil, ErrIdempotencyMismatch
		}
		if got.Status == 0 {
			return nil, ErrIdempotencyInProgress
		}
		return &got, nil
	}
	return nil, ErrIdempotencyInProgress
}

// FinishIdempotent stores the response of the request that holds the claim.
func (s *Store) FinishIdempotent(tokenID uint64, key string, status int, body []byte, location string) error {
	if len(body) > MaxIdempotentBody {
		return s.AbandonIdempotent(tokenID, key)
	}
	err := s.DB.Model(&IdempotencyKey{}).Where("token_id = ? AND idem_key = ? AND status = 0", tokenID, key).
		Updates(map[string]any{"status": status, "body": string(body), "location": truncate(location, 255)}).Error
	if err != nil {
		return fmt.Errorf("idempotency: unable to store the response: %w", err)
	}
	return nil
}

// AbandonIdempotent gives up a claim without a response to keep (the request
// failed in a way worth retrying), so the key may be used again.
func (s *Store) AbandonIdempotent(tokenID uint64, key string) error {
	if err := s.DB.Where("token_id = ? AND idem_key = ? AND status = 0", tokenID, key).Delete(&IdempotencyKey{}).Error; err != nil {
		return fmt.Errorf("idempotency: unable to release the key: %w", err)
	}
	return nil
}

// PurgeIdempotencyKeys deletes the keys that expired before now.
func (s *Store) PurgeIdempotencyKeys(now time.Time) (int64, error) {
	res := s.DB.Where("expires_at < ?", now.UTC()).Delete(&IdempotencyKey{})
	if res.Error != nil {
		return 0, fmt.Errorf("idempotency: unable to purge expired keys: %w", res.Error)
	}
	return res.RowsAffected, nil
}
