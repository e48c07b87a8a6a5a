package web

import (
	"github.com/gofiber/fiber/v2"

	"payfuse/handlers"
	"payfuse/models"
)

// Access is who may use a route.
type Access int

// Access levels. Admins pass every check; operators and finance pass the ones
// that name them.
const (
	Public   Access = iota // anyone, signed in or not
	Anyone                 // any signed-in user
	Admin                  // admins only
	Operator               // operators (and admins)
	Finance                // finance (and admins)
	OpsFin                 // operators and finance (and admins)
	// Bearer routes are the REST API's: an API token with the route's Perm,
	// sent as Authorization: Bearer; never a session (so no role passes).
	Bearer
	// Monitor routes are the monitoring system's: a connection from an
	// address on the metrics allow-list, or the metrics token; never a
	// session (so no role passes). Anything else is 403.
	Monitor
)

// Allows reports whether a role passes the check (role "" = anonymous).
func (a Access) Allows(role models.Role) bool {
	switch a {
	case Public:
		return true
	case Anyone:
		return role != ""
	case Bearer, Monitor:
		return false
	}
	if role == models.RoleAdmin {
		return true
	}
	switch a {
	case Operator:
		return role == models.RoleOperator
	case Finance:
		return role == models.RoleFinance
	case OpsFin:
		return role == models.RoleOperator || role == models.RoleFinance
	}
	return false
}

// Route is one line of the routes table.
type Route struct {
	Method  string
	Path    string
	Access  Access
	Handler fiber.Handler
	// API routes answer 401/403 as JSON instead of redirecting to sign-in.
	API bool
	// DuringPasswordChange routes stay reachable while a user must still
	// replace a generated password (everything else redirects to /account).
	DuringPasswordChange bool
	// Webhook routes are called by payment channels: no session, no CSRF —
	// the handler authenticates the request by its signature.
	Webhook bool
	// DuringEnrolment routes stay reachable while a user whose role requires
	// two-factor sign-in has not enrolled yet (everything else redirects to
	// /account/2fa).
	DuringEnrolment bool
	// StepUp routes are dangerous: they need a step-up check (password, plus
	// a code when the user has a second factor) within the last
	// models.StepUpTTL; without one the user is sent to /account/step-up and
	// brought back (a GET goes on where it was going; a POST returns to the
	// form it came from, to be submitted again — nothing is replayed).
	StepUp bool
	// Perm is the API token permission a Bearer route needs.
	Perm string
}

// Routes is PayFuse's routes table: every route, the role it needs, once.
// A test walks it and proves each route refuses the wrong people.
func Routes(h *handlers.Handlers, ops *Ops) []Route {
	return []Route{
		// Sign-in and session.
		{Method: "GET", Path: "/login", Access: Public, Handler: h.LoginForm},
		{Method: "POST", Path: "/login", Access: Public, Handler: h.LoginSubmit},
		{Method: "GET", Path: "/login/2fa", Access: Public, Handler: h.SecondFactorForm},
		{Method: "POST", Path: "/login/2fa", Access: Public, Handler: h.SecondFactorSubmit},
		{Method: "POST", Path: "/logout", Access: Anyone, Handler: h.Logout, DuringPasswordChange: true, DuringEnrolment: true},
		{Method: "POST", Path: "/lang", Access: Public, Handler: h.SetLanguage, DuringPasswordChange: true, DuringEnrolment: true},
		{Method: "GET", Path: "/healthz", Access: Public, Handler: h.Healthz, API: true},

		// Operations: readiness (database and schema), metrics for Prometheus,
		// and the Go profiler (admins, and only with serve --pprof).
		{Method: "GET", Path: "/readyz", Access: Public, Handler: h.Readyz, API: true},
		{Method: "GET", Path: "/metrics", Access: Monitor, Handler: ops.Metrics, API: true},
		{Method: "GET", Path: "/debug/pprof/*", Access: Admin, Handler: ops.Pprof},

		// Own account.
		{Method: "GET", Path: "/account", Access: Anyone, Handler: h.Account, DuringPasswordChange: true, DuringEnrolment: true},
		{Method: "POST", Path: "/account/password", Access: Anyone, Handler: h.AccountPasswordUpdate, DuringPasswordChange: true, DuringEnrolment: true},

		// Own two-factor sign-in, and the step-up check before dangerous actions.
		{Method: "GET", Path: "/account/2fa", Access: Anyone, Handler: h.TwoFactor, DuringEnrolment: true},
		{Method: "GET", Path: "/account/2fa/qr.png", Access: Anyone, Handler: h.TwoFactorQR, DuringEnrolment: true},
		{Method: "POST", Path: "/account/2fa/enable", Access: Anyone, Handler: h.TwoFactorEnable, DuringEnrolment: true},
		{Method: "POST", Path: "/account/2fa/disable", Access: Anyone, Handler: h.TwoFactorDisable},
		{Method: "POST", Path: "/account/2fa/recovery", Access: Anyone, Handler: h.TwoFactorRecoveryRegenerate, StepUp: true},
		{Method: "GET", Path: "/account/step-up", Access: Anyone, Handler: h.StepUpForm},
		{Method: "POST", Path: "/account/step-up", Access: Anyone, Handler: h.StepUpSubmit},

		// Areas.
		{Method: "GET", Path: "/", Access: Anyone, Handler: h.Dashboard},

		// Merchants: everyone sees those in scope; admins change them.
		{Method: "GET", Path: "/merchants", Access: Anyone, Handler: h.MerchantList},
		{Method: "GET", Path: "/merchants/new", Access: Admin, Handler: h.MerchantNew},
		{Method: "POST", Path: "/merchants", Access: Admin, Handler: h.MerchantCreate},
		{Method: "GET", Path: "/merchants/:id", Access: Anyone, Handler: h.MerchantShow},
		{Method: "GET", Path: "/merchants/:id/edit", Access: Admin, Handler: h.MerchantEdit},
		{Method: "POST", Path: "/merchants/:id", Access: Admin, Handler: h.MerchantUpdate},
		{Method: "POST", Path: "/merchants/:id/suspend", Access: Admin, Handler: h.MerchantSuspend},
		{Method: "POST", Path: "/merchants/:id/reactivate", Access: Admin, Handler: h.MerchantReactivate},

		// Channel accounts: operators see (never the secrets of) their merchants'
		// accounts and may re-run the checks; only admins touch credentials.
		{Method: "GET", Path: "/channels", Access: Operator, Handler: h.AccountList},
		{Method: "GET", Path: "/channels/new", Access: Admin, Handler: h.AccountNew, StepUp: true},
		{Method: "POST", Path: "/channels", Access: Admin, Handler: h.AccountCreate, StepUp: true},
		{Method: "GET", Path: "/channels/:id", Access: Operator, Handler: h.AccountShow},
		{Method: "POST", Path: "/channels/:id/check", Access: Operator, Handler: h.AccountCheck},
		{Method: "GET", Path: "/channels/:id/edit", Access: Admin, Handler: h.AccountEdit, StepUp: true},
		{Method: "POST", Path: "/channels/:id", Access: Admin, Handler: h.AccountUpdate, StepUp: true},
		{Method: "POST", Path: "/channels/:id/delete", Access: Admin, Handler: h.AccountDelete, StepUp: true},

		// Channel column mapping for statements without a native format.
		{Method: "GET", Path: "/channels/:id/mapping", Access: Operator, Handler: h.MappingEdit},
		{Method: "POST", Path: "/channels/:id/mapping/preview", Access: Operator, Handler: h.MappingPreview},
		{Method: "POST", Path: "/channels/:id/mapping", Access: Operator, Handler: h.MappingSave},

		// The ledger: operators and finance look up payments; finance corrects them.
		{Method: "GET", Path: "/ledger", Access: OpsFin, Handler: h.LedgerList},
		{Method: "GET", Path: "/ledger/export", Access: OpsFin, Handler: h.LedgerExport},
		{Method: "GET", Path: "/ledger/:id", Access: OpsFin, Handler: h.LedgerShow},
		{Method: "POST", Path: "/ledger/:id/corrections", Access: Finance, Handler: h.LedgerCorrect},

		// Reconciliation: finance sets statements against the other sources.
		{Method: "GET", Path: "/reconcile", Access: Finance, Handler: h.ReconcileCalendar},
		{Method: "POST", Path: "/reconcile/run", Access: Finance, Handler: h.ReconcileRun},
		{Method: "GET", Path: "/reconcile/days/:id", Access: Finance, Handler: h.ReconcileDay},
		{Method: "GET", Path: "/reconcile/items/:id", Access: Finance, Handler: h.ReconcileItem},
		{Method: "POST", Path: "/reconcile/items/:id/resolve", Access: Finance, Handler: h.ReconcileResolve},
		{Method: "POST", Path: "/reconcile/items/:id/notes", Access: Finance, Handler: h.ReconcileNote},

		// Event triggers: operators and finance see the rules; operators (and admins)
		// change them and manage the webhook endpoints, whose log finance has no use for.
		// Before the flows' /flows/:id routes, which would otherwise take these paths.
		{Method: "GET", Path: "/flows/triggers", Access: OpsFin, Handler: h.TriggerList},
		{Method: "GET", Path: "/flows/triggers/new", Access: Operator, Handler: h.TriggerNew},
		{Method: "POST", Path: "/flows/triggers", Access: Operator, Handler: h.TriggerCreate},
		{Method: "GET", Path: "/flows/triggers/:id/edit", Access: Operator, Handler: h.TriggerEdit},
		{Method: "POST", Path: "/flows/triggers/:id", Access: Operator, Handler: h.TriggerUpdate},
		{Method: "POST", Path: "/flows/triggers/:id/enable", Access: Operator, Handler: h.TriggerEnable},
		{Method: "POST", Path: "/flows/triggers/:id/disable", Access: Operator, Handler: h.TriggerDisable},
		{Method: "GET", Path: "/flows/webhooks", Access: Operator, Handler: h.WebhookList},
		{Method: "GET", Path: "/flows/webhooks/new", Access: Operator, Handler: h.WebhookNew},
		{Method: "POST", Path: "/flows/webhooks", Access: Operator, Handler: h.WebhookCreate},
		{Method: "GET", Path: "/flows/webhooks/:id/deliveries", Access: Operator, Handler: h.WebhookDeliveries},
		{Method: "POST", Path: "/flows/webhooks/:id/rotate", Access: Operator, Handler: h.WebhookRotate, StepUp: true},
		{Method: "POST", Path: "/flows/webhooks/:id/enable", Access: Operator, Handler: h.WebhookEnable},
		{Method: "POST", Path: "/flows/webhooks/:id/disable", Access: Operator, Handler: h.WebhookDisable},
		{Method: "POST", Path: "/flows/webhooks/:id/delete", Access: Operator, Handler: h.WebhookDelete},

		// Flows: operators and finance watch them; operators (and admins) change and run them.
		{Method: "GET", Path: "/flows", Access: OpsFin, Handler: h.FlowList},
		{Method: "GET", Path: "/flows/new", Access: Operator, Handler: h.FlowNew},
		{Method: "POST", Path: "/flows", Access: Operator, Handler: h.FlowCreate},
		{Method: "GET", Path: "/flows/runs/:id", Access: OpsFin, Handler: h.FlowRunShow},
		{Method: "GET", Path: "/flows/:id", Access: OpsFin, Handler: h.FlowShow},
		{Method: "GET", Path: "/flows/:id/edit", Access: Operator, Handler: h.FlowEdit},
		{Method: "POST", Path: "/flows/:id", Access: Operator, Handler: h.FlowUpdate},
		{Method: "POST", Path: "/flows/:id/run", Access: Operator, Handler: h.FlowRun},
		{Method: "POST", Path: "/flows/:id/enable", Access: Operator, Handler: h.FlowEnable},
		{Method: "POST", Path: "/flows/:id/disable", Access: Operator, Handler: h.FlowDisable},

		// The alert inbox: everyone sees the alerts of their merchants.
		{Method: "GET", Path: "/alerts", Access: Anyone, Handler: h.AlertList},
		{Method: "POST", Path: "/alerts/:id/acknowledge", Access: Anyone, Handler: h.AlertAcknowledge},
		{Method: "POST", Path: "/alerts/:id/resolve", Access: Anyone, Handler: h.AlertResolve},

		// Statement imports.
		{Method: "GET", Path: "/imports", Access: OpsFin, Handler: h.ImportList},
		{Method: "POST", Path: "/imports", Access: OpsFin, Handler: h.ImportUpload},
		{Method: "GET", Path: "/imports/:id", Access: OpsFin, Handler: h.ImportShow},

		// Channel notifications (signed by the channel, not a session).
		{Method: "POST", Path: "/notify/:channel/:account", Access: Public, Handler: h.Notify, API: true, Webhook: true},

		// KPIs: operators and finance see the scores and try weights (the preview
		// changes nothing); admins save and restore weight sets.
		{Method: "GET", Path: "/kpis", Access: OpsFin, Handler: h.KPIPage},
		{Method: "POST", Path: "/kpis/preview", Access: OpsFin, Handler: h.KPIPreview},
		{Method: "POST", Path: "/kpis/weights", Access: Admin, Handler: h.KPIWeightsSave},
		{Method: "GET", Path: "/kpis/versions/:version", Access: OpsFin, Handler: h.KPIVersionShow},
		{Method: "POST", Path: "/kpis/versions/:version/restore", Access: Admin, Handler: h.KPIWeightsRestore},

		// Finance reports: daily and monthly settlement, on screen and exported.
		{Method: "GET", Path: "/reports", Access: Finance, Handler: h.Reports},
		{Method: "GET", Path: "/reports/export", Access: Finance, Handler: h.ReportExport},

		// API tokens: admins make them for any merchants; operators for their
		// own merchants, with only the permissions they have themselves.
		{Method: "GET", Path: "/api-tokens", Access: Operator, Handler: h.APITokenList},
		{Method: "GET", Path: "/api-tokens/new", Access: Operator, Handler: h.APITokenNew, StepUp: true},
		{Method: "POST", Path: "/api-tokens", Access: Operator, Handler: h.APITokenCreate, StepUp: true},
		{Method: "POST", Path: "/api-tokens/:id/revoke", Access: Operator, Handler: h.APITokenRevoke},

		// The REST API (docs/API.md): bearer tokens, not sessions; JSON in and out.
		{Method: "GET", Path: "/api/v1/openapi.json", Access: Public, Handler: h.APIOpenAPI, API: true},
		{Method: "GET", Path: "/api/v1/transactions", Access: Bearer, Perm: models.PermLedgerRead, Handler: h.APITransactionList, API: true},
		{Method: "POST", Path: "/api/v1/transactions", Access: Bearer, Perm: models.PermLedgerWrite, Handler: h.APITransactionCreate, API: true},
		{Method: "GET", Path: "/api/v1/transactions/:id", Access: Bearer, Perm: models.PermLedgerRead, Handler: h.APITransactionShow, API: true},
		{Method: "PATCH", Path: "/api/v1/transactions/:id", Access: Bearer, Perm: models.PermLedgerWrite, Handler: h.APITransactionUpdate, API: true},
		{Method: "POST", Path: "/api/v1/imports", Access: Bearer, Perm: models.PermImportsWrite, Handler: h.APIImportCreate, API: true},
		{Method: "GET", Path: "/api/v1/reports/daily", Access: Bearer, Perm: models.PermReportsRead, Handler: h.APIReportDaily, API: true},
		{Method: "GET", Path: "/api/v1/reports/monthly", Access: Bearer, Perm: models.PermReportsRead, Handler: h.APIReportMonthly, API: true},
		{Method: "GET", Path: "/api/v1/kpis", Access: Bearer, Perm: models.PermReportsRead, Handler: h.APIKPIs, API: true},

		// Users (admin).
		{Method: "GET", Path: "/users", Access: Admin, Handler: h.UserList},
		{Method: "GET", Path: "/users/new", Access: Admin, Handler: h.UserNew},
		{Method: "POST", Path: "/users", Access: Admin, Handler: h.UserCreate, StepUp: true},
		{Method: "POST", Path: "/users/2fa-policy", Access: Admin, Handler: h.TwoFactorPolicyUpdate, StepUp: true},
		{Method: "GET", Path: "/users/:id", Access: Admin, Handler: h.UserEdit},
		{Method: "POST", Path: "/users/:id", Access: Admin, Handler: h.UserUpdate, StepUp: true},
		{Method: "POST", Path: "/users/:id/disable", Access: Admin, Handler: h.UserDisable},
		{Method: "POST", Path: "/users/:id/enable", Access: Admin, Handler: h.UserEnable},
		{Method: "POST", Path: "/users/:id/unlock", Access: Admin, Handler: h.UserUnlock},
		{Method: "POST", Path: "/users/:id/reset-password", Access: Admin, Handler: h.UserResetPassword, StepUp: true},
		{Method: "POST", Path: "/users/:id/2fa/reset", Access: Admin, Handler: h.UserTwoFactorReset, StepUp: true},
		{Method: "POST", Path: "/users/:id/sessions/:sid/revoke", Access: Admin, Handler: h.UserSessionRevoke},
		{Method: "POST", Path: "/users/:id/sessions/revoke-all", Access: Admin, Handler: h.UserSessionsRevokeAll},

		// Audit log (admin).
		{Method: "GET", Path: "/audit", Access: Admin, Handler: h.AuditList},
	}
}
