package gateway

import (
	"net/http"
	"strings"
	"sync"
)

// AWS services that speak the JSON protocols (Step Functions, DynamoDB,
// EventBridge, SQS's JSON flavour, ...) all POST to "/" and name the
// operation in the X-Amz-Target header ("AWSStepFunctions.StartExecution").
// One listener serves them all, so requests are told apart by that header,
// never by path: a surface registers the target prefix it owns with
// RegisterTarget, and ServeHTTP hands such requests to it before the mux
// (where "/" may belong to user routes). Requests with no or an unknown
// target go on to the mux as usual.

// targetMux maps X-Amz-Target prefixes to handlers. Its zero value is ready.
type targetMux struct {
	mu     sync.RWMutex
	routes map[string]http.Handler // prefix ("AWSStepFunctions.") -> handler
}

// RegisterTarget routes POST / requests whose X-Amz-Target starts with
// prefix (for example "AWSStepFunctions.") to h. The handler does its own
// authentication and writes errors in its service's shape.
func (g *Gateway) RegisterTarget(prefix string, h http.Handler) {
	g.targets.mu.Lock()
	defer g.targets.mu.Unlock()
	if g.targets.routes == nil {
		g.targets.routes = map[string]http.Handler{}
	}
	g.targets.routes[prefix] = h
}

// lookup returns the handler for r's X-Amz-Target, or nil.
func (t *targetMux) lookup(r *http.Request) http.Handler {
	target := r.Header.Get("X-Amz-Target")
	if target == "" || r.URL.Path != "/" || r.Method != http.MethodPost {
		return nil
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for prefix, h := range t.routes {
		if strings.HasPrefix(target, prefix) {
			return h
		}
	}
	return nil
}
