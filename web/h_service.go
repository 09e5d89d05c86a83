package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/featureflags"
	"github.com/brownout-io/brownout/internal/levels"
	"github.com/brownout-io/brownout/web/pages/service"
	"github.com/brownout-io/brownout/web/ui"
)

// timelineRows is how many level changes the service page lists.
const timelineRows = 50

// serviceForms carries editor state into a re-render after a refused save.
type serviceForms struct {
	thresholds *service.ThresholdForm
	flagsError string
	override   *service.OverrideForm
}

func (h *handler) servicePage(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	h.renderService(w, r, rc, r.PathValue("name"), serviceForms{}, http.StatusOK)
}

func (h *handler) renderService(w http.ResponseWriter, r *http.Request, rc reqCtx, name string, forms serviceForms, status int) {
	ctx := r.Context()
	v, err := h.d.Controller.ServicePage(name, service.MaxInstances)
	if err != nil {
		h.errorPage(w, r, rc, http.StatusNotFound, "No such service", "There is no service named "+strconv.Quote(name)+". Services appear once they report or subscribe.")
		return
	}
	rng := service.Ranges[0]
	want := r.URL.Query().Get("range")
	var names []string
	for _, x := range service.Ranges {
		names = append(names, x.Name)
		if x.Name == want {
			rng = x
		}
	}
	now := h.now()
	to := now.Truncate(time.Second)
	from := to.Add(-rng.Span)
	var pts []brownout.SamplePoint
	var changes []brownout.LevelChange
	if h.d.History != nil {
		if pts, err = h.d.History.QuerySamples(ctx, name, from, to, rng.Step); err != nil {
			h.log.Warn("query samples", "service", name, "err", err)
		}
		page, err := h.d.History.ListLevelChanges(ctx, brownout.Filter{Service: name, From: from, Limit: 500})
		if err != nil {
			h.log.Warn("list level changes", "service", name, "err", err)
		}
		changes = page.Items
	}
	m := service.Model{
		Meta:   h.meta(r, rc, name, "overview", topicService+name),
		Status: service.StatusOf(v),
		Range:  rng.Name, Ranges: names,
		Charts: service.Charts(levels.Thresholds(v.Thresholds), from, to, rng.Step, pts, service.Bands(changes, from, to, v.Level)),
	}
	for i, c := range changes {
		if i == timelineRows {
			break
		}
		m.Timeline = append(m.Timeline, ui.ChangeOf(c))
	}
	own, _, _ := h.d.Controller.ServiceFlags(name)
	m.Flags = service.MatrixOf(h.d.Controller.GlobalFlags(), own, v.Level)
	m.FlagsError = forms.flagsError
	if forms.thresholds != nil {
		m.Thresholds = *forms.thresholds
		m.Thresholds.Custom = v.CustomThresholds
	} else {
		m.Thresholds = service.FormOf(levels.Thresholds(v.Thresholds), v.CustomThresholds)
	}
	for _, o := range h.d.Controller.Overrides() {
		if o.Matches(name) {
			m.Overrides = append(m.Overrides, o)
		}
	}
	if forms.override != nil {
		m.Override = *forms.override
	} else {
		m.Override = service.OverrideForm{Level: "2"}
	}
	h.render(w, r, status, service.Page(m))
}

func (h *handler) existing(w http.ResponseWriter, r *http.Request, rc reqCtx) (string, bool) {
	name := r.PathValue("name")
	if _, err := h.d.Controller.Service(name); err != nil {
		h.errorPage(w, r, rc, http.StatusNotFound, "No such service", "There is no service named "+strconv.Quote(name)+".")
		return "", false
	}
	return name, true
}

// parseThresholds reads the editor. A value that is not a number is
// refused here with the same field path the controller uses.
func parseThresholds(form func(string) string) (levels.Thresholds, service.ThresholdForm, error) {
	var f service.ThresholdForm
	f.Cooldown = strings.TrimSpace(form("cooldown"))
	for i := range 3 {
		for j := range 3 {
			for k := range 2 {
				f.Cells[i][j][k] = strings.TrimSpace(form(service.FieldName(i, j, k == 1)))
			}
		}
	}
	t := levels.Thresholds{}
	d, err := time.ParseDuration(f.Cooldown)
	if err != nil {
		return t, f, brownout.FieldErrorf(brownout.EINVALID, "cooldown", "%q is not a duration such as \"60s\"", f.Cooldown)
	}
	t.Cooldown = levels.Duration(d)
	for i := range 3 {
		lt := levels.LevelThresholds{Level: levels.Level(i + 1)}
		var vals [3][2]float64
		for j := range 3 {
			for k := range 2 {
				s := f.Cells[i][j][k]
				v, err := strconv.ParseFloat(s, 64)
				if err != nil {
					field := service.FieldName(i, j, k == 1)
					if s == "" {
						return t, f, brownout.FieldErrorf(brownout.EINVALID, field, "is required")
					}
					return t, f, brownout.FieldErrorf(brownout.EINVALID, field, "%q is not a number", s)
				}
				vals[j][k] = v
			}
		}
		lt.CPU = levels.Bound{Enter: vals[0][0], Exit: vals[0][1]}
		lt.Memory = levels.Bound{Enter: vals[1][0], Exit: vals[1][1]}
		lt.ErrorRate = levels.Bound{Enter: vals[2][0], Exit: vals[2][1]}
		t.Levels = append(t.Levels, lt)
	}
	return t, f, nil
}

func (h *handler) saveThresholds(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	name, ok := h.existing(w, r, rc)
	if !ok {
		return
	}
	t, form, err := parseThresholds(r.PostForm.Get)
	if err == nil {
		err = h.d.Controller.SetServiceThresholds(r.Context(), name, t, rc.P.Actor())
	}
	var be *brownout.Error
	if errors.As(err, &be) {
		form.Error, form.Field = be.Message, be.Field
		h.renderService(w, r, rc, name, serviceForms{thresholds: &form}, http.StatusUnprocessableEntity)
		return
	}
	if err != nil {
		h.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, "/services/"+name+"?ok=thresholds-saved#th-h", http.StatusSeeOther)
}

func (h *handler) resetThresholds(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	name, ok := h.existing(w, r, rc)
	if !ok {
		return
	}
	if err := h.d.Controller.DeleteServiceThresholds(r.Context(), name, rc.P.Actor()); err != nil && brownout.ErrorCode(err) != brownout.ENOTFOUND {
		h.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, "/services/"+name+"?ok=thresholds-reset#th-h", http.StatusSeeOther)
}

// retireService retires the service (confirm=yes required) and goes back
// to the overview.
func (h *handler) retireService(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	name, ok := h.existing(w, r, rc)
	if !ok {
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		h.errorPage(w, r, rc, http.StatusBadRequest, "Not done", "Tick the box to confirm that "+name+" should be retired.")
		return
	}
	if _, err := h.d.Controller.RetireService(r.Context(), name, rc.P.Actor()); err != nil {
		h.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, "/?ok=service-retired", http.StatusSeeOther)
}

// flagSetFromForm turns the flag matrix editor into the service's own set:
// only cells that differ from the global defaults, plus every level of a
// flag the global set does not name. A cell set back to its global value
// follows the global set again.
func flagSetFromForm(form map[string][]string, global featureflags.Set) (featureflags.Set, error) {
	g := featureflags.Merge(global, featureflags.Set{})
	get := func(k string) bool { v := form[k]; return len(v) > 0 && v[0] == "on" }
	var levelsOut [4]map[string]bool
	put := func(l int, name string, on bool) {
		if levelsOut[l] == nil {
			levelsOut[l] = map[string]bool{}
		}
		levelsOut[l][name] = on
	}
	names := form["flag"]
	if nf := strings.TrimSpace(first(form["new_flag"])); nf != "" {
		names = append(names, nf)
	}
	for idx, name := range names {
		isNew := idx == len(form["flag"])
		for l := range 4 {
			var on bool
			if isNew {
				on = get("new:" + strconv.Itoa(l))
			} else {
				on = get("f:" + name + ":" + strconv.Itoa(l))
			}
			gv, named := g[l][name]
			if !named || gv != on {
				put(l, name, on)
			}
		}
	}
	var s featureflags.Set
	for l, m := range levelsOut {
		if m != nil {
			s.Levels = append(s.Levels, featureflags.LevelFlags{Level: l, Flags: m})
		}
	}
	return s, nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (h *handler) saveFlags(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	name, ok := h.existing(w, r, rc)
	if !ok {
		return
	}
	set, _ := flagSetFromForm(r.PostForm, h.d.Controller.GlobalFlags())
	var err error
	if len(set.Levels) == 0 {
		// Nothing differs from the global defaults: follow them.
		err = h.d.Controller.DeleteServiceFlags(r.Context(), name, rc.P.Actor())
		if brownout.ErrorCode(err) == brownout.ENOTFOUND {
			err = nil
		}
	} else {
		err = h.d.Controller.SetServiceFlags(r.Context(), name, set, rc.P.Actor())
	}
	var be *brownout.Error
	if errors.As(err, &be) {
		h.renderService(w, r, rc, name, serviceForms{flagsError: be.Message}, http.StatusUnprocessableEntity)
		return
	}
	if err != nil {
		h.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, "/services/"+name+"?ok=flags-saved#flags-h", http.StatusSeeOther)
}

func (h *handler) resetFlags(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	name, ok := h.existing(w, r, rc)
	if !ok {
		return
	}
	if err := h.d.Controller.DeleteServiceFlags(r.Context(), name, rc.P.Actor()); err != nil && brownout.ErrorCode(err) != brownout.ENOTFOUND {
		h.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, "/services/"+name+"?ok=flags-reset#flags-h", http.StatusSeeOther)
}
