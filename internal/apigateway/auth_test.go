package apigateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

const hsSecret = "0123456789abcdef0123456789abcdef-test-secret"

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jwksOf(rsaKey *rsa.PublicKey, ecKey *ecdsa.PublicKey) json.RawMessage {
	ecx, ecy := make([]byte, 32), make([]byte, 32)
	ecKey.X.FillBytes(ecx)
	ecKey.Y.FillBytes(ecy)
	b, _ := json.Marshal(map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256", "n": b64u(rsaKey.N.Bytes()), "e": b64u(big.NewInt(int64(rsaKey.E)).Bytes())},
		{"kty": "EC", "kid": "ec1", "use": "sig", "alg": "ES256", "crv": "P-256", "x": b64u(ecx), "y": b64u(ecy)},
	}})
	return b
}

func sign(t *testing.T, m jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthJWT(t *testing.T) {
	n := startNode(t, node.Config{})
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	putAPI(t, n, &api.APIConfig{
		Auth: map[string]api.AuthConfig{
			"keys": {Type: api.AuthJWT, Issuer: "https://id.example.com", Audience: []string{"api"}, JWKS: jwksOf(&rsaKey.PublicKey, &ecKey.PublicKey), ClockSkew: "30s"},
			"hs":   {Type: api.AuthJWT, Issuer: "https://id.example.com", Audience: []string{"api"}, HS256Secret: hsSecret},
		},
		Routes: []api.Route{
			{Route: "GET /me", Function: "fn", Auth: "keys"},
			{Route: "GET /admin", Function: "fn", Auth: "keys", Scopes: []string{"admin"}},
			{Route: "GET /hs", Function: "fn", Auth: "hs"},
		},
	})
	// The secret is write-only.
	got, err := nodetest.Client(n).GetAPI(context.Background())
	if err != nil || got.Auth["hs"].HS256Secret != "" || !got.Auth["hs"].HS256SecretSet {
		t.Errorf("GET /api/v1/api leaks or loses the secret: %+v, %v", got.Auth["hs"], err)
	}

	now := time.Now()
	claims := func(kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "https://id.example.com", "aud": "api", "sub": "user-1", "exp": now.Add(time.Hour).Unix(),
			"iat": now.Unix(), "scope": "read write", "n": 42}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	good := sign(t, jwt.SigningMethodRS256, "rsa1", rsaKey, claims())

	t.Run("claims reach the function", func(t *testing.T) {
		r := do(t, nil, "GET", n.URL()+"/me", nil, "Authorization", "Bearer "+good)
		if r.status != 200 {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		var s seen
		r.json(t, &s)
		if s.JWTClaims["sub"] != "user-1" || s.JWTClaims["n"] != "42" || s.JWTClaims["iss"] != "https://id.example.com" {
			t.Errorf("claims = %v", s.JWTClaims)
		}
		if !slices.Equal(s.JWTScopes, []string{"read", "write"}) {
			t.Errorf("scopes = %v", s.JWTScopes)
		}
	})

	cases := []struct {
		name, path, header string
		status             int
	}{
		{"es256", "/me", "Bearer " + sign(t, jwt.SigningMethodES256, "ec1", ecKey, claims()), 200},
		{"hs256", "/hs", "Bearer " + sign(t, jwt.SigningMethodHS256, "", []byte(hsSecret), claims()), 200},
		{"within clock skew", "/me", "Bearer " + sign(t, jwt.SigningMethodRS256, "rsa1", rsaKey, claims("exp", now.Add(-10*time.Second).Unix())), 200},
		{"scope present", "/admin", "Bearer " + sign(t, jwt.SigningMethodRS256, "rsa1", rsaKey, claims("scope", "admin")), 200},
		{"missing", "/me", "", 401},
		{"not bearer", "/me", "Basic dXNlcjpwYXNz", 401},
		{"garbage", "/me", "Bearer not.a.jwt", 401},
		{"expired", "/me", "Bearer " + sign(t, jwt.SigningMethodRS256, "rsa1", rsaKey, claims("exp", now.Add(-time.Hour).Unix())), 401},
		{"not yet valid", "/me", "Bearer " + sign(t, jwt.SigningMethodRS256, "rsa1", rsaKey, claims("nbf", now.Add(time.Hour).Unix())), 401},
		{"no expiry", "/me", "Bearer " + sign(t, jwt.SigningMethodRS256, "rsa1", rsaKey, claims("exp", nil)), 401},
		{"wrong audience", "/me", "Bearer " + sign(t, jwt.SigningMethodRS256, "rsa1", rsaKey, claims("aud", "other")), 401},
		{"wrong issuer", "/me", "Bearer " + sign(t, jwt.SigningMethodRS256, "rsa1", rsaKey, claims("iss", "https://evil.example.com")), 401},
		{"bad signature", "/me", "Bearer " + sign(t, jwt.SigningMethodRS256, "rsa1", otherRSA, claims()), 401},
		{"unknown kid", "/me", "Bearer " + sign(t, jwt.SigningMethodRS256, "rsa9", rsaKey, claims()), 401},
		{"hs256 on a jwks authorizer", "/me", "Bearer " + sign(t, jwt.SigningMethodHS256, "rsa1", []byte(hsSecret), claims()), 401},
		{"wrong secret", "/hs", "Bearer " + sign(t, jwt.SigningMethodHS256, "", []byte(hsSecret+"x"), claims()), 401},
		{"scope missing", "/admin", "Bearer " + good, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.header != "" {
				hdr = []string{"Authorization", tc.header}
			}
			r := do(t, nil, "GET", n.URL()+tc.path, nil, hdr...)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == 200 {
				return
			}
			code, msg := errorCode(t, r)
			wantCode, wantMsg := api.CodeUnauthorized, "Unauthorized"
			if tc.status == 403 {
				wantCode, wantMsg = api.CodeForbidden, "Forbidden"
			}
			// No detail that would help an attacker.
			if code != wantCode || msg != wantMsg {
				t.Errorf("error = %s %q, want %s %q", code, msg, wantCode, wantMsg)
			}
			if r.header.Get(api.HeaderInvocationID) != "" {
				t.Error("the function ran for a refused request")
			}
		})
	}
}

func TestAuthAPIKeys(t *testing.T) {
	n := startNode(t, node.Config{})
	c := nodetest.Client(n)
	ctx := context.Background()
	putAPI(t, n, &api.APIConfig{
		Auth:       map[string]api.AuthConfig{"keys": {Type: api.AuthAPIKey}},
		UsagePlans: map[string]api.UsagePlan{"tiny": {QuotaPerDay: 3}, "slow": {Rate: 0.001, Burst: 2}},
		Routes:     []api.Route{{Route: "GET /k", Function: "fn", Auth: "keys"}},
	})
	if _, err := c.CreateAPIKey(ctx, &api.CreateAPIKeyRequest{Name: "x", Plan: "nope"}); err == nil {
		t.Error("a key bound to an unknown plan was created")
	}
	free, err := c.CreateAPIKey(ctx, &api.CreateAPIKeyRequest{Name: "free"})
	if err != nil {
		t.Fatal(err)
	}
	tiny, err := c.CreateAPIKey(ctx, &api.CreateAPIKeyRequest{Name: "tiny", Plan: "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	slow, err := c.CreateAPIKey(ctx, &api.CreateAPIKeyRequest{Name: "slow", Plan: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	get := func(hdr ...string) response { return do(t, nil, "GET", n.URL()+"/k", nil, hdr...) }

	if r := get("X-Api-Key", free.Key); r.status != 200 {
		t.Fatalf("good key: %d %s", r.status, r.body)
	}
	if r := get("Authorization", "Bearer "+free.Key); r.status != 200 {
		t.Errorf("good key as bearer token: %d %s", r.status, r.body)
	}
	for name, hdr := range map[string][]string{
		"missing":  nil,
		"garbage":  {"X-Api-Key", "hello"},
		"unknown":  {"X-Api-Key", "nmb_0123456789abcdef_" + free.Key[len(free.Key)-43:]},
		"tampered": {"X-Api-Key", tamper(free.Key)},
	} {
		if r := get(hdr...); r.status != 401 {
			t.Errorf("%s key: %d %s", name, r.status, r.body)
		} else if code, msg := errorCode(t, r); code != api.CodeUnauthorized || msg != "Unauthorized" {
			t.Errorf("%s key: error %s %q", name, code, msg)
		}
	}

	// Daily quota.
	for i := range 3 {
		if r := get("X-Api-Key", tiny.Key); r.status != 200 {
			t.Fatalf("tiny request %d: %d %s", i, r.status, r.body)
		}
	}
	r := get("X-Api-Key", tiny.Key)
	ra, _ := strconv.Atoi(r.header.Get("Retry-After"))
	if r.status != 429 || ra < 1 || ra > 86400 {
		t.Errorf("over quota: %d Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	// Plan rate: a burst of two, then one per 1000 s.
	for i := range 2 {
		if r := get("X-Api-Key", slow.Key); r.status != 200 {
			t.Fatalf("slow request %d: %d", i, r.status)
		}
	}
	if r := get("X-Api-Key", slow.Key); r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Errorf("over rate: %d Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	// Other keys are not affected.
	if r := get("X-Api-Key", free.Key); r.status != 200 {
		t.Errorf("free key after others hit limits: %d", r.status)
	}

	// A plan in use cannot be dropped.
	_, err = c.PutAPI(ctx, &api.APIConfig{
		Auth:   map[string]api.AuthConfig{"keys": {Type: api.AuthAPIKey}},
		Routes: []api.Route{{Route: "GET /k", Function: "fn", Auth: "keys"}},
	})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		t.Errorf("dropping a used plan: %v", err)
	}

	// Revocation.
	if err := c.RevokeAPIKey(ctx, free.APIKey.ID); err != nil {
		t.Fatal(err)
	}
	if r := get("X-Api-Key", free.Key); r.status != 401 {
		t.Errorf("revoked key: %d %s", r.status, r.body)
	}
	keys, err := c.APIKeys(ctx)
	if err != nil || len(keys) != 3 {
		t.Fatalf("list = %+v, %v", keys, err)
	}
	for _, k := range keys {
		if (k.ID == free.APIKey.ID) != k.Revoked {
			t.Errorf("key %s (%s) revoked = %v", k.ID, k.Name, k.Revoked)
		}
	}
	raw, _ := json.Marshal(keys)
	if strings.Contains(string(raw), free.Key) || strings.Contains(string(raw), "hash") {
		t.Error("the key list shows keys or hashes")
	}
	if err := c.RevokeAPIKey(ctx, "0000000000000000"); err == nil {
		t.Error("revoking an unknown key succeeded")
	}
}

func TestAuthFunction(t *testing.T) {
	n := startNode(t, node.Config{})
	putAPI(t, n, &api.APIConfig{
		Auth: map[string]api.AuthConfig{
			"authz":   {Type: api.AuthFunction, Function: "authz", Identity: []string{"$request.header.Authorization"}, TTL: "1m"},
			"nocache": {Type: api.AuthFunction, Function: "authz", TTL: "0s"},
		},
		Routes: []api.Route{
			{Route: "GET /a", Function: "fn", Auth: "authz"},
			{Route: "GET /b", Function: "fn", Auth: "nocache"},
		},
	})
	call := func(path, token string) (response, seen) {
		t.Helper()
		var hdr []string
		if token != "" {
			hdr = []string{"Authorization", token}
		}
		r := do(t, nil, "GET", n.URL()+path, nil, hdr...)
		var s seen
		if r.status == 200 {
			r.json(t, &s)
		}
		return r, s
	}
	r, s1 := call("/a", "Bearer allow-ada")
	if r.status != 200 || s1.LambdaAuth["user"] != "ada" || s1.LambdaAuth["route"] != "GET /a" {
		t.Fatalf("allowed: %d %s", r.status, r.body)
	}
	// Cache hit: the same identity reuses the decision (same authorizer call).
	_, s2 := call("/a", "Bearer allow-ada")
	if s2.LambdaAuth["call"] != s1.LambdaAuth["call"] {
		t.Errorf("second call ran the authorizer again: %v then %v", s1.LambdaAuth, s2.LambdaAuth)
	}
	// Another identity is another decision.
	_, s3 := call("/a", "Bearer allow-bob")
	if s3.LambdaAuth["user"] != "bob" || s3.LambdaAuth["call"] == s1.LambdaAuth["call"] {
		t.Errorf("other identity: %v", s3.LambdaAuth)
	}
	// TTL 0: no caching.
	_, b1 := call("/b", "Bearer allow-ada")
	_, b2 := call("/b", "Bearer allow-ada")
	if b1.LambdaAuth["call"] == nil || b1.LambdaAuth["call"] == b2.LambdaAuth["call"] {
		t.Errorf("uncached authorizer reused a decision: %v, %v", b1.LambdaAuth, b2.LambdaAuth)
	}
	// Denied: 403; no identity: 401 without calling the authorizer.
	if r, _ := call("/a", "Bearer deny-me"); r.status != 403 {
		t.Errorf("denied: %d %s", r.status, r.body)
	} else if code, msg := errorCode(t, r); code != api.CodeForbidden || msg != "Forbidden" {
		t.Errorf("denied: %s %q", code, msg)
	}
	if r, _ := call("/a", ""); r.status != 401 {
		t.Errorf("no identity: %d %s", r.status, r.body)
	}
}

// tamper changes a key's last character (to another one: a fixed
// replacement would leave 1 key in 64 unchanged).
func tamper(key string) string {
	last := "A"
	if strings.HasSuffix(key, "A") {
		last = "B"
	}
	return key[:len(key)-1] + last
}
