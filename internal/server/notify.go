package server

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/notify"
	"github.com/brownout-io/brownout/sdk/api"
)

func (s *Server) notifier(w http.ResponseWriter, r *http.Request) *notify.Notifier {
	if s.cfg.Notify == nil {
		writeError(w, r, &brownout.Error{Code: "not_implemented", Message: "notifications are not configured on this controller"})
	}
	return s.cfg.Notify
}

func (s *Server) postWebhook(w http.ResponseWriter, r *http.Request) {
	n := s.notifier(w, r)
	if n == nil {
		return
	}
	var req notify.WebhookRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	hook, secret, err := n.Create(r.Context(), req, principalFrom(r).Actor())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.CreatedWebhook{Webhook: hook, Secret: secret})
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	n := s.notifier(w, r)
	if n == nil {
		return
	}
	hooks, err := n.List(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, next, err := paginate(r, hooks, func(h brownout.Webhook) string { return h.ID })
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[brownout.Webhook]{Items: page, NextCursor: next})
}

func idParam(r *http.Request, what string) (string, error) {
	id := chi.URLParam(r, "id")
	if len(id) == 0 || len(id) > 128 {
		return "", brownout.FieldErrorf(brownout.EBADREQUEST, "id", "is not a %s id", what)
	}
	return id, nil
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	n := s.notifier(w, r)
	if n == nil {
		return
	}
	id, err := idParam(r, "webhook")
	if err != nil {
		writeError(w, r, err)
		return
	}
	hook, err := n.Delete(r.Context(), id, principalFrom(r).Actor())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, hook)
}

func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	n := s.notifier(w, r)
	if n == nil {
		return
	}
	if err := onlyParams(r.URL.Query(), "limit", "cursor"); err != nil {
		writeError(w, r, err)
		return
	}
	f, err := parseFilter(r, false)
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, err := n.DeadLetters(r.Context(), f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if page.Items == nil {
		page.Items = []brownout.Delivery{}
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) redriveDeadLetter(w http.ResponseWriter, r *http.Request) {
	n := s.notifier(w, r)
	if n == nil {
		return
	}
	id, err := idParam(r, "dead letter")
	if err != nil {
		writeError(w, r, err)
		return
	}
	d, err := n.Redrive(r.Context(), id, principalFrom(r).Actor())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}
