// Command loop never finishes when asked: {"mode":"spin"} busy-loops,
// {"mode":"sleep"} sleeps for an hour; anything else returns "ok". It tests
// that a deadline stops a guest whether it computes or waits.
package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nimbus-run/nimbus/sdk"
)

var sink int

func main() {
	sdk.Start(func(ctx context.Context, event json.RawMessage) (any, error) {
		var req struct{ Mode string }
		_ = json.Unmarshal(event, &req)
		switch req.Mode {
		case "spin":
			for i := 0; ; i++ {
				sink = i
			}
		case "sleep":
			time.Sleep(time.Hour)
		}
		return "ok", nil
	})
}
