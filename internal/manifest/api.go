package manifest

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway/route"
)

// Route declares one user route of the API gateway.
type Route struct {
	// Route is the route key: "GET /users/{id}", "ANY /files/{proxy+}",
	// "$default".
	Route string `yaml:"route"`
	// Function is NAME or NAME:QUALIFIER.
	Function string `yaml:"function"`
	// Format is apigw-v2 (default) or raw.
	Format string `yaml:"format"`
	// Auth names an entry of the top-level auth.
	Auth   string   `yaml:"auth"`
	Scopes []string `yaml:"scopes"`
	// Host binds the route to a host ("api.example.com", "*.example.com").
	Host string `yaml:"host"`
	Rate *Rate  `yaml:"rate"`
	// CORS replaces the top-level cors for this route.
	CORS    *CORS             `yaml:"cors"`
	Timeout function.Duration `yaml:"timeout"`
}

// Rate is a token bucket.
type Rate struct {
	RPS   float64 `yaml:"rps"`
	Burst int     `yaml:"burst"`
}

// Auth declares an authorizer.
type Auth struct {
	// Type is api_key, jwt or function.
	Type string `yaml:"type"`
	// JWT.
	Issuer   string   `yaml:"issuer"`
	Audience []string `yaml:"audience"`
	// JWKS is a JWK Set file (relative to the manifest; its content is
	// sent to the node) or an https URL (each node fetches and caches it).
	JWKS string `yaml:"jwks"`
	// SecretEnv names the environment variable holding an HS256 secret,
	// read by `nimbus deploy`: secrets do not belong in manifests.
	SecretEnv    string            `yaml:"secret_env"`
	ClockSkew    function.Duration `yaml:"clock_skew"`
	JWKSCacheTTL function.Duration `yaml:"jwks_cache_ttl"`
	// Function authorizers.
	Function string             `yaml:"function"`
	Identity []string           `yaml:"identity"`
	TTL      *function.Duration `yaml:"ttl"`
}

// CORS is a CORS policy.
type CORS struct {
	Origins     []string          `yaml:"origins"`
	Methods     []string          `yaml:"methods"`
	Headers     []string          `yaml:"headers"`
	Expose      []string          `yaml:"expose"`
	Credentials bool              `yaml:"credentials"`
	MaxAge      function.Duration `yaml:"max_age"`
}

// UsagePlan limits the API keys bound to it.
type UsagePlan struct {
	Rate        float64 `yaml:"rate"`
	Burst       int     `yaml:"burst"`
	QuotaPerDay int     `yaml:"quota_per_day"`
}

// HasAPI reports whether the manifest declares the API gateway's config
// (any of routes, auth, cors, usage_plans, even empty, as `routes: []`). A
// manifest that does not leaves the API config on the node as it is; one
// that does replaces all of it.
func (m *Manifest) HasAPI() bool {
	return m.Routes != nil || m.Auth != nil || m.CORS != nil || m.UsagePlans != nil
}

// validateAPI checks the API section without reading files: route keys,
// conflicts, references to authorizers, and each authorizer's settings.
// The node validates again, as a whole, with the functions it has.
func (m *Manifest) validateAPI() error {
	for _, name := range sortedNames(m.Auth) {
		a, path := m.Auth[name], "auth."+name
		if a == nil {
			return &Error{Path: path, Msg: "is empty: give at least `type`"}
		}
		switch a.Type {
		case api.AuthAPIKey:
		case api.AuthJWT:
			if a.JWKS == "" && a.SecretEnv == "" {
				return &Error{Path: path, Msg: "a jwt authorizer needs jwks (a file or an https URL) or secret_env"}
			}
			if a.Issuer == "" && len(a.Audience) == 0 {
				return &Error{Path: path, Msg: "set issuer or audience: without them a token minted for any service is accepted"}
			}
		case api.AuthFunction:
			if a.Function == "" {
				return &Error{Path: path + ".function", Msg: "is required for a function authorizer"}
			}
		case "":
			return &Error{Path: path + ".type", Msg: "is required: api_key, jwt or function"}
		default:
			return &Error{Path: path + ".type", Msg: fmt.Sprintf("%q: want api_key, jwt or function", a.Type)}
		}
	}
	for _, name := range sortedNames(m.UsagePlans) {
		if p := m.UsagePlans[name]; p == nil || p.Rate < 0 || p.Burst < 0 || p.QuotaPerDay < 0 {
			return &Error{Path: "usage_plans." + name, Msg: "give rate, burst and/or quota_per_day, none negative"}
		}
	}
	routes := make([]route.Route, 0, len(m.Routes))
	for i, r := range m.Routes {
		path := fmt.Sprintf("routes[%d]", i)
		if _, err := route.ParseTemplate(r.Route); err != nil {
			return &Error{Path: path + ".route", Msg: strings.TrimPrefix(err.Error(), "route: ")}
		}
		if r.Function == "" {
			return &Error{Path: path + ".function", Msg: "is required"}
		}
		if r.Format != "" && r.Format != api.FormatAPIGatewayV2 && r.Format != api.FormatRaw {
			return &Error{Path: path + ".format", Msg: fmt.Sprintf("%q: want apigw-v2 or raw", r.Format)}
		}
		if r.Auth != "" && r.Auth != api.AuthNone && m.Auth[r.Auth] == nil {
			return &Error{Path: path + ".auth", Msg: fmt.Sprintf("no authorizer %q under auth", r.Auth)}
		}
		if r.Rate != nil && !(r.Rate.RPS > 0) {
			return &Error{Path: path + ".rate.rps", Msg: "must be positive"}
		}
		routes = append(routes, route.Route{Key: r.Route, Host: r.Host})
	}
	if _, err := route.New(routes); err != nil {
		return &Error{Path: "routes", Msg: err.Error()}
	}
	return nil
}

// APIConfig is the API config the manifest declares, as PUT /api/v1/api
// takes it. readFile reads JWKS files (resolved against the manifest's
// directory); getenv reads secret_env variables.
func (m *Manifest) APIConfig(readFile func(string) ([]byte, error), getenv func(string) string) (*api.APIConfig, error) {
	cfg := &api.APIConfig{Routes: []api.Route{}}
	if len(m.Auth) > 0 {
		cfg.Auth = map[string]api.AuthConfig{}
	}
	for _, name := range sortedNames(m.Auth) {
		a, path := m.Auth[name], "auth."+name
		out := api.AuthConfig{Type: a.Type, Issuer: a.Issuer, Audience: a.Audience, Function: a.Function, Identity: a.Identity}
		out.ClockSkew = durString(a.ClockSkew)
		out.JWKSCacheTTL = durString(a.JWKSCacheTTL)
		if a.TTL != nil {
			out.TTL = a.TTL.String()
		}
		switch {
		case strings.HasPrefix(a.JWKS, "https://"), strings.HasPrefix(a.JWKS, "http://"):
			out.JWKSURL = a.JWKS
		case a.JWKS != "":
			p := a.JWKS
			if !filepath.IsAbs(p) && m.Dir != "" {
				p = filepath.Join(m.Dir, p)
			}
			b, err := readFile(p)
			if err != nil {
				return nil, &Error{Path: path + ".jwks", Msg: err.Error()}
			}
			if !json.Valid(b) {
				return nil, &Error{Path: path + ".jwks", Msg: p + " is not JSON (want a JWK Set)"}
			}
			out.JWKS = json.RawMessage(b)
		}
		if a.SecretEnv != "" {
			if out.HS256Secret = getenv(a.SecretEnv); out.HS256Secret == "" {
				return nil, &Error{Path: path + ".secret_env", Msg: fmt.Sprintf("environment variable %s is not set", a.SecretEnv)}
			}
		}
		cfg.Auth[name] = out
	}
	if m.CORS != nil {
		cfg.CORS = m.CORS.toAPI()
	}
	if len(m.UsagePlans) > 0 {
		cfg.UsagePlans = map[string]api.UsagePlan{}
		for name, p := range m.UsagePlans {
			cfg.UsagePlans[name] = api.UsagePlan{Rate: p.Rate, Burst: p.Burst, QuotaPerDay: p.QuotaPerDay}
		}
	}
	for _, r := range m.Routes {
		out := api.Route{Route: r.Route, Function: r.Function, Format: r.Format, Auth: r.Auth, Scopes: r.Scopes, Host: r.Host,
			Timeout: durString(r.Timeout)}
		if r.Rate != nil {
			out.Rate = &api.RateLimit{RPS: r.Rate.RPS, Burst: r.Rate.Burst}
		}
		if r.CORS != nil {
			out.CORS = r.CORS.toAPI()
		}
		cfg.Routes = append(cfg.Routes, out)
	}
	return cfg, nil
}

func (c *CORS) toAPI() *api.CORSConfig {
	return &api.CORSConfig{Origins: c.Origins, Methods: c.Methods, Headers: c.Headers, Expose: c.Expose,
		Credentials: c.Credentials, MaxAge: durString(c.MaxAge)}
}

func durString(d function.Duration) string {
	if d == 0 {
		return ""
	}
	return time.Duration(d).String()
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
