// Command lambdalog is an aws-lambda-go function for the Invoke API's tests:
// it writes a log line naming its event (for X-Amz-Log-Type: Tail) and
// answers with the event and the client context it was given (for
// X-Amz-Client-Context). {"hang_ms": N} makes it sleep N ms, ignoring its
// deadline, as a function stuck in a call would (for timeouts).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type result struct {
	Event     json.RawMessage   `json:"event"`
	Custom    map[string]string `json:"custom,omitempty"`
	RequestID string            `json:"request_id"`
}

func handle(ctx context.Context, raw json.RawMessage) (result, error) {
	fmt.Printf("lambdalog: got %s\n", raw)
	var ev struct {
		HangMS int `json:"hang_ms"`
	}
	_ = json.Unmarshal(raw, &ev)
	time.Sleep(time.Duration(ev.HangMS) * time.Millisecond)
	out := result{Event: raw}
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		out.Custom = lc.ClientContext.Custom
		out.RequestID = lc.AwsRequestID
	}
	return out, nil
}

func main() { lambda.Start(handle) }
