package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/events"
	"github.com/nimbus-run/nimbus/internal/events/webhook"
)

func postEvent(t *testing.T, url string, body string, header map[string]string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestRulesRouteMatchingEventsToTargets(t *testing.T) {
	url := startNATS(t, t.TempDir())
	funcs := newFuncs()
	funcs.set("notify", echo)
	funcs.set("all", echo)
	h := newHarness(t, url, funcs, events.Config{})
	ctx := context.Background()
	sub, err := h.st.NC.SubscribeSync("audit")
	if err != nil {
		t.Fatal(err)
	}
	big := &api.Rule{
		Pattern: api.JSON(`{"type":["com.example.order"],"data":{"total":[{"numeric":[">",100]}],"$or":[{"country":["FR"]},{"vip":[true]}]}}`),
		Targets: []api.RuleTarget{
			{Function: "notify", InputTransform: &api.InputTransform{InputPathsMap: map[string]string{"t": "$.data.total"}, InputTemplate: `{"total": <t>, "rule": "<aws.events.rule-name>"}`}},
			{Subject: "audit"},
		},
	}
	if change, err := h.events.PutRule(ctx, "big-orders", big); err != nil || change != "created" {
		t.Fatalf("PutRule: %s, %v", change, err)
	}
	if change, _ := h.events.PutRule(ctx, "big-orders", big); change != "unchanged" {
		t.Errorf("second PutRule: %s, want unchanged", change)
	}
	if _, err := h.events.PutRule(ctx, "everything", &api.Rule{Pattern: api.JSON(`{"source":[{"prefix":"/shop"}]}`), Targets: []api.RuleTarget{{Function: "all"}}}); err != nil {
		t.Fatal(err)
	}
	evs := []string{
		`{"specversion":"1.0","id":"1","source":"/shop","type":"com.example.order","data":{"total":150,"country":"FR"}}`,
		`{"specversion":"1.0","id":"2","source":"/shop","type":"com.example.order","data":{"total":50,"country":"FR"}}`,
		`{"specversion":"1.0","id":"3","source":"/shop","type":"com.example.order","data":{"total":500,"country":"DE"}}`,
		`{"specversion":"1.0","id":"4","source":"/shop","type":"com.example.order","data":{"total":500,"vip":true}}`,
	}
	for _, e := range evs {
		if st := postEvent(t, h.srv.URL+"/api/v1/events", e, map[string]string{"Content-Type": "application/cloudevents+json"}); st != 202 {
			t.Fatalf("publish: %d", st)
		}
	}
	// Binary mode too.
	if st := postEvent(t, h.srv.URL+"/api/v1/events", `{"total":1000,"vip":true}`, map[string]string{
		"Ce-Specversion": "1.0", "Ce-Id": "5", "Ce-Source": "/shop", "Ce-Type": "com.example.order", "Content-Type": "application/json"}); st != 202 {
		t.Fatalf("publish binary: %d", st)
	}
	eventually(t, 10*time.Second, "deliveries", func() bool {
		return len(funcs.callsOf("notify")) == 3 && len(funcs.callsOf("all")) == 5
	})
	var totals []float64
	for _, c := range funcs.callsOf("notify") {
		var v struct {
			Total float64 `json:"total"`
			Rule  string  `json:"rule"`
		}
		if err := json.Unmarshal(c, &v); err != nil || v.Rule != "big-orders" {
			t.Errorf("notify got %s, want the transformed input", c)
		}
		totals = append(totals, v.Total)
	}
	for i := range 3 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("audit message %d: %v", i, err)
		}
		if !bytes.Contains(m.Data, []byte(`"specversion"`)) {
			t.Errorf("audit got %s, want the whole CloudEvent", m.Data)
		}
	}
	t.Logf("notify totals %v", totals)
}

func TestBadEventsAndRulesGetClearErrors(t *testing.T) {
	url := startNATS(t, t.TempDir())
	funcs := newFuncs()
	h := newHarness(t, url, funcs, events.Config{MaxEvent: 1024})
	tests := []struct {
		name   string
		body   string
		header map[string]string
		want   int
	}{
		{"not a cloudevent", `{"a":1}`, map[string]string{"Content-Type": "application/json"}, 415},
		{"unknown format", `x`, map[string]string{"Content-Type": "application/cloudevents+xml"}, 415},
		{"malformed", `{"specversion":"1.0",`, map[string]string{"Content-Type": "application/cloudevents+json"}, 400},
		{"missing id", `{"specversion":"1.0","source":"/s","type":"t"}`, map[string]string{"Content-Type": "application/cloudevents+json"}, 400},
		{"oversize", `{"specversion":"1.0","id":"1","source":"/s","type":"t","data":"` + strings.Repeat("x", 2000) + `"}`, map[string]string{"Content-Type": "application/cloudevents+json"}, 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := postEvent(t, h.srv.URL+"/api/v1/events", tc.body, tc.header); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}
	if got := postEvent(t, h.srv.URL+"/api/v1/events?subject=nowhere.at.all", `{"specversion":"1.0","id":"1","source":"/s","type":"t"}`,
		map[string]string{"Content-Type": "application/cloudevents+json"}); got != 400 {
		t.Errorf("publish to an uncaptured subject: %d, want 400", got)
	}
	rules := []struct {
		rule  api.Rule
		field string
	}{
		{api.Rule{Pattern: api.JSON(`{"data":{"n":[{"numeric":[">"]}]}}`), Targets: []api.RuleTarget{{Function: "f"}}}, "pattern.data.n"},
		{api.Rule{Pattern: api.JSON(`[1]`), Targets: []api.RuleTarget{{Function: "f"}}}, "pattern"},
		{api.Rule{Pattern: api.JSON(`{"a":["x"]}`)}, "targets"},
		{api.Rule{Pattern: api.JSON(`{"a":["x"]}`), Targets: []api.RuleTarget{{Function: "f", Subject: "s"}}}, "targets[0]"},
		{api.Rule{Pattern: api.JSON(`{"a":["x"]}`), Targets: []api.RuleTarget{{Function: "f", InputTransform: &api.InputTransform{InputPath: "data"}}}}, "targets[0].input_transform"},
	}
	for _, tc := range rules {
		_, err := h.events.PutRule(context.Background(), "r", &tc.rule)
		if err == nil || !strings.HasPrefix(err.Error(), tc.field) {
			t.Errorf("PutRule(%s) = %v, want an error naming %s", tc.rule.Pattern, err, tc.field)
		}
	}
}

func TestWebhooks(t *testing.T) {
	url := startNATS(t, t.TempDir())
	funcs := newFuncs()
	funcs.set("gh", echo)
	funcs.set("stripe", echo)
	funcs.env["gh"] = map[string]string{"GH_SECRET": "s3cret"}
	now := time.Now()
	h := newHarness(t, url, funcs, events.Config{
		LookupEnv: func(k string) (string, bool) { return "whsec", k == "STRIPE_SECRET" },
		Now:       func() time.Time { return now },
	})
	ctx := context.Background()
	if _, err := h.events.PutTriggers(ctx, "gh", []api.Trigger{{Webhook: "github-push", Style: "github", SecretEnv: "GH_SECRET"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.events.PutTriggers(ctx, "stripe", []api.Trigger{{Webhook: "stripe", Style: "stripe", SecretEnv: "STRIPE_SECRET", Tolerance: "1m"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.events.PutTriggers(ctx, "stripe", []api.Trigger{{Webhook: "github-push", Style: "github", SecretEnv: "X"}}); err == nil {
		t.Error("a webhook name of another function: want a conflict")
	}
	body := `{"ref":"refs/heads/main"}`
	gh := func(sig, delivery string) int {
		return postEvent(t, h.srv.URL+"/webhook/github-push", body, map[string]string{
			"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sig})
	}
	if got := gh(webhook.SignGitHub([]byte("s3cret"), []byte(body)), "d-1"); got != 202 {
		t.Fatalf("signed github webhook: %d, want 202", got)
	}
	if got := gh(webhook.SignGitHub([]byte("wrong"), []byte(body)), "d-2"); got != 401 {
		t.Errorf("bad signature: %d, want 401", got)
	}
	if got := gh("", "d-3"); got != 401 {
		t.Errorf("no signature: %d, want 401", got)
	}
	// The same delivery again is accepted but runs once.
	if got := gh(webhook.SignGitHub([]byte("s3cret"), []byte(body)), "d-1"); got != 202 {
		t.Errorf("redelivery: %d, want 202", got)
	}
	sbody := `{"id":"evt_1","type":"invoice.paid"}`
	stripe := func(at time.Time) int {
		return postEvent(t, h.srv.URL+"/webhook/stripe", sbody, map[string]string{
			"Content-Type": "application/json", "Stripe-Signature": webhook.SignStripe([]byte("whsec"), []byte(sbody), at)})
	}
	if got := stripe(now); got != 202 {
		t.Errorf("signed stripe webhook: %d, want 202", got)
	}
	if got := stripe(now.Add(-5 * time.Minute)); got != 401 {
		t.Errorf("stale stripe webhook (replay): %d, want 401", got)
	}
	if got := postEvent(t, h.srv.URL+"/webhook/nope", body, nil); got != 404 {
		t.Errorf("unknown webhook: %d, want 404", got)
	}
	eventually(t, 10*time.Second, "the webhook invocations", func() bool {
		return len(funcs.callsOf("gh")) == 1 && len(funcs.callsOf("stripe")) == 1
	})
	var e struct {
		ID, Type, Source string
		Data             json.RawMessage
	}
	_ = json.Unmarshal(funcs.callsOf("gh")[0], &e)
	if e.ID != "d-1" || e.Type != "com.github.push" || e.Source != "/nimbus/webhooks/github-push" || string(e.Data) != body {
		t.Errorf("github event = %+v", e)
	}
	_ = json.Unmarshal(funcs.callsOf("stripe")[0], &e)
	if e.ID != "evt_1" || e.Type != "com.stripe.invoice.paid" {
		t.Errorf("stripe event = %+v", e)
	}
	var rejected uint64
	for _, st := range h.events.Triggers(ctx, "gh") {
		rejected = st.Rejected
	}
	if rejected != 2 {
		t.Errorf("rejected = %d, want 2", rejected)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(funcs.callsOf("gh")); n != 1 {
		t.Errorf("github function ran %d times, want once (the redelivery is deduplicated)", n)
	}
}
