// Package keysapi serves the management API of access keys on the gateway:
//
//	POST   /api/v1/keys       create (the answer is the only one with the secret)
//	GET    /api/v1/keys       list, without secrets
//	DELETE /api/v1/keys/{id}  revoke
//
// every route behind the admin token. It owns the HTTP shapes (package api
// holds the wire types); package keys owns the keys, and the gateway maps
// their errors to statuses.
package keysapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway"
	"github.com/nimbus-run/nimbus/internal/keys"
)

// Keyring is what the API needs of package keys.
type Keyring interface {
	Create(ctx context.Context, name, kind string) (*keys.Key, error)
	List() []keys.Key
	Revoke(ctx context.Context, id string) error
}

// Mux is where the routes go (the gateway).
type Mux interface {
	Handle(pattern string, h http.Handler)
	Protected(h http.HandlerFunc) http.Handler
}

var _ Mux = (*gateway.Gateway)(nil)

// Register mounts the key routes on m, behind its token check.
func Register(m Mux, k Keyring) {
	h := handler{k}
	m.Handle("POST /api/v1/keys", m.Protected(h.create))
	m.Handle("GET /api/v1/keys", m.Protected(h.list))
	m.Handle("DELETE /api/v1/keys/{id}", m.Protected(h.revoke))
}

type handler struct{ k Keyring }

func (h handler) create(w http.ResponseWriter, r *http.Request) {
	var in api.CreateKeyRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			gateway.WriteError(w, function.Invalid(strings.Trim(field, `"`), "unknown field"))
			return
		}
		gateway.WriteError(w, function.Invalid("body", "want {\"name\": \"...\", \"kind\": \"aws\"}: %v", err))
		return
	}
	key, err := h.k.Create(r.Context(), in.Name, in.Kind)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, toAPI(*key))
}

func (h handler) list(w http.ResponseWriter, r *http.Request) {
	out := api.KeyList{Keys: []api.Key{}}
	for _, k := range h.k.List() {
		k.Secret = "" // List never has it; never let it slip out here either.
		out.Keys = append(out.Keys, toAPI(k))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h handler) revoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := h.k.Revoke(r.Context(), id); err != nil {
		if errors.Is(err, keys.ErrNotFound) {
			// Say which id, and that revoking twice is the likely cause.
			err = fmt.Errorf("access key %q does not exist (or was already revoked): %w", truncate(id, 40), err)
		}
		gateway.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func toAPI(k keys.Key) api.Key {
	return api.Key{ID: k.ID, Kind: k.Kind, Name: k.Name, Secret: k.Secret, Created: k.Created}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // a create answer holds a secret
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // the client went away
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
