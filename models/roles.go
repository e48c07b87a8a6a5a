package models

import (
	"fmt"
	"regexp"
	"slices"

	"gorm.io/gorm"
)

// Role is what a user may do. Admins may do everything; operators and finance
// staff act only within their merchant scope.
type Role string

// The roles.
const (
	RoleAdmin    Role = "admin"
	RoleOperator Role = "operator"
	RoleFinance  Role = "finance"
)

// Roles lists every role in display order.
var Roles = []Role{RoleAdmin, RoleOperator, RoleFinance}

// ParseRole accepts exactly one of the role names.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if slices.Contains(Roles, r) {
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want admin, operator or finance)", s)
}

var merchantCodeRE = regexp.MustCompile(`^[A-Z0-9_-]{2,32}$`)

// ValidMerchantCode reports whether s has the shape of a merchant code.
func ValidMerchantCode(s string) bool { return merchantCodeRE.MatchString(s) }

// Scope is the set of merchants a user may see. Admins see all.
type Scope struct {
	All       bool
	Merchants []string
}

// ScopeFor returns the scope of a user with the given role and merchant codes.
func ScopeFor(role Role, merchants []string) Scope {
	if role == RoleAdmin {
		return Scope{All: true}
	}
	return Scope{Merchants: merchants}
}

// Allows reports whether the scope includes merchant code.
func (s Scope) Allows(code string) bool {
	return s.All || slices.Contains(s.Merchants, code)
}

// Filter restricts a query to rows whose column holds a merchant code in scope.
// An empty scope matches nothing. Every query over merchant-owned rows goes
// through it, so an id guessed in a URL finds nothing outside the scope.
func (s Scope) Filter(column string) func(*gorm.DB) *gorm.DB {
	return func(db *gorm.DB) *gorm.DB {
		if s.All {
			return db
		}
		if len(s.Merchants) == 0 {
			return db.Where("1 = 0")
		}
		return db.Where(column+" IN ?", s.Merchants)
	}
}

// DemoMerchants are the merchant codes the demo data uses.
var DemoMerchants = []string{"SHOP_BJ", "SHOP_GZ", "SHOP_SH"}
