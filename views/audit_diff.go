package views

import (
	"encoding/json"
	"sort"
	"strings"
)

// Change is one field of an audit record's before/after.
type Change struct {
	Field, Before, After string
}

// diffJSON lists the fields that differ between two JSON objects (all fields
// of whichever side exists when the other is empty).
func diffJSON(before, after string) []Change {
	b, a := flatJSON(before), flatJSON(after)
	keys := map[string]bool{}
	for k := range b {
		keys[k] = true
	}
	for k := range a {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []Change
	for _, k := range names {
		if b[k] == a[k] && len(b) > 0 && len(a) > 0 {
			continue
		}
		out = append(out, Change{Field: k, Before: b[k], After: a[k]})
	}
	return out
}

func flatJSON(s string) map[string]string {
	out := map[string]string{}
	if s == "" {
		return out
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return out
	}
	for k, v := range m {
		switch t := v.(type) {
		case nil:
			out[k] = "∅"
		case string:
			out[k] = t
		case []any:
			parts := make([]string, len(t))
			for i, e := range t {
				raw, _ := json.Marshal(e)
				parts[i] = strings.Trim(string(raw), `"`)
			}
			out[k] = "[" + strings.Join(parts, ", ") + "]"
		default:
			raw, _ := json.Marshal(t)
			out[k] = string(raw)
		}
	}
	return out
}

// actionTone colours audit actions: failures red, removals amber.
func actionTone(action string) string {
	switch {
	case strings.Contains(action, "failure"), strings.Contains(action, "locked"):
		return "red"
	case strings.Contains(action, "disable"), strings.Contains(action, "revoke"), strings.Contains(action, "reset"):
		return "amber"
	case strings.Contains(action, "create"), strings.Contains(action, "success"), strings.Contains(action, "enable"):
		return "green"
	}
	return "blue"
}
