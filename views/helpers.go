package views

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"payfuse/channels"
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

func merchantPath(id uint64) string { return "/merchants/" + u64(id) }

// merchantOrList is a merchant's page, or the list for a merchant not yet
// created: where the merchant form posts and where its Cancel goes.
func merchantOrList(id uint64) string {
	if id == 0 {
		return "/merchants"
	}
	return merchantPath(id)
}

// L shows a channel's bilingual text in the request's language.
func L(ctx context.Context, t channels.Text) string { return t.In(LangOf(ctx)) }

func accountPath(id uint64) string { return "/channels/" + u64(id) }

func accountFormAction(id uint64) string {
	if id == 0 {
		return "/channels"
	}
	return accountPath(id)
}

func accountCancel(d AccountForm) string {
	if d.ID != 0 {
		return accountPath(d.ID)
	}
	return merchantPath(d.Merchant.ID)
}

func channelColour(code string) string {
	switch code {
	case "wechat":
		return "bg-[#07c160]"
	case "alipay":
		return "bg-[#1677ff]"
	case "unionpay":
		return "bg-[#d7000f]"
	}
	return "bg-slate-400"
}

func channelInitial(code string) string {
	switch code {
	case "wechat":
		return "微"
	case "alipay":
		return "支"
	case "unionpay":
		return "银"
	}
	return "?"
}

func channelName(ctx context.Context, code string) string {
	if spec, ok := models.LookupChannel(code); ok {
		return L(ctx, spec.Name)
	}
	return code
}

func methodsText(ctx context.Context, methods []string) string {
	if len(methods) == 0 {
		return "—"
	}
	out := make([]string, len(methods))
	for i, m := range methods {
		out[i] = T(ctx, "method."+m)
	}
	return strings.Join(out, " · ")
}

// feeRateText shows basis points as a percentage (60 → 0.60%).
func feeRateText(bp int) string {
	return strconv.Itoa(bp/100) + "." + fmt.Sprintf("%02d", bp%100) + "%"
}

func daysUntil(now, t time.Time) int { return int(t.Sub(now).Hours()/24) + 1 }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func secretStatus(list []models.SecretStatus, field string) (models.SecretStatus, bool) {
	for _, s := range list {
		if s.Field == field {
			return s, true
		}
	}
	return models.SecretStatus{}, false
}

func secretPlaceholder(ctx context.Context, set bool) string {
	if set {
		return T(ctx, "accounts.keep_secret")
	}
	return ""
}

func inputClass(bad bool) string {
	if bad {
		return "block w-full rounded-md border border-red-400 bg-white px-3 py-2 text-sm shadow-sm focus:outline-none focus:ring-2 focus:ring-red-300"
	}
	return "block w-full rounded-md border border-slate-300 bg-white px-3 py-2 text-sm shadow-sm focus:border-primary focus:outline-none focus:ring-2 focus:ring-primary/30"
}

// fieldProblem is the message for one credential field, from the form's
// field errors or the channel's checks.
func fieldProblem(ctx context.Context, d AccountForm, field string) string {
	if k := d.Errors[field]; k != "" {
		return T(ctx, k)
	}
	var msgs []string
	for _, p := range d.Problems {
		if p.Field == field {
			msgs = append(msgs, L(ctx, p.Message))
		}
	}
	return strings.Join(msgs, " ")
}

func generalProblems(ps []channels.Problem) []channels.Problem {
	var out []channels.Problem
	for _, p := range ps {
		if p.Field == "" {
			out = append(out, p)
		}
	}
	return out
}

// canOpen reports whether the signed-in user's navigation offers the area at
// path, i.e. whether links into it would open for them.
func canOpen(ctx context.Context, path string) bool {
	for _, item := range FrameOf(ctx).Nav {
		if item.Path == path {
			return true
		}
	}
	return false
}
