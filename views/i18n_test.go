package views_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"payfuse/models"
	"payfuse/views"
)

// keyRE finds string literals shaped like translation keys (prefix.rest).
var keyRE = regexp.MustCompile(`"((?:account|accounts|action|apitokens|action_name|alerts|audit|auth|common|correction|dashboard|err|error|export|field|flows|imports|kind|layout|ledger|mapping|merchant_status|merchants|method|nav|notify|pager|placeholder|kpi|recon|refund_state|reports|role|scope|sessions|source|status|triggers|twofa|txn_status|users|webhooks)\.[a-z0-9_.]+)"`)

// usedKeys collects every key literal in the Go and templ sources, plus the
// keys built at run time (roles, audit actions, error pages).
func usedKeys(t *testing.T) map[string]bool {
	keys := map[string]bool{}
	for _, dir := range []string{"../views", "../handlers", "../web", "../models", ".."} {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, f := range files {
			if !(strings.HasSuffix(f, ".go") || strings.HasSuffix(f, ".templ")) || strings.HasSuffix(f, "_templ.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range keyRE.FindAllStringSubmatch(string(b), -1) {
				if !strings.HasSuffix(m[1], ".") {
					keys[m[1]] = true
				}
			}
		}
	}
	for _, r := range models.Roles {
		keys["role."+string(r)] = true
	}
	for _, m := range models.Methods {
		keys["method."+m] = true
	}
	for _, b := range models.ReconBuckets {
		keys["recon.bucket."+b], keys["recon.bucket_help."+b] = true, true
	}
	for _, st := range []string{models.ReconBalanced, models.ReconOpen, models.ReconNoStatement} {
		keys["recon.status."+st] = true
	}
	for _, st := range models.AlertStatuses {
		keys["alerts.status."+st] = true
	}
	for _, sv := range models.AlertSeverities {
		keys["alerts.severity."+sv] = true
	}
	for _, r := range models.ReconResolutions {
		keys["recon.resolution."+r] = true
	}
	for _, a := range models.AuditActions {
		keys["action_name."+a] = true
	}
	for _, d := range models.KPIDefs {
		keys["kpi.name."+d.Key], keys["kpi.unit."+d.Unit] = true, true
	}
	for _, r := range []string{"7d", "30d", "90d", "custom"} {
		keys["kpi.range."+r] = true
	}
	for _, k := range []string{"400", "401", "403", "404", "405", "413", "429", "500", "503", "csrf"} {
		keys["error."+k+".title"], keys["error."+k+".body"] = true, true
	}
	return keys
}

func TestCatalogsHaveEveryKeyInBothLanguages(t *testing.T) {
	en, zh := views.Catalog(views.LangEN), views.Catalog(views.LangZH)
	if len(en) == 0 || len(zh) == 0 {
		t.Fatal("a catalog is empty")
	}
	for k, v := range en {
		if strings.TrimSpace(zh[k]) == "" {
			t.Errorf("zh-CN lacks %q", k)
		}
		if strings.TrimSpace(v) == "" {
			t.Errorf("en has an empty %q", k)
		}
		if strings.Count(v, "%") != strings.Count(zh[k], "%") {
			t.Errorf("%q: the languages take different arguments", k)
		}
	}
	for k := range zh {
		if _, ok := en[k]; !ok {
			t.Errorf("en lacks %q", k)
		}
	}
	used := usedKeys(t)
	if len(used) < 100 {
		t.Fatalf("found only %d keys in the sources; the scan is broken", len(used))
	}
	for k := range used {
		if _, ok := en[k]; !ok {
			t.Errorf("key %q is used but not in the catalogs", k)
		}
	}
}

func TestMatchLanguage(t *testing.T) {
	for header, want := range map[string]string{
		"":                       views.LangZH,
		"en-US,en;q=0.9":         views.LangEN,
		"zh-CN,zh;q=0.9,en;q=.8": views.LangZH,
		"zh-Hant-TW":             views.LangZH,
		"fr-FR,en;q=0.5":         views.LangEN,
		"de":                     views.LangZH,
		"garbage;;;":             views.LangZH,
	} {
		if got := views.MatchLanguage(header); got != want {
			t.Errorf("MatchLanguage(%q) = %s, want %s", header, got, want)
		}
	}
}
