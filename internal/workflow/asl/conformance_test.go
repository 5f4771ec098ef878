package asl_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/workflow/asl"
	"github.com/nimbus-run/nimbus/internal/workflow/asl/asltest"
)

// runCase runs one recorded case through asl.Run with a virtual clock, so
// recorded Waits and retry backoffs take no real time.
func runCase(t *testing.T, c *asltest.Case) asltest.Outcome {
	t.Helper()
	m, err := asl.Parse(c.Definition)
	if err != nil {
		return asltest.Outcome{Status: "PARSE_ERROR", Error: err.Error()}
	}
	clock := asl.NewVirtualClock(time.Date(2024, 7, 2, 13, 50, 16, 0, time.UTC))
	opts := asl.RunOptions{
		Context: asl.ExecContext{
			ExecutionID:      "arn:aws:states:us-east-1:000000000000:execution:" + c.Name + ":exec",
			Name:             "exec",
			StateMachineID:   "arn:aws:states:us-east-1:000000000000:stateMachine:" + c.Name,
			StateMachineName: c.Name,
		},
		Now:   clock.Now,
		Sleep: clock.Sleep,
		Function: func(_ context.Context, call asl.FunctionCall) (json.RawMessage, *asl.Error) {
			ref := call.ARN
			if ref == "" {
				ref = call.Name
			}
			res, err := c.CallFunction(ref, call.Payload)
			if err != nil {
				return nil, &asl.Error{Error: "Lambda.ResourceNotFoundException", Cause: err.Error()}
			}
			if res.Failed {
				return nil, asl.FunctionError(res.ErrorPayload())
			}
			return res.Payload, nil
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ex, err := asl.Run(ctx, m, c.Input, opts)
	if err != nil {
		return asltest.Outcome{Status: "RUN_ERROR", Error: err.Error()}
	}
	o := asltest.Outcome{Status: string(ex.Status()), Output: ex.Output()}
	if e := ex.Error(); e != nil {
		o.Error, o.Cause = e.Error, e.Cause
	}
	return o
}

// TestConformance runs every case recorded from AWS Step Functions in the
// shared asl-conformance folder (beside the repository) and compares strictly,
// causes included.
func TestConformance(t *testing.T) {
	dir, ok := asltest.Dir()
	if !ok {
		t.Logf("conformance cases not found at %q; nothing to run", dir)
		return
	}
	cases, err := asltest.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	passed := 0
	var failed []string
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			got := runCase(t, c)
			if m := c.Compare(got); !m.OK() {
				failed = append(failed, c.Name+": "+m.String())
				t.Errorf("%s", m)
				return
			}
			passed++
		})
	}
	t.Logf("conformance: %d/%d cases pass", passed, len(cases))
	if len(failed) > 0 {
		t.Logf("failures:\n%s", strings.Join(failed, "\n"))
	}
}
