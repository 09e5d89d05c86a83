// Package shop is a small web shop whose optional features cost real CPU and
// are gated by Brownout flags: as the controller degrades the service, the
// expensive parts switch off and the core (product pages, checkout) stays
// fast.
//
// Features and the flags that gate them:
//
//   - recommendations: "customers also bought", a similarity scan over the
//     catalogue (flag recommendations; the /api/recommendations route is
//     also shed with 503 from ESSENTIAL on);
//   - personalization: a ranking of categories derived from the user
//     (flag personalization);
//   - analytics: per-request event aggregation (flag analytics);
//   - real-time inventory: stock recomputed from the ledger instead of the
//     cached count (flag real_time_data).
package shop

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/brownout-io/brownout/sdk"
	"github.com/brownout-io/brownout/sdk/bulkhead"
)

// Flag names, as in the controller's default flag sets.
const (
	FlagRecommendations = "recommendations"
	FlagPersonalization = "personalization"
	FlagAnalytics       = "analytics"
	FlagRealTimeData    = "real_time_data"
)

// Sizes that set what each feature costs; a recommendation scan is a few
// milliseconds of CPU on a laptop.
const (
	catalogSize   = 2000
	vectorDims    = 64
	ledgerPerItem = 1000
	analyticsSize = 10000
	hashRounds    = 2000
)

// Product is one catalogue entry.
type Product struct {
	ID       int     `json:"id"`
	Name     string  `json:"name"`
	Category string  `json:"category"`
	Price    float64 `json:"price"`
}

// Page is a product page; optional parts are omitted when their feature is
// off.
type Page struct {
	Product         Product   `json:"product"`
	Stock           int       `json:"stock"`
	StockRealTime   bool      `json:"stock_real_time"`
	Recommendations []Product `json:"recommendations,omitempty"`
	ForYou          []string  `json:"for_you,omitempty"`
	Level           string    `json:"level"`
}

var categories = []string{"books", "garden", "kitchen", "music", "outdoor", "toys", "tools", "games"}

// Optional-content headers: every product page and every answer of the
// optional routes says how many optional parts it could have carried and
// how many it did, so that a load generator can measure the share of
// optional content served (the Brownout paper's utility) without parsing
// bodies.
const (
	HeaderOptionalOffered = "X-Optional-Offered"
	HeaderOptionalServed  = "X-Optional-Served"
)

// An Option adjusts the shop at New.
type Option func(*Shop)

// WithoutShed keeps the optional routes answering at every level (their
// content still follows the flags) instead of shedding them with 503 from
// ESSENTIAL on: the shape of a service that gates features but does not
// shed.
func WithoutShed() Option { return func(s *Shop) { s.noShed = true } }

// WithShedFrom sheds the optional routes from level l on (default
// ESSENTIAL).
func WithShedFrom(l sdk.Level) Option { return func(s *Shop) { s.shedFrom = l } }

// WithWork repeats each optional feature's computation n times (default 1,
// at most 100), so that an experiment can make optional content dominate
// the cost of a page the way it does in real shops without raising request
// rates to where the load generator competes for the CPU.
func WithWork(n int) Option {
	return func(s *Shop) { s.work = min(max(n, 1), 100) }
}

// WithOptionalLimit runs the optional work of every answer (a product
// page's optional parts, the recommendations route) in a bulkhead of n
// slots: an answer that finds no slot free within wait is served without
// its optional content. A burst then costs the shop n CPU-bound requests
// at a time however many arrive, from its first moment, before the
// controller's level reaches the shop, and the goroutines waiting for a
// slot are parked rather than competing for the CPU with the ones that
// would apply the new level. n ≤ 0 sets no limit (the default); wait ≤ 0
// means no waiting.
func WithOptionalLimit(n int, wait time.Duration) Option {
	return func(s *Shop) {
		if n <= 0 {
			return
		}
		queue := 4 * n
		if wait <= 0 {
			queue = 0
		}
		s.optional = bulkhead.New(bulkhead.Config{Name: "optional", MaxConcurrent: n, MaxQueue: queue, QueueTimeout: wait})
	}
}

// Shop holds the catalogue and the in-memory feature state.
type Shop struct {
	client   *sdk.Client
	optional *bulkhead.Bulkhead // nil: no limit
	noShed   bool
	shedFrom sdk.Level
	work     int
	products []Product
	vectors  [][]float64
	ledger   [][]int32 // per product: stock movements
	cached   []int     // per product: stock as of the last batch update

	mu     sync.Mutex
	events map[string]int // analytics: views per category
	recent []float64      // analytics: prices of the latest views
	p95    float64        // analytics: 95th percentile of recent prices
}

// New returns the shop's HTTP handler, counting requests and 5xx for the
// client's reports.
func New(client *sdk.Client, opts ...Option) http.Handler {
	s := newShop(client, 1)
	s.shedFrom, s.work = sdk.LevelEssential, 1
	for _, o := range opts {
		o(s)
	}
	optional := func(h http.HandlerFunc) http.Handler {
		if s.noShed {
			return h
		}
		return client.Shed(s.shedFrom, h)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /products/{id}", s.product)
	mux.Handle("GET /api/recommendations/{id}", optional(s.recommendations))
	mux.Handle("GET /api/analytics", optional(s.analytics))
	mux.HandleFunc("POST /checkout/{id}", s.checkout)
	mux.HandleFunc("GET /status", s.status)
	return client.Middleware(mux)
}

func newShop(client *sdk.Client, seed uint64) *Shop {
	rnd := rand.New(rand.NewPCG(seed, seed))
	s := &Shop{client: client, events: make(map[string]int)}
	for i := range catalogSize {
		s.products = append(s.products, Product{
			ID:       i,
			Name:     "Product " + strconv.Itoa(i),
			Category: categories[rnd.IntN(len(categories))],
			Price:    math.Round(rnd.Float64()*10000) / 100,
		})
		v := make([]float64, vectorDims)
		for d := range v {
			v[d] = rnd.NormFloat64()
		}
		s.vectors = append(s.vectors, v)
		moves := make([]int32, ledgerPerItem)
		stock := 0
		for m := range moves {
			moves[m] = int32(rnd.IntN(21) - 8)
			stock += int(moves[m])
		}
		s.ledger = append(s.ledger, moves)
		s.cached = append(s.cached, max(stock, 0))
	}
	return s
}

func (s *Shop) lookup(w http.ResponseWriter, r *http.Request) (Product, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || id < 0 || id >= len(s.products) {
		http.Error(w, "no such product", http.StatusNotFound)
		return Product{}, false
	}
	return s.products[id], true
}

func (s *Shop) index(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{"products": s.products[:20], "level": s.client.Level().String()})
}

func (s *Shop) product(w http.ResponseWriter, r *http.Request) {
	p, ok := s.lookup(w, r)
	if !ok {
		return
	}
	page := Page{Product: p, Level: s.client.Level().String(), Stock: s.cached[p.ID]}
	served := 0
	if ok, held := s.acquireOptional(r); ok {
		page.Stock, page.StockRealTime = s.stock(p.ID)
		if page.StockRealTime {
			served++
		}
		if s.client.Enabled(FlagRecommendations) {
			page.Recommendations = s.recommend(p.ID, 5)
			served++
		}
		if s.client.Enabled(FlagPersonalization) {
			page.ForYou = s.personalize(r.Header.Get("X-User"))
			served++
		}
		if s.client.Enabled(FlagAnalytics) {
			s.record(p)
			served++
		}
		if held {
			s.optional.Release()
		}
	}
	optionalHeaders(w, 4, served)
	writeJSON(w, page)
}

// acquireOptional takes a slot for optional work: ok is false when the
// bulkhead is full (the answer goes without its optional content), held
// says a slot was taken (and must be released).
func (s *Shop) acquireOptional(r *http.Request) (ok, held bool) {
	if s.optional == nil || !s.anyOptional() {
		return true, false
	}
	if s.optional.Acquire(r.Context()) != nil {
		return false, false
	}
	return true, true
}

// anyOptional tells whether any optional feature is on: with all of them
// off there is nothing to hold a slot for.
func (s *Shop) anyOptional() bool {
	return s.client.Enabled(FlagRealTimeData) || s.client.Enabled(FlagRecommendations) ||
		s.client.Enabled(FlagPersonalization) || s.client.Enabled(FlagAnalytics)
}

func (s *Shop) recommendations(w http.ResponseWriter, r *http.Request) {
	p, ok := s.lookup(w, r)
	if !ok {
		return
	}
	ok, held := false, false
	if s.client.Enabled(FlagRecommendations) {
		ok, held = s.acquireOptional(r)
	}
	if !ok {
		optionalHeaders(w, 1, 0)
		writeJSON(w, []Product{})
		return
	}
	recs := s.recommend(p.ID, 10)
	if held {
		s.optional.Release()
	}
	optionalHeaders(w, 1, 1)
	writeJSON(w, recs)
}

func (s *Shop) analytics(w http.ResponseWriter, r *http.Request) {
	if !s.client.Enabled(FlagAnalytics) {
		optionalHeaders(w, 1, 0)
		http.Error(w, "analytics are off at this level", http.StatusNotFound)
		return
	}
	optionalHeaders(w, 1, 1)
	s.mu.Lock()
	views := make(map[string]int, len(s.events))
	for k, v := range s.events {
		views[k] = v
	}
	p95 := s.p95
	s.mu.Unlock()
	writeJSON(w, map[string]any{"views": views, "price_p95": p95})
}

// checkout is the core: never gated, always cheap.
func (s *Shop) checkout(w http.ResponseWriter, r *http.Request) {
	p, ok := s.lookup(w, r)
	if !ok {
		return
	}
	w.WriteHeader(http.StatusCreated)
	writeJSON(w, map[string]any{"ordered": p.ID, "total": p.Price})
}

func (s *Shop) status(w http.ResponseWriter, r *http.Request) {
	st := s.client.State()
	writeJSON(w, map[string]any{
		"level": st.Level.String(), "version": st.Version, "source": st.Source.String(), "flags": st.Flags,
	})
}

// stock recomputes the stock from the ledger when real-time data is on,
// else serves the cached count.
func (s *Shop) stock(id int) (int, bool) {
	if !s.client.Enabled(FlagRealTimeData) {
		return s.cached[id], false
	}
	// Replaying the ledger of the product's whole category stands for the
	// round trips a real inventory service would make.
	total := 0
	for range s.work {
		total = s.replay(id)
	}
	return total, true
}

func (s *Shop) replay(id int) int {
	total := 0
	for i, p := range s.products {
		if p.Category != s.products[id].Category {
			continue
		}
		sum := 0
		for _, m := range s.ledger[i] {
			sum += int(m)
		}
		if i == id {
			total = max(sum, 0)
		}
	}
	return total
}

// recommend scans the whole catalogue for the n products most similar to id.
func (s *Shop) recommend(id, n int) []Product {
	var out []Product
	for range s.work {
		out = s.recommendOnce(id, n)
	}
	return out
}

func (s *Shop) recommendOnce(id, n int) []Product {
	type scored struct {
		id    int
		score float64
	}
	v := s.vectors[id]
	all := make([]scored, 0, len(s.products)-1)
	for i, u := range s.vectors {
		if i == id {
			continue
		}
		var dot, nu, nv float64
		for d := range u {
			dot += u[d] * v[d]
			nu += u[d] * u[d]
			nv += v[d] * v[d]
		}
		all = append(all, scored{i, dot / math.Sqrt(nu*nv)})
	}
	slices.SortFunc(all, func(a, b scored) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return a.id - b.id
	})
	out := make([]Product, 0, n)
	for _, sc := range all[:n] {
		out = append(out, s.products[sc.id])
	}
	return out
}

// personalize derives a ranking of categories from the user by repeated
// hashing, standing for a model evaluation.
func (s *Shop) personalize(user string) []string {
	sum := sha256.Sum256([]byte(user))
	for range hashRounds * s.work {
		sum = sha256.Sum256(sum[:])
	}
	ranked := slices.Clone(categories)
	rnd := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])))
	rnd.Shuffle(len(ranked), func(i, j int) { ranked[i], ranked[j] = ranked[j], ranked[i] })
	return ranked[:3]
}

// record counts a view and recomputes a percentile over the latest views,
// as an analytics pipeline would on every event.
func (s *Shop) record(p Product) {
	s.mu.Lock()
	s.events[p.Category]++
	if len(s.recent) == analyticsSize {
		copy(s.recent, s.recent[1:])
		s.recent = s.recent[:analyticsSize-1]
	}
	s.recent = append(s.recent, p.Price)
	recent := slices.Clone(s.recent)
	s.mu.Unlock()
	// The percentile is computed outside the lock, so that analytics cost
	// CPU rather than a queue behind one mutex.
	var p95 float64
	for range s.work {
		sorted := slices.Clone(recent)
		slices.Sort(sorted)
		p95 = sorted[len(sorted)*95/100]
	}
	s.mu.Lock()
	s.p95 = p95
	s.mu.Unlock()
}

// optionalHeaders says how many optional parts an answer could have
// carried and how many it did; a shed answer (503) carries none.
func optionalHeaders(w http.ResponseWriter, offered, served int) {
	w.Header().Set(HeaderOptionalOffered, strconv.Itoa(offered))
	w.Header().Set(HeaderOptionalServed, strconv.Itoa(served))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
