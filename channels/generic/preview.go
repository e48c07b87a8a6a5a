package generic

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"payfuse/channels"
)

// MaxSample is how much of a sample file Preview reads.
const MaxSample = 4 << 20

// PreviewResult is what a sample file looks like, and what the mapping makes
// of it.
type PreviewResult struct {
	Header  []string   // the header row's names, as the file gives them ("" when none was found)
	Rows    [][]string // the first rows after the header (cleaned cells)
	Footer  []string   // the summary row after them, when one was recognised
	Records []channels.Record
	// Problems are what the mapping still lacks; the sample is only parsed
	// when there are none.
	Problems []Problem
	// Err is the first reason the mapping would refuse the sample, or nil.
	Err *channels.BillError
	// Rows read and their totals, when the whole sample was parsed.
	Totals channels.Totals
	// NoFooter: the mapping declares a summary line the sample does not have
	// (a sample cut short is fine; an import of it would be refused).
	NoFooter bool
}

// Preview reads a sample file (at most MaxSample bytes of it) with a mapping
// that may still be incomplete: it finds the header row (by the mapping's
// columns when it has them, else by the column names Guess knows, else the
// first line of several cells), returns the header and the first n rows,
// and, when the mapping is complete, the first n records it makes of the
// sample or the first problem. A missing summary line is noted, not an error.
func Preview(r io.Reader, m Mapping, n int) (PreviewResult, error) {
	m = m.Normalize()
	var res PreviewResult
	data, err := io.ReadAll(io.LimitReader(r, MaxSample))
	if err != nil {
		return res, err
	}
	if err := res.scan(data, m, n); err != nil {
		var be *channels.BillError
		if errors.As(err, &be) {
			res.Err = be
			return res, nil
		}
		return res, err
	}
	if res.Problems = m.Validate(); len(res.Problems) > 0 {
		return res, nil
	}
	p, err := newParser(bytes.NewReader(data), m, "", func(rec channels.Record) error {
		if len(res.Records) < n {
			res.Records = append(res.Records, rec)
		}
		return nil
	})
	if err == nil {
		p.preview = true
		err = p.run()
		res.Totals = p.totals
		res.NoFooter = m.Footer != nil && (!p.footerSeen || p.footerPending != nil)
	}
	var be *channels.BillError
	switch {
	case errors.As(err, &be):
		res.Err = be
	case err != nil:
		return res, err
	}
	return res, nil
}

// scan finds the header and the first n rows without parsing them.
func (res *PreviewResult) scan(data []byte, m Mapping, n int) error {
	lr, err := newLineReader(bytes.NewReader(data), m.Encoding, m.Delimiter)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, names := range guessNames {
		for _, name := range names {
			known[normHeader(name)] = true
		}
	}
	var first []string
	for {
		text, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		cells, ok := lr.split(text)
		if !ok || allEmpty(cells) || strings.HasPrefix(firstCell(cells), "#") {
			continue
		}
		if res.Header != nil {
			if m.Footer != nil && strings.HasPrefix(firstCell(cells), m.Footer.Marker) || footerMarker(firstCell(cells)) != "" {
				res.Footer = append([]string(nil), cells...)
				break
			}
			if len(res.Rows) < n {
				res.Rows = append(res.Rows, append([]string(nil), cells...))
			}
			continue
		}
		if isHeader(cells, m, known) {
			res.Header = append([]string(nil), cells...)
			continue
		}
		if first == nil && len(cells) > 1 {
			first = append([]string(nil), cells...)
		}
		if lr.line > maxPreamble {
			break
		}
	}
	if res.Header == nil && first != nil {
		// Nothing looks like a header: show the first line of several cells as one.
		res.Header = first
	}
	return nil
}

// isHeader: the mapping's required columns when it names them, else at
// least two column names Guess knows.
func isHeader(cells []string, m Mapping, known map[string]bool) bool {
	col := map[string]int{}
	hits := 0
	for i, c := range cells {
		k := normHeader(c)
		col[k] = i
		if known[k] {
			hits++
		}
	}
	named := false
	for _, f := range requiredColumns {
		if len(m.Column(f)) == 0 {
			continue
		}
		named = true
		if resolve(col, m.Column(f)) < 0 {
			return false
		}
	}
	return named || hits >= 2
}
