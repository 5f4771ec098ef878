// Command fail fails as asked: {"mode":"error"} returns a plain error,
// "typed" an *sdk.Error, "panic" panics in the handler (recovered by the
// SDK), "crash" panics on another goroutine (which ends the instance).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nimbus-run/nimbus/sdk"
)

func main() {
	sdk.Start(func(ctx context.Context, event json.RawMessage) (any, error) {
		var req struct{ Mode string }
		_ = json.Unmarshal(event, &req)
		switch req.Mode {
		case "error":
			return nil, errors.New("plain failure")
		case "typed":
			return nil, &sdk.Error{Type: "Validation", Message: "name is required"}
		case "panic":
			panic("boom in handler")
		case "crash":
			go func() { panic("boom on a goroutine") }()
			time.Sleep(time.Second)
		}
		return "ok", nil
	})
}
