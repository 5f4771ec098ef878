package workflow

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nimbus-run/nimbus/internal/events/cloudevent"
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
func (s *Service) perform(key string, a asl.Action) (asl.Result, bool) {
	select {
	case s.taskSem <- struct{}{}:
	case <-s.ctx.Done():
		return asl.Result{}, false
	}
	defer func() { <-s.taskSem }()
	sum := sha256.Sum256([]byte(key + "/" + a.ID))
	res := s.performCtx(s.ctx, a, hex.EncodeToString(sum[:16]))
	return res, s.ctx.Err() == nil
}

// performCtx does the work of a task action within ctx. eventID, when
// set, is the id an emitted event gets (stable across replays).
func (s *Service) performCtx(ctx context.Context, a asl.Action, eventID string) asl.Result {
	switch {
	case a.Function != nil:
		return s.callFunction(ctx, *a.Function, a.TimeoutSeconds)
	case isEventsPublish(a.Resource):
		return s.publishEvent(ctx, a.Input, eventID)
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

// publishEvent emits an event and returns {"EventId", "Subject",
// "Sequence"}. The task input is either a whole CloudEvent (it has
// "specversion") or the fields {"Type" (or "DetailType"), "Source",
// "Data" (or "Detail"), "Subject"}, where Subject is the NATS subject to
// publish to (default: the event bus, events.<type>). id makes the event's
// id stable across a replay of the task, so the bus stores it once.
func (s *Service) publishEvent(ctx context.Context, input json.RawMessage, id string) asl.Result {
	if s.cfg.Events == nil {
		return asl.Result{Error: &asl.Error{Error: asl.ErrTaskFailed, Cause: "this node has no event bus for " + EventsPublishResource}}
	}
	fail := func(format string, args ...any) asl.Result {
		return asl.Result{Error: &asl.Error{Error: "Events.InvalidEvent", Cause: fmt.Sprintf(format, args...)}}
	}
	var in struct {
		Spec       string          `json:"specversion"`
		Type       string          `json:"Type"`
		DetailType string          `json:"DetailType"`
		Source     string          `json:"Source"`
		Subject    string          `json:"Subject"`
		Data       json.RawMessage `json:"Data"`
		Detail     json.RawMessage `json:"Detail"`
	}
	if err := json.Unmarshal(input, &in); err != nil {
		return fail("the input of %s must be an object: %v", EventsPublishResource, err)
	}
	var ev cloudevent.Event
	var err error
	if in.Spec != "" {
		ev, err = cloudevent.FromJSON(input)
	} else {
		typ := cmp.Or(in.Type, in.DetailType)
		data := in.Data
		if len(data) == 0 {
			data = in.Detail
		}
		ev, err = cloudevent.New(cmp.Or(in.Source, "nimbus.workflow"), typ, "", data, "")
		if err == nil && id != "" {
			ev.SetID(id)
		}
	}
	if err != nil {
		return fail("%v", err)
	}
	pub, err := s.cfg.Events.Publish(ctx, in.Subject, ev)
	if err != nil {
		if errors.Is(err, function.ErrInvalid) || errors.Is(err, function.ErrPayloadTooBig) {
			return fail("%v", err)
		}
		return asl.Result{Error: &asl.Error{Error: "Events.PublishFailed", Cause: err.Error()}}
	}
	b, _ := json.Marshal(map[string]any{"EventId": pub.ID, "Subject": pub.Subject, "Sequence": pub.Seq})
	return asl.Result{Output: b}
}
