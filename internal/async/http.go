package async

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/events/cloudevent"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway"
	"github.com/nimbus-run/nimbus/internal/invoke"
)

// Mux is where the HTTP surface is mounted (the gateway).
type Mux interface {
	Handle(pattern string, h http.Handler)
	Protected(h http.HandlerFunc) http.Handler
}

// Mount adds the async routes: /async-function/{name}[/...] (open, like
// /function), and the token-protected /api/v1/invocations/{id} and
// /api/v1/dlq/... routes.
func (s *Service) Mount(m Mux) {
	m.Handle("/async-function/{name}", http.HandlerFunc(s.invokeHTTP))
	m.Handle("/async-function/{name}/{rest...}", http.HandlerFunc(s.invokeHTTP))
	m.Handle("GET /api/v1/invocations/{id}", m.Protected(s.getInvocation))
	m.Handle("GET /api/v1/dlq/{function}", m.Protected(s.listDLQ))
	m.Handle("GET /api/v1/dlq/{function}/{id}", m.Protected(s.getDLQ))
	m.Handle("POST /api/v1/dlq/{function}/replay", m.Protected(s.replayDLQ))
	m.Handle("DELETE /api/v1/dlq/{function}", m.Protected(s.purgeDLQ))
}

// invokeHTTP accepts an async invocation: 202 with the invocation id once
// the event is stored. A CloudEvent (binary or structured mode) is passed
// to the function in its JSON form; any other body as it is.
func (s *Service) invokeHTTP(w http.ResponseWriter, r *http.Request) {
	name, qualifier, _ := strings.Cut(r.PathValue("name"), ":")
	payload, ctype, err := ReadEvent(w, r, int64(s.cfg.MaxPayload))
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	req := &invoke.Request{Function: name, Qualifier: qualifier, Payload: payload, Source: "http", TraceID: traceparentID(r.Header.Get("Traceparent"))}
	id, err := s.EnqueueWith(r.Context(), req, EnqueueOptions{CallbackURL: r.Header.Get(api.HeaderCallbackURL), ContentType: ctype})
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	w.Header().Set(api.HeaderInvocationID, id)
	w.Header().Set("X-Call-Id", id) // OpenFaaS's name for it
	writeJSON(w, http.StatusAccepted, api.Accepted{InvocationID: id})
}

// ReadEvent reads an incoming event body of at most limit bytes. A
// CloudEvent in binary or structured mode comes back as its JSON form
// (content type application/cloudevents+json); anything else unchanged,
// with its content type.
//
// # Errors
//
// Wrapping function.ErrPayloadTooBig, function.ErrInvalid (a malformed
// CloudEvent), or cloudevent.ErrNotCloudEvent for a CloudEvents format
// Nimbus does not take (batch mode, a non-JSON format).
func ReadEvent(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, string, error) {
	ct := r.Header.Get("Content-Type")
	if r.Header.Get("Ce-Specversion") != "" || strings.HasPrefix(strings.ToLower(ct), "application/cloudevents") {
		e, err := cloudevent.FromHTTP(r, limit)
		if err != nil {
			return nil, "", EventError(err)
		}
		b, err := cloudevent.ToJSON(e)
		if err != nil {
			return nil, "", EventError(err)
		}
		return b, "application/cloudevents+json", nil
	}
	if r.ContentLength > limit {
		return nil, "", fmt.Errorf("event is %d bytes, the limit is %d: %w", r.ContentLength, limit, function.ErrPayloadTooBig)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, "", fmt.Errorf("event is over the limit of %d bytes: %w", limit, function.ErrPayloadTooBig)
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading the event: %v: %w", err, function.ErrInvalid)
	}
	return b, ct, nil
}

// EventError maps the cloudevent package's errors onto the platform's
// sentinels (ErrNotCloudEvent stays itself: the gateway answers 415).
func EventError(err error) error {
	switch {
	case errors.Is(err, cloudevent.ErrTooLarge):
		return fmt.Errorf("%v: %w", err, function.ErrPayloadTooBig)
	case errors.Is(err, cloudevent.ErrMalformed):
		return fmt.Errorf("%v: %w", err, function.ErrInvalid)
	}
	return err
}

func traceparentID(tp string) string {
	if len(tp) == 55 && tp[2] == '-' && tp[35] == '-' {
		id := tp[3:35]
		for _, c := range id {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return ""
			}
		}
		if id != strings.Repeat("0", 32) {
			return id
		}
	}
	return ""
}

func (s *Service) getInvocation(w http.ResponseWriter, r *http.Request) {
	inv, err := s.Invocation(r.Context(), r.PathValue("id"))
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, inv)
}

func (s *Service) listDLQ(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxDeadLetters {
			gateway.WriteError(w, function.Invalid("limit", "must be a number from 1 to %d", MaxDeadLetters))
			return
		}
		limit = n
	}
	fn := r.PathValue("function")
	entries, total, err := s.DeadLetters(r.Context(), fn, limit)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	if entries == nil {
		entries = []api.DeadLetter{}
	}
	writeJSON(w, http.StatusOK, api.DeadLetterList{Function: fn, Total: total, Entries: entries})
}

func (s *Service) getDLQ(w http.ResponseWriter, r *http.Request) {
	d, err := s.DeadLetter(r.Context(), r.PathValue("function"), r.PathValue("id"))
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Service) replayDLQ(w http.ResponseWriter, r *http.Request) {
	var req api.ReplayRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		gateway.WriteError(w, function.Invalid("body", "want {\"ids\": [...]} or {\"all\": true}: %v", err))
		return
	}
	out, err := s.Replay(r.Context(), r.PathValue("function"), req.IDs, req.All)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.ReplayResult{Replayed: out})
}

func (s *Service) purgeDLQ(w http.ResponseWriter, r *http.Request) {
	n, err := s.Purge(r.Context(), r.PathValue("function"))
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.PurgeResult{Purged: n})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away
}
