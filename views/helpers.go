package views

import (
	"context"
	"strconv"
	"strings"
	"time"

	"payfuse/models"
)

// isActive reports whether the navigation item for itemPath is the current area.
func isActive(current, itemPath string) bool {
	if itemPath == "/" {
		return current == "/"
	}
	return current == itemPath || strings.HasPrefix(current, itemPath+"/")
}

type timeValue = time.Time

func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }

func flashRole(kind string) string {
	if kind == "error" {
		return "alert"
	}
	return "status"
}

// badgeClass maps a tone to its colours; one tone per meaning everywhere.
func badgeClass(tone string) string {
	switch tone {
	case "green":
		return "bg-green-50 text-green-700 ring-1 ring-inset ring-green-600/20"
	case "red":
		return "bg-red-50 text-red-700 ring-1 ring-inset ring-red-600/20"
	case "amber":
		return "bg-amber-50 text-amber-800 ring-1 ring-inset ring-amber-600/20"
	case "blue":
		return "bg-blue-50 text-blue-700 ring-1 ring-inset ring-blue-600/20"
	case "purple":
		return "bg-purple-50 text-purple-700 ring-1 ring-inset ring-purple-600/20"
	}
	return "bg-slate-100 text-slate-600 ring-1 ring-inset ring-slate-500/20"
}

// RoleTone is the badge colour of a role.
func RoleTone(r models.Role) string {
	switch r {
	case models.RoleAdmin:
		return "purple"
	case models.RoleOperator:
		return "blue"
	case models.RoleFinance:
		return "amber"
	}
	return "gray"
}

// scopeText describes a user's merchant scope.
func scopeText(ctx context.Context, u *models.User) string {
	if u.Role == models.RoleAdmin {
		return T(ctx, "scope.all")
	}
	if len(u.Merchants) == 0 {
		return T(ctx, "scope.none")
	}
	return strings.Join(u.Merchants, ", ")
}

func userPath(id uint64) string { return "/users/" + u64(id) }

func u64(n uint64) string { return strconv.FormatUint(n, 10) }

func isLocked(u *models.User) bool {
	return u.LockedUntil != nil && time.Now().Before(*u.LockedUntil)
}
