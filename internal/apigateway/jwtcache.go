package apigateway

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/nimbus-run/nimbus/internal/gateway/apigw"
)

// Bounds of the verified-token cache.
const (
	// jwtCacheTTL bounds how long a verified token is trusted without
	// checking its signature again: the longest a token signed by a key
	// just removed from the JWKS keeps working.
	jwtCacheTTL = time.Minute
	// jwtCacheMax bounds memory (entries are a few hundred bytes).
	jwtCacheMax = 10000
)

// jwtCache remembers tokens whose signature and claims were verified, by
// SHA-256 of the token, until the earlier of their expiry and jwtCacheTTL.
// A signature check costs around a hundred microseconds (RS256), a hash one;
// clients send the same token for many requests.
//
// Only exact tokens hit: any change to a token changes its hash. Entries
// hold the rendered authorizer output, shared read-only by requests.
type jwtCache struct {
	mu      sync.RWMutex
	entries map[[32]byte]jwtEntry
}

type jwtEntry struct {
	out     *apigw.JWTAuthorizer
	expires time.Time
}

func newJWTCache() *jwtCache { return &jwtCache{entries: map[[32]byte]jwtEntry{}} }

func (c *jwtCache) get(token string, now time.Time) (*apigw.JWTAuthorizer, [32]byte, bool) {
	key := sha256.Sum256([]byte(token))
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return nil, key, false
	}
	return e.out, key, true
}

// put stores a verified token's output until expires (its exp plus the
// allowed clock skew), capped at jwtCacheTTL from now.
func (c *jwtCache) put(key [32]byte, out *apigw.JWTAuthorizer, expires, now time.Time) {
	if limit := now.Add(jwtCacheTTL); expires.IsZero() || expires.After(limit) {
		expires = limit
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= jwtCacheMax {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= jwtCacheMax {
			// Every entry is live: a flood of distinct valid tokens.
			// Start over rather than track recency on the hot path.
			clear(c.entries)
		}
	}
	c.entries[key] = jwtEntry{out: out, expires: expires}
}
