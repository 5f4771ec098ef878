package asl_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/workflow/asl"
)

const durableDef = `{
  "StartAt": "Prepare",
  "States": {
    "Prepare": {"Type": "Pass", "Parameters": {"items.$": "$.items", "id.$": "States.UUID()"}, "Next": "Sleep"},
    "Sleep": {"Type": "Wait", "Seconds": 3600, "Next": "Each"},
    "Each": {
      "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": "$.results",
      "ItemProcessor": {"StartAt": "Work", "States": {
        "Work": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:double",
                 "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 5, "MaxAttempts": 2, "JitterStrategy": "FULL"}],
                 "End": true}
      }},
      "Next": "Done"
    },
    "Done": {"Type": "Pass", "End": true}
  }
}`

var execStart = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func execCtx() asl.ExecContext {
	return asl.ExecContext{ExecutionID: "arn:aws:states:local:0:execution:m:e1", Name: "e1", StartTime: execStart}
}

// step performs every pending action once, the way an executor would: the
// function doubles its input, failing once with "Flaky" for the value 2;
// timers fire at their time. It returns false when nothing was pending.
func step(t *testing.T, ex *asl.Execution, flaked map[string]bool) bool {
	t.Helper()
	pending := ex.Pending()
	if len(pending) == 0 {
		return false
	}
	a := pending[0]
	switch a.Kind {
	case asl.ActionTimer:
		if err := ex.Fire(a.ID, a.Until); err != nil {
			t.Fatalf("fire %s: %v", a.ID, err)
		}
	case asl.ActionTask:
		if a.Function == nil || a.Function.Name != "double" {
			t.Fatalf("unexpected task %+v", a)
		}
		var n float64
		if err := json.Unmarshal(a.Function.Payload, &n); err != nil {
			t.Fatalf("payload %s: %v", a.Function.Payload, err)
		}
		var r asl.Result
		if n == 2 && !flaked[a.State+string(a.Function.Payload)] {
			flaked[a.State+string(a.Function.Payload)] = true
			r.Error = asl.NewFunctionError("Flaky", "try again")
		} else {
			out, _ := json.Marshal(n * 2)
			r.Output = out
		}
		if err := ex.Complete(a.ID, r, ex.Now().Add(time.Second)); err != nil {
			t.Fatalf("complete %s: %v", a.ID, err)
		}
	}
	return true
}

func eventTypes(evs []asl.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// TestSnapshotRestore stops an execution while its Wait timer is pending and
// again in the middle of its Map, restores it each time into a freshly parsed
// machine, and checks that it ends exactly like an uninterrupted run.
func TestSnapshotRestore(t *testing.T) {
	input := json.RawMessage(`{"items":[1,2,3,4,5]}`)

	m := asl.MustParse(durableDef)
	ref, err := m.Start(input, execCtx())
	if err != nil {
		t.Fatal(err)
	}
	flaked := map[string]bool{}
	for step(t, ref, flaked) {
	}
	if ref.Status() != asl.StatusSucceeded {
		t.Fatalf("reference run: %s %v", ref.Status(), ref.Error())
	}
	refEvents := ref.Events()

	ex, err := asl.MustParse(durableDef).Start(input, execCtx())
	if err != nil {
		t.Fatal(err)
	}
	var events []asl.Event
	events = append(events, ex.Events()...)
	p := ex.Pending()
	if len(p) != 1 || p[0].Kind != asl.ActionTimer || !p[0].Until.Equal(execStart.Add(time.Hour)) {
		t.Fatalf("pending after start: got %+v, want one timer at +1h", p)
	}
	restore := func(ex *asl.Execution) *asl.Execution {
		t.Helper()
		snap, err := json.Marshal(ex)
		if err != nil {
			t.Fatal(err)
		}
		back, err := asl.MustParse(durableDef).Restore(snap)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Pending(), ex.Pending()) {
			t.Fatalf("pending after restore:\n got %+v\nwant %+v", back.Pending(), ex.Pending())
		}
		return back
	}
	ex = restore(ex)
	flaked = map[string]bool{}
	for i := 0; i < 4; i++ { // fire the wait, then a few map tasks
		step(t, ex, flaked)
	}
	if n := countTasks(ex.Pending()); n == 0 || n > 2 {
		t.Fatalf("mid-map: %d tasks pending, want 1..2 (MaxConcurrency 2)", n)
	}
	events = append(events, ex.Events()...)
	ex = restore(ex)
	for step(t, ex, flaked) {
		if n := countTasks(ex.Pending()); n > 2 {
			t.Fatalf("%d tasks pending, MaxConcurrency is 2", n)
		}
	}
	events = append(events, ex.Events()...)
	if ex.Status() != asl.StatusSucceeded {
		t.Fatalf("status: got %s (%v), want SUCCEEDED", ex.Status(), ex.Error())
	}
	if got, want := string(ex.Output()), string(ref.Output()); got != want {
		t.Errorf("output: got %s, want %s", got, want)
	}
	if !reflect.DeepEqual(eventTypes(events), eventTypes(refEvents)) {
		t.Errorf("events:\n got %v\nwant %v", eventTypes(events), eventTypes(refEvents))
	}
	gotJSON, _ := json.Marshal(events)
	wantJSON, _ := json.Marshal(refEvents)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("history differs from the uninterrupted run")
	}
}

func countTasks(p []asl.Action) int {
	n := 0
	for _, a := range p {
		if a.Kind == asl.ActionTask {
			n++
		}
	}
	return n
}

// TestDeterministic runs the same execution twice: identical histories,
// including the UUID and the retry jitter.
func TestDeterministic(t *testing.T) {
	run := func() []byte {
		ex, err := asl.MustParse(durableDef).Start(json.RawMessage(`{"items":[2,2,3]}`), execCtx())
		if err != nil {
			t.Fatal(err)
		}
		for step(t, ex, map[string]bool{}) {
		}
		b, _ := json.Marshal(ex.Events())
		return append(b, ex.Output()...)
	}
	if a, b := run(), run(); string(a) != string(b) {
		t.Errorf("two runs differ:\n%s\n%s", a, b)
	}
}

func TestCompleteUnknownAction(t *testing.T) {
	ex, err := asl.MustParse(durableDef).Start(json.RawMessage(`{"items":[]}`), execCtx())
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Complete("nope", asl.Result{}, execStart); !errors.Is(err, asl.ErrUnknownAction) {
		t.Errorf("Complete(unknown): got %v, want ErrUnknownAction", err)
	}
	a := ex.Pending()[0]
	if err := ex.Complete(a.ID, asl.Result{}, execStart); !errors.Is(err, asl.ErrUnknownAction) {
		t.Errorf("Complete(timer): got %v, want ErrUnknownAction", err)
	}
	if err := ex.Fire(a.ID, a.Until); err != nil {
		t.Fatal(err)
	}
	if ex.Status() != asl.StatusSucceeded {
		t.Fatalf("status %s", ex.Status())
	}
	if err := ex.Fire(a.ID, a.Until); !errors.Is(err, asl.ErrNotRunning) {
		t.Errorf("Fire after end: got %v, want ErrNotRunning", err)
	}
}

func TestAbort(t *testing.T) {
	ex, err := asl.MustParse(durableDef).Start(json.RawMessage(`{"items":[1]}`), execCtx())
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Abort("Stopped", "by user", execStart.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if ex.Status() != asl.StatusAborted || len(ex.Pending()) != 0 {
		t.Errorf("after Abort: status %s, pending %v", ex.Status(), ex.Pending())
	}
}
