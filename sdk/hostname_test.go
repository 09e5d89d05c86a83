package sdk

import (
	"strings"
	"testing"

	"github.com/brownout-io/brownout/sdk/wire"
)

func TestInstanceName(t *testing.T) {
	for in, want := range map[string]string{
		"checkout-7f9c":         "checkout-7f9c",
		"MacBook-Pro.local":     "macbook-pro.local",
		"-web_1":                "web_1",
		"pod/αβ":                "pod---",
		"---":                   "",
		"":                      "",
		strings.Repeat("a", 80): strings.Repeat("a", 64),
	} {
		if got := InstanceName(in); got != want {
			t.Errorf("InstanceName(%q) = %q, want %q", in, got, want)
		}
		if got := InstanceName(in); got != "" && !wire.ValidName(got) {
			t.Errorf("InstanceName(%q) = %q is not a valid name", in, got)
		}
	}
	h, err := Hostname()
	if err != nil || !wire.ValidName(h) {
		t.Fatalf("Hostname() = %q, %v", h, err)
	}
}

// The state file's directory is created when missing.
func TestStateFileDirectoryIsCreated(t *testing.T) {
	path := t.TempDir() + "/a/b/state.json"
	if err := saveState(path, &remembered{}); err != nil {
		t.Fatal(err)
	}
}
