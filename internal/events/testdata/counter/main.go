// Command counter is the crash test's function: a native (process runtime)
// Go SDK function whose side effect is countable. It appends its invocation
// id to the JetStream subject $COUNT_SUBJECT on the NATS server at
// $NATS_URL, and succeeds only once the server has stored it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/sdk"
)

func main() {
	nc, err := nats.Connect(os.Getenv("NATS_URL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
	subject := os.Getenv("COUNT_SUBJECT")
	sdk.Start(func(ctx context.Context, event json.RawMessage) (any, error) {
		id := sdk.InvocationID(ctx)
		if _, err := js.Publish(ctx, subject, []byte(id)); err != nil {
			return nil, fmt.Errorf("count %s: %w", id, err)
		}
		return map[string]string{"counted": id}, nil
	})
}
