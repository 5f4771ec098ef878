package apigateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway"
	"github.com/nimbus-run/nimbus/internal/gateway/auth"
)

// Mux is where the management endpoints go (the node's gateway).
type Mux interface {
	Handle(pattern string, h http.Handler)
	Protected(h http.HandlerFunc) http.Handler
}

// Register adds the management endpoints, behind the admin token:
//
//	PUT    /api/v1/api            replace the API config
//	GET    /api/v1/api            the API config (secrets left out)
//	GET    /api/v1/routes         the routes in force
//	POST   /api/v1/apikeys        mint an API key (shown once)
//	GET    /api/v1/apikeys        list key records
//	DELETE /api/v1/apikeys/{id}   revoke a key
func (s *Service) Register(m Mux) {
	m.Handle("PUT /api/v1/api", m.Protected(s.putAPI))
	m.Handle("GET /api/v1/api", m.Protected(s.getAPI))
	m.Handle("GET /api/v1/routes", m.Protected(s.listRoutes))
	m.Handle("POST /api/v1/apikeys", m.Protected(s.createKey))
	m.Handle("GET /api/v1/apikeys", m.Protected(s.listKeys))
	m.Handle("DELETE /api/v1/apikeys/{id}", m.Protected(s.revokeKey))
}

// maxConfig bounds an API config document (JWKS included).
const maxConfig = 4 << 20

func (s *Service) putAPI(w http.ResponseWriter, r *http.Request) {
	var cfg api.APIConfig
	if err := decodeStrict(w, r, maxConfig, &cfg); err != nil {
		gateway.WriteError(w, err)
		return
	}
	got, change, err := s.Put(r.Context(), &cfg)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	status := http.StatusOK
	if change == "created" {
		status = http.StatusCreated
	}
	writeJSON(w, status, api.PutAPIResult{Config: *redacted(got), Change: change})
}

func (s *Service) getAPI(w http.ResponseWriter, r *http.Request) {
	cfg, err := s.Get(r.Context())
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, redacted(cfg))
}

func (s *Service) listRoutes(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Routes())
}

func (s *Service) createKey(w http.ResponseWriter, r *http.Request) {
	var req api.CreateAPIKeyRequest
	if err := decodeStrict(w, r, 64<<10, &req); err != nil {
		gateway.WriteError(w, err)
		return
	}
	if len(req.Name) > 128 {
		gateway.WriteError(w, function.Invalid("name", "is longer than 128 characters"))
		return
	}
	if req.Plan != "" {
		if rt := s.cur.Load(); rt == nil || rt.plans[req.Plan] == nil {
			gateway.WriteError(w, function.Invalid("plan", "no usage plan %q: declare it under usage_plans and deploy first", req.Plan))
			return
		}
	}
	plain, rec, err := s.keys.create(r.Context(), req.Name, req.Plan)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, api.CreateAPIKeyResult{Key: plain, APIKey: keyToAPI(rec)})
}

func (s *Service) listKeys(w http.ResponseWriter, r *http.Request) {
	out := api.APIKeyList{APIKeys: []api.APIKey{}}
	for _, k := range s.keys.list() {
		out.APIKeys = append(out.APIKeys, keyToAPI(k))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) revokeKey(w http.ResponseWriter, r *http.Request) {
	if _, err := s.keys.revoke(r.Context(), r.PathValue("id")); err != nil {
		gateway.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func keyToAPI(k auth.KeyRecord) api.APIKey {
	return api.APIKey{ID: k.ID, Name: k.Name, Plan: k.Plan, Created: k.Created, Revoked: k.Revoked}
}

// decodeStrict decodes a JSON body; an unknown field is an error naming
// it, so a typo never applies silently.
func decodeStrict(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return function.Invalid("body", "is empty")
		case errors.As(err, &ute):
			return function.Invalid(ute.Field, "expected %s, got %s", ute.Type, ute.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return function.Invalid(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unknown field")
		}
		return function.Invalid("body", "not valid JSON: %v", err)
	}
	if dec.More() {
		return function.Invalid("body", "trailing data")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // the client went away
}
