// Package prometheus holds example alert rules for the controller; the
// test checks them with Debian's promtool and runs their unit tests.
package prometheus

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not installed (apt-get install prometheus; .ci/run does)")
		}
		t.Skip("promtool not installed")
	}
	return p
}

func TestRulesCheckAndPassTheirUnitTests(t *testing.T) {
	p := promtool(t)
	if out, err := exec.Command(p, "check", "rules", "alerts.yml").CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := exec.Command(p, "test", "rules", "alerts_test.yml").CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestRulesUseMetricsTheControllerExports keeps the rules from naming a
// metric that was renamed or never existed: every brownout_* name in them
// must be registered in the controller's source (histograms with their
// _bucket, _sum and _count series).
func TestRulesUseMetricsTheControllerExports(t *testing.T) {
	b, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	name := regexp.MustCompile(`Name:\s*"(brownout_[a-z_]+)"`)
	err = filepath.WalkDir("../../internal", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range name.FindAllStringSubmatch(string(src), -1) {
			exported[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !exported["brownout_service_level"] {
		t.Fatalf("found no metric registrations in ../../internal (%d names): the scan is broken", len(exported))
	}
	for _, m := range regexp.MustCompile(`brownout_[a-z_]+`).FindAllString(string(b), -1) {
		base := m
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(m, suf) && exported[strings.TrimSuffix(m, suf)] {
				base = strings.TrimSuffix(m, suf)
			}
		}
		if !exported[base] {
			t.Errorf("alerts.yml uses %s, which the controller does not export", m)
		}
	}
}
