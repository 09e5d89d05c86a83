package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

// serveFlags returns serve's flags and their defaults, from its -h output.
func serveFlags(t *testing.T) map[string]string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := serveCmd([]string{"-h"}, &out, &errOut); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve -h: %v", err)
	}
	flags := map[string]string{}
	name := regexp.MustCompile(`^  -([a-z0-9-]+)`)
	def := regexp.MustCompile(`\(default "?([^")]*)"?\)$`)
	cur := ""
	sc := bufio.NewScanner(&errOut)
	for sc.Scan() {
		line := sc.Text()
		if m := name.FindStringSubmatch(line); m != nil {
			cur = m[1]
			flags[cur] = ""
			if strings.Contains(line, " bool") || !strings.Contains(strings.TrimPrefix(line, "  -"+cur), " ") {
				flags[cur] = "false"
			}
			continue
		}
		if m := def.FindStringSubmatch(line); m != nil && cur != "" {
			flags[cur] = m[1]
		}
	}
	if len(flags) < 10 {
		t.Fatalf("parsed %d flags from serve -h:\n%s", len(flags), errOut.String())
	}
	return flags
}

// TestOperationsDocListsEveryFlag holds docs/operations.md to the flag
// set: every flag has a row naming its environment variable and its
// default, and no row names a flag that does not exist.
func TestOperationsDocListsEveryFlag(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	row := regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)` \\|.*$")
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		rows[m[1]] = m[0]
	}
	flags := serveFlags(t)
	for name, def := range flags {
		r, ok := rows[name]
		if !ok {
			t.Errorf("--%s (default %q) is missing from docs/operations.md's configuration reference", name, def)
			continue
		}
		env := "CONTROLPLANE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if !strings.Contains(r, "`"+env+"`") {
			t.Errorf("--%s: row does not name %s:\n%s", name, env, r)
		}
		want := "`" + def + "`"
		if def == "" {
			want = "(none)"
		}
		if !strings.Contains(r, want) {
			t.Errorf("--%s: row does not give the default %s:\n%s", name, want, r)
		}
	}
	for name := range rows {
		if _, ok := flags[name]; !ok {
			t.Errorf("docs/operations.md documents --%s, which serve does not have", name)
		}
	}
}
