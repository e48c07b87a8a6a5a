package models

import (
	"errors"
	"time"

	"gorm.io/gorm"
)

// ErrNotFound is returned by lookups that find nothing (or nothing the caller may see).
var ErrNotFound = errors.New("not found")

// Store is PayFuse's data access layer. Every method says in its error what failed.
type Store struct {
	DB      *gorm.DB
	Dialect Dialect
	// Now is the clock; tests replace it to move time.
	Now func() time.Time
	// Vault seals channel credentials; nil when no master key is configured.
	Vault *Vault
	// Metrics counts ingests, notifications and flow runs (metrics.go); nil counts nothing.
	Metrics *Metrics

	limit statementLimit // how this server limits a read (readlimit.go)
}

// NewStore wraps an open database.
func NewStore(db *gorm.DB, dialect Dialect) *Store {
	return &Store{DB: db, Dialect: dialect, Now: func() time.Time { return time.Now().UTC() }}
}

// Close releases the connection pool.
func (s *Store) Close() error {
	sqlDB, err := s.DB.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

func (s *Store) now() time.Time { return s.Now().UTC() }

// Tx runs fn in one transaction.
func (s *Store) Tx(fn func(tx *gorm.DB) error) error { return s.DB.Transaction(fn) }

func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}
