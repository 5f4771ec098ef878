// Package gateway is Nimbus's HTTP surface: the invoke routes
// (/function/{name}), the management API (/api/v1), health and metrics. It
// turns requests into calls on the engine and engine errors into HTTP
// statuses (in errors.go, and nowhere else). Subpackages hold the API
// gateway's building blocks (routes, auth, CORS, rate limits).
package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/pool"
	"github.com/nimbus-run/nimbus/internal/registry"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

// Registry is what the management API needs of the function catalogue.
type Registry interface {
	Get(name string) (*function.Spec, error)
	List() []*function.Spec
	Put(ctx context.Context, spec function.Spec) (*function.Spec, registry.Change, error)
	Delete(ctx context.Context, name string) error
	PutCode(ctx context.Context, code []byte) (string, error)
	Publish(ctx context.Context, name string) (*function.Spec, bool, error)
	Versions(name string) ([]*function.Spec, error)
	DeleteVersion(ctx context.Context, name, version string) error
	PutAlias(ctx context.Context, a function.Alias) (*function.Alias, registry.Change, error)
	Aliases(name string) ([]*function.Alias, error)
	DeleteAlias(ctx context.Context, name, alias string) error
}

// Records reads invocation records.
type Records interface {
	Recent(ctx context.Context, function string, limit int) ([]json.RawMessage, error)
}

// Config configures the gateway.
type Config struct {
	// Token protects /api/v1; empty only in dev mode.
	Token string
	Dev   bool
	// MaxBody bounds invoke request bodies (default 6 MiB).
	MaxBody int64
	// MaxCode bounds code uploads (default 256 MiB).
	MaxCode int64
	Logger  *slog.Logger
}

// Gateway is the node's HTTP handler.
type Gateway struct {
	cfg     Config
	inv     *invoke.Invoker
	reg     Registry
	pools   *pool.Manager
	records Records
	metrics http.Handler
	ready   func() error
	mux     *http.ServeMux
	// targets dispatches AWS JSON protocol requests by X-Amz-Target (awsjson.go).
	targets targetMux
}

// New builds the handler.
func New(cfg Config, inv *invoke.Invoker, reg Registry, pools *pool.Manager, records Records, metrics http.Handler, ready func() error) *Gateway {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 6 << 20
	}
	if cfg.MaxCode == 0 {
		cfg.MaxCode = 256 << 20
	}
	g := &Gateway{cfg: cfg, inv: inv, reg: reg, pools: pools, records: records, metrics: metrics, ready: ready, mux: http.NewServeMux()}
	m := g.mux
	m.HandleFunc("/function/{name}", g.invokeHTTP)
	m.HandleFunc("/function/{name}/{rest...}", g.invokeHTTP)
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.Health{Status: "ok"})
	})
	m.HandleFunc("GET /readyz", g.readyz)
	if metrics != nil {
		m.Handle("GET /metrics", metrics)
	}
	m.Handle("PUT /api/v1/code", g.auth(g.putCode))
	m.Handle("POST /api/v1/code", g.auth(g.putCode))
	m.Handle("GET /api/v1/functions", g.auth(g.listFunctions))
	m.Handle("GET /api/v1/functions/{name}", g.auth(g.getFunction))
	m.Handle("PUT /api/v1/functions/{name}", g.auth(g.putFunction))
	m.Handle("DELETE /api/v1/functions/{name}", g.auth(g.deleteFunction))
	m.Handle("POST /api/v1/functions/{name}/invoke", g.auth(g.invokeAPI))
	m.Handle("GET /api/v1/functions/{name}/invocations", g.auth(g.listRecords))
	m.Handle("POST /api/v1/functions/{name}/versions", g.auth(g.publish))
	m.Handle("GET /api/v1/functions/{name}/versions", g.auth(g.listVersions))
	m.Handle("DELETE /api/v1/functions/{name}/versions/{version}", g.auth(g.deleteVersion))
	m.Handle("GET /api/v1/functions/{name}/aliases", g.auth(g.listAliases))
	m.Handle("PUT /api/v1/functions/{name}/aliases/{alias}", g.auth(g.putAlias))
	m.Handle("DELETE /api/v1/functions/{name}/aliases/{alias}", g.auth(g.deleteAlias))
	m.Handle("/api/", g.auth(func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, http.StatusNotFound, &api.Error{Code: api.CodeNotFound, Message: fmt.Sprintf("no API route %s %s", r.Method, r.URL.Path)})
	}))
	return g
}

// Handle adds a handler to the mux (for surfaces built by other packages).
func (g *Gateway) Handle(pattern string, h http.Handler) { g.mux.Handle(pattern, h) }

// Protected wraps h with the management API's token check.
func (g *Gateway) Protected(h http.HandlerFunc) http.Handler { return g.auth(h) }

// ReservedPrefixes are the paths Nimbus owns on the main listener; user
// routes (Fallback) never see requests under them, even for surfaces that
// are not registered, so a user route cannot shadow a platform path.
var ReservedPrefixes = []string{
	"/function/", "/async-function/", "/2015-03-31/", "/api/", "/webhook/", "/ui/",
	"/metrics", "/healthz", "/readyz",
}

// IsReserved reports whether path belongs to Nimbus rather than user routes.
func IsReserved(path string) bool {
	for _, p := range ReservedPrefixes {
		if strings.HasPrefix(path, p) || (strings.HasSuffix(p, "/") && path == p[:len(p)-1]) {
			return true
		}
	}
	return false
}

// Fallback serves every request no other pattern takes (the user routes of
// the API gateway), except under the reserved prefixes, which answer 404.
func (g *Gateway) Fallback(h http.Handler) {
	g.mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsReserved(r.URL.Path) {
			writeAPIError(w, http.StatusNotFound, &api.Error{Code: api.CodeNotFound, Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
			return
		}
		h.ServeHTTP(w, r)
	}))
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := g.targets.lookup(r); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	g.mux.ServeHTTP(w, r)
}

func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	if g.ready != nil {
		if err := g.ready(); err != nil {
			writeAPIError(w, http.StatusServiceUnavailable, &api.Error{Code: api.CodeUnavailable, Message: err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, api.Health{Status: "ready"})
}

func (g *Gateway) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.cfg.Dev {
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(g.cfg.Token)) != 1 || g.cfg.Token == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="nimbus"`)
				writeAPIError(w, http.StatusUnauthorized, &api.Error{Code: api.CodeUnauthorized,
					Message: "a valid bearer token is required: set NIMBUS_TOKEN (the token is in the data directory's admin.token) or start the node with --dev"})
				return
			}
		}
		h(w, r)
	})
}

// readBody reads at most limit bytes, reporting ErrPayloadTooBig beyond.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, fmt.Errorf("request body is %d bytes, the limit is %d: %w", r.ContentLength, limit, function.ErrPayloadTooBig)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, fmt.Errorf("request body is over the limit of %d bytes: %w", limit, function.ErrPayloadTooBig)
	}
	if err != nil {
		return nil, fmt.Errorf("reading request body: %v: %w", err, function.ErrInvalid)
	}
	return b, nil
}

// invokeHTTP serves /function/{name}[/...]: body in, result out.
func (g *Gateway) invokeHTTP(w http.ResponseWriter, r *http.Request) {
	name, qualifier, _ := strings.Cut(r.PathValue("name"), ":")
	body, err := readBody(w, r, g.cfg.MaxBody)
	if err != nil {
		writeError(w, err)
		return
	}
	g.invoke(w, r, &invoke.Request{
		Function: name, Qualifier: qualifier, Payload: body, Source: "http",
		TraceID: traceID(r),
		HTTP: &runtime.HTTPInfo{
			Method: r.Method, Path: "/" + r.PathValue("rest"), Query: r.URL.RawQuery, Header: r.Header,
		},
	})
}

func (g *Gateway) invokeAPI(w http.ResponseWriter, r *http.Request) {
	name, qualifier, _ := strings.Cut(r.PathValue("name"), ":")
	body, err := readBody(w, r, g.cfg.MaxBody)
	if err != nil {
		writeError(w, err)
		return
	}
	source := "cli"
	if s := r.URL.Query().Get("source"); s != "" {
		source = s
	}
	g.invoke(w, r, &invoke.Request{Function: name, Qualifier: qualifier, Payload: body, Source: source, TraceID: traceID(r)})
}

func (g *Gateway) invoke(w http.ResponseWriter, r *http.Request, req *invoke.Request) {
	resp, err := g.inv.Invoke(r.Context(), req)
	h := w.Header()
	if resp != nil {
		h.Set(api.HeaderInvocationID, resp.Record.ID)
		h.Set(api.HeaderDurationMS, strconv.FormatFloat(resp.Record.DurationMS, 'f', -1, 64))
		h.Set(api.HeaderVersion, resp.Record.Version)
		if resp.Record.ColdStart {
			h.Set(api.HeaderColdStart, "true")
		}
	}
	if err != nil {
		status, e := errorFor(err)
		if resp != nil {
			e.InvocationID = resp.Record.ID
			if resp.Err != nil {
				e.Type, e.Message = resp.Err.Type, resp.Err.Message
				h.Set(api.HeaderFunctionError, "Unhandled")
			}
		}
		writeAPIError(w, status, e)
		return
	}
	if json.Valid(resp.Payload) {
		h.Set("Content-Type", "application/json")
	} else {
		h.Set("Content-Type", "application/octet-stream")
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.Payload)))
	w.WriteHeader(http.StatusOK)
	w.Write(resp.Payload) //nolint:errcheck // the client went away
}

// traceID takes the trace id of an incoming W3C traceparent header.
func traceID(r *http.Request) string {
	tp := r.Header.Get("Traceparent")
	// version "-" trace-id "-" parent-id "-" flags
	if len(tp) == 55 && tp[2] == '-' && tp[35] == '-' {
		id := tp[3:35]
		for _, c := range id {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return ""
			}
		}
		if id != strings.Repeat("0", 32) {
			return id
		}
	}
	return ""
}

func (g *Gateway) putCode(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, g.cfg.MaxCode)
	if err != nil {
		writeError(w, err)
		return
	}
	d, err := g.reg.PutCode(r.Context(), body)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.CodeResult{Digest: d, Size: len(body)})
}

func (g *Gateway) listFunctions(w http.ResponseWriter, r *http.Request) {
	out := api.FunctionList{Functions: []api.Function{}}
	for _, s := range g.reg.List() {
		out.Functions = append(out.Functions, api.FunctionFromSpec(s))
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *Gateway) getFunction(w http.ResponseWriter, r *http.Request) {
	s, err := g.reg.Get(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	f := api.FunctionFromSpec(s)
	st := api.PoolStats{}
	if p := g.pools.Lookup(s.Name, s.Version); p != nil {
		ps := p.Stats()
		st = api.PoolStats(ps)
	}
	f.Instances = &st
	writeJSON(w, http.StatusOK, f)
}

func (g *Gateway) putFunction(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := function.ValidateName(name); err != nil {
		writeError(w, err)
		return
	}
	body, err := readBody(w, r, 1<<20)
	if err != nil {
		writeError(w, err)
		return
	}
	spec, err := decodeSpec(body)
	if err != nil {
		writeError(w, err)
		return
	}
	if spec.Name == "" {
		spec.Name = name
	}
	if spec.Name != name {
		writeError(w, function.Invalid("name", "body names %q but the URL names %q", spec.Name, name))
		return
	}
	got, change, err := g.reg.Put(r.Context(), *spec)
	if err != nil {
		writeError(w, err)
		return
	}
	status := http.StatusOK
	if change == registry.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, api.PutFunctionResult{Function: api.FunctionFromSpec(got), Change: string(change)})
}

// decodeSpec decodes a spec strictly: unknown fields are errors that name
// the field, so a typo never deploys silently.
func decodeSpec(body []byte) (*function.Spec, error) {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	var f specWire
	if err := dec.Decode(&f); err != nil {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ute):
			return nil, function.Invalid(ute.Field, "expected %s, got %s", ute.Type, ute.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return nil, function.Invalid(field, "unknown field")
		}
		return nil, function.Invalid("body", "not a valid function spec: %v", err)
	}
	if dec.More() {
		return nil, function.Invalid("body", "trailing data after the spec")
	}
	s := function.Spec(f)
	return &s, nil
}

// specWire is function.Spec as the API accepts it: the read-only fields are
// ignored rather than refused, so a GET result can be PUT back.
type specWire function.Spec

func (g *Gateway) deleteFunction(w http.ResponseWriter, r *http.Request) {
	if err := g.reg.Delete(r.Context(), r.PathValue("name")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) listRecords(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := g.reg.Get(name); err != nil {
		writeError(w, err)
		return
	}
	limit := 20
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, function.Invalid("limit", "must be a number from 1 to 1000"))
			return
		}
		limit = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	recs, err := g.records.Recent(ctx, name, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	if recs == nil {
		recs = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"invocations": recs})
}
