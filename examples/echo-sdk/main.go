// Command echo-sdk returns its event unchanged: the long-lived SDK style,
// used to measure the runtime's own overhead.
package main

import (
	"context"
	"encoding/json"

	"github.com/nimbus-run/nimbus/sdk"
)

func main() {
	sdk.Start(func(_ context.Context, event json.RawMessage) (any, error) {
		return event, nil
	})
}
