// Command sleep is a test function: it sleeps for the event's "ms" and
// returns how long it slept and a per-instance call count, so tests can see
// concurrency limits and instance reuse.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/nimbus-run/nimbus/sdk"
)

var calls int

func main() {
	sdk.Start(func(ctx context.Context, event json.RawMessage) (any, error) {
		var in struct {
			MS   int    `json:"ms"`
			Fail string `json:"fail"`
		}
		if err := json.Unmarshal(event, &in); err != nil {
			return nil, fmt.Errorf("bad event: %w", err)
		}
		calls++
		fmt.Fprintf(os.Stderr, "call %d sleeping %d ms\n", calls, in.MS)
		if in.Fail != "" {
			return nil, &sdk.Error{Type: "TestError", Message: in.Fail}
		}
		time.Sleep(time.Duration(in.MS) * time.Millisecond)
		return map[string]any{"slept_ms": in.MS, "calls": calls}, nil
	})
}
