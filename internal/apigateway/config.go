package apigateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway/auth"
	"github.com/nimbus-run/nimbus/internal/gateway/cors"
	"github.com/nimbus-run/nimbus/internal/gateway/ratelimit"
	"github.com/nimbus-run/nimbus/internal/gateway/route"
)

// Limits of one API config.
const (
	// DefaultRouteTimeout is API Gateway's integration timeout.
	DefaultRouteTimeout = 30 * time.Second
	// MaxRouteTimeout matches the longest function timeout.
	MaxRouteTimeout = 15 * time.Minute
	// DefaultAuthorizerTTL is how long function authorizer decisions are
	// reused when the config does not say.
	DefaultAuthorizerTTL = 5 * time.Minute
	// MaxAuthorizerTTL is API Gateway's limit.
	MaxAuthorizerTTL = time.Hour
	maxRoutes        = 10000
)

// router is one compiled API config: immutable once built, swapped in
// whole, so a request sees either the old routes or the new ones.
type router struct {
	table    *route.Table // Target is *routeEntry
	entries  []*routeEntry
	apiCORS  *cors.Policy
	plans    map[string]*plan
	revision uint64
	// parts holds the stateful pieces (limiters, quotas, JWKS caches,
	// authorizer caches) by identity, so the next compile reuses the ones
	// whose configuration did not change: a deploy must not reset everyone's
	// daily quota or refetch every JWKS.
	parts map[string]any
}

// routeEntry is one compiled route.
type routeEntry struct {
	key       string // canonical route key
	host      string
	fn        string
	qualifier string
	format    string
	authz     *authorizer // nil: no auth
	scopes    []string
	limiter   *ratelimit.Limiter // nil: unlimited
	cors      *cors.Policy       // effective policy (route's or API's), nil: none
	timeout   time.Duration
	info      api.RouteInfo
}

type authorizer struct {
	name string
	typ  string
	jwt  *jwtAuth
	// Function authorizers.
	fn, qualifier string
	identity      []string
	cache         *auth.AuthorizerCache
}

// jwtAuth is a JWT authorizer's verifier with its cache of verified
// tokens; both go when the authorizer's configuration changes.
type jwtAuth struct {
	verifier *auth.JWTVerifier
	skew     time.Duration
	cache    *jwtCache
}

type plan struct {
	name    string
	limiter *ratelimit.Limiter // nil: no rate limit
	quota   *ratelimit.Quota   // nil: no quota
}

// Catalog says whether functions exist (the registry).
type Catalog interface {
	Get(name string) (*function.Spec, error)
}

// compile validates cfg as a whole and builds its router. prev (may be nil)
// lends the stateful parts whose configuration is unchanged. fns, when not
// nil, checks that routed functions exist.
//
// # Errors
// A *function.FieldError naming the offending field (routes[2].auth,
// auth.main-jwt.jwks, ...); conflicting routes name both.
func compile(cfg *api.APIConfig, prev *router, fns Catalog) (*router, error) {
	old := map[string]any{}
	if prev != nil {
		old = prev.parts
	}
	rt := &router{plans: map[string]*plan{}, parts: map[string]any{}, revision: cfg.Revision}
	// keep returns the part stored under key by the previous router, or
	// makes a new one.
	keep := func(key string, make func() (any, error)) (any, error) {
		if v, ok := old[key]; ok {
			rt.parts[key] = v
			return v, nil
		}
		v, err := make()
		if err != nil {
			return nil, err
		}
		rt.parts[key] = v
		return v, nil
	}

	if len(cfg.Routes) > maxRoutes {
		return nil, function.Invalid("routes", "%d routes; the limit is %d", len(cfg.Routes), maxRoutes)
	}

	// Usage plans.
	for _, name := range sortedKeys(cfg.UsagePlans) {
		p := cfg.UsagePlans[name]
		field := "usage_plans." + name
		if err := validName(name); err != nil {
			return nil, function.Invalid(field, "%v", err)
		}
		pl := &plan{name: name}
		if p.Rate < 0 || math.IsNaN(p.Rate) || math.IsInf(p.Rate, 0) || p.Burst < 0 || p.QuotaPerDay < 0 {
			return nil, function.Invalid(field, "rate, burst and quota_per_day must not be negative")
		}
		if p.Burst > 0 && p.Rate == 0 {
			return nil, function.Invalid(field+".rate", "a burst needs a rate (requests per second)")
		}
		if p.Rate > 0 {
			burst := defaultBurst(p.Rate, p.Burst)
			v, err := keep(fmt.Sprintf("plan-rate|%s|%g|%d", name, p.Rate, burst), func() (any, error) {
				return ratelimit.New(p.Rate, burst)
			})
			if err != nil {
				return nil, function.Invalid(field+".rate", "%v", err)
			}
			pl.limiter = v.(*ratelimit.Limiter)
		}
		if p.QuotaPerDay > 0 {
			v, err := keep(fmt.Sprintf("plan-quota|%s|%d", name, p.QuotaPerDay), func() (any, error) {
				return ratelimit.NewQuota(p.QuotaPerDay)
			})
			if err != nil {
				return nil, function.Invalid(field+".quota_per_day", "%v", err)
			}
			pl.quota = v.(*ratelimit.Quota)
		}
		rt.plans[name] = pl
	}

	// Authorizers.
	authz := map[string]*authorizer{}
	for _, name := range sortedKeys(cfg.Auth) {
		a, err := compileAuth(name, cfg.Auth[name], keep, fns)
		if err != nil {
			return nil, err
		}
		authz[name] = a
	}

	// CORS.
	if cfg.CORS != nil {
		p, err := compileCORS(cfg.CORS)
		if err != nil {
			return nil, function.Invalid("cors", "%v", err)
		}
		rt.apiCORS = p
	}

	// Routes.
	routes := make([]route.Route, 0, len(cfg.Routes))
	for i, r := range cfg.Routes {
		field := fmt.Sprintf("routes[%d]", i)
		tmpl, err := route.ParseTemplate(r.Route)
		if err != nil {
			return nil, function.Invalid(field+".route", "%v", err)
		}
		e := &routeEntry{key: tmpl.String(), host: strings.ToLower(r.Host), format: r.Format, scopes: r.Scopes, cors: rt.apiCORS}
		if e.format == "" {
			e.format = api.FormatAPIGatewayV2
		}
		if e.format != api.FormatAPIGatewayV2 && e.format != api.FormatRaw {
			return nil, function.Invalid(field+".format", "%q: want %s or %s", r.Format, api.FormatAPIGatewayV2, api.FormatRaw)
		}
		if e.fn, e.qualifier, err = functionRef(r.Function, fns); err != nil {
			return nil, function.Invalid(field+".function", "%v", err)
		}
		authType := api.AuthNone
		if r.Auth != "" && r.Auth != api.AuthNone {
			a, ok := authz[r.Auth]
			if !ok {
				return nil, function.Invalid(field+".auth", "no authorizer %q under auth (have: %s)", r.Auth, strings.Join(sortedKeys(cfg.Auth), ", "))
			}
			e.authz, authType = a, a.typ
		}
		if len(r.Scopes) > 0 && authType != api.AuthJWT {
			return nil, function.Invalid(field+".scopes", "scopes need a jwt authorizer")
		}
		e.timeout = DefaultRouteTimeout
		if r.Timeout != "" {
			if e.timeout, err = parseDuration(r.Timeout); err != nil || e.timeout <= 0 || e.timeout > MaxRouteTimeout {
				return nil, function.Invalid(field+".timeout", "%q: want a duration from 1ms to %s", r.Timeout, MaxRouteTimeout)
			}
		}
		if r.Rate != nil {
			if !(r.Rate.RPS > 0) || math.IsInf(r.Rate.RPS, 0) || r.Rate.Burst < 0 {
				return nil, function.Invalid(field+".rate", "rps must be positive and burst not negative")
			}
			burst := defaultBurst(r.Rate.RPS, r.Rate.Burst)
			v, err := keep(fmt.Sprintf("route-rate|%s|%s|%g|%d", e.host, e.key, r.Rate.RPS, burst), func() (any, error) {
				return ratelimit.New(r.Rate.RPS, burst, ratelimit.WithMaxKeys(1))
			})
			if err != nil {
				return nil, function.Invalid(field+".rate", "%v", err)
			}
			e.limiter = v.(*ratelimit.Limiter)
		}
		if r.CORS != nil {
			if e.cors, err = compileCORS(r.CORS); err != nil {
				return nil, function.Invalid(field+".cors", "%v", err)
			}
		}
		e.info = api.RouteInfo{
			Route: e.key, Host: e.host, Function: r.Function, Format: e.format, Auth: r.Auth, AuthType: authType,
			Rate: r.Rate, CORS: e.cors != nil, Timeout: e.timeout.String(),
		}
		if e.info.Auth == "" {
			e.info.Auth = api.AuthNone
		}
		rt.entries = append(rt.entries, e)
		routes = append(routes, route.Route{Key: r.Route, Host: r.Host, Target: e})
	}
	table, err := route.New(routes)
	if err != nil {
		return nil, function.Invalid("routes", "%v", err)
	}
	rt.table = table
	return rt, nil
}

func compileAuth(name string, a api.AuthConfig, keep func(string, func() (any, error)) (any, error), fns Catalog) (*authorizer, error) {
	field := "auth." + name
	if err := validName(name); err != nil {
		return nil, function.Invalid(field, "%v", err)
	}
	out := &authorizer{name: name, typ: a.Type}
	// identity is what decides whether a stateful part can be reused.
	identity := func() string {
		b, _ := json.Marshal(a)
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:8])
	}
	switch a.Type {
	case api.AuthAPIKey:
		if a.Issuer != "" || len(a.JWKS) > 0 || a.JWKSURL != "" || a.HS256Secret != "" || a.Function != "" {
			return nil, function.Invalid(field, "an api_key authorizer takes no other settings")
		}
	case api.AuthJWT:
		jc := auth.JWTConfig{Issuer: a.Issuer, Audience: a.Audience, JWKS: a.JWKS, JWKSURL: a.JWKSURL, HS256Secret: []byte(a.HS256Secret)}
		var err error
		if a.ClockSkew != "" {
			if jc.ClockSkew, err = parseDuration(a.ClockSkew); err != nil || jc.ClockSkew < 0 || jc.ClockSkew > time.Hour {
				return nil, function.Invalid(field+".clock_skew", "%q: want a duration up to 1h", a.ClockSkew)
			}
		}
		if a.JWKSCacheTTL != "" {
			if jc.CacheTTL, err = parseDuration(a.JWKSCacheTTL); err != nil || jc.CacheTTL <= 0 {
				return nil, function.Invalid(field+".jwks_cache_ttl", "%q: want a positive duration", a.JWKSCacheTTL)
			}
		}
		if a.Function != "" || len(a.Identity) > 0 || a.TTL != "" {
			return nil, function.Invalid(field, "function, identity and ttl belong to function authorizers")
		}
		if a.Issuer == "" && len(a.Audience) == 0 {
			// Without either, any token signed by the key is accepted,
			// including ones minted for other services: almost always a
			// mistake.
			return nil, function.Invalid(field, "set issuer or audience (or both): without them a token for any service is accepted")
		}
		v, err := keep("jwt|"+name+"|"+identity(), func() (any, error) {
			v, err := auth.NewJWTVerifier(jc)
			if err != nil {
				return nil, err
			}
			return &jwtAuth{verifier: v, skew: jc.ClockSkew, cache: newJWTCache()}, nil
		})
		if err != nil {
			return nil, function.Invalid(field, "%v", err)
		}
		out.jwt = v.(*jwtAuth)
	case api.AuthFunction:
		var err error
		if out.fn, out.qualifier, err = functionRef(a.Function, fns); err != nil {
			return nil, function.Invalid(field+".function", "%v", err)
		}
		out.identity = a.Identity
		if len(out.identity) == 0 {
			out.identity = []string{"$request.header.Authorization"}
		}
		if err := auth.ValidateIdentitySource(out.identity); err != nil {
			return nil, function.Invalid(field+".identity", "%v", err)
		}
		ttl := DefaultAuthorizerTTL
		if a.TTL != "" {
			if ttl, err = parseDuration(a.TTL); err != nil || ttl < 0 || ttl > MaxAuthorizerTTL {
				return nil, function.Invalid(field+".ttl", "%q: want a duration from 0s (no caching) to 1h", a.TTL)
			}
		}
		if a.Issuer != "" || len(a.JWKS) > 0 || a.JWKSURL != "" || a.HS256Secret != "" {
			return nil, function.Invalid(field, "issuer, audience and keys belong to jwt authorizers")
		}
		v, _ := keep("authz|"+name+"|"+identity(), func() (any, error) {
			return auth.NewAuthorizerCache(auth.AuthorizerCacheConfig{TTL: ttl}), nil
		})
		out.cache = v.(*auth.AuthorizerCache)
	case "":
		return nil, function.Invalid(field+".type", "is required: api_key, jwt or function")
	default:
		return nil, function.Invalid(field+".type", "%q: want api_key, jwt or function", a.Type)
	}
	return out, nil
}

func compileCORS(c *api.CORSConfig) (*cors.Policy, error) {
	cfg := cors.Config{
		AllowOrigins: c.Origins, AllowMethods: c.Methods, AllowHeaders: c.Headers,
		ExposeHeaders: c.Expose, AllowCredentials: c.Credentials,
	}
	if c.MaxAge != "" {
		d, err := parseDuration(c.MaxAge)
		if err != nil {
			return nil, fmt.Errorf("max_age: %v", err)
		}
		cfg.MaxAge = d
	}
	return cors.New(cfg)
}

// functionRef splits NAME[:QUALIFIER] and checks that the function exists.
func functionRef(s string, fns Catalog) (name, qualifier string, err error) {
	if s == "" {
		return "", "", errors.New("is required")
	}
	name, qualifier, _ = strings.Cut(s, ":")
	if err := function.ValidateName(name); err != nil {
		return "", "", fmt.Errorf("%q is not a function name", s)
	}
	if fns != nil {
		if _, err := fns.Get(name); err != nil {
			return "", "", fmt.Errorf("no function %q is deployed: deploy it first (nimbus deploy -f deploys functions before routes)", name)
		}
	}
	return name, qualifier, nil
}

func defaultBurst(rate float64, burst int) int {
	if burst > 0 {
		return burst
	}
	return max(1, int(math.Ceil(rate)))
}

func parseDuration(s string) (time.Duration, error) {
	var d function.Duration
	if err := d.UnmarshalText([]byte(s)); err != nil {
		return 0, err
	}
	return time.Duration(d), nil
}

func validName(s string) error {
	if s == "" || len(s) > 64 {
		return errors.New("names are 1 to 64 characters")
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("name %q: use letters, digits, - and _", s)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// redacted returns cfg as GET shows it: secrets left out.
func redacted(cfg *api.APIConfig) *api.APIConfig {
	out := *cfg
	if cfg.Auth != nil {
		out.Auth = make(map[string]api.AuthConfig, len(cfg.Auth))
		for k, a := range cfg.Auth {
			if a.HS256Secret != "" {
				a.HS256Secret, a.HS256SecretSet = "", true
			}
			out.Auth[k] = a
		}
	}
	if out.Routes == nil {
		out.Routes = []api.Route{}
	}
	return &out
}
