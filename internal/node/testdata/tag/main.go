// Command tag returns its TAG environment variable, so tests can tell which
// version of a function ran.
package main

import (
	"context"
	"encoding/json"
	"os"

	"github.com/nimbus-run/nimbus/sdk"
)

func main() {
	sdk.Start(func(ctx context.Context, event json.RawMessage) (any, error) {
		return os.Getenv("TAG"), nil
	})
}
