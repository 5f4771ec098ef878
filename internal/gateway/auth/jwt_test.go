package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// keys are generated once per test binary: RSA generation is slow under -race.
var testKeys = sync.OnceValue(func() (k struct {
	rsa, rsa2 *rsa.PrivateKey
	ec        *ecdsa.PrivateKey
}) {
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	return k
})

var hsSecret = []byte("0123456789abcdef0123456789abcdef")

const (
	testIss = "https://id.example.com"
	testAud = "api"
)

func rsaJWK(kid string, pub *rsa.PublicKey) map[string]any {
	return map[string]any{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

func ecJWK(kid string, pub *ecdsa.PublicKey) map[string]any {
	b, err := pub.Bytes()
	if err != nil {
		panic(err)
	}
	return map[string]any{
		"kty": "EC", "kid": kid, "crv": "P-256",
		"x": base64.RawURLEncoding.EncodeToString(b[1:33]),
		"y": base64.RawURLEncoding.EncodeToString(b[33:]),
	}
}

func jwksJSON(keys ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

func writeJWKS(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func baseClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": testIss, "aud": testAud, "sub": "user-1",
		"iat": t0.Unix(), "exp": t0.Add(time.Hour).Unix(), "scope": "read write",
	}
}

func sign(t testing.TB, m jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestJWTVerify(t *testing.T) {
	k := testKeys()
	file := writeJWKS(t, jwksJSON(rsaJWK("r1", &k.rsa.PublicKey), ecJWK("e1", &k.ec.PublicKey),
		map[string]any{"kty": "oct", "kid": "sym", "k": base64.RawURLEncoding.EncodeToString(hsSecret)}))
	v, err := NewJWTVerifier(JWTConfig{
		Issuer: testIss, Audience: []string{"other", testAud}, HS256Secret: hsSecret, JWKSFile: file,
		ClockSkew: 30 * time.Second, Now: func() time.Time { return t0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&k.rsa.PublicKey))})
	c := baseClaims()

	tests := []struct {
		name    string
		token   string
		wantErr error
		detail  string
	}{
		{name: "RS256", token: sign(t, jwt.SigningMethodRS256, "r1", k.rsa, c)},
		{name: "ES256", token: sign(t, jwt.SigningMethodES256, "e1", k.ec, c)},
		{name: "HS256", token: sign(t, jwt.SigningMethodHS256, "", hsSecret, c)},
		{name: "bearer prefix", token: "Bearer " + sign(t, jwt.SigningMethodHS256, "", hsSecret, c)},
		{name: "aud array", token: sign(t, jwt.SigningMethodRS256, "r1", k.rsa, with(c, "aud", []string{"x", testAud}))},
		{name: "expired within skew", token: sign(t, jwt.SigningMethodRS256, "r1", k.rsa, with(c, "exp", t0.Add(-20*time.Second).Unix()))},
		{name: "empty", token: "  ", wantErr: ErrMissingCredentials},
		{name: "expired", token: sign(t, jwt.SigningMethodRS256, "r1", k.rsa, with(c, "exp", t0.Add(-time.Minute).Unix())), wantErr: ErrInvalidCredentials, detail: "expired"},
		{name: "no exp", token: sign(t, jwt.SigningMethodRS256, "r1", k.rsa, with(c, "exp", nil)), wantErr: ErrInvalidCredentials, detail: "exp"},
		{name: "not yet valid", token: sign(t, jwt.SigningMethodRS256, "r1", k.rsa, with(c, "nbf", t0.Add(time.Minute).Unix())), wantErr: ErrInvalidCredentials, detail: "not valid yet"},
		{name: "issued in future", token: sign(t, jwt.SigningMethodRS256, "r1", k.rsa, with(c, "iat", t0.Add(time.Minute).Unix())), wantErr: ErrInvalidCredentials, detail: "used before issued"},
		{name: "wrong audience", token: sign(t, jwt.SigningMethodRS256, "r1", k.rsa, with(c, "aud", "else")), wantErr: ErrInvalidCredentials, detail: "audience"},
		{name: "no audience", token: sign(t, jwt.SigningMethodRS256, "r1", k.rsa, with(c, "aud", nil)), wantErr: ErrInvalidCredentials, detail: "aud"},
		{name: "wrong issuer", token: sign(t, jwt.SigningMethodRS256, "r1", k.rsa, with(c, "iss", "https://evil")), wantErr: ErrInvalidCredentials, detail: "issuer"},
		{name: "bad signature", token: sign(t, jwt.SigningMethodRS256, "r1", k.rsa2, c), wantErr: ErrInvalidCredentials, detail: "verification"},
		{name: "tampered payload", token: tamper(sign(t, jwt.SigningMethodRS256, "r1", k.rsa, c)), wantErr: ErrInvalidCredentials},
		{name: "unknown kid", token: sign(t, jwt.SigningMethodRS256, "nope", k.rsa, c), wantErr: ErrInvalidCredentials, detail: "unknown kid"},
		{name: "kid of other key type", token: sign(t, jwt.SigningMethodRS256, "e1", k.rsa, c), wantErr: ErrInvalidCredentials, detail: "ES256 key"},
		{name: "symmetric jwks key ignored", token: sign(t, jwt.SigningMethodHS256, "sym", []byte("wrong-secret-wrong-secret-wrong!!"), c), wantErr: ErrInvalidCredentials},
		{name: "alg none", token: sign(t, jwt.SigningMethodNone, "r1", jwt.UnsafeAllowNoneSignatureType, c), wantErr: ErrInvalidCredentials, detail: "signing method none is invalid"},
		{name: "HS256 keyed with RSA public key", token: sign(t, jwt.SigningMethodHS256, "r1", rsaPubPEM, c), wantErr: ErrInvalidCredentials, detail: "signature is invalid"},
		{name: "RS384 not allowed", token: sign(t, jwt.SigningMethodRS384, "r1", k.rsa, c), wantErr: ErrInvalidCredentials, detail: "RS384 is invalid"},
		{name: "garbage", token: "a.b.c", wantErr: ErrInvalidCredentials},
		{name: "huge", token: strings.Repeat("a", maxTokenBytes+1), wantErr: ErrInvalidCredentials, detail: "too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			claims, scopes, err := v.Verify(context.Background(), tc.token)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if claims["sub"] != "user-1" || !slices.Equal(scopes, []string{"read", "write"}) {
					t.Fatalf("claims %v scopes %v", claims, scopes)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("error %q lacks detail %q", err, tc.detail)
			}
			if code, msg := Status(err); code != 401 || msg != "Unauthorized" {
				t.Errorf("Status = %d %q, want 401 Unauthorized", code, msg)
			}
		})
	}
}

func TestJWTOnlyRSAConfiguredRejectsHS256(t *testing.T) {
	// The classic confusion: without an HS256 secret, an HMAC token signed
	// with the public key must not verify against that public key.
	k := testKeys()
	v, err := NewJWTVerifier(JWTConfig{JWKSFile: writeJWKS(t, jwksJSON(rsaJWK("r1", &k.rsa.PublicKey))), Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	pubDER := must(x509.MarshalPKIXPublicKey(&k.rsa.PublicKey))
	for _, key := range [][]byte{pubDER, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})} {
		tok := sign(t, jwt.SigningMethodHS256, "r1", key, baseClaims())
		if _, _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("HS256 token accepted or wrong error: %v", err)
		}
	}
	// No kid: exactly one RSA key, so it is used.
	if _, _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, "", k.rsa, baseClaims())); err != nil {
		t.Fatalf("no-kid token with one key: %v", err)
	}
}

func TestJWTScopes(t *testing.T) {
	v, err := NewJWTVerifier(JWTConfig{HS256Secret: hsSecret, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		claims jwt.MapClaims
		want   []string
	}{
		{"scope string", with(baseClaims(), "scope", "a b  c"), []string{"a", "b", "c"}},
		{"scp array", with(baseClaims(), "scope", nil, "scp", []string{"x", "y"}), []string{"x", "y"}},
		{"scp string", with(baseClaims(), "scope", nil, "scp", "x"), []string{"x"}},
		{"none", with(baseClaims(), "scope", nil), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, got, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, "", hsSecret, tc.claims))
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("scopes = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if err := RequireScopes([]string{"a", "b"}, "b"); err != nil {
		t.Errorf("RequireScopes: %v", err)
	}
	if err := RequireScopes([]string{"a"}, "b"); !errors.Is(err, ErrForbidden) {
		t.Errorf("RequireScopes missing = %v, want ErrForbidden", err)
	}
}

func TestJWTConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  JWTConfig
		want string
	}{
		{"nothing", JWTConfig{}, "set hs256"},
		{"short secret", JWTConfig{HS256Secret: []byte("short")}, "at least 32"},
		{"both jwks", JWTConfig{JWKSFile: "a", JWKSURL: "https://b"}, "set one of"},
		{"http url", JWTConfig{JWKSURL: "http://id.example.com/jwks"}, "https"},
		{"relative url", JWTConfig{JWKSURL: "/jwks"}, "absolute"},
		{"negative skew", JWTConfig{HS256Secret: hsSecret, ClockSkew: -1}, "negative"},
		{"empty aud", JWTConfig{HS256Secret: hsSecret, Audience: []string{""}}, "empty audience"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewJWTVerifier(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewJWTVerifier error = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("bad file", func(t *testing.T) {
		p := writeJWKS(t, jwksJSON(map[string]any{"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"}))
		if _, err := NewJWTVerifier(JWTConfig{JWKSFile: p}); err == nil || !strings.Contains(err.Error(), "no usable") {
			t.Fatalf("error = %v, want no usable key", err)
		}
	})
	t.Run("loopback http ok", func(t *testing.T) {
		if _, err := NewJWTVerifier(JWTConfig{JWKSURL: "http://127.0.0.1:1/jwks"}); err != nil {
			t.Fatal(err)
		}
	})
}

// jwksServer serves a mutable key set and counts fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	status  int
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: 200}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.WriteHeader(s.status)
		_, _ = w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestJWKSURLCaching(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, jwksJSON(rsaJWK("r1", &k.rsa.PublicKey)))
	clk := &fakeClock{now: t0}
	v, err := NewJWTVerifier(JWTConfig{
		JWKSURL: srv.URL, CacheTTL: 10 * time.Minute, RefetchInterval: 30 * time.Second,
		Now: clk.Now, HTTPClient: srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.fetches.Load(); n != 0 {
		t.Fatalf("NewJWTVerifier fetched %d times, want 0 (no side effects)", n)
	}
	ctx := context.Background()
	good := sign(t, jwt.SigningMethodRS256, "r1", k.rsa, with(baseClaims(), "exp", t0.Add(24*time.Hour).Unix()))
	verify := func(tok string) error { _, _, err := v.Verify(ctx, tok); return err }
	wantFetches := func(step string, n int64) {
		t.Helper()
		if got := srv.fetches.Load(); got != n {
			t.Fatalf("%s: %d fetches, want %d", step, got, n)
		}
	}

	// Concurrent first use: one fetch.
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := verify(good); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	wantFetches("first use", 1)

	// Unknown kid: one refetch, then none until the interval passes.
	bad := sign(t, jwt.SigningMethodRS256, "r2", k.rsa2, with(baseClaims(), "exp", t0.Add(24*time.Hour).Unix()))
	clk.Advance(31 * time.Second)
	for range 10 {
		if err := verify(bad); !errors.Is(err, ErrInvalidCredentials) || !strings.Contains(err.Error(), "unknown kid") {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	wantFetches("unknown kid", 2)

	// Rotation: the IdP publishes r2; after the interval it is found.
	srv.set(200, jwksJSON(rsaJWK("r1", &k.rsa.PublicKey), rsaJWK("r2", &k.rsa2.PublicKey)))
	if err := verify(bad); err == nil {
		t.Fatal("r2 accepted before the refetch interval passed")
	}
	wantFetches("within interval", 2)
	clk.Advance(31 * time.Second)
	if err := verify(bad); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	wantFetches("rotation", 3)

	// Known kids do not refetch until the TTL passes.
	for range 5 {
		if err := verify(good); err != nil {
			t.Fatal(err)
		}
	}
	wantFetches("cached", 3)
	clk.Advance(10 * time.Minute)
	if err := verify(good); err != nil {
		t.Fatal(err)
	}
	wantFetches("ttl", 4)

	// IdP down: stale keys keep working, and failures are rate limited.
	srv.set(500, []byte("oops"))
	clk.Advance(11 * time.Minute)
	for range 5 {
		if err := verify(good); err != nil {
			t.Fatalf("stale keys not used: %v", err)
		}
	}
	wantFetches("down", 5)
}

func TestJWKSURLUnavailable(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, []byte("nope"))
	srv.set(503, nil)
	v, err := NewJWTVerifier(JWTConfig{JWKSURL: srv.URL, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, "r1", k.rsa, baseClaims()))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("error = %v, want ErrUnavailable", err)
	}
	if code, _ := Status(err); code != 503 {
		t.Fatalf("status %d, want 503", code)
	}

	// A caller whose context ends stops waiting.
	done := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	defer slow.Close()
	defer close(done) // runs first: lets the detached fetch finish
	v2, _ := NewJWTVerifier(JWTConfig{JWKSURL: slow.URL, Now: func() time.Time { return t0 }})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := v2.Verify(ctx, sign(t, jwt.SigningMethodRS256, "r1", k.rsa, baseClaims())); err == nil {
		t.Fatal("verified without keys")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Verify waited %v after its context ended", d)
	}
}

func TestParseJWKS(t *testing.T) {
	k := testKeys()
	good := rsaJWK("r", &k.rsa.PublicKey)
	tests := []struct {
		name string
		keys []map[string]any
		want int // usable keys; 0 means error
	}{
		{"rsa and ec", []map[string]any{good, ecJWK("e", &k.ec.PublicKey)}, 2},
		{"skips enc keys", []map[string]any{good, with2(good, "kid", "enc", "use", "enc")}, 1},
		{"skips other alg", []map[string]any{good, with2(good, "kid", "ps", "alg", "PS256")}, 1},
		{"skips other curve", []map[string]any{good, with2(ecJWK("e", &k.ec.PublicKey), "crv", "P-384")}, 1},
		{"off-curve point", []map[string]any{with2(ecJWK("e", &k.ec.PublicKey), "y", base64.RawURLEncoding.EncodeToString(make([]byte, 32)))}, 0},
		{"small rsa", []map[string]any{with2(good, "n", base64.RawURLEncoding.EncodeToString(make([]byte, 128)))}, 0},
		{"even exponent", []map[string]any{with2(good, "e", "Ag")}, 0},
		{"no keys", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := parseJWKS(jwksJSON(tc.keys...))
			if tc.want == 0 {
				if err == nil {
					t.Fatalf("parseJWKS succeeded with %d keys, want error", ks.size())
				}
				return
			}
			if err != nil || ks.size() != tc.want {
				t.Fatalf("parseJWKS = %d keys, %v; want %d", ks.size(), err, tc.want)
			}
		})
	}
}

func with2(m map[string]any, kv ...string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = []byte(strings.Replace(string(payload), "user-1", "admin", 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func BenchmarkJWTVerifyRS256(b *testing.B) {
	k := testKeys()
	dir := b.TempDir()
	p := filepath.Join(dir, "jwks.json")
	_ = os.WriteFile(p, jwksJSON(rsaJWK("r1", &k.rsa.PublicKey)), 0o600)
	v, err := NewJWTVerifier(JWTConfig{Issuer: testIss, Audience: []string{testAud}, JWKSFile: p, Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	tok := sign(b, jwt.SigningMethodRS256, "r1", k.rsa, baseClaims())
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWTVerifyHS256(b *testing.B) {
	v, err := NewJWTVerifier(JWTConfig{Issuer: testIss, Audience: []string{testAud}, HS256Secret: hsSecret, Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	tok := sign(b, jwt.SigningMethodHS256, "", hsSecret, baseClaims())
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
