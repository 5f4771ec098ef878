//go:build !wasip1

package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRuntimeAPI serves queued events on the Lambda Runtime API and records
// the answers; next fails once the queue is empty, which ends runLambda.
type fakeRuntimeAPI struct {
	mu       sync.Mutex
	events   []string
	deadline time.Time
	answers  map[string]answer
}

type answer struct {
	kind    string // "response" or "error"
	body    string
	errType string
}

func (f *fakeRuntimeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rest, ok := strings.CutPrefix(r.URL.Path, "/2018-06-01/runtime/invocation/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if rest == "next" && r.Method == http.MethodGet {
		if len(f.events) == 0 {
			http.Error(w, "no more events", http.StatusGone)
			return
		}
		id := "req-" + strconv.Itoa(len(f.answers)+1)
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", id)
		w.Header().Set("Lambda-Runtime-Trace-Id", "trace-"+id)
		w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(f.deadline.UnixMilli(), 10))
		io.WriteString(w, f.events[0])
		f.events = f.events[1:]
		f.answers[id] = answer{} // reserve the ID
		return
	}
	id, kind, _ := strings.Cut(rest, "/")
	body, _ := io.ReadAll(r.Body)
	f.answers[id] = answer{kind: kind, body: string(body), errType: r.Header.Get("Lambda-Runtime-Function-Error-Type")}
	w.WriteHeader(http.StatusAccepted)
}

func TestRunLambda(t *testing.T) {
	deadline := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	api := &fakeRuntimeAPI{
		events: []string{
			`{"name":"Ada"}`,
			`{"fail":"plain"}`,
			`{"fail":"typed"}`,
			`{"fail":"path"}`,
			`{"fail":"panic"}`,
			`"raw"`,
		},
		deadline: deadline,
		answers:  map[string]answer{},
	}
	srv := httptest.NewServer(api)
	defer srv.Close()

	h := func(ctx context.Context, event json.RawMessage) (any, error) {
		var req struct{ Name, Fail string }
		_ = json.Unmarshal(event, &req)
		switch req.Fail {
		case "plain":
			return nil, errors.New("plain failure")
		case "typed":
			return nil, &Error{Type: "Validation", Message: "name is required"}
		case "path":
			return nil, &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}
		case "panic":
			panic("boom")
		}
		if req.Name == "" {
			return event, nil // a json.RawMessage goes out as is
		}
		d, _ := ctx.Deadline()
		return map[string]any{"hello": req.Name, "id": InvocationID(ctx), "trace": TraceID(ctx), "deadline": d.UnixMilli()}, nil
	}
	err := runLambda(context.Background(), srv.Client(), srv.URL, h)
	if err == nil || !strings.Contains(err.Error(), "410") {
		t.Fatalf("runLambda: err = %v, want the API's 410 after the last event", err)
	}

	want := map[string]answer{
		"req-1": {kind: "response", body: `{"deadline":` + strconv.FormatInt(deadline.UnixMilli(), 10) + `,"hello":"Ada","id":"req-1","trace":"trace-req-1"}`},
		"req-2": {kind: "error", errType: "Error", body: `{"errorType":"Error","errorMessage":"plain failure"}`},
		"req-3": {kind: "error", errType: "Validation", body: `{"errorType":"Validation","errorMessage":"name is required"}`},
		"req-4": {kind: "error", errType: "PathError", body: `{"errorType":"PathError","errorMessage":"open /x: file does not exist"}`},
		"req-6": {kind: "response", body: `"raw"`},
	}
	for id, w := range want {
		if got := api.answers[id]; got != w {
			t.Errorf("%s: got %+v, want %+v", id, got, w)
		}
	}
	p := api.answers["req-5"]
	var body struct {
		Type    string   `json:"errorType"`
		Message string   `json:"errorMessage"`
		Trace   []string `json:"stackTrace"`
	}
	if err := json.Unmarshal([]byte(p.body), &body); err != nil {
		t.Fatalf("req-5: %v in %q", err, p.body)
	}
	if p.kind != "error" || body.Type != "Runtime.Panic" || body.Message != "boom" || len(body.Trace) == 0 {
		t.Errorf("req-5: got %+v, want a Runtime.Panic error with a stack", p)
	}
}

// TestConcurrentLoops: an instance whose runtime takes several
// invocations at once (AWS_LAMBDA_MAX_CONCURRENCY) runs their handlers at
// the same time, each answered under its own ID.
func TestConcurrentLoops(t *testing.T) {
	api := &fakeRuntimeAPI{events: []string{`1`, `2`, `3`}, deadline: time.Now().Add(time.Minute), answers: map[string]answer{}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	var running sync.WaitGroup
	running.Add(3)
	all := make(chan struct{})
	go func() { running.Wait(); close(all) }()
	h := func(ctx context.Context, event json.RawMessage) (any, error) {
		running.Done()
		select {
		case <-all:
			return map[string]string{"id": InvocationID(ctx), "event": string(event)}, nil
		case <-time.After(5 * time.Second):
			return nil, errors.New("the other invocations never ran alongside this one")
		}
	}
	if err := serveLambda(context.Background(), srv.URL, h, 3); err == nil || !strings.Contains(err.Error(), "410") {
		t.Fatalf("serveLambda: err = %v, want the API's 410 after the last event", err)
	}
	// The other loops may still be posting their answers.
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		api.mu.Lock()
		done := 0
		for _, a := range api.answers {
			if a.kind != "" {
				done++
			}
		}
		if done == 3 || time.Now().After(end) {
			break // locked
		}
		api.mu.Unlock()
	}
	defer api.mu.Unlock()
	events := map[string]bool{}
	for id, a := range api.answers {
		var got struct{ ID, Event string }
		if a.kind != "response" || json.Unmarshal([]byte(a.body), &got) != nil || got.ID != id {
			t.Errorf("%s: got %+v, want a response under its own ID", id, a)
		}
		events[got.Event] = true
	}
	if len(api.answers) != 3 || len(events) != 3 {
		t.Errorf("answers %v, want one per event", api.answers)
	}
}

func TestErrorType(t *testing.T) {
	type custom struct{ error }
	tests := []struct {
		err  error
		want string
	}{
		{errors.New("x"), "Error"},
		{errors.Join(errors.New("a"), errors.New("b")), "Error"},
		{&Error{Type: "Mine", Message: "m"}, "Mine"},
		{&fs.PathError{Op: "open", Path: "p", Err: fs.ErrNotExist}, "PathError"},
		{custom{errors.New("c")}, "custom"},
		{context.DeadlineExceeded, "deadlineExceededError"},
	}
	for _, tt := range tests {
		if got := errorType(tt.err); got != tt.want {
			t.Errorf("errorType(%T) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
