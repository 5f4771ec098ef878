package pattern

import (
	"encoding/json"
	"fmt"
	"testing"
)

const benchEvent = `{
  "specversion": "1.0",
  "id": "b3a1f6f0-8d1c-4a8e-9d5e-1f2a3b4c5d6e",
  "source": "/svc/11",
  "type": "com.example.t7",
  "subject": "orders/12345",
  "time": "2026-05-01T12:00:00Z",
  "datacontenttype": "application/json",
  "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  "data": {
    "order": {"id": "12345", "total": 149.5, "currency": "EUR", "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}]},
    "customer": {"id": "c-99", "tier": "gold", "country": "FR", "email": "someone@example.com"},
    "client_ip": "10.1.2.3",
    "tags": ["priority", "eu"]
  }
}`

// benchRules builds n rules shaped like real ones: most pin "type" (as a
// trigger on one event type does), some pin "source", and a few have no
// exact discriminator and are always evaluated.
func benchRules(n int) []*Pattern {
	ps := make([]*Pattern, 0, n)
	for i := 0; i < n; i++ {
		var src string
		switch {
		case i%20 == 0: // 5%: no discriminator
			src = fmt.Sprintf(`{"type":[{"prefix":"com.example.t%d"}],"data":{"order":{"total":[{"numeric":[">",%d]}]}}}`, (i/20)%10, i%200)
		case i%10 == 1: // 10%: by source
			src = fmt.Sprintf(`{"source":["/svc/%d"],"data":{"customer":{"tier":["gold","platinum"],"country":[{"anything-but":["US","CA"]}]}}}`, i%40)
		default: // by type, 250 distinct types
			src = fmt.Sprintf(`{"type":["com.example.t%d"],"data":{"order":{"total":[{"numeric":[">=",%d]}],"items":{"sku":[{"prefix":"A-"}]}},"client_ip":[{"cidr":"10.0.0.0/8"}]}}`, i%250, i%200)
		}
		ps = append(ps, MustCompile(src))
	}
	return ps
}

func benchSet(b *testing.B, n int) *Set {
	s := NewSet()
	for i, p := range benchRules(n) {
		if err := s.Add(fmt.Sprintf("rule-%04d", i), p); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkMatch1000Rules is one event, JSON decoding included, against
// 1,000 rules. Target: under 20µs per event.
func BenchmarkMatch1000Rules(b *testing.B) {
	s := benchSet(b, 1000)
	ev := []byte(benchEvent)
	ids, err := s.Match(ev)
	if err != nil || len(ids) == 0 {
		b.Fatalf("Match = %v, %v; want some matches", ids, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := s.Match(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMatch1000RulesDecoded leaves JSON decoding out, to show how the
// time splits between decoding and matching.
func BenchmarkMatch1000RulesDecoded(b *testing.B) {
	s := benchSet(b, 1000)
	var ev map[string]any
	if err := json.Unmarshal([]byte(benchEvent), &ev); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for b.Loop() {
		s.MatchValue(ev)
	}
}

// BenchmarkMatch1000RulesNaive evaluates every rule, the cost the index saves.
func BenchmarkMatch1000RulesNaive(b *testing.B) {
	ps := benchRules(1000)
	var ev map[string]any
	if err := json.Unmarshal([]byte(benchEvent), &ev); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for b.Loop() {
		for _, p := range ps {
			p.MatchValue(ev)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	src := []byte(`{"type":["com.example.t7"],"data":{"order":{"total":[{"numeric":[">=",100]}],"items":{"sku":[{"prefix":"A-"}]}},"client_ip":[{"cidr":"10.0.0.0/8"}]}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(src); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBenchRulesAgree checks that the indexed Set and rule-by-rule matching
// give the same answer on the benchmark's data, so the benchmark measures a
// correct index.
func TestBenchRulesAgree(t *testing.T) {
	ps := benchRules(1000)
	s := NewSet()
	var want []string
	for i, p := range ps {
		id := fmt.Sprintf("rule-%04d", i)
		if err := s.Add(id, p); err != nil {
			t.Fatal(err)
		}
		if p.Match([]byte(benchEvent)) {
			want = append(want, id)
		}
	}
	got, err := s.Match([]byte(benchEvent))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Set.Match = %v\nwant %v", got, want)
	}
	if len(want) == 0 {
		t.Error("benchmark event matches no rule")
	}
}

func BenchmarkDecode(b *testing.B) {
	ev := []byte(benchEvent)
	b.Run("pattern", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := decodeEvent(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			var m map[string]any
			if err := json.Unmarshal(ev, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
