package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/brownout-io/brownout", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abc"},
			{Key: "vcs.time", Value: "2026-12-01T20:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	got := fromBuildInfo(bi)
	want := Info{Version: "v1.4.0", Revision: "0123abc", Modified: true, Time: "2026-12-01T20:00:00Z", GoVersion: "go1.26.0"}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	s := got.String()
	for _, w := range []string{"v1.4.0", "0123abc (modified)", "2026-12-01T20:00:00Z", "go1.26.0"} {
		if !strings.Contains(s, w) {
			t.Errorf("%q lacks %q", s, w)
		}
	}
}

func TestFromBuildInfoWithoutVCS(t *testing.T) {
	got := fromBuildInfo(&debug.BuildInfo{})
	if got.Revision != "unknown" || got.Version != "unknown" || got.Time != "unknown" {
		t.Fatalf("got %+v", got)
	}
}
