package workflow_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

// TestRestartResumes stops a node while executions wait (and while tasks
// run), starts another on the same data directory, and checks that every
// execution finishes with the right output and a consistent history.
func TestRestartResumes(t *testing.T) {
	dir := t.TempDir()
	n1 := nodetest.Start(t, node.Config{Dev: true, DataDir: dir})
	deployConfn(t, n1)
	c1 := sfnClient(n1)
	ctx := context.Background()
	arn := createMachine(t, c1, "flow", taskMachine, types.StateMachineTypeStandard)
	long := createMachine(t, c1, "long", `{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":7200,"Next":"P"},"P":{"Type":"Pass","Result":"late","End":true}}}`, types.StateMachineTypeStandard)

	const count = 10
	var arns []string
	for i := range count {
		st, err := c1.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Name: aws.String(fmt.Sprintf("e%d", i)), Input: aws.String(taskMachineInput)})
		if err != nil {
			t.Fatal(err)
		}
		arns = append(arns, *st.ExecutionArn)
	}
	lst, err := c1.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(long)})
	if err != nil {
		t.Fatal(err)
	}
	// Let them reach the Wait (the first task is quick), then stop.
	time.Sleep(300 * time.Millisecond)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n1.Stop(sctx); err != nil {
		t.Fatalf("stop: %v", err)
	}

	n2 := nodetest.Start(t, node.Config{Dev: true, DataDir: dir})
	c2 := sfnClient(n2)
	if got := n2.Workflows.Running(); got < 1 {
		t.Errorf("after restart the node drives %d executions, want at least the long one", got)
	}
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	for _, a := range arns {
		out, err := waitDone(wctx, c2, a)
		if err != nil {
			t.Fatal(err)
		}
		if out.Status != types.ExecutionStatusSucceeded || !jsonEqual(aws.ToString(out.Output), taskMachineOutput) {
			t.Errorf("%s: got %s %s %s %s", a, out.Status, aws.ToString(out.Output), aws.ToString(out.Error), aws.ToString(out.Cause))
			continue
		}
		h, err := c2.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(a), MaxResults: 1000})
		if err != nil {
			t.Fatal(err)
		}
		checkHistory(t, h.Events)
	}
	// The two-hour Wait is still waiting on the new node, and can be stopped there.
	d, err := c2.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: lst.ExecutionArn})
	if err != nil || d.Status != types.ExecutionStatusRunning {
		t.Fatalf("long wait after restart: got %+v, %v", d, err)
	}
	if _, err := c2.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: lst.ExecutionArn}); err != nil {
		t.Fatal(err)
	}
	if d, err := c2.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: lst.ExecutionArn}); err != nil || d.Status != types.ExecutionStatusAborted {
		t.Fatalf("long wait after stop: got %+v, %v", d, err)
	}
}
