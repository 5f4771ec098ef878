// Command lambda-go-echo is an unmodified aws-lambda-go function: it runs on
// AWS Lambda as it is, and on Nimbus as a process function.
//
// It echoes the event back. A few fields turn it into a test fixture:
//
//	{"fail": "msg"}   returns an error with that message (errorType "errorString")
//	{"panic": true}   panics (aws-lambda-go reports it, then the process exits)
//	{"sleep_ms": 250} sleeps that long before answering (or until the deadline)
//
// Build it for Nimbus with:
//
//	CGO_ENABLED=0 go build -o bootstrap ./examples/lambda-go-echo
package main

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
)

type event struct {
	Fail    string `json:"fail"`
	Panic   bool   `json:"panic"`
	SleepMS int    `json:"sleep_ms"`
}

func handle(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var ev event
	// Anything that is not an object is echoed as it is.
	_ = json.Unmarshal(raw, &ev)
	if ev.SleepMS > 0 {
		select {
		case <-time.After(time.Duration(ev.SleepMS) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if ev.Panic {
		panic("lambda-go-echo: panic requested")
	}
	if ev.Fail != "" {
		return nil, errors.New(ev.Fail)
	}
	return raw, nil
}

func main() {
	lambda.Start(handle)
}
