package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// maxJWKSBytes bounds a JWKS document; real ones are a few kilobytes.
const maxJWKSBytes = 1 << 20

// fetchTimeout bounds one JWKS download, whoever is waiting for it.
const fetchTimeout = 10 * time.Second

// minRSABits rejects keys too short to trust.
const minRSABits = 2048

// publicKey is one usable verification key and the one algorithm it may be
// used with: binding the algorithm to the key is what stops alg confusion.
type publicKey struct {
	alg string // "RS256" or "ES256"
	key any    // *rsa.PublicKey or *ecdsa.PublicKey
}

type keySet struct {
	byKID map[string]publicKey
	noKID []publicKey // keys published without a kid
}

func (ks *keySet) size() int {
	if ks == nil {
		return 0
	}
	return len(ks.byKID) + len(ks.noKID)
}

// find returns the key for kid. A token without a kid is accepted only when
// exactly one key of its algorithm exists, so there is no guessing.
func (ks *keySet) find(kid, alg string) (publicKey, bool) {
	if ks == nil {
		return publicKey{}, false
	}
	if kid != "" {
		k, ok := ks.byKID[kid]
		return k, ok
	}
	var found publicKey
	n := 0
	for _, k := range ks.byKID {
		if k.alg == alg {
			found, n = k, n+1
		}
	}
	for _, k := range ks.noKID {
		if k.alg == alg {
			found, n = k, n+1
		}
	}
	return found, n == 1
}

type rawJWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads a JWK Set. Keys Nimbus cannot use for RS256 or ES256
// signatures (encryption keys, other curves, symmetric keys) are skipped
// rather than failing the set: identity providers publish all kinds. A set
// with no usable key is an error.
func parseJWKS(data []byte) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	ks := &keySet{byKID: make(map[string]publicKey)}
	var skipped []string
	for i, raw := range doc.Keys {
		var j rawJWK
		if err := json.Unmarshal(raw, &j); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		k, err := parseJWK(j)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %v", i, j.Kid, err))
			continue
		}
		if j.Kid == "" {
			ks.noKID = append(ks.noKID, k)
		} else if _, dup := ks.byKID[j.Kid]; !dup {
			ks.byKID[j.Kid] = k
		}
	}
	if ks.size() == 0 {
		if len(skipped) > 0 {
			return nil, fmt.Errorf("jwks: no usable RS256 or ES256 signing key (%s)", strings.Join(skipped, "; "))
		}
		return nil, errors.New("jwks: no keys")
	}
	return ks, nil
}

func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func parseJWK(j rawJWK) (publicKey, error) {
	if j.Use != "" && j.Use != "sig" {
		return publicKey{}, fmt.Errorf("use %q is not sig", j.Use)
	}
	switch j.Kty {
	case "RSA":
		if j.Alg != "" && j.Alg != "RS256" {
			return publicKey{}, fmt.Errorf("alg %q not supported for RSA", j.Alg)
		}
		nb, err := b64(j.N)
		if err != nil || len(nb) == 0 {
			return publicKey{}, errors.New("bad modulus")
		}
		eb, err := b64(j.E)
		if err != nil || len(eb) == 0 || len(eb) > 4 {
			return publicKey{}, errors.New("bad exponent")
		}
		e := 0
		for _, c := range eb {
			e = e<<8 | int(c)
		}
		n := new(big.Int).SetBytes(nb)
		if n.BitLen() < minRSABits {
			return publicKey{}, fmt.Errorf("RSA key of %d bits is shorter than %d", n.BitLen(), minRSABits)
		}
		if e < 3 || e%2 == 0 {
			return publicKey{}, errors.New("bad exponent")
		}
		return publicKey{alg: "RS256", key: &rsa.PublicKey{N: n, E: e}}, nil
	case "EC":
		if j.Crv != "P-256" {
			return publicKey{}, fmt.Errorf("curve %q not supported", j.Crv)
		}
		if j.Alg != "" && j.Alg != "ES256" {
			return publicKey{}, fmt.Errorf("alg %q not supported for P-256", j.Alg)
		}
		x, err1 := b64(j.X)
		y, err2 := b64(j.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return publicKey{}, errors.New("bad point coordinates")
		}
		pt := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
		if err != nil {
			return publicKey{}, fmt.Errorf("bad point: %v", err)
		}
		return publicKey{alg: "ES256", key: pub}, nil
	case "oct":
		return publicKey{}, errors.New("symmetric keys are never taken from a JWKS")
	default:
		return publicKey{}, fmt.Errorf("kty %q not supported", j.Kty)
	}
}

// remoteKeys caches a JWKS URL. Keys are refreshed when older than ttl, and
// on an unknown kid (key rotation) at most once per minGap; a failed fetch
// keeps serving the last good keys, because an IdP hiccup should not log
// everybody out.
type remoteKeys struct {
	url    string
	client *http.Client
	ttl    time.Duration
	minGap time.Duration
	now    func() time.Time

	sf singleflight.Group

	mu      sync.Mutex
	keys    *keySet
	fetched time.Time // last success
	tried   time.Time // last attempt
}

func (rk *remoteKeys) snapshot() (*keySet, time.Time, time.Time) {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	return rk.keys, rk.fetched, rk.tried
}

// key returns the key for kid, fetching when the cache is stale or the kid
// is unknown and the last attempt is old enough.
func (rk *remoteKeys) key(ctx context.Context, kid, alg string) (publicKey, error) {
	keys, fetched, tried := rk.snapshot()
	now := rk.now()
	mayTry := tried.IsZero() || now.Sub(tried) >= rk.minGap
	var fetchErr error
	if (keys == nil || now.Sub(fetched) >= rk.ttl) && mayTry {
		keys, fetchErr = rk.refresh(ctx)
		mayTry = false
		if keys == nil {
			keys, _, _ = rk.snapshot()
		}
	}
	if k, ok := keys.find(kid, alg); ok {
		return k, nil
	}
	if mayTry {
		keys, fetchErr = rk.refresh(ctx)
		if k, ok := keys.find(kid, alg); ok {
			return k, nil
		}
	}
	if keys.size() == 0 {
		if fetchErr == nil {
			fetchErr = errors.New("no keys fetched yet")
		}
		return publicKey{}, fmt.Errorf("%w: jwks %s: %v", ErrUnavailable, rk.url, fetchErr)
	}
	return publicKey{}, invalid("jwt: unknown kid %q", kid)
}

// refresh downloads the set once for all concurrent callers. The download
// runs detached from the first caller's context (bounded by fetchTimeout) so
// one impatient client does not fail everyone waiting on it; each caller
// still stops waiting when its own ctx ends.
func (rk *remoteKeys) refresh(ctx context.Context) (*keySet, error) {
	ch := rk.sf.DoChan("jwks", func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		ks, err := rk.fetch(fctx)
		rk.mu.Lock()
		defer rk.mu.Unlock()
		rk.tried = rk.now()
		if err != nil {
			return nil, err
		}
		rk.keys, rk.fetched = ks, rk.tried
		return ks, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*keySet), nil
	}
}

func (rk *remoteKeys) fetch(ctx context.Context) (*keySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rk.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := rk.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET %s: %s", rk.url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", rk.url, err)
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("GET %s: JWKS larger than %d bytes", rk.url, maxJWKSBytes)
	}
	return parseJWKS(data)
}
