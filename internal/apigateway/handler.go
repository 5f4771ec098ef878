package apigateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway"
	"github.com/nimbus-run/nimbus/internal/gateway/apigw"
	"github.com/nimbus-run/nimbus/internal/gateway/auth"
	"github.com/nimbus-run/nimbus/internal/gateway/cors"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

// Source is the invocation source of user-route invocations.
const Source = "apigw"

// ServeHTTP serves user routes.
//
// The order of the checks is API Gateway's: match the route (404, 405), answer
// CORS preflights without auth, apply the route's rate limit before any
// credential work (so a flood cannot make us verify signatures or call an
// authorizer), then read the body (413), authenticate (401, 403), apply the
// API key's usage plan (429), invoke (504 when the route's timeout passes)
// and map the result.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := s.cur.Load()
	if rt == nil || rt.table == nil {
		s.fail(w, r, fmt.Errorf("no route for %s %s: %w", r.Method, r.URL.Path, function.ErrNotFound))
		return
	}
	path := r.URL.EscapedPath()
	if cors.IsPreflight(r) && s.preflight(w, r, rt, path) {
		return
	}
	res := rt.table.Lookup(r.Method, r.Host, path)
	if res.Route == nil {
		if rt.apiCORS != nil {
			rt.apiCORS.Handle(w, r) // so a browser can read the error
		}
		if res.MethodNotAllowed {
			w.Header().Set("Allow", strings.Join(res.Allow, ", "))
			s.fail(w, r, fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, gateway.ErrMethodNotAllowed))
			return
		}
		s.fail(w, r, fmt.Errorf("no route for %s %s: %w", r.Method, r.URL.Path, function.ErrNotFound))
		return
	}
	e := res.Route.Target.(*routeEntry)
	noteRoute(r.Context(), e.key)
	s.serve(w, r, rt, e, res.Params)
}

// preflight answers a CORS preflight for the route the browser asks about,
// with that route's policy, or the API's when no route has the path. It
// returns false when no policy applies: the OPTIONS request is then routed
// like any other (to an OPTIONS or ANY route, if there is one).
func (s *Service) preflight(w http.ResponseWriter, r *http.Request, rt *router, path string) bool {
	method := strings.ToUpper(strings.TrimSpace(r.Header.Get("Access-Control-Request-Method")))
	policy := rt.apiCORS
	if target, _, key, ok := rt.table.Match(method, r.Host, path); ok {
		e := target.(*routeEntry)
		policy = e.cors
		noteRoute(r.Context(), key)
	}
	if policy == nil {
		return false
	}
	policy.Handle(w, r)
	return true
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request, rt *router, e *routeEntry, params map[string]string) {
	if e.cors != nil {
		e.cors.Handle(w, r) // not a preflight: only sets headers
	}
	if e.limiter != nil {
		if ok, wait := e.limiter.Allow(""); !ok {
			s.throttle(w, r, wait, fmt.Errorf("route %s: rate limit: %w", e.key, function.ErrThrottled))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), e.timeout)
	defer cancel()
	body, err := readBody(w, r, s.cfg.MaxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The function sees the request as a proxy would forward it.
	fr := r.WithContext(ctx)
	fr.Header = endToEnd(r.Header)

	id := invoke.NewID()
	var (
		authzOut *apigw.Authorizer
		ev       *apigw.Request
	)
	if a := e.authz; a != nil {
		switch a.typ {
		case api.AuthJWT:
			authzOut, err = s.checkJWT(ctx, fr, a, e.scopes)
		case api.AuthAPIKey:
			authzOut, err = s.checkAPIKey(w, fr, rt)
		case api.AuthFunction:
			// The authorizer's event is the route's event, so build it now.
			ev = s.event(fr, body, e, params, id)
			authzOut, err = s.checkFunction(ctx, fr, a, ev)
		}
		if err != nil {
			if ctx.Err() != nil && r.Context().Err() == nil {
				err = fmt.Errorf("route %s: authorizer: timed out after %s: %w", e.key, e.timeout, function.ErrTimeout)
			}
			if !errors.Is(err, function.ErrThrottled) { // throttle already answered
				s.fail(w, r, err)
			}
			return
		}
	}

	req := &invoke.Request{Function: e.fn, Qualifier: e.qualifier, Source: Source, ID: id, TraceID: traceID(r)}
	switch e.format {
	case api.FormatRaw:
		req.Payload = body
		req.HTTP = &runtime.HTTPInfo{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: s.forwarded(fr)}
	default:
		if ev == nil {
			ev = s.event(fr, body, e, params, id)
		}
		ev.RequestContext.Authorizer = authzOut
		if req.Payload, err = json.Marshal(ev); err != nil {
			s.fail(w, r, fmt.Errorf("route %s: encode event: %w", e.key, err))
			return
		}
	}

	resp, err := s.cfg.Invoker.Invoke(ctx, req)
	if resp != nil {
		w.Header().Set(api.HeaderInvocationID, resp.Record.ID)
	}
	if err != nil {
		switch {
		case errors.Is(err, function.ErrNotFound):
			// The route points at a function that is gone: the API is
			// misconfigured, which is not the client's 404.
			err = fmt.Errorf("route %s: %v: %w", e.key, err, function.ErrUnavailable)
		case ctx.Err() != nil && r.Context().Err() == nil && !errors.Is(err, function.ErrTimeout):
			err = fmt.Errorf("route %s: timed out after %s: %v: %w", e.key, e.timeout, err, function.ErrTimeout)
		}
		s.fail(w, r, err)
		return
	}
	if e.format == api.FormatRaw {
		h := w.Header()
		if json.Valid(resp.Payload) {
			h.Set("Content-Type", "application/json")
		} else {
			h.Set("Content-Type", "application/octet-stream")
		}
		h.Set("Content-Length", strconv.Itoa(len(resp.Payload)))
		w.WriteHeader(http.StatusOK)
		w.Write(resp.Payload) //nolint:errcheck // the client went away
		return
	}
	out, err := apigw.ParseResponse(resp.Payload)
	if err != nil {
		s.fail(w, r, fmt.Errorf("route %s: %w", e.key, err))
		return
	}
	if e.cors != nil {
		// API Gateway ignores a backend's own CORS headers when the API
		// has a CORS policy: the policy is the one truth.
		for k := range out.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				delete(out.Header, k)
			}
		}
	}
	out.Write(w) //nolint:errcheck // the client went away
}

func (s *Service) event(r *http.Request, body []byte, e *routeEntry, params map[string]string, id string) *apigw.Request {
	opts := []apigw.Option{apigw.WithRequestID(id)}
	if len(s.cfg.TrustedProxies) > 0 {
		opts = append(opts, apigw.WithTrustedProxies(s.cfg.TrustedProxies))
	}
	return apigw.NewRequest(r, body, e.key, params, opts...)
}

func (s *Service) checkJWT(ctx context.Context, r *http.Request, a *authorizer, scopes []string) (*apigw.Authorizer, error) {
	// Like API Gateway, take the token with or without "Bearer " (Verify
	// strips it); an empty header is missing credentials.
	tok := strings.TrimSpace(r.Header.Get("Authorization"))
	if tok == "" {
		return nil, fmt.Errorf("authorizer %s: no Authorization header: %w", a.name, auth.ErrMissingCredentials)
	}
	now := time.Now()
	out, key, hit := a.jwt.cache.get(tok, now)
	if !hit {
		claims, have, err := a.jwt.verifier.Verify(ctx, tok)
		if err != nil {
			return nil, fmt.Errorf("authorizer %s: %w", a.name, err)
		}
		if have == nil {
			have = []string{}
		}
		out = &apigw.JWTAuthorizer{Claims: apigw.ClaimStrings(claims), Scopes: have}
		var expires time.Time
		if exp, err := jwt.MapClaims(claims).GetExpirationTime(); err == nil && exp != nil {
			expires = exp.Add(a.jwt.skew)
		}
		a.jwt.cache.put(key, out, expires, now)
	}
	// Scopes are the route's business, checked on every request: routes
	// with different scopes share the authorizer and its cache.
	if err := auth.RequireScopes(out.Scopes, scopes...); err != nil {
		return nil, fmt.Errorf("authorizer %s: %w", a.name, err)
	}
	return &apigw.Authorizer{JWT: out}, nil
}

func (s *Service) checkAPIKey(w http.ResponseWriter, r *http.Request, rt *router) (*apigw.Authorizer, error) {
	plain, _ := auth.APIKeyFromRequest(r)
	rec, err := auth.VerifyAPIKey(plain, s.keys.lookup)
	if err != nil {
		return nil, err
	}
	if rec.Plan != "" {
		p := rt.plans[rec.Plan]
		if p == nil {
			// PUT refuses to drop a plan keys use, so this is a race
			// with a revoke or a config written around the API.
			return nil, fmt.Errorf("api key %s: usage plan %q does not exist: %w", rec.ID, rec.Plan, auth.ErrForbidden)
		}
		if p.limiter != nil {
			if ok, wait := p.limiter.Allow(rec.ID); !ok {
				err := fmt.Errorf("api key %s: plan %s rate: %w", rec.ID, p.name, function.ErrThrottled)
				s.throttle(w, r, wait, err)
				return nil, err
			}
		}
		if p.quota != nil {
			if ok, wait := p.quota.Allow(rec.ID); !ok {
				err := fmt.Errorf("api key %s: plan %s daily quota: %w", rec.ID, p.name, function.ErrThrottled)
				s.throttle(w, r, wait, err)
				return nil, err
			}
		}
	}
	return &apigw.Authorizer{APIKey: &apigw.APIKeyAuthorizer{ID: rec.ID, Name: rec.Name, Plan: rec.Plan}}, nil
}

func (s *Service) checkFunction(ctx context.Context, r *http.Request, a *authorizer, ev *apigw.Request) (*apigw.Authorizer, error) {
	identity, err := auth.IdentityValues(ev, a.identity)
	if err != nil {
		return nil, fmt.Errorf("authorizer %s: %w", a.name, err)
	}
	load := func(lctx context.Context) (auth.AuthorizerResult, error) {
		arn := auth.RouteARN("local", "000000000000", "nimbus", apigw.DefaultStage, r.Method, ev.RawPath)
		payload, err := json.Marshal(auth.BuildAuthorizerEvent(ev, arn, identity))
		if err != nil {
			return auth.AuthorizerResult{}, err
		}
		resp, err := s.cfg.Invoker.Invoke(lctx, &invoke.Request{
			Function: a.fn, Qualifier: a.qualifier, Payload: payload, Source: "authorizer", TraceID: traceID(r),
		})
		if err != nil {
			return auth.AuthorizerResult{}, fmt.Errorf("authorizer %s: %w", a.name, err)
		}
		res, err := auth.ParseAuthorizerResponse(resp.Payload)
		if err != nil {
			return auth.AuthorizerResult{}, fmt.Errorf("authorizer %s: %w", a.name, err)
		}
		return res, nil
	}
	// GetOrLoad runs load without the caller's cancellation (it serves
	// every waiter); the authorizer's function timeout bounds it.
	res, err := a.cache.GetOrLoad(ctx, a.name, identity, load)
	if err != nil {
		return nil, err
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("authorizer %s: %w", a.name, err)
	}
	return &apigw.Authorizer{Lambda: res.Context}, nil
}

// forwarded is the header a raw-format function gets: end-to-end headers,
// with X-Forwarded-For/-Proto/-Host set the way the 2.0 event sets them
// (the client's claims are believed only from a trusted proxy).
func (s *Service) forwarded(r *http.Request) http.Header {
	h := r.Header.Clone()
	peer := peerAddr(r.RemoteAddr)
	trusted := false
	for _, p := range s.cfg.TrustedProxies {
		if peer.IsValid() && p.Contains(peer) {
			trusted = true
			break
		}
	}
	if !trusted {
		h.Del("X-Forwarded-For")
		h.Del("X-Forwarded-Proto")
		h.Del("X-Forwarded-Host")
		h.Del("Forwarded")
	}
	if peer.IsValid() {
		if prev := h.Get("X-Forwarded-For"); prev != "" {
			h.Set("X-Forwarded-For", prev+", "+peer.String())
		} else {
			h.Set("X-Forwarded-For", peer.String())
		}
	}
	if h.Get("X-Forwarded-Proto") == "" {
		if r.TLS != nil {
			h.Set("X-Forwarded-Proto", "https")
		} else {
			h.Set("X-Forwarded-Proto", "http")
		}
	}
	if h.Get("X-Forwarded-Host") == "" && r.Host != "" {
		h.Set("X-Forwarded-Host", r.Host)
	}
	return h
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// throttle answers 429 with the wait in Retry-After (whole seconds, at
// least 1, as the header cannot say less).
func (s *Service) throttle(w http.ResponseWriter, r *http.Request, wait time.Duration, err error) {
	secs := int64(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	s.fail(w, r, err)
}

// fail answers with the public form of err and keeps the detail for the
// access log.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	noteError(r.Context(), err)
	w.Header().Set("Cache-Control", "no-store")
	gateway.WritePublicError(w, err)
}

// readBody reads at most limit bytes: 413 beyond.
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

// traceID takes the trace id of an incoming W3C traceparent header.
func traceID(r *http.Request) string {
	tp := r.Header.Get("Traceparent")
	if len(tp) != 55 || tp[2] != '-' || tp[35] != '-' {
		return ""
	}
	id := tp[3:35]
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return ""
		}
	}
	if id == "00000000000000000000000000000000" {
		return ""
	}
	return id
}
