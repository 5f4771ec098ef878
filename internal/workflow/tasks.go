package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/workflow/asl"
)

// EventsPublishResource is the Task resource that emits an event through
// the node's event bus (when one is configured). Its input is the event.
const EventsPublishResource = "nimbus:events:publish"

func isEventsPublish(resource string) bool {
	return strings.TrimSuffix(resource, ".waitForTaskToken") == EventsPublishResource
}

// perform does a task action's work for the durable executor. ok is false
// when the node is stopping: the outcome is then not an outcome of the task
// (it was cut short), and the execution resumes it after the restart.
func (s *Service) perform(a asl.Action) (asl.Result, bool) {
	select {
	case s.taskSem <- struct{}{}:
	case <-s.ctx.Done():
		return asl.Result{}, false
	}
	defer func() { <-s.taskSem }()
	res := s.performCtx(s.ctx, a)
	return res, s.ctx.Err() == nil
}

// performCtx does the work of a task action within ctx.
func (s *Service) performCtx(ctx context.Context, a asl.Action) asl.Result {
	switch {
	case a.Function != nil:
		return s.callFunction(ctx, *a.Function, a.TimeoutSeconds)
	case isEventsPublish(a.Resource):
		return s.publishEvent(ctx, a.Input)
	}
	return asl.Result{Error: &asl.Error{Error: asl.ErrTaskFailed,
		Cause: fmt.Sprintf("Nimbus does not support the resource '%s': use a function name or ARN, arn:aws:states:::lambda:invoke, or %s", a.Resource, EventsPublishResource)}}
}

// callFunction invokes a Nimbus function for a Task state. Function errors
// become the error the function raised (errorType), so Retry and Catch
// match on it; failures of the platform use the names Step Functions gives
// Lambda's service exceptions.
func (s *Service) callFunction(ctx context.Context, call asl.FunctionCall, timeoutSeconds int64) asl.Result {
	if call.Async {
		// InvocationType Event: Lambda answers 202 at once and runs the
		// function on its own.
		s.goFunc(func() {
			s.cfg.Invoker.Invoke(s.ctx, &invoke.Request{Function: call.Name, Qualifier: call.Qualifier, Payload: call.Payload, Source: "workflow"}) //nolint:errcheck // fire and forget, recorded by the invoker
		})
		return asl.Result{}
	}
	parent := ctx
	if timeoutSeconds > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(timeoutSeconds)*time.Second)
		defer cancel()
	}
	resp, err := s.cfg.Invoker.Invoke(ctx, &invoke.Request{
		Function: call.Name, Qualifier: call.Qualifier, Payload: call.Payload, Source: "workflow",
	})
	if err == nil {
		r := asl.Result{Output: resp.Payload}
		if resp.Record != nil && resp.Record.Version != function.LatestVersion {
			r.ExecutedVersion = resp.Record.Version
		}
		return r
	}
	if resp != nil && resp.Err != nil {
		b, _ := json.Marshal(resp.Err)
		return asl.Result{Error: asl.FunctionError(b)}
	}
	if timeoutSeconds > 0 && ctx.Err() != nil && parent.Err() == nil {
		return asl.Result{Error: &asl.Error{Error: asl.ErrTimeout, Cause: fmt.Sprintf("The task did not finish within %d seconds.", timeoutSeconds)}}
	}
	arn := "arn:aws:lambda:" + Region + ":" + Account + ":function:" + call.Name
	if call.Qualifier != "" {
		arn += ":" + call.Qualifier
	}
	lambdaErr := func(typ, msg string) asl.Result {
		b, _ := json.Marshal(map[string]string{"errorType": typ, "errorMessage": msg})
		return asl.Result{Error: &asl.Error{Error: typ, Cause: string(b)}}
	}
	switch {
	case errors.Is(err, function.ErrNotFound):
		return asl.Result{Error: &asl.Error{Error: "Lambda.ResourceNotFoundException",
			Cause: fmt.Sprintf("Function not found: %s (Service: Lambda, Status Code: 404, Error Code: ResourceNotFoundException)", arn)}}
	case errors.Is(err, function.ErrThrottled):
		return asl.Result{Error: &asl.Error{Error: "Lambda.TooManyRequestsException", Cause: err.Error()}}
	case errors.Is(err, function.ErrPayloadTooBig):
		return asl.Result{Error: &asl.Error{Error: "Lambda.RequestTooLargeException", Cause: err.Error()}}
	case errors.Is(err, function.ErrTimeout):
		// What Lambda reports for a function that ran out of its own time.
		return lambdaErr("Sandbox.Timedout", err.Error())
	case errors.Is(err, function.ErrMemoryLimit):
		return lambdaErr("Runtime.OutOfMemory", err.Error())
	case errors.Is(err, function.ErrUnavailable):
		return asl.Result{Error: &asl.Error{Error: "Lambda.ServiceException", Cause: err.Error()}}
	}
	return asl.Result{Error: &asl.Error{Error: "Lambda.AWSLambdaException", Cause: err.Error()}}
}

// publishEvent emits the task input as an event and returns {"EventId": id}.
func (s *Service) publishEvent(ctx context.Context, input json.RawMessage) asl.Result {
	if s.cfg.Events == nil {
		return asl.Result{Error: &asl.Error{Error: asl.ErrTaskFailed, Cause: "this node has no event bus for " + EventsPublishResource}}
	}
	id, err := s.cfg.Events.PublishEvent(ctx, input)
	if err != nil {
		return asl.Result{Error: &asl.Error{Error: "Events.PublishFailed", Cause: err.Error()}}
	}
	b, _ := json.Marshal(map[string]string{"EventId": id})
	return asl.Result{Output: b}
}
