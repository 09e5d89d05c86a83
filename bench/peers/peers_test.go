package main

import (
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
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

// TestCompareSmall runs Brownout, centrifuge and centrifuge-ack with a few
// clients end to end: real controller and centrifuge processes, real SDK
// instances and websocket clients, every change reaching every client
// (and with acks, every ack read by the server), and the section written.
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
	// Each system's row, then the ratio rows (fewer cells).
	for _, want := range []string{"| brownout | 30 |", "| centrifuge | 30 |", "| centrifuge-ack | 30 |", "| centrifuge | 30 | ", "| centrifuge-ack | 30 | "} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "failed") {
		t.Errorf("a measurement failed:\n%s", s)
	}
	if !strings.Contains(s, "flagd: not measured (no --flagd-bin given).") {
		t.Errorf("report does not say that flagd was skipped:\n%s", s)
	}
	got, _ := os.ReadFile(md)
	if !strings.Contains(string(got), "<!-- peers:begin -->") {
		t.Errorf("section not written:\n%s", got)
	}
}

func TestSyncFlagsRequestEncoding(t *testing.T) {
	for _, tc := range []struct {
		provider, selector string
		want               map[protowire.Number]string
	}{
		{"peers", "", map[protowire.Number]string{1: "peers"}},
		{"peers", "source=flags.json", map[protowire.Number]string{1: "peers", 2: "source=flags.json"}},
		{"", "", map[protowire.Number]string{}},
	} {
		b := encodeSyncFlagsRequest(tc.provider, tc.selector)
		got := map[protowire.Number]string{}
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 || typ != protowire.BytesType {
				t.Fatalf("%q/%q: tag: n=%d type=%d", tc.provider, tc.selector, n, typ)
			}
			v, m := protowire.ConsumeString(b[n:])
			if m < 0 {
				t.Fatalf("%q/%q: value: %d", tc.provider, tc.selector, m)
			}
			got[num] = v
			b = b[n+m:]
		}
		if !maps.Equal(got, tc.want) {
			t.Errorf("%q/%q: fields %v, want %v", tc.provider, tc.selector, got, tc.want)
		}
	}
}

func TestSyncFlagsResponseDecoding(t *testing.T) {
	cfg := string(flagdFlagFile(2))
	// sync_context: a google.protobuf.Struct {fields: {"k": "v"}}.
	var value, entry, st []byte
	value = protowire.AppendTag(value, 3, protowire.BytesType) // Value.string_value
	value = protowire.AppendString(value, "v")
	entry = protowire.AppendTag(entry, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, "k")
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendBytes(entry, value)
	st = protowire.AppendTag(st, 1, protowire.BytesType)
	st = protowire.AppendBytes(st, entry)

	var full []byte
	full = protowire.AppendTag(full, respSyncContext, protowire.BytesType)
	full = protowire.AppendBytes(full, st)
	full = protowire.AppendTag(full, 9, protowire.VarintType) // a field a later flagd may add
	full = protowire.AppendVarint(full, 300)
	full = protowire.AppendTag(full, respFlagConfig, protowire.BytesType)
	full = protowire.AppendString(full, cfg)

	got, err := decodeSyncFlagsResponse(full)
	if err != nil || got != cfg {
		t.Fatalf("decode = %q, %v; want the flag file", got, err)
	}
	flags, err := parseFlagConfig(got)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := levelOf(flags), 2; got != want {
		t.Errorf("level %d, want %d", got, want)
	}
	if got, want := len(flags), 5; got != want {
		t.Errorf("%d flags resolved, want %d: %v", got, want, flags)
	}

	// The last occurrence of a field wins.
	twice := protowire.AppendTag(slices.Clone(full), respFlagConfig, protowire.BytesType)
	twice = protowire.AppendString(twice, string(flagdFlagFile(1)))
	if cfg, err := decodeSyncFlagsResponse(twice); err != nil {
		t.Fatal(err)
	} else if flags, err := parseFlagConfig(cfg); err != nil || levelOf(flags) != 1 {
		t.Errorf("repeated field: level %v (%v), want 1", flags[flagdLevelFlag], err)
	}

	for name, bad := range map[string][]byte{
		"truncated string": full[:len(full)-3],
		"truncated tag":    {0x80},
		"wrong wire type":  protowire.AppendVarint(protowire.AppendTag(nil, respFlagConfig, protowire.VarintType), 1),
	} {
		if _, err := decodeSyncFlagsResponse(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseFlagConfig(t *testing.T) {
	for _, level := range []int{0, 1, 2, 3} {
		flags, err := parseFlagConfig(string(flagdFlagFile(level)))
		if err != nil {
			t.Fatal(err)
		}
		if got := levelOf(flags); got != level {
			t.Errorf("level %d: resolved %d", level, got)
		}
		if got, want := flags["real_time_data"], level <= 1; got != want {
			t.Errorf("level %d: real_time_data %v, want %v", level, got, want)
		}
		if got, want := flags["analytics"], level == 0; got != want {
			t.Errorf("level %d: analytics %v, want %v", level, got, want)
		}
	}
	for name, cfg := range map[string]string{
		"not JSON":        `{"flags":`,
		"no flags":        `{}`,
		"unknown variant": `{"flags":{"level":{"state":"ENABLED","defaultVariant":"9","variants":{"1":1}}}}`,
	} {
		if _, err := parseFlagConfig(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	flags, err := parseFlagConfig(`{"flags":{"level":{"state":"DISABLED","defaultVariant":"1","variants":{"1":1}}}}`)
	if err != nil || levelOf(flags) != -1 {
		t.Errorf("a disabled flag resolved: %v, %v", flags, err)
	}
}

// TestFlagdSmall runs flagd end to end when PEERS_FLAGD_BIN names a
// binary (flagd is not built here): its fsnotify file source, a few raw
// SyncFlags streams, every change reaching every client.
func TestFlagdSmall(t *testing.T) {
	bin := os.Getenv("PEERS_FLAGD_BIN")
	if bin == "" {
		t.Skip("PEERS_FLAGD_BIN names no flagd binary")
	}
	c, err := parse([]string{"--systems", "flagd", "--flagd-bin", bin, "--clients", "25", "--changes", "4", "--settle", "200ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := runWith(c, &out, io.Discard); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if s := out.String(); !strings.Contains(s, "| flagd | 25 | ") || strings.Contains(s, "failed") {
		t.Errorf("report:\n%s", s)
	}
}
