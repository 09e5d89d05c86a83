// Package ui holds what every dashboard page shares: the layout, the
// emergency banner, level badges, time tags and the server-rendered SVG
// charts. Pages live in web/pages, one folder each.
package ui

import (
	"strconv"
	"strings"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/levels"
)

// User is who is looking at a page.
type User struct {
	Name  string
	Scope string
}

// Admin reports whether the user may change things. Viewers get no forms.
func (u User) Admin() bool { return u.Scope == brownout.ScopeAdmin }

// Meta is what the layout needs on every page.
type Meta struct {
	Title string
	// Nav names the active navigation entry.
	Nav  string
	User User
	// CSRF is the session's form token; every form carries it.
	CSRF string
	// Live is the live-update topic of the page ("overview", "service:NAME",
	// "global"); empty for none.
	Live      string
	Emergency *brownout.Override
	// Flash is a short confirmation shown once, after a redirect.
	Flash string
	// CSSURL and JSURL are the fingerprinted static assets.
	CSSURL string
	JSURL  string
	// Now is the server's time at render, so that relative times in the
	// browser do not depend on its clock.
	Now time.Time
}

// LevelName returns a level's name, e.g. "ESSENTIAL".
func LevelName(l int) string { return levels.Level(l).String() }

// LevelClass is the CSS class that colours a level; the name is always
// shown beside the colour.
func LevelClass(l int) string {
	if l < 0 || l > 3 {
		return "lvx"
	}
	return "lv" + strconv.Itoa(l)
}

// LevelLabel is "L2 ESSENTIAL".
func LevelLabel(l int) string { return "L" + strconv.Itoa(l) + " " + LevelName(l) }

// TimeFormat is how absolute times read on the dashboard (UTC).
const TimeFormat = "2006-01-02 15:04:05 UTC"

// FormatTime renders t in UTC, or "—" when zero.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format(TimeFormat)
}

// ISO is t for a datetime attribute.
func ISO(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Pct formats a percentage with one decimal: "42.0%".
func Pct(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + "%" }

// Rate formats an error rate (0–1) as a percentage with two decimals.
func Rate(v float64) string { return strconv.FormatFloat(v*100, 'f', 2, 64) + "%" }

// Num formats a threshold value without noise: 70, 0.05.
func Num(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// Itoa is strconv.Itoa, for templates.
func Itoa[T ~int | ~int64 | ~uint64](v T) string { return strconv.FormatInt(int64(v), 10) }

// Dur formats a duration compactly: "15m", "1h30m", "45s".
func Dur(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// OverrideScope describes an override's scope for people.
func OverrideScope(o brownout.Override) string {
	if o.Service == brownout.GlobalScope {
		return "all services"
	}
	return o.Service
}

// Dur2 formats a short latency: "850µs", "12ms", "1.2s".
func Dur2(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// Pct0 formats an axis percentage: "50%".
func Pct0(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + "%" }

// Rate1 formats an axis error rate: "12.5%".
func Rate1(v float64) string { return strconv.FormatFloat(v*100, 'f', 1, 64) + "%" }
