package apigateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/gateway/apigw"
)

func TestJWTCache(t *testing.T) {
	c := newJWTCache()
	now := time.Unix(1_700_000_000, 0)
	out := &apigw.JWTAuthorizer{Claims: map[string]string{"sub": "a"}}

	_, key, hit := c.get("tok", now)
	if hit {
		t.Fatal("hit on an empty cache")
	}
	c.put(key, out, now.Add(10*time.Second), now)
	if got, _, hit := c.get("tok", now.Add(9*time.Second)); !hit || got != out {
		t.Errorf("before expiry: hit %v", hit)
	}
	if _, _, hit := c.get("tok", now.Add(10*time.Second)); hit {
		t.Error("hit at the token's expiry")
	}
	if _, _, hit := c.get("tok2", now); hit {
		t.Error("another token hit")
	}
	// A long-lived token is re-verified after jwtCacheTTL.
	_, key, _ = c.get("long", now)
	c.put(key, out, now.Add(24*time.Hour), now)
	if _, _, hit := c.get("long", now.Add(jwtCacheTTL-time.Second)); !hit {
		t.Error("miss within the cache TTL")
	}
	if _, _, hit := c.get("long", now.Add(jwtCacheTTL)); hit {
		t.Error("hit after the cache TTL")
	}
	// Bounded: expired entries go first, then everything.
	for i := range jwtCacheMax + 10 {
		_, key, _ := c.get(fmt.Sprint("t", i), now)
		c.put(key, out, now.Add(time.Hour), now)
	}
	if n := len(c.entries); n > jwtCacheMax {
		t.Errorf("%d entries, the bound is %d", n, jwtCacheMax)
	}
}
