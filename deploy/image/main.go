// Command image builds Brownout's container image without a container
// engine: the static controlplane binary appended to an empty base as one
// layer, written as an OCI image layout (for registries and skopeo/crane)
// and as a tarball (for `docker load`/`podman load` and `crane validate
// --tarball`).
//
// The image runs as uid/gid 65532 (nonroot), never as root, and writes
// only to /data (its volume) and /tmp, so it runs on a read-only root file
// system: deploy/k8s sets readOnlyRootFilesystem.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// Nonroot is the uid and gid the controller runs as (distroless's
// "nonroot").
const Nonroot = 65532

// BinaryPath is where the controller lives in the image.
const BinaryPath = "/usr/local/bin/controlplane"

// Options say what to build.
type Options struct {
	Binary  string    // static linux binary to put in the image
	Arch    string    // GOARCH of Binary (amd64, arm64)
	Version string    // image version label
	Commit  string    // VCS revision label
	Created time.Time // image and file times (the commit time: reproducible)
	CACerts string    // CA bundle for outgoing TLS (webhooks); "" for none
}

func main() {
	var o Options
	var layoutDir, tarPath, tag, created string
	flag.StringVar(&o.Binary, "binary", "", "static linux controlplane binary (CGO_ENABLED=0)")
	flag.StringVar(&o.Arch, "arch", "amd64", "GOARCH the binary was built for")
	flag.StringVar(&o.Version, "version", "dev", "version label")
	flag.StringVar(&o.Commit, "commit", "unknown", "VCS revision label")
	flag.StringVar(&created, "created", "", "creation time, RFC 3339 or Unix seconds (default: SOURCE_DATE_EPOCH, else 1970)")
	flag.StringVar(&o.CACerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to include (empty: none)")
	flag.StringVar(&layoutDir, "layout", "", "write an OCI image layout to this directory")
	flag.StringVar(&tarPath, "tarball", "", "write a docker/OCI tarball to this file")
	flag.StringVar(&tag, "tag", "brownout/controlplane:dev", "reference recorded in the layout and tarball")
	flag.Parse()
	if err := run(o, created, layoutDir, tarPath, tag); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(o Options, created, layoutDir, tarPath, tag string) error {
	if o.Binary == "" || (layoutDir == "" && tarPath == "") {
		return errors.New("need --binary and at least one of --layout, --tarball")
	}
	if created == "" {
		created = os.Getenv("SOURCE_DATE_EPOCH")
	}
	t, err := parseTime(created)
	if err != nil {
		return err
	}
	o.Created = t
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	img, err := Build(o)
	if err != nil {
		return err
	}
	if err := validate.Image(img); err != nil {
		return fmt.Errorf("built image does not validate: %w", err)
	}
	if layoutDir != "" {
		if err := os.RemoveAll(layoutDir); err != nil {
			return err
		}
		p, err := layout.Write(layoutDir, empty.Index)
		if err != nil {
			return fmt.Errorf("write layout: %w", err)
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": ref.String(),
		})); err != nil {
			return fmt.Errorf("write layout: %w", err)
		}
	}
	if tarPath != "" {
		if err := tarball.WriteToFile(tarPath, ref, img); err != nil {
			return fmt.Errorf("write tarball: %w", err)
		}
	}
	d, _ := img.Digest()
	fmt.Printf("built %s %s (layout %q, tarball %q)\n", ref, d, layoutDir, tarPath)
	return nil
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("created %q: want RFC 3339 or Unix seconds", s)
	}
	return t.UTC(), nil
}

// Build returns the image: one layer with the root file system, and a
// config that runs `controlplane serve` as nonroot on 0.0.0.0:8080 with
// its data in /data.
func Build(o Options) (v1.Image, error) {
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("read binary: %w", err)
	}
	if !bytes.HasPrefix(bin, []byte("\x7fELF")) {
		return nil, fmt.Errorf("%s is not an ELF binary: build it with GOOS=linux CGO_ENABLED=0", o.Binary)
	}
	var certs []byte
	if o.CACerts != "" {
		if certs, err = os.ReadFile(o.CACerts); err != nil {
			return nil, fmt.Errorf("read CA bundle: %w", err)
		}
	}
	rootfs, err := rootFS(bin, certs, o.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(rootfs)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:       layer,
		Annotations: map[string]string{"org.opencontainers.image.title": "rootfs"}, // non-empty: an empty map does not survive a manifest round trip
		History:     v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: "deploy/image: controlplane " + o.Version, Comment: "static binary on an empty base"},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.Arch
	cf.Created = v1.Time{Time: o.Created}
	uid := strconv.Itoa(Nonroot)
	cf.Config = v1.Config{
		User:         uid + ":" + uid,
		Entrypoint:   []string{BinaryPath},
		Cmd:          []string{"serve", "--addr", "0.0.0.0:8080", "--data", "/data"},
		WorkingDir:   "/data",
		Env:          []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "TMPDIR=/tmp"},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}},
		Volumes:      map[string]struct{}{"/data": {}},
		StopSignal:   "SIGTERM",
		Labels: map[string]string{
			"org.opencontainers.image.title":    "brownout controlplane",
			"org.opencontainers.image.source":   "https://github.com/brownout-io/brownout",
			"org.opencontainers.image.version":  o.Version,
			"org.opencontainers.image.revision": o.Commit,
			"org.opencontainers.image.licenses": "Apache-2.0",
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, map[string]string{
		"org.opencontainers.image.version":  o.Version,
		"org.opencontainers.image.revision": o.Commit,
		"org.opencontainers.image.created":  o.Created.Format(time.RFC3339),
	}).(v1.Image), nil
}

// rootFS is the layer's tar: the few directories and files a static Go
// binary needs, owned by root except the writable /data.
func rootFS(bin, certs []byte, mod time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: mod, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mod, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	passwd := "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/data:/sbin/nologin\n"
	group := "root:x:0:\nnonroot:x:65532:\n"
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return dir("usr", 0o755, 0) },
		func() error { return dir("usr/local", 0o755, 0) },
		func() error { return dir("usr/local/bin", 0o755, 0) },
		func() error { return file(strings.TrimPrefix(BinaryPath, "/"), 0o755, bin) },
		func() error { return dir("data", 0o700, Nonroot) },
		func() error { return dir("tmp", 0o1777, 0) },
	}
	if certs != nil {
		steps = append(steps,
			func() error { return dir("etc/ssl", 0o755, 0) },
			func() error { return dir("etc/ssl/certs", 0o755, 0) },
			func() error { return file("etc/ssl/certs/ca-certificates.crt", 0o644, certs) },
		)
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, fmt.Errorf("root file system: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
