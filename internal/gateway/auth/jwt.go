package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults for JWTConfig.
const (
	DefaultJWKSCacheTTL    = 10 * time.Minute
	DefaultRefetchInterval = 30 * time.Second
	// maxTokenBytes rejects absurd tokens before any parsing work.
	maxTokenBytes = 16 << 10
	minHS256Key   = 32
)

// JWTConfig configures a JWTVerifier. Set HS256Secret, or one of JWKSFile
// and JWKSURL, or a secret and one JWKS source.
type JWTConfig struct {
	// Issuer, when set, must equal the iss claim.
	Issuer string
	// Audience, when set, must contain one of the aud claim's values.
	Audience []string
	// HS256Secret enables HS256; at least 32 bytes (RFC 7518 section 3.2).
	HS256Secret []byte
	// JWKSFile is a JWK Set read once by NewJWTVerifier.
	JWKSFile string
	// JWKS is an inline JWK Set, for configuration that travels between
	// nodes (a file path would name a file on one machine only).
	JWKS []byte
	// JWKSURL is fetched on first use and cached. https, or http to a
	// loopback address.
	JWKSURL string
	// ClockSkew is the leeway for exp, nbf and iat.
	ClockSkew time.Duration
	// CacheTTL is how long fetched JWKS keys are used before a refresh
	// (default 10m).
	CacheTTL time.Duration
	// RefetchInterval is the least time between two JWKS fetches, which
	// bounds the fetches an attacker can cause with made-up kids
	// (default 30s).
	RefetchInterval time.Duration
	// HTTPClient fetches JWKSURL (default: a client with a 10s timeout).
	HTTPClient *http.Client
	// Now is the clock (default time.Now); for tests.
	Now func() time.Time
}

// Validate checks the configuration without touching files or network.
func (c *JWTConfig) Validate() error {
	sources := 0
	for _, set := range []bool{c.JWKSFile != "", len(c.JWKS) > 0, c.JWKSURL != ""} {
		if set {
			sources++
		}
	}
	if len(c.HS256Secret) == 0 && sources == 0 {
		return errors.New("jwt: set hs256 secret, jwks file or jwks url")
	}
	if sources > 1 {
		return errors.New("jwt: set one of jwks file, inline jwks and jwks url")
	}
	if len(c.HS256Secret) > 0 && len(c.HS256Secret) < minHS256Key {
		return fmt.Errorf("jwt: hs256 secret is %d bytes; use at least %d", len(c.HS256Secret), minHS256Key)
	}
	if c.ClockSkew < 0 || c.CacheTTL < 0 || c.RefetchInterval < 0 {
		return errors.New("jwt: durations must not be negative")
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		if err != nil || u.Host == "" {
			return fmt.Errorf("jwt: jwks url %q is not an absolute URL", c.JWKSURL)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
			return fmt.Errorf("jwt: jwks url %q must use https (http only to a loopback address)", c.JWKSURL)
		}
	}
	for _, a := range c.Audience {
		if a == "" {
			return errors.New("jwt: empty audience")
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// JWTVerifier checks bearer tokens. It is safe for concurrent use.
type JWTVerifier struct {
	parser *jwt.Parser
	secret []byte
	file   *keySet
	remote *remoteKeys
}

// NewJWTVerifier validates cfg and reads JWKSFile, if set, so that a bad
// file fails at startup rather than on the first request. A JWKSURL is not
// fetched until the first Verify.
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	v := &JWTVerifier{}
	var algs []string
	if len(cfg.HS256Secret) > 0 {
		v.secret = append([]byte(nil), cfg.HS256Secret...)
		algs = append(algs, "HS256")
	}
	if cfg.JWKSFile != "" {
		data, err := os.ReadFile(cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("jwt: %w", err)
		}
		if v.file, err = parseJWKS(data); err != nil {
			return nil, fmt.Errorf("jwt: %s: %w", cfg.JWKSFile, err)
		}
		algs = append(algs, "RS256", "ES256")
	}
	if len(cfg.JWKS) > 0 {
		var err error
		if v.file, err = parseJWKS(cfg.JWKS); err != nil {
			return nil, fmt.Errorf("jwt: inline jwks: %w", err)
		}
		algs = append(algs, "RS256", "ES256")
	}
	if cfg.JWKSURL != "" {
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: fetchTimeout}
		}
		ttl, gap := cfg.CacheTTL, cfg.RefetchInterval
		if ttl == 0 {
			ttl = DefaultJWKSCacheTTL
		}
		if gap == 0 {
			gap = DefaultRefetchInterval
		}
		v.remote = &remoteKeys{url: cfg.JWKSURL, client: client, ttl: ttl, minGap: gap, now: now}
		algs = append(algs, "RS256", "ES256")
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs), // "none" and everything else is refused up front
		jwt.WithLeeway(cfg.ClockSkew),
		jwt.WithTimeFunc(now),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if len(cfg.Audience) > 0 {
		opts = append(opts, jwt.WithAudience(cfg.Audience...))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Verify checks token's signature, algorithm, exp, nbf, iat, iss and aud,
// and returns its claims and scopes (from "scope", space-separated, or
// "scp"). A token given with a "Bearer " prefix is accepted.
//
// # Errors
//
// An empty token wraps ErrMissingCredentials; a bad one wraps
// ErrInvalidCredentials with the reason; an unreachable JWKS with nothing
// cached wraps ErrUnavailable.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (claims map[string]any, scopes []string, err error) {
	token = strings.TrimSpace(token)
	if len(token) > 7 && strings.EqualFold(token[:7], "bearer ") {
		token = strings.TrimSpace(token[7:])
	}
	if token == "" {
		return nil, nil, fmt.Errorf("jwt: %w", ErrMissingCredentials)
	}
	if len(token) > maxTokenBytes {
		return nil, nil, invalid("jwt: token of %d bytes is too large", len(token))
	}
	mc := jwt.MapClaims{}
	_, err = v.parser.ParseWithClaims(token, mc, func(t *jwt.Token) (any, error) {
		return v.keyFor(ctx, t)
	})
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%w: jwt: %v", ErrInvalidCredentials, err)
	}
	return map[string]any(mc), scopesOf(mc), nil
}

// keyFor picks the key by the token's algorithm. Each algorithm has one
// source, and each JWKS key one algorithm, so a token can never make us
// verify an HMAC with a public key or an RSA signature with the secret.
func (v *JWTVerifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if alg == "HS256" {
		if v.secret == nil {
			return nil, errors.New("HS256 not enabled")
		}
		return v.secret, nil
	}
	kid, _ := t.Header["kid"].(string)
	var k publicKey
	var ok bool
	switch {
	case v.file != nil:
		if k, ok = v.file.find(kid, alg); !ok {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
	case v.remote != nil:
		var err error
		if k, err = v.remote.key(ctx, kid, alg); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%s not enabled", alg)
	}
	if k.alg != alg {
		return nil, fmt.Errorf("kid %q is a %s key, token says %s", kid, k.alg, alg)
	}
	return k.key, nil
}

func scopesOf(mc jwt.MapClaims) []string {
	if s, ok := mc["scope"].(string); ok {
		return strings.Fields(s)
	}
	switch s := mc["scp"].(type) {
	case string:
		return strings.Fields(s)
	case []any:
		out := make([]string, 0, len(s))
		for _, e := range s {
			if str, ok := e.(string); ok {
				out = append(out, str)
			}
		}
		return out
	}
	return nil
}
