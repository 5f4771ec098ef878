package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/nimbus-run/nimbus/internal/gateway/apigw"
)

func TestAPIKeys(t *testing.T) {
	plain, rec := NewAPIKey()
	if !strings.HasPrefix(plain, "nmb_"+rec.ID+"_") || len(plain) != 4+16+1+43 {
		t.Fatalf("key %q has the wrong shape (id %q)", plain, rec.ID)
	}
	if strings.Contains(rec.Hash, plain) || len(rec.Hash) != 64 {
		t.Fatalf("hash %q", rec.Hash)
	}
	plain2, rec2 := NewAPIKey()
	if plain2 == plain || rec2.ID == rec.ID {
		t.Fatal("two keys are equal")
	}
	revoked := rec2
	revoked.Revoked = true
	store := map[string]KeyRecord{rec.ID: rec, rec2.ID: revoked}
	lookup := func(id string) (KeyRecord, bool) { r, ok := store[id]; return r, ok }

	tampered := []byte(plain)
	tampered[len(tampered)-1] ^= 1
	unknownID := "nmb_0000000000000000" + plain[20:]
	tests := []struct {
		name, key string
		wantErr   error
		detail    string
	}{
		{name: "good", key: plain},
		{name: "empty", key: "", wantErr: ErrMissingCredentials},
		{name: "unknown", key: unknownID, wantErr: ErrInvalidCredentials, detail: "unknown id"},
		{name: "revoked", key: plain2, wantErr: ErrInvalidCredentials, detail: "revoked"},
		{name: "tampered secret", key: string(tampered), wantErr: ErrInvalidCredentials, detail: "does not match"},
		{name: "truncated", key: plain[:len(plain)-1], wantErr: ErrInvalidCredentials, detail: "does not match"},
		{name: "wrong prefix", key: "abc_" + plain[4:], wantErr: ErrInvalidCredentials, detail: "format"},
		{name: "upper-case id", key: "nmb_" + strings.ToUpper(rec.ID) + plain[20:], wantErr: ErrInvalidCredentials, detail: "format"},
		{name: "short", key: "nmb_x", wantErr: ErrInvalidCredentials, detail: "format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VerifyAPIKey(tc.key, lookup)
			if tc.wantErr == nil {
				if err != nil || got.ID != rec.ID {
					t.Fatalf("VerifyAPIKey = %+v, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("error = %v, want %v with %q", err, tc.wantErr, tc.detail)
			}
			if strings.Contains(PublicMessage(err), "revoked") || PublicMessage(err) != "Unauthorized" {
				t.Fatalf("public message %q leaks detail", PublicMessage(err))
			}
		})
	}
	t.Run("from request", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/", nil)
		if _, ok := APIKeyFromRequest(r); ok {
			t.Fatal("found a key in an empty request")
		}
		r.Header.Set("Authorization", "bearer "+plain)
		if k, ok := APIKeyFromRequest(r); !ok || k != plain {
			t.Fatalf("bearer key = %q %v", k, ok)
		}
		r.Header.Set("X-Api-Key", plain2)
		if k, _ := APIKeyFromRequest(r); k != plain2 {
			t.Fatalf("header key = %q", k)
		}
	})
}

func TestAuthorizerCache(t *testing.T) {
	clk := &fakeClock{now: t0}
	c := NewAuthorizerCache(AuthorizerCacheConfig{TTL: time.Minute, MaxEntries: 3, Now: clk.Now})
	allow := AuthorizerResult{Allow: true, Context: map[string]any{"user": "u1"}}
	id := []string{"token-1"}

	t.Run("miss then hit", func(t *testing.T) {
		if _, ok := c.Get("authz", id); ok {
			t.Fatal("hit on empty cache")
		}
		c.Put("authz", id, allow)
		got, ok := c.Get("authz", id)
		if !ok || !reflect.DeepEqual(got, allow) {
			t.Fatalf("Get = %+v %v", got, ok)
		}
	})
	t.Run("keys separate authorizers and value splits", func(t *testing.T) {
		if _, ok := c.Get("other", id); ok {
			t.Fatal("hit for another authorizer")
		}
		c.Put("authz", []string{"ab", "c"}, allow)
		if _, ok := c.Get("authz", []string{"a", "bc"}); ok {
			t.Fatal("(ab,c) and (a,bc) collide")
		}
	})
	t.Run("expiry", func(t *testing.T) {
		clk.Advance(59 * time.Second)
		if _, ok := c.Get("authz", id); !ok {
			t.Fatal("expired early")
		}
		clk.Advance(time.Second)
		if _, ok := c.Get("authz", id); ok {
			t.Fatal("hit after TTL")
		}
	})
	t.Run("bounded lru", func(t *testing.T) {
		for i := range 10 {
			c.Put("authz", []string{string(rune('a' + i))}, allow)
			c.Get("authz", []string{"a"}) // keep "a" warm
		}
		if n := c.Len(); n != 3 {
			t.Fatalf("Len = %d, want 3", n)
		}
		if _, ok := c.Get("authz", []string{"a"}); !ok {
			t.Fatal("recently used entry evicted")
		}
		if _, ok := c.Get("authz", []string{"b"}); ok {
			t.Fatal("old entry kept")
		}
	})
	t.Run("disabled", func(t *testing.T) {
		off := NewAuthorizerCache(AuthorizerCacheConfig{})
		off.Put("a", id, allow)
		if _, ok := off.Get("a", id); ok {
			t.Fatal("TTL 0 cached")
		}
	})
}

func TestAuthorizerCacheGetOrLoad(t *testing.T) {
	c := NewAuthorizerCache(AuthorizerCacheConfig{TTL: time.Minute})
	var loads atomic.Int64
	release := make(chan struct{})
	load := func(ctx context.Context) (AuthorizerResult, error) {
		loads.Add(1)
		<-release
		return AuthorizerResult{Allow: true}, nil
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			res, err := c.GetOrLoad(context.Background(), "a", []string{"tok"}, load)
			if err != nil || !res.Allow {
				t.Errorf("GetOrLoad = %+v %v", res, err)
			}
		})
	}
	// Wait for the load to start, then let everyone through.
	for loads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if _, err := c.GetOrLoad(context.Background(), "a", []string{"tok"}, load); err != nil {
		t.Fatal(err)
	}
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads, want 1", n)
	}
	boom := errors.New("boom")
	fail := func(context.Context) (AuthorizerResult, error) { return AuthorizerResult{}, boom }
	if _, err := c.GetOrLoad(context.Background(), "a", []string{"x"}, fail); !errors.Is(err, boom) {
		t.Fatalf("error = %v", err)
	}
	if _, ok := c.Get("a", []string{"x"}); ok {
		t.Fatal("error was cached")
	}
}

func TestParseAuthorizerResponse(t *testing.T) {
	tests := []struct {
		name, in string
		want     AuthorizerResult
		wantErr  bool
	}{
		{name: "allow with context", in: `{"isAuthorized":true,"context":{"user":"u1","n":1}}`, want: AuthorizerResult{Allow: true, Context: map[string]any{"user": "u1", "n": float64(1)}}},
		{name: "deny", in: `{"isAuthorized":false}`, want: AuthorizerResult{}},
		{name: "null context", in: `{"isAuthorized":true,"context":null}`, want: AuthorizerResult{Allow: true}},
		{name: "missing", in: `{"context":{}}`, wantErr: true},
		{name: "string bool", in: `{"isAuthorized":"true"}`, wantErr: true},
		{name: "iam policy", in: `{"principalId":"x","policyDocument":{}}`, wantErr: true},
		{name: "context array", in: `{"isAuthorized":true,"context":[1]}`, wantErr: true},
		{name: "not json", in: `yes`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAuthorizerResponse([]byte(tc.in))
			if tc.wantErr {
				if !errors.Is(err, ErrMalformedAuthorizerResponse) {
					t.Fatalf("error = %v, want ErrMalformedAuthorizerResponse", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
	if err := (AuthorizerResult{}).Err(); !errors.Is(err, ErrForbidden) {
		t.Fatalf("deny Err = %v", err)
	}
}

func TestAuthorizerEvent(t *testing.T) {
	r := httptest.NewRequest("GET", "https://api.example.com/pets/7?token=q1", nil)
	r.Header.Set("Authorization", "secret")
	r.Header.Set("Cookie", "a=1")
	req := apigw.NewRequest(r, []byte("body is not sent"), "GET /pets/{id}", map[string]string{"id": "7"}, apigw.WithRequestID("rid"), apigw.WithAPIID("api1"))

	if err := ValidateIdentitySource([]string{"$request.header.Authorization", "$request.querystring.token", "$context.requestId"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"header.x", "$request.header.", "$context.nope"} {
		if err := ValidateIdentitySource([]string{bad}); err == nil {
			t.Errorf("ValidateIdentitySource(%q) accepted", bad)
		}
	}
	ids, err := IdentityValues(req, []string{"$request.header.Authorization", "$request.querystring.token", "$context.requestId", "$request.header.cookie"})
	if err != nil || !reflect.DeepEqual(ids, []string{"secret", "q1", "rid", "a=1"}) {
		t.Fatalf("IdentityValues = %v %v", ids, err)
	}
	if _, err := IdentityValues(req, []string{"$request.header.X-Missing"}); !errors.Is(err, ErrMissingCredentials) {
		t.Fatalf("missing identity: %v", err)
	}

	arn := RouteARN("nimbus", "000000000000", "api1", "$default", "GET", "/pets/7")
	ev := BuildAuthorizerEvent(req, arn, ids)
	raw, _ := json.Marshal(ev)
	if strings.Contains(string(raw), "body is not sent") {
		t.Fatal("authorizer event carries the body")
	}
	var got events.APIGatewayV2CustomAuthorizerV2Request
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != "2.0" || got.Type != "REQUEST" || got.RouteArn != "arn:aws:execute-api:nimbus:000000000000:api1/$default/GET/pets/7" ||
		!reflect.DeepEqual(got.IdentitySource, ids) || got.RouteKey != "GET /pets/{id}" || got.RawPath != "/pets/7" ||
		got.RawQueryString != "token=q1" || got.Headers["authorization"] != "secret" || got.PathParameters["id"] != "7" ||
		got.QueryStringParameters["token"] != "q1" || got.RequestContext.RequestID != "rid" || got.RequestContext.HTTP.Method != "GET" ||
		!reflect.DeepEqual(got.Cookies, []string{"a=1"}) {
		t.Fatalf("authorizer event decoded as %+v", got)
	}
}
