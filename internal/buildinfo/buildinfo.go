// Package buildinfo reports what binary is running: the module version,
// the VCS commit and its time, and the Go toolchain, all read from the
// build information the Go linker embeds (debug.ReadBuildInfo). Nothing is
// injected with -ldflags, so `go install` and `go build` builds report the
// same truth as release builds.
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// Info describes the running binary. Unknown fields hold "unknown".
type Info struct {
	// Version is the main module's version ("v1.2.3", a pseudo-version, or
	// "(devel)" for a build from a work tree).
	Version string
	// Revision is the VCS commit the binary was built from; Modified says
	// the work tree had uncommitted changes.
	Revision string
	Modified bool
	// Time is the commit time of Revision (RFC 3339), the reproducible
	// stand-in for a build time.
	Time string
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Read returns the running binary's build information.
func Read() Info {
	info := Info{Version: "unknown", Revision: "unknown", Time: "unknown", GoVersion: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{Version: "unknown", Revision: "unknown", Time: "unknown", GoVersion: "unknown"}
	if bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String is the one-line form printed by `controlplane version`.
func (i Info) String() string {
	rev := i.Revision
	if i.Modified {
		rev += " (modified)"
	}
	return fmt.Sprintf("controlplane %s\ncommit %s\nbuilt from a commit of %s\n%s", i.Version, rev, i.Time, i.GoVersion)
}
