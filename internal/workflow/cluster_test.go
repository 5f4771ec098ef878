package workflow_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

// TestTwoNodes runs two nodes on one NATS server: an execution started on
// one is visible from the other, and a task token answered on the other
// reaches the node that drives the execution.
func TestTwoNodes(t *testing.T) {
	a := nodetest.Start(t, node.Config{Dev: true, NATSListen: "127.0.0.1:0"})
	b := nodetest.Start(t, node.Config{Dev: true, NATSURL: a.NATSURL()})
	ca, cb := sfnClient(a), sfnClient(b)
	ctx := context.Background()
	arn := createMachine(t, ca, "approve", `{"StartAt":"Ask","States":{"Ask":{"Type":"Task",
	  "Resource":"arn:aws:states:::sqs:sendMessage.waitForTaskToken","Parameters":{"token.$":"$$.Task.Token"},"End":true}}}`, types.StateMachineTypeStandard)
	nodetest.Eventually(t, 5*time.Second, "the state machine on the second node", func() bool {
		_, err := cb.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(arn)})
		return err == nil
	})
	st, err := ca.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	token := tokenOf(t, cb, *st.ExecutionArn)
	if _, err := cb.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(token), Output: aws.String(`"from b"`)}); err != nil {
		t.Fatalf("SendTaskSuccess on the other node: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := waitDone(wctx, cb, *st.ExecutionArn)
	if err != nil || out.Status != types.ExecutionStatusSucceeded || aws.ToString(out.Output) != `"from b"` {
		t.Fatalf("got %+v, %v", out, err)
	}
	if a.Workflows.NodeID() == b.Workflows.NodeID() {
		t.Errorf("both nodes have id %s", a.Workflows.NodeID())
	}
}
