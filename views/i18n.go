package views

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"strings"

	"golang.org/x/text/language"
)

// Languages the console speaks, in the order the language switch shows them.
const (
	LangZH = "zh-CN"
	LangEN = "en"
)

// Languages lists the supported language tags.
var Languages = []string{LangZH, LangEN}

// LanguageNames are shown in the language switch, each in its own language.
var LanguageNames = map[string]string{LangZH: "简体中文", LangEN: "English"}

//go:embed locales/*.json
var localeFS embed.FS

// catalogs maps a language tag to its messages (key -> text). Texts may hold
// fmt verbs; Tf fills them.
var catalogs = loadCatalogs()

func loadCatalogs() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, lang := range Languages {
		raw, err := localeFS.ReadFile("locales/" + lang + ".json")
		if err != nil {
			panic("views: missing catalog " + lang)
		}
		m := map[string]string{}
		if err := json.Unmarshal(raw, &m); err != nil {
			panic("views: bad catalog " + lang + ": " + err.Error())
		}
		out[lang] = m
	}
	return out
}

// Catalog returns the messages of one language (for tests).
func Catalog(lang string) map[string]string { return catalogs[lang] }

var matcher = language.NewMatcher([]language.Tag{language.SimplifiedChinese, language.English})

// MatchLanguage picks the supported language that best fits an
// Accept-Language header; Chinese in any script or region means zh-CN.
func MatchLanguage(acceptLanguage string) string {
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return LangZH
	}
	_, idx, conf := matcher.Match(tags...)
	if conf == language.No {
		return LangZH
	}
	if idx == 0 {
		return LangZH
	}
	return LangEN
}

// NormalizeLanguage returns lang when supported, else "".
func NormalizeLanguage(lang string) string {
	for _, l := range Languages {
		if strings.EqualFold(l, lang) {
			return l
		}
	}
	return ""
}

// Translate returns the text for key in lang. A missing key shows itself in
// brackets (and a test makes sure no used key is missing).
func Translate(lang, key string) string {
	if s, ok := catalogs[lang][key]; ok {
		return s
	}
	if s, ok := catalogs[LangEN][key]; ok {
		return s
	}
	return "[" + key + "]"
}

// T translates key into the language of the request in ctx.
func T(ctx context.Context, key string) string { return Translate(LangOf(ctx), key) }

// Tf translates key and fills its fmt verbs with args.
func Tf(ctx context.Context, key string, args ...any) string {
	return fmt.Sprintf(T(ctx, key), args...)
}
