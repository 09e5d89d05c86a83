package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/internal/auth"
	"github.com/brownout-io/brownout/web/pages/tokens"
)

func (h *handler) tokensPage(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	if !rc.P.IsAdmin() {
		h.errorPage(w, r, rc, http.StatusForbidden, "Not allowed", "Only admins manage tokens.")
		return
	}
	h.renderTokens(w, r, rc, tokens.Model{}, http.StatusOK)
}

func (h *handler) renderTokens(w http.ResponseWriter, r *http.Request, rc reqCtx, m tokens.Model, status int) {
	m.Meta = h.meta(r, rc, "Tokens", "tokens", topicGlobal)
	list, err := h.d.Auth.List(r.Context())
	if err != nil {
		h.fail(w, r, rc, err)
		return
	}
	m.Tokens = list
	h.render(w, r, status, tokens.Page(m))
}

func (h *handler) createToken(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	f := r.PostForm
	req := auth.TokenRequest{Name: f.Get("name"), Scope: f.Get("scope"), Service: strings.TrimSpace(f.Get("service"))}
	if req.Scope != brownout.ScopeSDK {
		req.Service = "" // the field is only for sdk tokens; ignore leftovers
	}
	t, secret, err := h.d.Auth.Create(r.Context(), req, rc.P.Actor())
	var be *brownout.Error
	if errors.As(err, &be) {
		h.renderTokens(w, r, rc, tokens.Model{Form: tokens.Form{Name: req.Name, Scope: req.Scope, Service: req.Service, Error: be.Message, Field: be.Field}}, http.StatusUnprocessableEntity)
		return
	}
	if err != nil {
		h.fail(w, r, rc, err)
		return
	}
	// The secret is in this response only: it is never stored, and the
	// page is not cached.
	h.renderTokens(w, r, rc, tokens.Model{Created: &t, Secret: secret}, http.StatusOK)
}

func (h *handler) revokeToken(w http.ResponseWriter, r *http.Request, rc reqCtx) {
	id := r.PathValue("id")
	if _, err := h.d.Auth.Revoke(r.Context(), id, rc.P.Actor()); err != nil {
		h.fail(w, r, rc, err)
		return
	}
	// The authenticator has closed the token's live dashboard sockets.
	h.d.Subscribers.CloseToken(id, "token revoked")
	if id == rc.P.TokenID {
		setCookie(w, r, sessionCookie, "", -1)
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/tokens?ok=token-revoked", http.StatusSeeOther)
}
