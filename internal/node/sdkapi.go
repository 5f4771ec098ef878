package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/events"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway"
	"github.com/nimbus-run/nimbus/internal/httploop"
	"github.com/nimbus-run/nimbus/internal/runtime/wasm"
)

// What functions reach through the Go SDK (sdk.Table, sdk.Bucket,
// sdk.Publish): the data API and event publishing, with the credential of
// their instance. Process functions call the node over HTTP with
// NIMBUS_DATA_TOKEN (data.go), on a listener of their own; wasm functions
// make the same requests through the nimbus.api or api_v2 host call, which
// lands in functionAPI, and their table gets and puts through kv_get
// and kv_put, which land in functionTables.
// Either way the request goes through the gateway's routes, so
// permissions, limits and error codes are the same for both runtimes.

// functionTables is wasm.Config.Tables: the table gets and puts of an
// instance of spec (nimbus.kv_get and kv_put), which skip api_v2's
// envelope and routing but not its rules: the same permission check as
// the data API's (with spec's function as the principal), the same
// service calls, the same error answers.
func (n *Node) functionTables(spec *function.Spec) wasm.Tables {
	if n.Data == nil {
		return nil
	}
	return functionTables{svc: n.Data, p: &data.Principal{Function: spec.Name, Version: spec.Version}}
}

type functionTables struct {
	svc *data.Service
	p   *data.Principal
}

func (f functionTables) GetItem(ctx context.Context, table string, key []byte) ([]byte, uint64, time.Time, error) {
	if err := f.svc.Allow(f.p, data.KindTable, table); err != nil {
		return nil, 0, time.Time{}, err
	}
	if !json.Valid(key) {
		return nil, 0, time.Time{}, function.Invalid("key", "not valid JSON")
	}
	e, err := f.svc.Get(ctx, table, key)
	if err != nil {
		return nil, 0, time.Time{}, err
	}
	return e.Item, e.Revision, e.Updated, nil
}

func (f functionTables) PutItem(ctx context.Context, table string, item []byte, ifAbsent bool, ifRevision uint64) (uint64, error) {
	if err := f.svc.Allow(f.p, data.KindTable, table); err != nil {
		return 0, err
	}
	if !json.Valid(item) {
		return 0, function.Invalid("item", "not valid JSON")
	}
	return f.svc.Put(ctx, table, item, data.PutOptions{IfAbsent: ifAbsent, IfRevision: ifRevision})
}

func (functionTables) ErrorAnswer(err error) (int, []byte) { return gateway.ErrorAnswer(err) }

// publishPattern is the events service's publish route, which functions
// may also use (functionPublishMux).
const publishPattern = "POST /api/v1/events"

// functionAPI is wasm.Config.API: the handler for the nimbus.api and
// api_v2 calls of an instance of spec. It acts with a credential of
// spec's function: a guest cannot choose whose authority it acts with.
func (n *Node) functionAPI(spec *function.Spec) http.Handler {
	if n.Data == nil {
		return nil
	}
	bearer := "Bearer " + n.Data.Credential(spec)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", bearer)
		n.functionCall(w, r, "function "+spec.Name)
	})
}

// functionCall serves a function's data or publish call, which carries
// the function's credential, through the gateway's routes. It lets through
// only the routes functions have a use for.
func (n *Node) functionCall(w http.ResponseWriter, r *http.Request, who string) {
	p := r.URL.Path
	if !strings.HasPrefix(p, "/api/v1/tables/") && !strings.HasPrefix(p, "/api/v1/buckets/") && p != "/api/v1/events" {
		gateway.WriteError(w, errors.Join(data.ErrForbidden, errors.New(who+" may not call "+r.Method+" "+p+": functions reach /api/v1/tables, /api/v1/buckets and /api/v1/events")))
		return
	}
	// URLs the API builds (presign) point at the node's main listener,
	// where other clients can use them.
	if n.mainHost != "" {
		r.Host = n.mainHost
	}
	n.Gateway.ServeHTTP(w, r)
}

// startFunctionListener serves the data calls of process functions (the
// SDK's, NIMBUS_API) on a loopback listener of their own, with the
// connection loop of the Runtime API (internal/httploop) instead of
// net/http's server: a data call is a small exchange, and net/http's
// per-request machinery cost the node about a third of a process
// function's table put (go run ./bench/data). The listener serves only
// requests with a function credential, on the routes functionCall allows.
func (n *Node) startFunctionListener() error {
	malformed := func(w http.ResponseWriter, status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: &api.Error{Code: api.CodeInvalid, Message: msg}})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("node: function listener: %w", err)
	}
	tcp := httploop.Start(ln, http.HandlerFunc(n.serveFunctionListener), malformed)
	n.onStop(func(context.Context) error { return tcp.Close() })
	n.fnURL = "http://" + ln.Addr().String()
	n.mainHost = loopbackHost(n.ln.Addr())
	// The same on a Unix socket in Linux's abstract namespace (no file to
	// clean up, no path length to mind), which the Go SDK prefers: a
	// loopback TCP exchange costs both ends several times the system time
	// of a Unix socket's. Reaching it grants nothing without a credential,
	// as with the TCP listener.
	if goruntime.GOOS == "linux" {
		var id [8]byte
		rand.Read(id[:])
		uln, err := net.Listen("unix", "@nimbus-functions-"+hex.EncodeToString(id[:]))
		if err != nil {
			return fmt.Errorf("node: function socket: %w", err)
		}
		unix := httploop.Start(uln, http.HandlerFunc(n.serveFunctionListener), malformed)
		n.onStop(func(context.Context) error { return unix.Close() })
		n.fnSocket = uln.Addr().String()
	}
	return nil
}

// FunctionAPI is where process functions reach the node (NIMBUS_API,
// NIMBUS_API_SOCKET): a loopback URL, and a Unix socket on Linux ("").
func (n *Node) FunctionAPI() (url, socket string) { return n.fnURL, n.fnSocket }

func (n *Node) serveFunctionListener(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !strings.HasPrefix(tok, data.CredentialPrefix) {
		gateway.WriteError(w, errors.Join(data.ErrForbidden, errors.New("this listener serves the data calls of function instances: send the instance's "+EnvDataToken+" as a bearer token, or call the node's main address")))
		return
	}
	n.functionCall(w, r, "a function")
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
