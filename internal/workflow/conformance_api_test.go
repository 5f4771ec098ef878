package workflow_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/workflow/asl/asltest"
)

// TestConformanceAPI runs every case recorded from AWS Step Functions (the
// shared asl-conformance folder beside the repository) through the Step
// Functions API with the AWS SDK: the case's functions are real Nimbus
// functions, each machine is created as a STANDARD state machine, started
// with the case's input, and its outcome compared strictly (causes too).
func TestConformanceAPI(t *testing.T) {
	dir, ok := asltest.Dir()
	if !ok {
		t.Skipf("conformance cases not found at %q", dir)
	}
	cases, err := asltest.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := nodetest.Start(t, node.Config{Dev: true})
	deployConfn(t, n)
	c := sfnClient(n)

	// Run the cases concurrently (several wait or retry for seconds), then
	// compare each in its own subtest.
	outcomes := make([]asltest.Outcome, len(cases))
	errs := make([]error, len(cases))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 24)
	for i, cs := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			outcomes[i], errs[i] = runCaseAPI(c, cs)
		}()
	}
	wg.Wait()
	passed := 0
	var failed []string
	for i, cs := range cases {
		t.Run(cs.Name, func(t *testing.T) {
			if errs[i] != nil {
				failed = append(failed, cs.Name+": "+errs[i].Error())
				t.Fatalf("run: %v", errs[i])
			}
			if m := cs.Compare(outcomes[i]); !m.OK() {
				failed = append(failed, cs.Name+": "+m.String())
				t.Errorf("%s", m)
				return
			}
			passed++
		})
	}
	t.Logf("conformance through the Step Functions API: %d/%d cases pass", passed, len(cases))
	if len(failed) > 0 {
		t.Logf("failures:\n%s", strings.Join(failed, "\n"))
	}
}

func runCaseAPI(c *sfn.Client, cs *asltest.Case) (asltest.Outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sm, err := c.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{
		Name: aws.String(cs.Name), Definition: aws.String(string(cs.Definition)),
		RoleArn: aws.String(testRole), Type: types.StateMachineTypeStandard,
	})
	if err != nil {
		return asltest.Outcome{Status: "CREATE_FAILED", Error: err.Error()}, nil
	}
	st, err := c.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: sm.StateMachineArn, Name: aws.String("exec"), Input: aws.String(string(cs.Input)),
	})
	if err != nil {
		return asltest.Outcome{Status: "START_FAILED", Error: err.Error()}, nil
	}
	out, err := waitDone(ctx, c, *st.ExecutionArn)
	if err != nil {
		return asltest.Outcome{}, err
	}
	o := asltest.Outcome{Status: string(out.Status), Error: aws.ToString(out.Error), Cause: aws.ToString(out.Cause)}
	if out.Output != nil {
		o.Output = []byte(*out.Output)
	}
	return o, nil
}
