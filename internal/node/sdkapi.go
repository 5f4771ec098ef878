package node

import (
	"errors"
	"net/http"
	"strings"

	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/events"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway"
)

// What functions reach through the Go SDK (sdk.Table, sdk.Bucket,
// sdk.Publish): the data API and event publishing, with the credential of
// their instance. Process functions call the node over HTTP with
// NIMBUS_DATA_TOKEN (data.go); wasm functions make the same requests
// through the nimbus.api or api_v2 host call, which lands in functionAPI.
// Either way the request goes through the gateway's routes, so
// permissions, limits and error codes are the same for both runtimes.

// publishPattern is the events service's publish route, which functions
// may also use (functionPublishMux).
const publishPattern = "POST /api/v1/events"

// functionAPI is wasm.Config.API: the handler for the nimbus.api and
// api_v2 calls of an instance of spec. It lets through only the routes
// functions have a use for, and acts with a credential of spec's function.
func (n *Node) functionAPI(spec *function.Spec) http.Handler {
	if n.Data == nil {
		return nil
	}
	bearer := "Bearer " + n.Data.Credential(spec)
	// URLs the API builds (presign) point where a process function's
	// calls go: the node's listener.
	hostOf := func() string {
		if n.ln == nil {
			return ""
		}
		return loopbackURL("", n.ln.Addr())
	}
	host := hostOf()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if !strings.HasPrefix(p, "/api/v1/tables/") && !strings.HasPrefix(p, "/api/v1/buckets/") && p != "/api/v1/events" {
			gateway.WriteError(w, errors.Join(data.ErrForbidden, errors.New("function "+spec.Name+" may not call "+r.Method+" "+p+": functions reach /api/v1/tables, /api/v1/buckets and /api/v1/events")))
			return
		}
		r.Header.Set("Authorization", bearer)
		if h := host; h != "" {
			r.Host = h
		} else if h = hostOf(); h != "" {
			r.Host = h // an instance started before the node listened
		}
		n.Gateway.ServeHTTP(w, r)
	})
}

// functionPublishMux mounts the events service's routes, letting a
// function credential through on the publish route only: a function may
// publish events, but not manage triggers or rules.
type functionPublishMux struct {
	events.Mux
	n *Node
}

func (m functionPublishMux) Handle(pattern string, h http.Handler) {
	if pattern == publishPattern {
		h = m.n.functionPublish(h)
	}
	m.Mux.Handle(pattern, h)
}

// functionPublish wraps the admin-protected publish handler: a request
// with a valid function credential is served as the node's own (the route
// is the only one this reaches), with the event's source set to the
// function, so that a rule or consumer can trust where it came from.
func (n *Node) functionPublish(admin http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !strings.HasPrefix(tok, data.CredentialPrefix) || n.Data == nil {
			admin.ServeHTTP(w, r)
			return
		}
		p, err := n.Data.VerifyCredential(tok)
		if err != nil {
			gateway.WriteError(w, err)
			return
		}
		if r.Header.Get("Ce-Specversion") == "" {
			// Structured mode hides the source in the body; binary mode
			// (what the SDK sends) lets it be set below.
			gateway.WriteError(w, function.Invalid("body", "functions publish in CloudEvents binary mode (ce-* headers)"))
			return
		}
		r = r.Clone(r.Context())
		r.Header.Set("Ce-Source", "/functions/"+p.Function)
		r.Header.Set("Authorization", "Bearer "+n.token)
		admin.ServeHTTP(w, r)
	})
}
