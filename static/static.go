// Package static embeds the built CSS, the vendored JavaScript and icons so
// the binary needs nothing beside it.
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
)

// FS holds the files served under /static/.
//
//go:embed app.css app.js htmx.min.js echarts.min.js dashboard.js favicon.svg
var FS embed.FS

var versions = map[string]string{}

func init() {
	entries, _ := fs.ReadDir(FS, ".")
	for _, e := range entries {
		b, err := FS.ReadFile(e.Name())
		if err != nil {
			continue
		}
		sum := sha256.Sum256(b)
		versions[e.Name()] = hex.EncodeToString(sum[:])[:12]
	}
}

// URL returns the path of an embedded file with a content hash, so browsers
// may cache it for a year and still see every new build.
func URL(name string) string {
	return "/static/" + name + "?v=" + versions[name]
}
