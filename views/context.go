package views

import (
	"context"
	"time"

	"payfuse/models"
)

// Frame is what every page needs besides its own data: who is looking, in
// which language, the CSRF token for its forms, the navigation and a flash.
type Frame struct {
	Lang      string
	CSRF      string
	User      *models.User // nil before sign-in
	Path      string       // the request path, to mark the active navigation item
	Nav       []NavItem
	Flash     *Flash
	RequestID string
}

// NavItem is one entry of the sidebar.
type NavItem struct {
	Path    string
	Label   string // translation key
	Icon    string // name of an icon in icons.templ
	Pending bool   // the area is being built by a later release
	Badge   int64  // a count to show next to it (open alerts), 0 for none
}

// Flash is a one-time message shown after an action.
type Flash struct {
	Kind string // success, error, info
	Text string // already translated
}

type frameKey struct{}

// WithFrame attaches a frame to ctx for the components below.
func WithFrame(ctx context.Context, f *Frame) context.Context {
	return context.WithValue(ctx, frameKey{}, f)
}

// FrameOf returns the frame in ctx (an empty one if none).
func FrameOf(ctx context.Context) *Frame {
	if f, ok := ctx.Value(frameKey{}).(*Frame); ok && f != nil {
		return f
	}
	return &Frame{Lang: LangZH}
}

// LangOf returns the language of the request in ctx.
func LangOf(ctx context.Context) string {
	if l := FrameOf(ctx).Lang; l != "" {
		return l
	}
	return LangZH
}

// DisplayZone is where console times are shown until a page has a merchant's
// own time zone to use (merchants default to it too).
var DisplayZone = mustZone("Asia/Shanghai")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// FormatTime shows t in the display zone; TimeTitle gives the full zone and UTC for a hover.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(DisplayZone).Format("2006-01-02 15:04:05")
}

// TimeTitle is the hover text of a time: its zone and the UTC instant.
func TimeTitle(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(DisplayZone).Format("2006-01-02 15:04:05 MST (UTC-07:00)") + " · " + t.UTC().Format(time.RFC3339)
}
