package apigateway

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
)

func TestCompileKeepsStateAcrossRedeploys(t *testing.T) {
	cfg := &api.APIConfig{
		UsagePlans: map[string]api.UsagePlan{"basic": {Rate: 1, Burst: 1, QuotaPerDay: 10}},
		Auth:       map[string]api.AuthConfig{"fn": {Type: api.AuthFunction, Function: "authz"}},
		Routes: []api.Route{
			{Route: "GET /a", Function: "f", Rate: &api.RateLimit{RPS: 1, Burst: 1}},
			{Route: "GET /b", Function: "f", Auth: "fn"},
		},
	}
	r1, err := compile(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Spend the route's only token and the plan's.
	r1.entries[0].limiter.Allow("")
	r1.plans["basic"].limiter.Allow("key1")

	// Same limits plus a new route: counters carry over.
	cfg.Routes = append(cfg.Routes, api.Route{Route: "GET /c", Function: "f"})
	r2, err := compile(cfg, r1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := r2.entries[0].limiter.Allow(""); ok {
		t.Error("route bucket was reset by a redeploy")
	}
	if ok, _ := r2.plans["basic"].limiter.Allow("key1"); ok {
		t.Error("plan bucket was reset by a redeploy")
	}
	if r2.entries[1].authz.cache != r1.entries[1].authz.cache {
		t.Error("authorizer cache was dropped though its config is the same")
	}

	// Changed limits start afresh.
	cfg.Routes[0].Rate = &api.RateLimit{RPS: 5, Burst: 5}
	cfg.Auth["fn"] = api.AuthConfig{Type: api.AuthFunction, Function: "authz", TTL: "1m"}
	r3, err := compile(cfg, r2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := r3.entries[0].limiter.Allow(""); !ok {
		t.Error("a new limit kept the old bucket")
	}
	if r3.entries[1].authz.cache == r2.entries[1].authz.cache {
		t.Error("a changed authorizer kept its decisions")
	}
	if _, ok := r3.parts["route-rate||GET /a|1|1"]; ok {
		t.Error("the old bucket is still kept")
	}
}

// FuzzCompile feeds arbitrary API config documents (what PUT /api/v1/api
// accepts from outside) through decoding and compilation: no panics, and
// every refusal is an invalid-input error.
func FuzzCompile(f *testing.F) {
	seeds := []string{
		`{"routes":[{"route":"GET /users/{id}","function":"users"}]}`,
		`{"routes":[{"route":"ANY /files/{proxy+}","function":"f","format":"raw","host":"*.example.com","rate":{"rps":1,"burst":2}}]}`,
		`{"auth":{"j":{"type":"jwt","issuer":"i","hs256_secret":"0123456789abcdef0123456789abcdef"}},"routes":[{"route":"$default","function":"f","auth":"j","scopes":["a"]}]}`,
		`{"auth":{"k":{"type":"api_key"}},"usage_plans":{"p":{"rate":1,"quota_per_day":5}},"cors":{"origins":["https://*.example.com"],"max_age":"1h"}}`,
		`{"auth":{"a":{"type":"function","function":"f","identity":["$request.querystring.t"],"ttl":"0s"}}}`,
		`{"routes":[{"route":"GET /a/{x}","function":"f"},{"route":"GET /a/{y}","function":"f"}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var cfg api.APIConfig
		if json.Unmarshal(data, &cfg) != nil {
			return
		}
		rt, err := compile(&cfg, nil, nil)
		if err != nil {
			if !errors.Is(err, function.ErrInvalid) {
				t.Fatalf("error %v is not an invalid-input error", err)
			}
			return
		}
		if len(rt.entries) != len(cfg.Routes) {
			t.Fatalf("%d entries for %d routes", len(rt.entries), len(cfg.Routes))
		}
		for _, e := range rt.entries {
			rt.table.Match("GET", e.host, "/x")
		}
	})
}
