package web

import (
	"context"
	"net/http"
	"time"

	"github.com/brownout-io/brownout/web/pages/overview"
)

// overviewFetchBudget bounds the time a page render spends fetching
// sparklines that are not cached yet; the live hub fills in the rest
// within a second.
const overviewFetchBudget = 20 * time.Millisecond

func (h *handler) overview(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	m := overview.Model{Meta: h.meta(r, rc, "Overview", "overview", topicOverview)}
	m.Cards, m.Summary = h.cards(r.Context())
	h.render(w, r, http.StatusOK, overview.Page(m))
}

func (h *handler) cards(ctx context.Context) ([]overview.Card, overview.Summary) {
	views := h.d.Controller.Services()
	deadline := time.Now().Add(overviewFetchBudget)
	cards := make([]overview.Card, len(views))
	for i, v := range views {
		e := h.sparks.get(ctx, v.Name, time.Now().Before(deadline))
		cards[i] = overview.CardOf(v, e.To, e.Points)
	}
	return cards, overview.SummaryOf(views)
}
