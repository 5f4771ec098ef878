package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// APIConfig is the API gateway's configuration: every user route with its
// authorizers, CORS policy and usage plans, applied as one document by
// PUT /api/v1/api and validated as a whole (conflicting routes, unknown
// authorizers or functions fail the PUT and change nothing).
type APIConfig struct {
	// Auth holds the authorizers routes refer to by name.
	Auth map[string]AuthConfig `json:"auth,omitempty"`
	// CORS applies to every route that has no CORS of its own.
	CORS *CORSConfig `json:"cors,omitempty"`
	// UsagePlans are the limits API keys can be bound to.
	UsagePlans map[string]UsagePlan `json:"usage_plans,omitempty"`
	Routes     []Route              `json:"routes"`
	// Revision and Updated are set by the node; ignored on PUT.
	Revision uint64    `json:"revision,omitempty"`
	Updated  time.Time `json:"updated,omitzero"`
}

// Stable error codes of user routes (the others are in api.go).
const (
	CodeForbidden  = "Forbidden"
	CodeBadGateway = "BadGateway"
)

// Route formats.
const (
	FormatAPIGatewayV2 = "apigw-v2"
	FormatRaw          = "raw"
)

// Authorizer types.
const (
	AuthNone     = "none"
	AuthAPIKey   = "api_key"
	AuthJWT      = "jwt"
	AuthFunction = "function"
)

// Route maps a route key to a function.
type Route struct {
	// Route is the route key: "GET /users/{id}", "ANY /files/{proxy+}" or
	// "$default".
	Route string `json:"route"`
	// Function is NAME or NAME:QUALIFIER.
	Function string `json:"function"`
	// Format is apigw-v2 (default) or raw.
	Format string `json:"format,omitempty"`
	// Auth names an authorizer of APIConfig.Auth; empty or "none" for none.
	Auth string `json:"auth,omitempty"`
	// Scopes a JWT must carry (all of them) to use the route.
	Scopes []string `json:"scopes,omitempty"`
	// Host binds the route to a host name ("api.example.com" or
	// "*.example.com").
	Host string `json:"host,omitempty"`
	// Rate limits the route as a whole (every caller together).
	Rate *RateLimit `json:"rate,omitempty"`
	// CORS replaces the API's CORS policy for this route.
	CORS *CORSConfig `json:"cors,omitempty"`
	// Timeout bounds the whole request (authorizer and function): 504
	// after it. Default 30s, API Gateway's limit.
	Timeout string `json:"timeout,omitempty"`
}

// RateLimit is a token bucket: RPS requests per second on average, bursts of
// up to Burst.
type RateLimit struct {
	RPS   float64 `json:"rps"`
	Burst int     `json:"burst"`
}

// UsagePlan limits each API key bound to it.
type UsagePlan struct {
	// Rate and Burst are the token bucket of each key (0: no rate limit).
	Rate  float64 `json:"rate,omitempty"`
	Burst int     `json:"burst,omitempty"`
	// QuotaPerDay bounds each key's requests per UTC day (0: no quota).
	QuotaPerDay int `json:"quota_per_day,omitempty"`
}

// AuthConfig is one authorizer.
type AuthConfig struct {
	// Type is api_key, jwt or function.
	Type string `json:"type"`

	// JWT: Issuer must equal iss; Audience must meet aud.
	Issuer   string   `json:"issuer,omitempty"`
	Audience []string `json:"audience,omitempty"`
	// JWKS is an inline JWK Set (the CLI embeds the manifest's file so that
	// every node has it).
	JWKS json.RawMessage `json:"jwks,omitempty"`
	// JWKSURL is fetched and cached by each node.
	JWKSURL string `json:"jwks_url,omitempty"`
	// HS256Secret enables HS256. It is write-only: GET leaves it out and
	// sets HS256SecretSet.
	HS256Secret    string `json:"hs256_secret,omitempty"`
	HS256SecretSet bool   `json:"hs256_secret_set,omitempty"`
	// ClockSkew is the leeway for exp and nbf (default 0s).
	ClockSkew string `json:"clock_skew,omitempty"`
	// JWKSCacheTTL is how long JWKSURL keys are used before a refresh
	// (default 10m).
	JWKSCacheTTL string `json:"jwks_cache_ttl,omitempty"`

	// Function authorizer: the function, its identity sources (default
	// $request.header.Authorization) and how long decisions are cached by
	// identity (default 5m; "0s" disables caching).
	Function string   `json:"function,omitempty"`
	Identity []string `json:"identity,omitempty"`
	TTL      string   `json:"ttl,omitempty"`
}

// CORSConfig is a CORS policy.
type CORSConfig struct {
	Origins     []string `json:"origins"`
	Methods     []string `json:"methods,omitempty"`
	Headers     []string `json:"headers,omitempty"`
	Expose      []string `json:"expose,omitempty"`
	Credentials bool     `json:"credentials,omitempty"`
	MaxAge      string   `json:"max_age,omitempty"`
}

// PutAPIResult is the body of PUT /api/v1/api.
type PutAPIResult struct {
	Config APIConfig `json:"config"`
	// Change is created, updated or unchanged.
	Change string `json:"change"`
}

// RouteInfo is one route as GET /api/v1/routes lists it, in match order.
type RouteInfo struct {
	Route    string     `json:"route"`
	Host     string     `json:"host,omitempty"`
	Function string     `json:"function"`
	Format   string     `json:"format"`
	Auth     string     `json:"auth"`
	AuthType string     `json:"auth_type"`
	Rate     *RateLimit `json:"rate,omitempty"`
	CORS     bool       `json:"cors"`
	Timeout  string     `json:"timeout"`
}

// RouteList is the body of GET /api/v1/routes.
type RouteList struct {
	Routes []RouteInfo `json:"routes"`
	// Revision of the API config the routes come from.
	Revision uint64 `json:"revision,omitempty"`
}

// APIKey is an API key's record. The key itself is shown once, by create.
type APIKey struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	Plan    string    `json:"plan,omitempty"`
	Created time.Time `json:"created"`
	Revoked bool      `json:"revoked,omitempty"`
}

// CreateAPIKeyRequest is the body of POST /api/v1/apikeys.
type CreateAPIKeyRequest struct {
	Name string `json:"name,omitempty"`
	Plan string `json:"plan,omitempty"`
}

// CreateAPIKeyResult is the body of the answer to POST /api/v1/apikeys: the
// plain key, which the node does not keep.
type CreateAPIKeyResult struct {
	Key    string `json:"key"`
	APIKey APIKey `json:"api_key"`
}

// APIKeyList is the body of GET /api/v1/apikeys.
type APIKeyList struct {
	APIKeys []APIKey `json:"api_keys"`
}

// PutAPI replaces the API config.
func (c *Client) PutAPI(ctx context.Context, cfg *APIConfig) (*PutAPIResult, error) {
	var out PutAPIResult
	return &out, c.json(ctx, http.MethodPut, "/api/v1/api", cfg, &out)
}

// GetAPI returns the API config.
func (c *Client) GetAPI(ctx context.Context) (*APIConfig, error) {
	var out APIConfig
	return &out, c.json(ctx, http.MethodGet, "/api/v1/api", nil, &out)
}

// Routes lists the user routes in match order.
func (c *Client) Routes(ctx context.Context) (*RouteList, error) {
	var out RouteList
	return &out, c.json(ctx, http.MethodGet, "/api/v1/routes", nil, &out)
}

// CreateAPIKey mints an API key; the result holds the only copy of it.
func (c *Client) CreateAPIKey(ctx context.Context, req *CreateAPIKeyRequest) (*CreateAPIKeyResult, error) {
	var out CreateAPIKeyResult
	return &out, c.json(ctx, http.MethodPost, "/api/v1/apikeys", req, &out)
}

// APIKeys lists API key records.
func (c *Client) APIKeys(ctx context.Context) ([]APIKey, error) {
	var out APIKeyList
	return out.APIKeys, c.json(ctx, http.MethodGet, "/api/v1/apikeys", nil, &out)
}

// RevokeAPIKey revokes an API key: requests with it are refused from then on.
func (c *Client) RevokeAPIKey(ctx context.Context, id string) error {
	return c.json(ctx, http.MethodDelete, "/api/v1/apikeys/"+url.PathEscape(id), nil, nil)
}
