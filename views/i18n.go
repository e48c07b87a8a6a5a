package views

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
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

//go:embed locales
var localeFS embed.FS

// catalogs maps a language tag to its messages (key -> text). Texts may hold
// fmt verbs; Tf fills them. Each language is locales/<lang>.json plus any
// locales/<lang>/*.json (one file per area); a key defined twice is a bug.
var catalogs = loadCatalogs()

func loadCatalogs() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, lang := range Languages {
		files := []string{"locales/" + lang + ".json"}
		if more, err := fs.Glob(localeFS, "locales/"+lang+"/*.json"); err == nil {
			files = append(files, more...)
		}
		m := map[string]string{}
		for _, name := range files {
			raw, err := localeFS.ReadFile(name)
			if err != nil {
				panic("views: missing catalog " + name)
			}
			part := map[string]string{}
			if err := json.Unmarshal(raw, &part); err != nil {
				panic("views: bad catalog " + name + ": " + err.Error())
			}
			for k, v := range part {
				if _, dup := m[k]; dup {
					panic("views: key " + k + " defined twice in the " + lang + " catalog (" + name + ")")
				}
				m[k] = v
			}
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
