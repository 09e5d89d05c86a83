package web

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/brownout-io/brownout/internal/controller"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/web/pages/overview"
)

// overviewFetchBudget bounds the time a page render spends fetching
// sparklines that are not cached yet; the live hub fills in the rest
// within a second.
const overviewFetchBudget = 20 * time.Millisecond

func (h *handler) overview(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	m := overview.Model{Meta: h.meta(r, rc, "Overview", "overview", topicOverview)}
	m.Cards, m.Summary = h.cards(r.Context())
	if h.d.Replicas != nil {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		rs, err := h.d.Replicas.Replicas(ctx)
		cancel()
		if err != nil {
			h.d.Log.Warn("dashboard: list replicas", "err", err)
		}
		m.Replicas = rs
	}
	h.render(w, r, http.StatusOK, overview.Page(m))
}

func (h *handler) cards(ctx context.Context) ([]overview.Card, overview.Summary) {
	views := h.services()
	deadline := time.Now().Add(overviewFetchBudget)
	cards := make([]overview.Card, len(views))
	for i, v := range views {
		cards[i] = overview.CardOf(v, h.sparks.svgs(ctx, v.Name, levels.Thresholds(v.Thresholds), time.Now().Before(deadline)))
	}
	return cards, overview.SummaryOf(views)
}

// services lists services worst first: effective level, then computed
// level (so that under emergency mode the services that would be degraded
// anyway lead), then name.
func (h *handler) services() []controller.ServiceView {
	views := h.d.Controller.Services()
	sort.SliceStable(views, func(i, j int) bool {
		if views[i].Level != views[j].Level {
			return views[i].Level > views[j].Level
		}
		if views[i].ComputedLevel != views[j].ComputedLevel {
			return views[i].ComputedLevel > views[j].ComputedLevel
		}
		return views[i].Name < views[j].Name
	})
	return views
}
