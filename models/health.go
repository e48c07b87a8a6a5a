package models

import (
	"context"
	"fmt"
	"slices"
)

// Ping checks that the database answers before ctx ends: a connection from
// the pool (waiting for one when all are busy) and the driver's ping.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.DB.DB()
	if err != nil {
		return err
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("store: the database does not answer: %w", err)
	}
	return nil
}

// SchemaState compares the migrations applied to the database with the ones
// this binary knows.
type SchemaState struct {
	Latest  int   // the newest step this binary knows
	Missing []int // steps this binary knows that the database lacks
	Newer   int   // the newest step applied that this binary does not know (0: none)
}

// Current reports whether the schema is exactly the one this binary expects.
func (st SchemaState) Current() bool { return len(st.Missing) == 0 && st.Newer == 0 }

// CheckSchema reads the applied migrations (within ctx) and compares them
// with this binary's steps. Every step is checked, not only the newest: a
// step that failed and was skipped over is as missing as one never run.
func (s *Store) CheckSchema(ctx context.Context) (SchemaState, error) {
	st := SchemaState{Latest: LatestVersion()}
	var applied []int
	if err := s.DB.WithContext(ctx).Model(&schemaMigration{}).Pluck("version", &applied).Error; err != nil {
		return st, fmt.Errorf("store: unable to read the applied migrations: %w", err)
	}
	for _, m := range migrations {
		if !slices.Contains(applied, m.Version) {
			st.Missing = append(st.Missing, m.Version)
		}
	}
	for _, v := range applied {
		if v > st.Latest && v > st.Newer {
			st.Newer = v
		}
	}
	return st, nil
}
