package apigateway

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/invoke"
)

// echoInvoker answers every invocation with its payload, so the benchmarks
// measure the gateway alone.
type echoInvoker struct{}

func (echoInvoker) Invoke(_ context.Context, req *invoke.Request) (*invoke.Response, error) {
	return &invoke.Response{Payload: req.Payload, Record: &function.Record{ID: req.ID}}, nil
}

// BenchmarkServe is the gateway's own cost per request (routing, auth,
// event, response mapping) without a function: compare the JWT route with
// the open one to see what JWT verification adds on the hot path.
func BenchmarkServe(b *testing.B) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "RSA", "kid": "k", "alg": "RS256",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes())}}})
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": "i", "aud": "a", "sub": "u",
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})
	tok.Header["kid"] = "k"
	token, _ := tok.SignedString(key)

	s := New(Config{Invoker: echoInvoker{}})
	rt, err := compile(&api.APIConfig{
		Auth: map[string]api.AuthConfig{"jwt": {Type: api.AuthJWT, Issuer: "i", Audience: []string{"a"}, JWKS: jwks}},
		Routes: []api.Route{
			{Route: "POST /open", Function: "echo", Format: api.FormatRaw},
			{Route: "POST /jwt", Function: "echo", Format: api.FormatRaw, Auth: "jwt"},
			{Route: "POST /jwt-v2", Function: "echo", Auth: "jwt"},
		},
	}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	s.cur.Store(rt)
	body := `{"hello":"world","n":42}`
	for _, path := range []string{"/open", "/jwt", "/jwt-v2"} {
		b.Run(strings.TrimPrefix(path, "/"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("Authorization", "Bearer "+token)
				w := httptest.NewRecorder()
				s.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("%s: %d %s", path, w.Code, w.Body)
				}
			}
		})
	}
	b.Run("jwt-verify-uncached", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := rt.entries[1].authz.jwt.verifier.Verify(context.Background(), token); err != nil {
				b.Fatal(err)
			}
		}
	})
}
