package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	if os.Getenv("PEERS_CHILD") == "centrifuge-server" {
		if err := centrifugeServer(os.Args[1:]); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestCompareSmall runs both systems with a few clients end to end: real
// controller and centrifuge processes, real SDK instances and websocket
// clients, every change reaching every client, and the section written.
func TestCompareSmall(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "controlplane")
	build := exec.Command("go", "build", "-o", bin, "./cmd/controlplane")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the controller: %v\n%s", err, out)
	}
	md := filepath.Join(t.TempDir(), "B.md")
	c, err := parse([]string{"--bin", bin, "--clients", "30", "--changes", "3", "--settle", "200ms", "--bench-md", md}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	c.self, c.selfEnv = []string{self}, []string{"PEERS_CHILD=centrifuge-server"}
	var out strings.Builder
	if err := runWith(c, &out, io.Discard); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{"| brownout | 30 |", "| centrifuge | 30 |", "| centrifuge | 30 | "} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "failed") {
		t.Errorf("a measurement failed:\n%s", s)
	}
	got, _ := os.ReadFile(md)
	if !strings.Contains(string(got), "<!-- peers:begin -->") {
		t.Errorf("section not written:\n%s", got)
	}
}
