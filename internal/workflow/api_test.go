package workflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/nimbus-run/nimbus/internal/keys"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

const taskMachine = `{
  "Comment": "A Task, a Wait, a Map and a Parallel",
  "StartAt": "Call",
  "States": {
    "Call": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:identity", "ResultPath": "$.called", "Next": "Pause"},
    "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Each"},
    "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": "$.mapped",
      "ItemProcessor": {"StartAt": "Echo", "States": {"Echo": {"Type": "Task", "Resource": "identity", "End": true}}},
      "Next": "Both"},
    "Both": {"Type": "Parallel", "ResultPath": "$.both", "End": true, "Branches": [
      {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "a", "End": true}}},
      {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "echo_hello", "Payload.$": "$"}, "ResultSelector": {"r.$": "$.Payload.Return"}, "End": true}}}
    ]}
  }
}`

const taskMachineInput = `{"items":[1,2,3]}`
const taskMachineOutput = `{"items":[1,2,3],"called":{"items":[1,2,3]},"mapped":[1,2,3],"both":["a",{"r":"HelloWorld"}]}`

func TestSDKStateMachinesAndExecutions(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	deployConfn(t, n)
	c := sfnClient(n)
	ctx := context.Background()

	arn := createMachine(t, c, "flow", taskMachine, types.StateMachineTypeStandard)
	if want := "arn:aws:states:us-east-1:000000000000:stateMachine:flow"; arn != want {
		t.Errorf("state machine ARN: got %s, want %s", arn, want)
	}
	// Idempotent create; a different definition under the same name is refused.
	if again := createMachine(t, c, "flow", taskMachine, types.StateMachineTypeStandard); again != arn {
		t.Errorf("second create: got %s, want %s", again, arn)
	}
	_, err := c.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{Name: aws.String("flow"), Definition: aws.String(`{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`), RoleArn: aws.String(testRole)})
	if got := awsErrorCode(err); got != "StateMachineAlreadyExists" {
		t.Errorf("create with another definition: got %v (%s), want StateMachineAlreadyExists", err, got)
	}
	_, err = c.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{Name: aws.String("bad"), Definition: aws.String(`{"StartAt":"Nope","States":{}}`), RoleArn: aws.String(testRole)})
	if got := awsErrorCode(err); got != "InvalidDefinition" {
		t.Errorf("invalid definition: got %v (%s), want InvalidDefinition", err, got)
	}
	_, err = c.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(arn + "-missing")})
	var dne *types.StateMachineDoesNotExist
	if !errorsAs(err, &dne) {
		t.Errorf("describe missing: got %v, want *types.StateMachineDoesNotExist", err)
	}

	d, err := c.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(d.Definition) != taskMachine || d.Type != types.StateMachineTypeStandard || d.Status != types.StateMachineStatusActive || d.CreationDate == nil {
		t.Errorf("describe: got type %s status %s created %v", d.Type, d.Status, d.CreationDate)
	}
	list, err := c.ListStateMachines(ctx, &sfn.ListStateMachinesInput{})
	if err != nil || len(list.StateMachines) != 1 || aws.ToString(list.StateMachines[0].Name) != "flow" {
		t.Fatalf("list: got %+v, %v", list, err)
	}

	st, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Name: aws.String("run-1"), Input: aws.String(taskMachineInput)})
	if err != nil {
		t.Fatal(err)
	}
	if want := "arn:aws:states:us-east-1:000000000000:execution:flow:run-1"; aws.ToString(st.ExecutionArn) != want {
		t.Errorf("execution ARN: got %s, want %s", aws.ToString(st.ExecutionArn), want)
	}
	// Same name and input while running: the same execution.
	again, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Name: aws.String("run-1"), Input: aws.String(taskMachineInput)})
	if err != nil || aws.ToString(again.ExecutionArn) != aws.ToString(st.ExecutionArn) {
		t.Errorf("idempotent start: got %v, %v", again, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := waitDone(wctx, c, *st.ExecutionArn)
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != types.ExecutionStatusSucceeded || !jsonEqual(aws.ToString(out.Output), taskMachineOutput) {
		t.Fatalf("execution: got %s %s %s %s, want SUCCEEDED %s", out.Status, aws.ToString(out.Output), aws.ToString(out.Error), aws.ToString(out.Cause), taskMachineOutput)
	}
	if out.StopDate == nil || out.StartDate == nil || out.StopDate.Before(*out.StartDate) {
		t.Errorf("dates: start %v stop %v", out.StartDate, out.StopDate)
	}
	_, err = c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Name: aws.String("run-1"), Input: aws.String(taskMachineInput)})
	var aee *types.ExecutionAlreadyExists
	if !errorsAs(err, &aee) {
		t.Errorf("restart a finished name: got %v, want ExecutionAlreadyExists", err)
	}

	// History, through the SDK's paginator with small pages.
	var events []types.HistoryEvent
	p := sfn.NewGetExecutionHistoryPaginator(c, &sfn.GetExecutionHistoryInput{ExecutionArn: st.ExecutionArn, MaxResults: 7})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, page.Events...)
	}
	checkHistory(t, events)
	var types_ []string
	for _, e := range events {
		types_ = append(types_, string(e.Type))
	}
	joined := strings.Join(types_, ",")
	for _, want := range []string{"ExecutionStarted,TaskStateEntered,LambdaFunctionScheduled,LambdaFunctionStarted,LambdaFunctionSucceeded,TaskStateExited,WaitStateEntered,WaitStateExited,MapStateEntered,MapStateStarted",
		"ParallelStateEntered,ParallelStateStarted", "TaskScheduled", "ExecutionSucceeded"} {
		if !strings.Contains(joined, want) {
			t.Errorf("history lacks %s:\n%s", want, joined)
		}
	}
	if d := events[0].ExecutionStartedEventDetails; d == nil || aws.ToString(d.Input) != taskMachineInput {
		t.Errorf("ExecutionStarted details: got %+v", d)
	}
	if e := events[len(events)-1]; e.ExecutionSucceededEventDetails == nil || !jsonEqual(aws.ToString(e.ExecutionSucceededEventDetails.Output), taskMachineOutput) {
		t.Errorf("ExecutionSucceeded details: got %+v", e.ExecutionSucceededEventDetails)
	}
	rev, err := c.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: st.ExecutionArn, ReverseOrder: true, MaxResults: 1, IncludeExecutionData: aws.Bool(false)})
	if err != nil || len(rev.Events) != 1 || rev.Events[0].Type != types.HistoryEventTypeExecutionSucceeded || rev.NextToken == nil {
		t.Errorf("reverse history page: got %+v, %v", rev, err)
	}

	execs, err := c.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(arn), StatusFilter: types.ExecutionStatusSucceeded})
	if err != nil || len(execs.Executions) != 1 || aws.ToString(execs.Executions[0].Name) != "run-1" {
		t.Errorf("list executions: got %+v, %v", execs, err)
	}
	_, err = c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(ExecARN("flow", "nope"))})
	var ede *types.ExecutionDoesNotExist
	if !errorsAs(err, &ede) {
		t.Errorf("describe missing execution: got %v", err)
	}

	// Update: new executions run the new definition.
	if _, err := c.UpdateStateMachine(ctx, &sfn.UpdateStateMachineInput{StateMachineArn: aws.String(arn),
		Definition: aws.String(`{"StartAt":"P","States":{"P":{"Type":"Pass","Result":"v2","End":true}}}`)}); err != nil {
		t.Fatal(err)
	}
	st2, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	out2, err := waitDone(wctx, c, *st2.ExecutionArn)
	if err != nil || aws.ToString(out2.Output) != `"v2"` {
		t.Errorf("after update: got %+v, %v", out2, err)
	}
	if _, err := c.DeleteStateMachine(ctx, &sfn.DeleteStateMachineInput{StateMachineArn: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(arn)}); !errorsAs(err, &dne) {
		t.Errorf("describe deleted: got %v", err)
	}
}

func ExecARN(machine, name string) string {
	return "arn:aws:states:us-east-1:000000000000:execution:" + machine + ":" + name
}

// checkHistory checks what every history must satisfy: ids 1..n in order,
// previous ids pointing backwards, one start first and one end last.
func checkHistory(t *testing.T, events []types.HistoryEvent) {
	t.Helper()
	if len(events) < 2 {
		t.Fatalf("history has %d events", len(events))
	}
	for i, e := range events {
		if e.Id != int64(i+1) {
			t.Fatalf("event %d has id %d (type %s): ids must count 1, 2, 3...", i, e.Id, e.Type)
		}
		if e.PreviousEventId >= e.Id || e.PreviousEventId < 0 {
			t.Errorf("event %d (%s): previousEventId %d", e.Id, e.Type, e.PreviousEventId)
		}
		if e.Timestamp == nil {
			t.Errorf("event %d (%s) has no timestamp", e.Id, e.Type)
		}
		if i > 0 && e.Type == types.HistoryEventTypeExecutionStarted {
			t.Errorf("a second ExecutionStarted at %d", e.Id)
		}
	}
	if events[0].Type != types.HistoryEventTypeExecutionStarted {
		t.Errorf("first event: %s", events[0].Type)
	}
	switch events[len(events)-1].Type {
	case types.HistoryEventTypeExecutionSucceeded, types.HistoryEventTypeExecutionFailed, types.HistoryEventTypeExecutionAborted, types.HistoryEventTypeExecutionTimedOut:
	default:
		t.Errorf("last event: %s", events[len(events)-1].Type)
	}
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

func TestStopExecution(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	c := sfnClient(n)
	ctx := context.Background()
	arn := createMachine(t, c, "sleepy", `{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":3600,"End":true}}}`, types.StateMachineTypeStandard)
	st, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: st.ExecutionArn, Error: aws.String("Bored"), Cause: aws.String("took too long")}); err != nil {
		t.Fatal(err)
	}
	out, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: st.ExecutionArn})
	if err != nil || out.Status != types.ExecutionStatusAborted || aws.ToString(out.Error) != "Bored" || aws.ToString(out.Cause) != "took too long" {
		t.Fatalf("after stop: got %+v, %v", out, err)
	}
	h, err := c.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: st.ExecutionArn})
	if err != nil {
		t.Fatal(err)
	}
	checkHistory(t, h.Events)
	if last := h.Events[len(h.Events)-1]; last.Type != types.HistoryEventTypeExecutionAborted {
		t.Errorf("last event: got %s", last.Type)
	}
	// Each read of a history left its consumer on the stream for 5
	// minutes, and a stream holds 1,000: a dashboard polling it failed.
	for i := range 1100 {
		again, err := c.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: st.ExecutionArn})
		if err != nil || len(again.Events) != len(h.Events) {
			t.Fatalf("history read %d: %d events, %v", i, len(again.Events), err)
		}
	}
	// Stopping again is harmless.
	if _, err := c.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: st.ExecutionArn}); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

func TestExpress(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	deployConfn(t, n)
	c := sfnClient(n)
	ctx := context.Background()
	arn := createMachine(t, c, "quick", `{"StartAt":"Call","States":{"Call":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"arn:aws:lambda:us-east-1:000000000000:function:identity","Payload.$":"$"},"OutputPath":"$.Payload","Next":"Fail?"},
	  "Fail?":{"Type":"Choice","Choices":[{"Variable":"$.fail","BooleanEquals":true,"Next":"Boom"}],"Default":"Done"},
	  "Boom":{"Type":"Task","Resource":"raise_exception","End":true},
	  "Done":{"Type":"Succeed"}}}`, types.StateMachineTypeExpress)

	out, err := c.StartSyncExecution(ctx, &sfn.StartSyncExecutionInput{StateMachineArn: aws.String(arn), Input: aws.String(`{"fail":false,"x":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != types.SyncExecutionStatusSucceeded || !jsonEqual(aws.ToString(out.Output), `{"fail":false,"x":1}`) || out.BillingDetails == nil {
		t.Errorf("sync: got %s %s", out.Status, aws.ToString(out.Output))
	}
	if !strings.HasPrefix(aws.ToString(out.ExecutionArn), "arn:aws:states:us-east-1:000000000000:express:quick:") {
		t.Errorf("express ARN: %s", aws.ToString(out.ExecutionArn))
	}
	out, err = c.StartSyncExecution(ctx, &sfn.StartSyncExecutionInput{StateMachineArn: aws.String(arn), Input: aws.String(`{"fail":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != types.SyncExecutionStatusFailed || aws.ToString(out.Error) != "Exception" {
		t.Errorf("sync failure: got %s %s %s", out.Status, aws.ToString(out.Error), aws.ToString(out.Cause))
	}

	// Asynchronous Express: started, then visible while remembered.
	st, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Input: aws.String(`{"fail":false,"y":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	d, err := waitDone(wctx, c, *st.ExecutionArn)
	if err != nil || d.Status != types.ExecutionStatusSucceeded || !jsonEqual(aws.ToString(d.Output), `{"fail":false,"y":2}`) {
		t.Errorf("async express: got %s %s %s, %v", d.Status, aws.ToString(d.Error), aws.ToString(d.Cause), err)
	}

	// StartSyncExecution is for Express machines only.
	std := createMachine(t, c, "std", `{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`, types.StateMachineTypeStandard)
	_, err = c.StartSyncExecution(ctx, &sfn.StartSyncExecutionInput{StateMachineArn: aws.String(std)})
	if got := awsErrorCode(err); got != "StateMachineTypeNotSupported" {
		t.Errorf("sync on standard: got %v (%s)", err, got)
	}
}

// tokenOf finds the task token a waiting task was scheduled with.
func tokenOf(t *testing.T, c *sfn.Client, execARN string) string {
	t.Helper()
	var token string
	nodetest.Eventually(t, 10*time.Second, "a task token in the history", func() bool {
		h, err := c.GetExecutionHistory(context.Background(), &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(execARN)})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range h.Events {
			if d := e.TaskScheduledEventDetails; d != nil {
				var p struct {
					Token   string `json:"token"`
					Payload struct {
						Token string `json:"token"`
					}
				}
				json.Unmarshal([]byte(aws.ToString(d.Parameters)), &p) //nolint:errcheck // checked below
				token = p.Token
				if token == "" {
					token = p.Payload.Token
				}
			}
		}
		return token != ""
	})
	return token
}

func TestWaitForTaskToken(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	deployConfn(t, n)
	c := sfnClient(n)
	ctx := context.Background()
	def := `{"StartAt":"Ask","States":{
	  "Ask":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken",
	    "Parameters":{"FunctionName":"identity","Payload":{"token.$":"$$.Task.Token","q.$":"$.q"}},
	    "HeartbeatSeconds":%d,
	    "Catch":[{"ErrorEquals":["Rejected","States.HeartbeatTimeout"],"ResultPath":"$.err","Next":"Caught"}],"End":true},
	  "Caught":{"Type":"Pass","End":true}}}`
	arn := createMachine(t, c, "approve", fmt.Sprintf(def, 60), types.StateMachineTypeStandard)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	t.Run("success", func(t *testing.T) {
		st, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Input: aws.String(`{"q":"ok?"}`)})
		if err != nil {
			t.Fatal(err)
		}
		token := tokenOf(t, c, *st.ExecutionArn)
		if _, err := c.SendTaskHeartbeat(ctx, &sfn.SendTaskHeartbeatInput{TaskToken: aws.String(token)}); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		if _, err := c.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(token), Output: aws.String(`{"approved":true}`)}); err != nil {
			t.Fatal(err)
		}
		out, err := waitDone(wctx, c, *st.ExecutionArn)
		if err != nil || out.Status != types.ExecutionStatusSucceeded || aws.ToString(out.Output) != `{"approved":true}` {
			t.Fatalf("got %+v, %v", out, err)
		}
		// The token is spent.
		_, err = c.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(token), Output: aws.String(`{}`)})
		var tdne *types.TaskDoesNotExist
		if !errorsAs(err, &tdne) {
			t.Errorf("answering a spent token: got %v, want TaskDoesNotExist", err)
		}
	})
	t.Run("failure", func(t *testing.T) {
		st, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Input: aws.String(`{"q":"no?"}`)})
		if err != nil {
			t.Fatal(err)
		}
		token := tokenOf(t, c, *st.ExecutionArn)
		if _, err := c.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{TaskToken: aws.String(token), Error: aws.String("Rejected"), Cause: aws.String("nope")}); err != nil {
			t.Fatal(err)
		}
		out, err := waitDone(wctx, c, *st.ExecutionArn)
		if err != nil || out.Status != types.ExecutionStatusSucceeded || !jsonEqual(aws.ToString(out.Output), `{"q":"no?","err":{"Error":"Rejected","Cause":"nope"}}`) {
			t.Fatalf("got %+v, %v", out, err)
		}
	})
	t.Run("heartbeat timeout", func(t *testing.T) {
		hb := createMachine(t, c, "approve-hb", fmt.Sprintf(def, 1), types.StateMachineTypeStandard)
		st, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(hb), Input: aws.String(`{"q":"?"}`)})
		if err != nil {
			t.Fatal(err)
		}
		out, err := waitDone(wctx, c, *st.ExecutionArn)
		if err != nil || out.Status != types.ExecutionStatusSucceeded || !strings.Contains(aws.ToString(out.Output), "States.HeartbeatTimeout") {
			t.Fatalf("got %+v, %v", out, err)
		}
	})
	t.Run("unknown token", func(t *testing.T) {
		_, err := c.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String("00000000-0000-4000-8000-000000000000"), Output: aws.String(`{}`)})
		var tdne *types.TaskDoesNotExist
		if !errorsAs(err, &tdne) {
			t.Errorf("got %v, want TaskDoesNotExist", err)
		}
	})
}

func TestAuth(t *testing.T) {
	n := nodetest.Start(t, node.Config{})
	ctx := context.Background()
	_, err := sfnClient(n).ListStateMachines(ctx, &sfn.ListStateMachinesInput{})
	if got := awsErrorCode(err); got != "UnrecognizedClientException" {
		t.Errorf("signed with a key Nimbus does not know: got %v (%s)", err, got)
	}
	key, err := n.Keys.Create(ctx, "sdk", keys.KindAWS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sfnClientWith(n, key.ID, key.Secret).ListStateMachines(ctx, &sfn.ListStateMachinesInput{}); err != nil {
		t.Errorf("signed with a Nimbus access key: %v", err)
	}
	_, err = sfnClientWith(n, key.ID, "wrong").ListStateMachines(ctx, &sfn.ListStateMachinesInput{})
	if got := awsErrorCode(err); got != "InvalidSignatureException" {
		t.Errorf("signed with a wrong secret: got %v (%s)", err, got)
	}
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"admin token", "Bearer " + n.Token(), http.StatusOK},
		{"wrong token", "Bearer nope", http.StatusBadRequest},
		{"nothing", "", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, n.URL()+"/", strings.NewReader(`{}`))
			req.Header.Set("X-Amz-Target", "AWSStepFunctions.ListStateMachines")
			req.Header.Set("Content-Type", "application/x-amz-json-1.0")
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("got %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

func TestEventsPublish(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	c := sfnClient(n)
	ctx := context.Background()
	arn := createMachine(t, c, "emit", `{"StartAt":"Emit","States":{"Emit":{"Type":"Task","Resource":"nimbus:events:publish",
	  "Parameters":{"Type":"order.created","Source":"shop","Data":{"id.$":"$.id"}},"ResultPath":"$.published","End":true}}}`, types.StateMachineTypeStandard)
	st, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Input: aws.String(`{"id":"o-1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := waitDone(wctx, c, *st.ExecutionArn)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Published struct {
			EventID  string `json:"EventId"`
			Subject  string `json:"Subject"`
			Sequence uint64 `json:"Sequence"`
		} `json:"published"`
	}
	if out.Status != types.ExecutionStatusSucceeded || json.Unmarshal([]byte(aws.ToString(out.Output)), &got) != nil ||
		got.Published.EventID == "" || got.Published.Subject != "events.order.created" || got.Published.Sequence == 0 {
		t.Fatalf("got %s %s %s %s", out.Status, aws.ToString(out.Output), aws.ToString(out.Error), aws.ToString(out.Cause))
	}
}
