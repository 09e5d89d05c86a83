package server

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/auth"
	"github.com/brownout-io/brownout/internal/controller"
	"github.com/brownout-io/brownout/internal/featureflags"
	"github.com/brownout-io/brownout/internal/health"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/sdk/api"
)

// list is one page of a list answer.
type list[T any] = api.Page[T]

// postReports accepts one report or an array. All reports are validated
// before any is ingested, so a bad batch changes nothing.
func (s *Server) postReports(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r)
	if p.Scope == brownout.ScopeViewer {
		writeError(w, r, brownout.Errorf(brownout.EFORBIDDEN, "a viewer token may not send reports"))
		return
	}
	if err := checkContentType(r); err != nil {
		writeError(w, r, err)
		return
	}
	reports, err := health.DecodeReports(r.Body)
	if err != nil {
		s.metrics.ReportsRejected.WithLabelValues("http", brownout.ErrorCode(err)).Inc()
		writeError(w, r, err)
		return
	}
	now := s.cfg.Now()
	for i := range reports {
		if err := reports[i].ValidateWith(now, s.cfg.ReportLimits); err != nil {
			if len(reports) > 1 {
				if be, ok := err.(*brownout.Error); ok {
					be.Message = "report " + strconv.Itoa(i) + ": " + be.Message
				}
			}
			s.metrics.ReportsRejected.WithLabelValues("http", brownout.ErrorCode(err)).Inc()
			writeError(w, r, err)
			return
		}
		if !p.CanActFor(reports[i].Service) {
			writeError(w, r, brownout.Errorf(brownout.EFORBIDDEN, "this token may not report for service %q", reports[i].Service))
			return
		}
	}
	for _, rep := range reports {
		if err := s.ctl.Ingest(r.Context(), rep); err != nil {
			s.metrics.ReportsRejected.WithLabelValues("http", brownout.ErrorCode(err)).Inc()
			writeError(w, r, err)
			return
		}
	}
	s.metrics.ReportsIngested.WithLabelValues("http").Add(float64(len(reports)))
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": len(reports)})
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) {
	page, next, err := paginate(r, s.ctl.Services(), func(v controller.ServiceView) string { return v.Name })
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[controller.ServiceView]{Items: page, NextCursor: next})
}

// serviceParam returns the {service} path parameter, validated.
func serviceParam(r *http.Request) (string, error) {
	name := chi.URLParam(r, "service")
	if err := brownout.CheckName("service", name); err != nil {
		return "", err
	}
	return name, nil
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) {
	name, err := serviceParam(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	p := principalFrom(r)
	if !p.CanRead() && !p.CanActFor(name) {
		writeError(w, r, brownout.Errorf(brownout.EFORBIDDEN, "this token may not read service %q", name))
		return
	}
	v, err := s.ctl.Service(name)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// readableService returns the {service} parameter when the principal may
// read it.
func readableService(r *http.Request) (string, error) {
	name, err := serviceParam(r)
	if err != nil {
		return "", err
	}
	p := principalFrom(r)
	if !p.CanRead() && !p.CanActFor(name) {
		return "", brownout.Errorf(brownout.EFORBIDDEN, "this token may not read service %q", name)
	}
	return name, nil
}

// listInstances pages one service's instances, by name, without their
// components.
func (s *Server) listInstances(w http.ResponseWriter, r *http.Request) {
	name, err := readableService(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	v, err := s.ctl.Service(name)
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, next, err := paginate(r, v.Instances, func(i controller.InstanceView) string { return i.Name })
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[controller.InstanceView]{Items: page, NextCursor: next})
}

// listComponents pages the components one instance last reported, by name.
func (s *Server) listComponents(w http.ResponseWriter, r *http.Request) {
	name, err := readableService(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	inst := chi.URLParam(r, "instance")
	if err := brownout.CheckName("instance", inst); err != nil {
		writeError(w, r, err)
		return
	}
	cs, err := s.ctl.Components(name, inst)
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, next, err := paginate(r, cs, func(c controller.ComponentView) string { return c.Name })
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[controller.ComponentView]{Items: page, NextCursor: next})
}

func (s *Server) getThresholds(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.ctl.GlobalThresholds())
}

func (s *Server) putThresholds(w http.ResponseWriter, r *http.Request) {
	var t levels.Thresholds
	if err := decodeBody(r, &t); err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.ctl.SetGlobalThresholds(r.Context(), t, principalFrom(r).Actor()); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

type serviceThresholds struct {
	Service string `json:"service"`
	// Custom is false when the service uses the global thresholds.
	Custom bool `json:"custom"`
	levels.Thresholds
}

func (s *Server) getServiceThresholds(w http.ResponseWriter, r *http.Request) {
	name, err := serviceParam(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	t, custom := s.ctl.ServiceThresholds(name)
	writeJSON(w, http.StatusOK, serviceThresholds{Service: name, Custom: custom, Thresholds: t})
}

func (s *Server) putServiceThresholds(w http.ResponseWriter, r *http.Request) {
	name, err := serviceParam(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var t levels.Thresholds
	if err := decodeBody(r, &t); err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.ctl.SetServiceThresholds(r.Context(), name, t, principalFrom(r).Actor()); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, serviceThresholds{Service: name, Custom: true, Thresholds: t})
}

func (s *Server) deleteServiceThresholds(w http.ResponseWriter, r *http.Request) {
	name, err := serviceParam(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.ctl.DeleteServiceThresholds(r.Context(), name, principalFrom(r).Actor()); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getFlags(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.ctl.GlobalFlags())
}

func (s *Server) putFlags(w http.ResponseWriter, r *http.Request) {
	var f featureflags.Set
	if err := decodeBody(r, &f); err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.ctl.SetGlobalFlags(r.Context(), f, principalFrom(r).Actor()); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

type serviceFlags struct {
	Service   string                    `json:"service"`
	Custom    bool                      `json:"custom"`
	Levels    []featureflags.LevelFlags `json:"levels"`
	Effective featureflags.Set          `json:"effective"`
}

func (s *Server) getServiceFlags(w http.ResponseWriter, r *http.Request) {
	name, err := serviceParam(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	own, ok, eff := s.ctl.ServiceFlags(name)
	if own.Levels == nil {
		own.Levels = []featureflags.LevelFlags{}
	}
	writeJSON(w, http.StatusOK, serviceFlags{Service: name, Custom: ok, Levels: own.Levels, Effective: eff})
}

func (s *Server) putServiceFlags(w http.ResponseWriter, r *http.Request) {
	name, err := serviceParam(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var f featureflags.Set
	if err := decodeBody(r, &f); err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.ctl.SetServiceFlags(r.Context(), name, f, principalFrom(r).Actor()); err != nil {
		writeError(w, r, err)
		return
	}
	own, ok, eff := s.ctl.ServiceFlags(name)
	writeJSON(w, http.StatusOK, serviceFlags{Service: name, Custom: ok, Levels: own.Levels, Effective: eff})
}

func (s *Server) deleteServiceFlags(w http.ResponseWriter, r *http.Request) {
	name, err := serviceParam(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.ctl.DeleteServiceFlags(r.Context(), name, principalFrom(r).Actor()); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) postOverride(w http.ResponseWriter, r *http.Request) {
	var req controller.OverrideRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	o, err := s.ctl.CreateOverride(r.Context(), req, principalFrom(r).Actor(), false)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/overrides/"+o.ID)
	writeJSON(w, http.StatusCreated, o)
}

func (s *Server) listOverrides(w http.ResponseWriter, r *http.Request) {
	svc := r.URL.Query().Get("service")
	if svc != "" && svc != brownout.GlobalScope {
		if err := brownout.CheckName("service", svc); err != nil {
			writeError(w, r, err)
			return
		}
	}
	items := []brownout.Override{}
	for _, o := range s.ctl.Overrides() {
		if svc == "" || o.Matches(svc) {
			items = append(items, o)
		}
	}
	page, next, err := paginate(r, items, func(o brownout.Override) string { return o.ID }, "service")
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[brownout.Override]{Items: page, NextCursor: next})
}

// getOverride answers the Location of a created override: the override
// as stored, active, cleared or expired.
func (s *Server) getOverride(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if len(id) == 0 || len(id) > 64 {
		writeError(w, r, brownout.FieldErrorf(brownout.EBADREQUEST, "id", "is not an override id"))
		return
	}
	o, err := s.history.GetOverride(r.Context(), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (s *Server) deleteOverride(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if len(id) == 0 || len(id) > 64 {
		writeError(w, r, brownout.FieldErrorf(brownout.EBADREQUEST, "id", "is not an override id"))
		return
	}
	o, err := s.ctl.ClearOverride(r.Context(), id, principalFrom(r).Actor())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (s *Server) getEmergency(w http.ResponseWriter, r *http.Request) {
	o := s.ctl.ActiveEmergency()
	writeJSON(w, http.StatusOK, api.Emergency{Active: o != nil, Override: o})
}

func (s *Server) postEmergency(w http.ResponseWriter, r *http.Request) {
	var req api.EmergencyRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	o, err := s.ctl.Emergency(r.Context(), req.Reason, req.TTL, principalFrom(r).Actor())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, o)
}

func (s *Server) deleteEmergency(w http.ResponseWriter, r *http.Request) {
	cleared, err := s.ctl.EndEmergency(r.Context(), principalFrom(r).Actor())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[brownout.Override]{Items: cleared})
}

func (s *Server) postToken(w http.ResponseWriter, r *http.Request) {
	var req auth.TokenRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	t, secret, err := s.auth.Create(r.Context(), req, principalFrom(r).Actor())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.CreatedToken{Token: t, Secret: secret})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	toks, err := s.auth.List(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, next, err := paginate(r, toks, func(t brownout.Token) string { return t.ID })
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[brownout.Token]{Items: page, NextCursor: next})
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if len(id) == 0 || len(id) > 64 {
		writeError(w, r, brownout.FieldErrorf(brownout.EBADREQUEST, "id", "is not a token id"))
		return
	}
	t, err := s.auth.Revoke(r.Context(), id, principalFrom(r).Actor())
	if err != nil {
		writeError(w, r, err)
		return
	}
	n := s.hub.CloseToken(t.ID, "token revoked")
	s.log.Info("token revoked", "token", t.ID, "connections_closed", n)
	writeJSON(w, http.StatusOK, t)
}

// onlyParams refuses query parameters outside the allowed set, so that a
// typo ("servcie=") is an error rather than a silently ignored filter.
func onlyParams(q map[string][]string, allowed ...string) error {
	for k, v := range q {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
			}
		}
		if !ok {
			return brownout.FieldErrorf(brownout.EBADREQUEST, k, "unknown query parameter (allowed: %s)", strings.Join(allowed, ", "))
		}
		if len(v) > 1 {
			return brownout.FieldErrorf(brownout.EBADREQUEST, k, "given more than once")
		}
	}
	return nil
}

// parseFilter reads service, actor, from, to, limit and cursor.
func parseFilter(r *http.Request, withActor bool) (brownout.Filter, error) {
	q := r.URL.Query()
	allowed := []string{"service", "from", "to", "limit", "cursor"}
	if withActor {
		allowed = append(allowed, "actor")
	}
	if err := onlyParams(q, allowed...); err != nil {
		return brownout.Filter{}, err
	}
	f := brownout.Filter{Limit: 100}
	if v := q.Get("service"); v != "" {
		if v != brownout.GlobalScope {
			if err := brownout.CheckName("service", v); err != nil {
				return f, err
			}
		}
		f.Service = v
	}
	if v := q.Get("actor"); v != "" {
		if len(v) > auth.MaxTokenNameLen {
			return f, brownout.FieldErrorf(brownout.EBADREQUEST, "actor", "must be at most %d bytes", auth.MaxTokenNameLen)
		}
		f.Actor = v
	}
	var err error
	if f.From, err = parseTime(q.Get("from"), "from"); err != nil {
		return f, err
	}
	if f.To, err = parseTime(q.Get("to"), "to"); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, brownout.FieldErrorf(brownout.EBADREQUEST, "from", "must be before to")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > brownout.MaxLimit {
			return f, brownout.FieldErrorf(brownout.EBADREQUEST, "limit", "must be a whole number from 1 to %d", brownout.MaxLimit)
		}
		f.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		if len(v) > 256 {
			return f, brownout.FieldErrorf(brownout.EBADREQUEST, "cursor", "is not a cursor from a previous page")
		}
		if _, err := base64.RawURLEncoding.DecodeString(v); err != nil {
			return f, brownout.FieldErrorf(brownout.EBADREQUEST, "cursor", "is not a cursor from a previous page")
		}
		f.Cursor = v
	}
	return f, nil
}

func parseTime(v, field string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, brownout.FieldErrorf(brownout.EBADREQUEST, field, "%q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", truncate(v))
	}
	return t, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func (s *Server) historyLevels(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r, false)
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, err := s.history.ListLevelChanges(r.Context(), f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if page.Items == nil {
		page.Items = []brownout.LevelChange{}
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r, true)
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, err := s.history.ListAudit(r.Context(), f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if page.Items == nil {
		page.Items = []brownout.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, page)
}

// Limits on sample queries.
const (
	maxSamplePoints = 10_000
	maxSampleRange  = 31 * 24 * time.Hour
)

func (s *Server) historySamples(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := onlyParams(q, "service", "from", "to", "step"); err != nil {
		writeError(w, r, err)
		return
	}
	svc := q.Get("service")
	if svc == "" {
		writeError(w, r, brownout.FieldErrorf(brownout.EBADREQUEST, "service", "is required"))
		return
	}
	if err := brownout.CheckName("service", svc); err != nil {
		writeError(w, r, err)
		return
	}
	now := s.cfg.Now()
	from, err := parseTime(q.Get("from"), "from")
	if err != nil {
		writeError(w, r, err)
		return
	}
	to, err := parseTime(q.Get("to"), "to")
	if err != nil {
		writeError(w, r, err)
		return
	}
	if to.IsZero() {
		to = now
	}
	if from.IsZero() {
		from = to.Add(-time.Hour)
	}
	if !from.Before(to) {
		writeError(w, r, brownout.FieldErrorf(brownout.EBADREQUEST, "from", "must be before to"))
		return
	}
	if to.Sub(from) > maxSampleRange {
		writeError(w, r, brownout.FieldErrorf(brownout.EBADREQUEST, "from", "the range may span at most %s", maxSampleRange))
		return
	}
	var step time.Duration
	if v := q.Get("step"); v != "" {
		step, err = time.ParseDuration(v)
		if err != nil || step < time.Second {
			writeError(w, r, brownout.FieldErrorf(brownout.EBADREQUEST, "step", "must be a duration of at least 1s, such as \"1m\""))
			return
		}
	} else {
		// About 300 points; whole minutes from 1m up, so that the store
		// can answer from its per-minute rollups.
		step = (to.Sub(from) / 300).Truncate(time.Second)
		if step >= time.Minute {
			step = step.Round(time.Minute)
		}
		if step < time.Second {
			step = time.Second
		}
	}
	if to.Sub(from)/step > maxSamplePoints {
		writeError(w, r, brownout.FieldErrorf(brownout.EBADREQUEST, "step", "would give more than %d points; use a larger step", maxSamplePoints))
		return
	}
	pts, err := s.history.QuerySamples(r.Context(), svc, from, to, step)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if pts == nil {
		pts = []brownout.SamplePoint{}
	}
	// Stores align buckets to multiples of step since the epoch, so the
	// first may begin before from (in 1970 for a step longer than the time
	// since then). It holds only samples from from on, and is dated so:
	// every point lies inside [from, to].
	for i := range pts {
		if pts[i].At.Before(from) {
			pts[i].At = from.UTC()
		}
	}
	writeJSON(w, http.StatusOK, api.Samples{Service: svc, From: from, To: to, Step: step.String(), Items: pts})
}

// retireService is DELETE /services/{service}: the retired state, with
// retired_at.
func (s *Server) retireService(w http.ResponseWriter, r *http.Request) {
	name, err := serviceParam(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	st, err := s.ctl.RetireService(r.Context(), name, principalFrom(r).Actor())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.RetiredService{
		Name: st.Name, Version: st.Version, Level: st.Level, ComputedLevel: st.ComputedLevel,
		Cause: st.Cause, Detail: st.Detail, ChangedAt: st.ChangedAt, CreatedAt: st.CreatedAt, RetiredAt: st.RetiredAt,
	})
}

// listReplicas lists the replica set: who leads, each replica's
// subscribers and change feed lag.
func (s *Server) listReplicas(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r.URL.Query()); err != nil {
		writeError(w, r, err)
		return
	}
	items := []brownout.Replica{}
	if s.cfg.Replicas != nil {
		rs, err := s.cfg.Replicas.Replicas(r.Context())
		if err != nil {
			s.log.Error("list replicas", "err", err)
			writeError(w, r, brownout.Errorf(brownout.EUNAVAILABLE, "the replica set cannot be read right now"))
			return
		}
		items = append(items, rs...)
	}
	writeJSON(w, http.StatusOK, list[brownout.Replica]{Items: items})
}
