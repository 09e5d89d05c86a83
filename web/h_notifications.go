package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/notify"
	"github.com/brownout-io/brownout/web/pages/notifications"
)

func (h *handler) notificationsPage(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	if !rc.P.IsAdmin() {
		h.errorPage(w, r, rc, http.StatusForbidden, "Not allowed", "Only admins manage notifications.")
		return
	}
	h.renderNotifications(w, r, rc, notifications.Model{}, http.StatusOK)
}

func (h *handler) renderNotifications(w http.ResponseWriter, r *http.Request, rc reqCtx, m notifications.Model, status int) {
	m.Meta = h.meta(r, rc, "Notifications", "notifications", topicGlobal)
	if h.d.Notify == nil {
		h.errorPage(w, r, rc, http.StatusNotFound, "Page not found", "Notifications are not configured on this controller.")
		return
	}
	hooks, err := h.d.Notify.List(r.Context())
	if err != nil {
		h.fail(w, r, rc, err)
		return
	}
	m.Webhooks = hooks
	m.Allow = h.d.Notify.Allowed()
	cursor := r.URL.Query().Get("cursor")
	if len(cursor) > 256 {
		cursor = ""
	}
	page, err := h.d.Notify.DeadLetters(r.Context(), brownout.Filter{Limit: 100, Cursor: cursor})
	if brownout.ErrorCode(err) == brownout.EBADREQUEST {
		page, err = h.d.Notify.DeadLetters(r.Context(), brownout.Filter{Limit: 100}) // a stale or foreign cursor: the first page
	}
	if err != nil {
		h.fail(w, r, rc, err)
		return
	}
	m.DeadLetters, m.NextCursor = page.Items, page.NextCursor
	h.render(w, r, status, notifications.Page(m))
}

func (h *handler) createWebhook(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	if h.d.Notify == nil {
		h.errorPage(w, r, rc, http.StatusNotFound, "Page not found", "Notifications are not configured on this controller.")
		return
	}
	f := r.PostForm
	req := notify.WebhookRequest{Name: f.Get("name"), URL: strings.TrimSpace(f.Get("url")), Format: f.Get("format"), Events: f["events"]}
	hook, secret, err := h.d.Notify.Create(r.Context(), req, rc.P.Actor())
	var be *brownout.Error
	if errors.As(err, &be) {
		h.renderNotifications(w, r, rc, notifications.Model{Form: notifications.Form{
			Name: req.Name, URL: req.URL, Format: req.Format, Events: req.Events, Error: be.Message, Field: be.Field,
		}}, http.StatusUnprocessableEntity)
		return
	}
	if err != nil {
		h.fail(w, r, rc, err)
		return
	}
	// The secret is in this response only; the page is not cached.
	h.renderNotifications(w, r, rc, notifications.Model{Created: &hook, Secret: secret}, http.StatusOK)
}

func (h *handler) deleteWebhook(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	if h.d.Notify == nil {
		h.errorPage(w, r, rc, http.StatusNotFound, "Page not found", "Notifications are not configured on this controller.")
		return
	}
	if _, err := h.d.Notify.Delete(r.Context(), r.PathValue("id"), rc.P.Actor()); err != nil {
		h.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, "/notifications?ok=webhook-deleted", http.StatusSeeOther)
}

func (h *handler) redriveDeadLetter(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	if h.d.Notify == nil {
		h.errorPage(w, r, rc, http.StatusNotFound, "Page not found", "Notifications are not configured on this controller.")
		return
	}
	if _, err := h.d.Notify.Redrive(r.Context(), r.PathValue("id"), rc.P.Actor()); err != nil {
		h.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, "/notifications?ok=deadletter-redriven", http.StatusSeeOther)
}
