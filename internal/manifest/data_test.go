package manifest

import (
	"strings"
	"testing"
)

func TestDataSections(t *testing.T) {
	m, err := Parse([]byte(`
functions:
  api:
    code: ./api
    uses: {tables: [orders], buckets: [avatars]}
tables:
  orders: {key: customer, sort: created, ttl: expires_at}
buckets:
  avatars: {}
`), "/tmp")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Tables["orders"]; got == nil || got.Key != "customer" || got.Sort != "created" || got.TTL != "expires_at" {
		t.Fatalf("tables.orders = %+v", got)
	}
	if _, ok := m.Buckets["avatars"]; !ok {
		t.Fatal("buckets.avatars missing")
	}
	spec := m.Functions["api"].Spec("api", "sha256:"+strings.Repeat("0", 64))
	if spec.Uses == nil || spec.Uses.Tables[0] != "orders" || spec.Uses.Buckets[0] != "avatars" {
		t.Fatalf("spec.Uses = %+v", spec.Uses)
	}
	// Data alone is a valid manifest.
	if _, err := Parse([]byte("buckets: {logs: {}}\n"), ""); err != nil {
		t.Fatalf("buckets only: %v", err)
	}
}

func TestDataSectionErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"no key", "tables: {orders: {sort: x}}", "tables.orders.key"},
		{"bad table", "tables: {'a b': {key: k}}", "tables.a b"},
		{"bad bucket", "buckets: {Avatars: {}}", "buckets.Avatars"},
		{"sort is key", "tables: {t: {key: k, sort: k}}", "tables.t.sort"},
		{"unknown key", "tables: {t: {key: k, sortkey: x}}", "sortkey"},
		{"bad uses", "functions: {f: {code: x, uses: {buckets: [Bad]}}}", "functions.f.uses.buckets[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestDataTriggers(t *testing.T) {
	m, err := Parse([]byte(`
functions:
  f:
    code: ./f
    triggers:
      - {table: orders, batch: 10}
      - {bucket: avatars, events: [created], prefix: img/, start: oldest}
      - {table: orders, name: since, start: "2026-11-29T09:00:00Z"}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	ts := m.Functions["f"].Triggers
	if ts[0].Kind() != "table" || ts[0].Table != "orders" || ts[0].Batch != 10 {
		t.Errorf("triggers[0] = %+v", ts[0])
	}
	if ts[1].Kind() != "bucket" || ts[1].Bucket != "avatars" || ts[1].Events[0] != "created" || ts[1].Prefix != "img/" || ts[1].Start != "oldest" {
		t.Errorf("triggers[1] = %+v", ts[1])
	}
	if ts[2].Start != "2026-11-29T09:00:00Z" {
		t.Errorf("triggers[2] = %+v", ts[2])
	}
	for _, tc := range []struct{ name, trigger, want string }{
		{"bad event", "{bucket: avatars, events: [changed]}", "triggers[0].events[0]"},
		{"events on a table", "{table: orders, events: [created]}", "triggers[0].events"},
		{"prefix on a table", "{table: orders, prefix: x}", "triggers[0].prefix"},
		{"bad table", "{table: 'a b'}", "triggers[0].table"},
		{"bad bucket", "{bucket: Avatars}", "triggers[0].bucket"},
		{"batch", "{table: orders, batch: 5000}", "triggers[0].batch"},
		{"two kinds", "{table: orders, bucket: avatars}", "triggers[0]"},
		{"bad start", "{table: orders, start: yesterday}", `triggers[0].start: "yesterday" is not a start`},
		{"start 0", "{table: orders, start: '0'}", "triggers[0].start"},
		{"start on a schedule", "{schedule: 'rate(1 minute)', start: oldest}", "triggers[0].start: does not apply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte("functions: {f: {code: ./f, triggers: ["+tc.trigger+"]}}"), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
