package sdk

import (
	"encoding/json"
	"testing"
	"time"
)

// The benchmarks below time the SDK's side of a data call without the
// host, to be run in a wasm guest as well as natively:
//
//	GOOS=wasip1 GOARCH=wasm go test -c -o /tmp/sdk.wasm ./sdk
//	go run github.com/tetratelabs/wazero/cmd/wazero run /tmp/sdk.wasm -test.bench Envelope -test.run '^$'

type benchItem struct {
	PK   string   `json:"pk"`
	SK   int      `json:"sk"`
	Name string   `json:"name"`
	Tags []string `json:"tags"`
	N    int      `json:"n"`
}

var getAnswer = []byte("200\nContent-Type: application/json\n\n" +
	`{"item":{"pk":"f1","sk":1001,"name":"item 1001","tags":["a","b"],"n":1001},"revision":1234,"updated":"2026-11-27T21:00:00.123456789Z"}` + "\n")

func BenchmarkEnvelopeMarshalItem(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		if _, err := json.Marshal(benchItem{PK: "f1", SK: i, Name: "item", Tags: []string{"a", "b"}, N: i}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeRequest(b *testing.B) {
	req := &apiRequest{Method: "PUT", Path: "/api/v1/tables/bench/items", Header: jsonHeader,
		Body: []byte(`{"item":{"pk":"f1","sk":1001,"name":"item 1001","tags":["a","b"],"n":1001}}`)}
	var buf []byte
	for b.Loop() {
		var err error
		if buf, err = req.Append(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeAnswer(b *testing.B) {
	for b.Loop() {
		resp, err := parseTextResponse(getAnswer)
		if err != nil {
			b.Fatal(err)
		}
		var it Item
		if err := decodeItem(resp.Body, &it); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeParts(b *testing.B) {
	resp, _ := parseTextResponse(getAnswer)
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			parseTextResponse(getAnswer)
		}
	})
	b.Run("valid", func(b *testing.B) {
		for b.Loop() {
			json.Valid(resp.Body)
		}
	})
	b.Run("time", func(b *testing.B) {
		for b.Loop() {
			time.Parse(time.RFC3339Nano, "2026-11-27T21:00:00.123456789Z")
		}
	})
}
