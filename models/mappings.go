package models

import (
	"io"

	"payfuse/channels"
	"payfuse/channels/all"
)

// mappedStatement returns the parser for a statement read through the
// account's saved column mapping.
func (s *Store) mappedStatement(acct *ChannelAccount, r io.ReaderAt, size int64) (func(fn func(channels.Record) error) (channels.Totals, error), error) {
	return func(fn func(channels.Record) error) (channels.Totals, error) {
		return all.ParseStatement(acct.Channel, r, size, fn)
	}, nil
}
