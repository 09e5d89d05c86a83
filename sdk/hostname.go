package sdk

import (
	"fmt"
	"os"
	"strings"

	"github.com/brownout-io/brownout/sdk/wire"
)

// Hostname returns this host's name (os.Hostname) as a valid instance
// name: lower-cased, with characters outside [a-z0-9._-] replaced by '-',
// leading punctuation dropped and cut to 64 characters. It is the usual
// instance name of a process that runs once per host or container.
func Hostname() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("brownout: hostname: %w", err)
	}
	name := InstanceName(h)
	if name == "" {
		return "", fmt.Errorf("brownout: hostname %q has no character usable in an instance name", h)
	}
	return name, nil
}

// InstanceName turns s into a valid instance name the way Hostname does,
// or returns "" when nothing of s is usable.
func InstanceName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() == 0:
			// a name starts with a letter or digit
		case r == '.' || r == '_' || r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() == wire.MaxNameLen {
			break
		}
	}
	name := b.String()
	if !wire.ValidName(name) {
		return ""
	}
	return name
}
