package auth

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/nimbus-run/nimbus/internal/gateway/apigw"
)

// ErrMalformedAuthorizerResponse is wrapped when an authorizer function
// answers something other than a simple response. API Gateway answers 500.
var ErrMalformedAuthorizerResponse = errors.New("malformed authorizer response")

// AuthorizerEvent is the request event of a function authorizer, payload
// format 2.0: the route's 2.0 event plus type, routeArn and identitySource.
type AuthorizerEvent struct {
	Version               string               `json:"version"`
	Type                  string               `json:"type"`
	RouteArn              string               `json:"routeArn"`
	IdentitySource        []string             `json:"identitySource"`
	RouteKey              string               `json:"routeKey"`
	RawPath               string               `json:"rawPath"`
	RawQueryString        string               `json:"rawQueryString"`
	Cookies               []string             `json:"cookies,omitempty"`
	Headers               map[string]string    `json:"headers"`
	QueryStringParameters map[string]string    `json:"queryStringParameters,omitempty"`
	RequestContext        apigw.RequestContext `json:"requestContext"`
	PathParameters        map[string]string    `json:"pathParameters,omitempty"`
	StageVariables        map[string]string    `json:"stageVariables,omitempty"`
}

// BuildAuthorizerEvent makes the authorizer event for a route's request
// event. identity is the resolved identity source (see IdentityValues); the
// event never carries the request body, as on AWS.
func BuildAuthorizerEvent(req *apigw.Request, routeArn string, identity []string) *AuthorizerEvent {
	rc := req.RequestContext
	rc.Authorizer = nil
	return &AuthorizerEvent{
		Version:               apigw.Version,
		Type:                  "REQUEST",
		RouteArn:              routeArn,
		IdentitySource:        identity,
		RouteKey:              req.RouteKey,
		RawPath:               req.RawPath,
		RawQueryString:        req.RawQueryString,
		Cookies:               req.Cookies,
		Headers:               req.Headers,
		QueryStringParameters: req.QueryStringParameters,
		RequestContext:        rc,
		PathParameters:        req.PathParameters,
		StageVariables:        req.StageVariables,
	}
}

// RouteARN renders an execute-api ARN the way AWS does:
// arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{method}{path}.
func RouteARN(region, account, apiID, stage, method, rawPath string) string {
	return "arn:aws:execute-api:" + region + ":" + account + ":" + apiID + "/" + stage + "/" + method + rawPath
}

// ValidateIdentitySource checks identity source expressions at config time:
// $request.header.NAME, $request.querystring.NAME, $context.VAR or
// $stageVariables.NAME.
func ValidateIdentitySource(exprs []string) error {
	for _, e := range exprs {
		name, ok := "", false
		for _, p := range []string{"$request.header.", "$request.querystring.", "$context.", "$stageVariables."} {
			if n, found := strings.CutPrefix(e, p); found {
				name, ok = n, true
				break
			}
		}
		if !ok || name == "" {
			return fmt.Errorf("identity source %q: want $request.header.NAME, $request.querystring.NAME, $context.VAR or $stageVariables.NAME", e)
		}
		if _, known := contextValue(&apigw.Request{}, name); strings.HasPrefix(e, "$context.") && !known {
			return fmt.Errorf("identity source %q: unknown context variable %q", e, name)
		}
	}
	return nil
}

// IdentityValues resolves identity source expressions against a request
// event. If any value is missing or empty it returns ErrMissingCredentials:
// API Gateway answers 401 without calling the authorizer.
func IdentityValues(req *apigw.Request, exprs []string) ([]string, error) {
	out := make([]string, 0, len(exprs))
	for _, e := range exprs {
		var v string
		switch {
		case strings.HasPrefix(e, "$request.header."):
			v = req.Headers[strings.ToLower(strings.TrimPrefix(e, "$request.header."))]
			if v == "" && strings.EqualFold(strings.TrimPrefix(e, "$request.header."), "cookie") {
				v = strings.Join(req.Cookies, "; ")
			}
		case strings.HasPrefix(e, "$request.querystring."):
			v = req.QueryStringParameters[strings.TrimPrefix(e, "$request.querystring.")]
		case strings.HasPrefix(e, "$context."):
			v, _ = contextValue(req, strings.TrimPrefix(e, "$context."))
		case strings.HasPrefix(e, "$stageVariables."):
			v = req.StageVariables[strings.TrimPrefix(e, "$stageVariables.")]
		}
		if v == "" {
			return nil, fmt.Errorf("%w: identity source %s is empty", ErrMissingCredentials, e)
		}
		out = append(out, v)
	}
	return out, nil
}

// contextValue returns a $context variable and whether the name is known.
func contextValue(req *apigw.Request, name string) (string, bool) {
	rc := &req.RequestContext
	switch name {
	case "accountId":
		return rc.AccountID, true
	case "apiId":
		return rc.APIID, true
	case "domainName":
		return rc.DomainName, true
	case "domainPrefix":
		return rc.DomainPrefix, true
	case "httpMethod":
		return rc.HTTP.Method, true
	case "identity.sourceIp":
		return rc.HTTP.SourceIP, true
	case "identity.userAgent":
		return rc.HTTP.UserAgent, true
	case "path":
		return rc.HTTP.Path, true
	case "protocol":
		return rc.HTTP.Protocol, true
	case "requestId":
		return rc.RequestID, true
	case "routeKey":
		return rc.RouteKey, true
	case "stage":
		return rc.Stage, true
	}
	return "", false
}

// AuthorizerResult is a function authorizer's decision.
type AuthorizerResult struct {
	Allow   bool
	Context map[string]any
}

// ParseAuthorizerResponse reads a simple response:
// {"isAuthorized": true|false, "context": {...}}. isAuthorized must be
// present and boolean; anything else wraps ErrMalformedAuthorizerResponse.
// IAM policy responses are not supported.
func ParseAuthorizerResponse(b []byte) (AuthorizerResult, error) {
	var raw struct {
		IsAuthorized *bool           `json:"isAuthorized"`
		Context      json.RawMessage `json:"context"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return AuthorizerResult{}, fmt.Errorf("%w: %v", ErrMalformedAuthorizerResponse, err)
	}
	if raw.IsAuthorized == nil {
		return AuthorizerResult{}, fmt.Errorf("%w: isAuthorized missing (only simple responses are supported)", ErrMalformedAuthorizerResponse)
	}
	res := AuthorizerResult{Allow: *raw.IsAuthorized}
	if len(raw.Context) > 0 && string(raw.Context) != "null" {
		if err := json.Unmarshal(raw.Context, &res.Context); err != nil {
			return AuthorizerResult{}, fmt.Errorf("%w: context must be an object", ErrMalformedAuthorizerResponse)
		}
	}
	return res, nil
}

// Err turns a decision into an error: nil when allowed, ErrForbidden when
// denied (API Gateway answers 403).
func (r AuthorizerResult) Err() error {
	if r.Allow {
		return nil
	}
	return fmt.Errorf("%w: authorizer denied the request", ErrForbidden)
}

// AuthorizerCacheConfig configures an AuthorizerCache.
type AuthorizerCacheConfig struct {
	// TTL is how long a decision is reused (AWS: authorizerResultTtlInSeconds,
	// up to 1h). Zero disables caching.
	TTL time.Duration
	// MaxEntries bounds memory; the least recently used entry goes first
	// (default 10000).
	MaxEntries int
	// Now is the clock (default time.Now); for tests.
	Now func() time.Time
}

// AuthorizerCache remembers authorizer decisions by identity, so a client
// sending the same token does not cost an authorizer invocation per request.
// Keys are SHA-256 digests: the cache never holds credentials in clear.
// It is safe for concurrent use.
type AuthorizerCache struct {
	ttl time.Duration
	max int
	now func() time.Time
	sf  singleflight.Group

	mu      sync.Mutex
	entries map[[32]byte]*list.Element
	lru     list.List // front: most recent; values are *cacheEntry
}

type cacheEntry struct {
	key     [32]byte
	res     AuthorizerResult
	expires time.Time
}

// NewAuthorizerCache returns an empty cache.
func NewAuthorizerCache(cfg AuthorizerCacheConfig) *AuthorizerCache {
	c := &AuthorizerCache{ttl: cfg.TTL, max: cfg.MaxEntries, now: cfg.Now, entries: make(map[[32]byte]*list.Element)}
	if c.max <= 0 {
		c.max = 10000
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// cacheKey digests the authorizer name and identity values, length-prefixed
// so that ("ab","c") and ("a","bc") differ.
func cacheKey(authorizer string, identity []string) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, s := range append([]string{authorizer}, identity...) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// Get returns the cached decision of authorizer for identity.
func (c *AuthorizerCache) Get(authorizer string, identity []string) (AuthorizerResult, bool) {
	if c.ttl <= 0 {
		return AuthorizerResult{}, false
	}
	k := cacheKey(authorizer, identity)
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[k]
	if !ok {
		return AuthorizerResult{}, false
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.expires) {
		c.lru.Remove(el)
		delete(c.entries, k)
		return AuthorizerResult{}, false
	}
	c.lru.MoveToFront(el)
	return e.res, true
}

// Put stores a decision.
func (c *AuthorizerCache) Put(authorizer string, identity []string, res AuthorizerResult) {
	if c.ttl <= 0 {
		return
	}
	k := cacheKey(authorizer, identity)
	c.mu.Lock()
	defer c.mu.Unlock()
	exp := c.now().Add(c.ttl)
	if el, ok := c.entries[k]; ok {
		e := el.Value.(*cacheEntry)
		e.res, e.expires = res, exp
		c.lru.MoveToFront(el)
		return
	}
	c.entries[k] = c.lru.PushFront(&cacheEntry{key: k, res: res, expires: exp})
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.entries, old.Value.(*cacheEntry).key)
	}
}

// Len returns the number of entries, expired ones included.
func (c *AuthorizerCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// GetOrLoad returns the cached decision or calls load once for all
// concurrent callers with the same identity, caching what it returns.
// Errors are not cached. Each caller stops waiting when its ctx ends, but
// load runs on without cancellation (so one impatient client does not fail
// the others): load must bound itself, e.g. by the authorizer's timeout.
func (c *AuthorizerCache) GetOrLoad(ctx context.Context, authorizer string, identity []string, load func(context.Context) (AuthorizerResult, error)) (AuthorizerResult, error) {
	if res, ok := c.Get(authorizer, identity); ok {
		return res, nil
	}
	k := cacheKey(authorizer, identity)
	ch := c.sf.DoChan(string(k[:]), func() (any, error) {
		// The shared load must not die with the first caller.
		res, err := load(context.WithoutCancel(ctx))
		if err == nil {
			c.Put(authorizer, identity, res)
		}
		return res, err
	})
	select {
	case <-ctx.Done():
		return AuthorizerResult{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return AuthorizerResult{}, r.Err
		}
		return r.Val.(AuthorizerResult), nil
	}
}
