package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/controller"
	"github.com/brownout-io/brownout/web/pages/overrides"
	"github.com/brownout-io/brownout/web/pages/service"
)

func (h *handler) overridesPage(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	h.renderOverrides(w, r, rc, overrides.Form{Level: "2"}, http.StatusOK)
}

func (h *handler) renderOverrides(w http.ResponseWriter, r *http.Request, rc reqCtx, f overrides.Form, status int) {
	m := overrides.Model{Meta: h.meta(r, rc, "Overrides", "overrides", topicGlobal), Overrides: h.d.Controller.Overrides(), Form: f}
	for _, v := range h.d.Controller.Services() {
		m.Services = append(m.Services, v.Name)
	}
	h.render(w, r, status, overrides.Page(m))
}

func (h *handler) createOverride(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	f := r.PostForm
	svc := strings.TrimSpace(f.Get("service"))
	req := controller.OverrideRequest{Service: svc, Reason: f.Get("reason"), TTL: strings.TrimSpace(f.Get("ttl"))}
	if l, err := strconv.Atoi(f.Get("level")); err == nil {
		req.Level = &l
	}
	backTo := safeNext(f.Get("back"))
	_, err := h.d.Controller.CreateOverride(r.Context(), req, rc.P.Actor(), false)
	var be *brownout.Error
	if errors.As(err, &be) {
		if strings.HasPrefix(backTo, "/services/") && svc != brownout.GlobalScope {
			form := service.OverrideForm{Level: f.Get("level"), Reason: req.Reason, TTL: req.TTL, Error: be.Message, Field: be.Field}
			r.SetPathValue("name", svc)
			h.renderService(w, r, rc, svc, serviceForms{override: &form}, http.StatusUnprocessableEntity)
			return
		}
		h.renderOverrides(w, r, rc, overrides.Form{Service: svc, Level: f.Get("level"), Reason: req.Reason, TTL: req.TTL, Error: be.Message, Field: be.Field}, http.StatusUnprocessableEntity)
		return
	}
	if err != nil {
		h.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, withFlash(backTo, "override-created"), http.StatusSeeOther)
}

func (h *handler) clearOverride(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	if _, err := h.d.Controller.ClearOverride(r.Context(), r.PathValue("id"), rc.P.Actor()); err != nil {
		h.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, withFlash(safeNext(r.PostForm.Get("back")), "override-cleared"), http.StatusSeeOther)
}

func (h *handler) startEmergency(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	f := r.PostForm
	if f.Get("confirm") != "yes" {
		h.errorPage(w, r, rc, http.StatusUnprocessableEntity, "Not confirmed", "Emergency mode was not forced: tick the confirmation box to force every service to MAINTENANCE.")
		return
	}
	if _, err := h.d.Controller.Emergency(r.Context(), f.Get("reason"), strings.TrimSpace(f.Get("ttl")), rc.P.Actor()); err != nil {
		h.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, withFlash(back(r, "/"), "emergency-on"), http.StatusSeeOther)
}

func (h *handler) endEmergency(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	if _, err := h.d.Controller.EndEmergency(r.Context(), rc.P.Actor()); err != nil && brownout.ErrorCode(err) != brownout.ENOTFOUND {
		h.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, withFlash(back(r, "/"), "emergency-off"), http.StatusSeeOther)
}
