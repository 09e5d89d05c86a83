package sdk

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// breakGlass remembers what the switch said last so that polling costs one
// getenv and one stat per second, and a bad value is logged once, not every
// second. Only the poller touches it (and Connect before the poller starts).
type breakGlass struct {
	env     string
	envSet  bool
	modTime time.Time
	size    int64
	exists  bool
	file    string // the file's trimmed content
}

// pollBreakGlass reads the switch and, when the forced level changes,
// republishes the state.
func (c *Client) pollBreakGlass() {
	bg := &c.breakGlass
	level, forced := Level(0), false

	env := strings.TrimSpace(c.cfg.getenv(c.cfg.forceEnv))
	if env != "" {
		l, err := ParseLevel(env)
		if err == nil {
			level, forced = l, true
		} else if !bg.envSet || env != bg.env {
			c.log.Warn("brownout: ignoring invalid break-glass variable",
				slog.String("variable", c.cfg.forceEnv), slog.Any(logKeyError, err))
		}
	}
	bg.env, bg.envSet = env, true

	if !forced && c.cfg.forceFile != "" {
		content, changed := bg.readFile(c.cfg.forceFile)
		if content != "" && !strings.EqualFold(content, "off") {
			l, err := ParseLevel(content)
			if err == nil {
				level, forced = l, true
			} else if changed {
				c.log.Warn("brownout: ignoring invalid break-glass file",
					slog.String(logKeyPath, c.cfg.forceFile), slog.Any(logKeyError, err))
			}
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if forced == c.forced && level == c.force {
		return
	}
	if forced {
		c.log.Warn("brownout: break-glass switch forces level", slog.String(logKeyLevel, level.String()))
	} else {
		c.log.Info("brownout: break-glass switch released")
	}
	c.forced, c.force = forced, level
	c.recomputeLocked()
}

// readFile returns the trimmed content of path (empty if it does not exist)
// and whether it changed since the previous call. It reads the file only
// when its size or modification time changed.
func (bg *breakGlass) readFile(path string) (string, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		changed := bg.exists
		bg.exists, bg.file = false, ""
		return "", changed
	}
	if bg.exists && fi.ModTime().Equal(bg.modTime) && fi.Size() == bg.size {
		return bg.file, false
	}
	f, err := os.Open(path)
	if err != nil {
		return bg.file, false
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 64))
	content := strings.TrimSpace(string(b))
	changed := !bg.exists || content != bg.file
	bg.exists, bg.modTime, bg.size, bg.file = true, fi.ModTime(), fi.Size(), content
	return content, changed
}
