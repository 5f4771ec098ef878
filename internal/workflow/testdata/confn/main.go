// Command confn implements the six tiny functions of the ASL conformance
// cases as one Go SDK function; each deployment picks its behaviour with
// the BEHAVIOR environment variable (identity, echo_hello, raise_exception,
// raise_custom_exception, return_bytes_str, large_output). Tests also use
// "sleep_ms" (sleeps for the event's "ms" field, then echoes the event).
package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"time"

	"github.com/nimbus-run/nimbus/sdk"
)

func main() {
	behavior := os.Getenv("BEHAVIOR")
	large := json.RawMessage(`"` + strings.Repeat("a", 263168) + `"`)
	sdk.Start(func(ctx context.Context, event json.RawMessage) (any, error) {
		switch behavior {
		case "echo_hello":
			return json.RawMessage(`{"Return":"HelloWorld"}`), nil
		case "raise_exception":
			return nil, &sdk.Error{Type: "Exception", Message: "Some exception was raised."}
		case "raise_custom_exception":
			return nil, &sdk.Error{Type: "CustomException"}
		case "return_bytes_str":
			return json.RawMessage(`"HelloWorld!"`), nil
		case "large_output":
			return large, nil
		case "sleep_ms":
			var in struct {
				MS int `json:"ms"`
			}
			json.Unmarshal(event, &in) //nolint:errcheck // zero sleeps not at all
			select {
			case <-time.After(time.Duration(in.MS) * time.Millisecond):
			case <-ctx.Done():
			}
		}
		return event, nil // identity
	})
}
