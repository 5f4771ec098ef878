// Command sdkfn is the function bench/data deploys to time table operations
// through the Go SDK from inside a function, as users' functions call them.
// An event {"op":"put"|"get","table":T,"from":i,"n":n} does n operations on
// items i..i+n-1 and returns each one's latency in microseconds.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nimbus-run/nimbus/sdk"
)

// item is what a typical function stores: a struct.
type item struct {
	PK   string   `json:"pk"`
	SK   int      `json:"sk"`
	Name string   `json:"name"`
	Tags []string `json:"tags"`
	N    int      `json:"n"`
}

type key struct {
	PK string `json:"pk"`
	SK int    `json:"sk"`
}

type event struct {
	Op    string `json:"op"`
	Table string `json:"table"`
	From  int    `json:"from"`
	N     int    `json:"n"`
}

func handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var ev event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, err
	}
	t := sdk.Table(ev.Table)
	lat := make([]int64, 0, ev.N)
	for i := ev.From; i < ev.From+ev.N; i++ {
		start := time.Now()
		var err error
		switch ev.Op {
		case "put":
			_, err = t.Put(ctx, item{PK: "f" + strconv.Itoa(i%1000), SK: i, Name: "item " + strconv.Itoa(i), Tags: []string{"a", "b"}, N: i})
		case "get":
			_, err = t.Get(ctx, key{PK: "f" + strconv.Itoa(i%1000), SK: i})
		default:
			return nil, fmt.Errorf("unknown op %q", ev.Op)
		}
		if err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(start).Microseconds())
	}
	return map[string]any{"lat_us": lat}, nil
}

func main() { sdk.Start(handle) }
