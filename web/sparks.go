package web

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/web/pages/overview"
	"github.com/brownout-io/brownout/web/ui"
)

// Sparklines cover the last 15 minutes in 15 s steps and are refreshed from
// history at most every sparkTTL, so that a card's bytes stay the same
// between refreshes and the live hub sends nothing when nothing changed.
const (
	sparkWindow = 15 * time.Minute
	sparkStep   = 15 * time.Second
	sparkTTL    = 15 * time.Second
)

type sparkEntry struct {
	// To is when the points were fetched: the sparkline's right edge.
	To     time.Time
	Points []brownout.SamplePoint
	// svgs caches the rendered sparklines of these points for th.
	svgs *[3]string
	th   levels.Thresholds
}

type sparkCache struct {
	hist History
	now  func() time.Time

	mu sync.Mutex
	m  map[string]sparkEntry
}

func newSparkCache(h History, now func() time.Time) *sparkCache {
	return &sparkCache{hist: h, now: now, m: map[string]sparkEntry{}}
}

// get returns the service's sparkline points, fetching them when missing or
// older than sparkTTL and fetch is set. Without fetch it returns what it
// has, possibly nothing; the live hub fills gaps within a second.
func (c *sparkCache) get(ctx context.Context, service string, fetch bool) sparkEntry {
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[service]
	c.mu.Unlock()
	if c.hist == nil || (ok && now.Sub(e.To) < sparkTTL) || !fetch {
		return e
	}
	to := now.Truncate(time.Second)
	pts, err := c.hist.QuerySamples(ctx, service, to.Add(-sparkWindow), to, sparkStep)
	if err != nil {
		return e
	}
	e = sparkEntry{To: to, Points: pts}
	c.mu.Lock()
	c.m[service] = e
	c.mu.Unlock()
	return e
}

// svgs returns the service's three sparklines (CPU, memory, error rate)
// as SVG markup. They are rendered once per refresh of the points (or
// change of thresholds), not once per page: the overview of 200 services
// would otherwise spend most of its time drawing the same lines again.
func (c *sparkCache) svgs(ctx context.Context, service string, th levels.Thresholds, fetch bool) [3]string {
	e := c.get(ctx, service, fetch)
	if e.svgs != nil && sameThresholds(e.th, th) {
		return *e.svgs
	}
	charts := overview.Sparks(th, e.To, e.Points)
	var out [3]string
	var b strings.Builder
	for i, ch := range charts {
		b.Reset()
		_ = ui.ChartSVG(ch).Render(ctx, &b)
		out[i] = b.String()
	}
	if !e.To.IsZero() {
		c.mu.Lock()
		if cur, ok := c.m[service]; ok && cur.To.Equal(e.To) {
			cur.svgs, cur.th = &out, th
			c.m[service] = cur
		}
		c.mu.Unlock()
	}
	return out
}

func sameThresholds(a, b levels.Thresholds) bool {
	return a.Cooldown == b.Cooldown && slices.Equal(a.Levels, b.Levels)
}

// retain drops services that no longer exist.
func (c *sparkCache) retain(names map[string]struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n := range c.m {
		if _, ok := names[n]; !ok {
			delete(c.m, n)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
