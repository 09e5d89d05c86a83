package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// TestImage builds an image around an ELF file (the test binary stands in
// for the controller), writes both outputs and checks what an operator
// relies on: it validates as crane validate does, runs as nonroot, and
// only /data belongs to that user.
func TestImage(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lay, tb := filepath.Join(dir, "layout"), filepath.Join(dir, "image.tar")
	if err := run(Options{Binary: self, Arch: "amd64", Version: "v0.0.1", Commit: "abc", CACerts: ""}, "1700000000", lay, tb, "brownout/controlplane:test"); err != nil {
		t.Fatal(err)
	}

	idx, err := layout.ImageIndexFromPath(lay)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("layout: %v", err)
	}
	img, err := tarball.ImageFromPath(tb, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil { // what `crane validate --tarball` runs
		t.Fatalf("tarball: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cf.Config.User, "65532:65532"; got != want {
		t.Errorf("user %q, want %q", got, want)
	}
	if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != BinaryPath {
		t.Errorf("entrypoint %q", got)
	}
	if got, want := cf.Created.Time, time.Unix(1700000000, 0).UTC(); !got.Equal(want) {
		t.Errorf("created %v, want %v", got, want)
	}
	if cf.Config.Labels["org.opencontainers.image.version"] != "v0.0.1" || cf.OS != "linux" {
		t.Errorf("config %+v", cf)
	}

	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	seen := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name] = h
		if h.Uid != 0 && h.Name != "data/" {
			t.Errorf("%s owned by %d: only /data may belong to the runtime user", h.Name, h.Uid)
		}
	}
	for name, mode := range map[string]int64{"usr/local/bin/controlplane": 0o755, "data/": 0o700, "tmp/": 0o1777, "etc/passwd": 0o644} {
		h := seen[name]
		if h == nil {
			t.Errorf("%s missing from the image", name)
			continue
		}
		if h.Mode != mode {
			t.Errorf("%s mode %o, want %o", name, h.Mode, mode)
		}
	}
	if h := seen["data/"]; h != nil && h.Uid != Nonroot {
		t.Errorf("/data owned by %d, want %d", h.Uid, Nonroot)
	}
}

func TestBuildRefusesANonELFBinary(t *testing.T) {
	p := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(Options{Binary: p, Arch: "amd64"}); err == nil {
		t.Fatal("a shell script was accepted as the controller binary")
	}
}
