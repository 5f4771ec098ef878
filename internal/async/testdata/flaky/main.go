// Command flaky echoes its event, except that an event {"fail": true} fails
// with "poison event" unless the function's env sets HEAL: the poison event
// of the async tests, which a redeploy can cure before a replay.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"

	"github.com/nimbus-run/nimbus/sdk"
)

func main() {
	sdk.Start(func(_ context.Context, event json.RawMessage) (any, error) {
		var e struct {
			Fail bool `json:"fail"`
		}
		_ = json.Unmarshal(event, &e)
		if e.Fail && os.Getenv("HEAL") == "" {
			return nil, errors.New("poison event")
		}
		return event, nil
	})
}
