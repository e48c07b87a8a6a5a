package views

import (
	"context"
	"regexp"
	"strings"
)

// The ledger writes each disagreement between sources as one fixed-form
// line (models.ingester.merge, models.CorrectTransaction):
//
//	amount: 12.00 (notification) vs 13.00 (statement)
//	status: succeeded (notification,statement) vs failed (statement)
//	resolved by alice: status set to failed
//
// conflictLine shows one in the reader's language; a line of another form
// is shown as stored.
var (
	conflictRE = regexp.MustCompile(`^(amount|status): (\S+) \(([a-z,]*)\) vs (\S+) \(([a-z,]*)\)$`)
	resolvedRE = regexp.MustCompile(`^resolved by (.+): (amount|fee|method|status) set to (.+)$`)
)

var conflictFieldKeys = map[string]string{
	"amount": "correction.field_amount", "fee": "correction.field_fee",
	"method": "correction.field_method", "status": "correction.field_status",
}

func conflictLines(ctx context.Context, note string) []string {
	var out []string
	for _, line := range strings.Split(note, "\n") {
		for _, part := range strings.Split(line, "; ") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, conflictLine(ctx, part))
			}
		}
	}
	return out
}

func conflictLine(ctx context.Context, line string) string {
	if m := conflictRE.FindStringSubmatch(line); m != nil {
		field := m[1]
		return Tf(ctx, "detail.conflict_line", T(ctx, conflictFieldKeys[field]),
			conflictValue(ctx, field, m[2]), conflictSources(ctx, m[3]),
			conflictValue(ctx, field, m[4]), conflictSources(ctx, m[5]))
	}
	if m := resolvedRE.FindStringSubmatch(line); m != nil {
		return Tf(ctx, "detail.conflict_resolved_line", m[1], T(ctx, conflictFieldKeys[m[2]]), conflictValue(ctx, m[2], m[3]))
	}
	return line
}

func conflictValue(ctx context.Context, field, v string) string {
	key := ""
	switch field {
	case "status":
		key = "txn_status." + v
	case "method":
		key = "method." + v
	}
	if key != "" {
		if s := T(ctx, key); !strings.HasPrefix(s, "[") {
			return s
		}
	}
	return v
}

func conflictSources(ctx context.Context, set string) string {
	var names []string
	for _, s := range strings.Split(set, ",") {
		if s != "" {
			names = append(names, T(ctx, "source."+s))
		}
	}
	return strings.Join(names, T(ctx, "detail.conflict_sep"))
}
