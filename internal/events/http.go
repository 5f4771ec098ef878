package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/async"
	"github.com/nimbus-run/nimbus/internal/events/cloudevent"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway"
)

// Mux is where the HTTP surface is mounted (the gateway).
type Mux interface {
	Handle(pattern string, h http.Handler)
	Protected(h http.HandlerFunc) http.Handler
}

// Mount adds the webhook endpoint (open: the signature is the
// authentication) and the token-protected management routes.
func (s *Service) Mount(m Mux) {
	m.Handle("POST /webhook/{name}", http.HandlerFunc(s.serveWebhook))
	m.Handle("GET /api/v1/triggers", m.Protected(s.listTriggers))
	m.Handle("GET /api/v1/triggers/{function}", m.Protected(s.listTriggers))
	m.Handle("PUT /api/v1/triggers/{function}", m.Protected(s.putTriggers))
	m.Handle("DELETE /api/v1/triggers/{function}", m.Protected(s.deleteTriggers))
	m.Handle("GET /api/v1/schedules", m.Protected(s.listSchedules))
	m.Handle("GET /api/v1/rules", m.Protected(s.listRules))
	m.Handle("GET /api/v1/rules/{name}", m.Protected(s.getRule))
	m.Handle("PUT /api/v1/rules/{name}", m.Protected(s.putRule))
	m.Handle("DELETE /api/v1/rules/{name}", m.Protected(s.deleteRule))
	m.Handle("POST /api/v1/events", m.Protected(s.publishHTTP))
}

// Events is what functions publish through (the SDK's server side):
// POST /api/v1/events is its HTTP form.
type Events interface {
	Publish(ctx context.Context, subject string, e cloudevent.Event) (*api.Published, error)
}

var _ Events = (*Service)(nil)

// Publish stores a CloudEvent on subject, or on the event bus
// (events.<type>) when subject is empty, where rules see it. It returns
// once JetStream has stored it.
//
// # Errors
//
// function.ErrInvalid for a bad subject, or a subject that no stream
// captures (the event would be lost), function.ErrPayloadTooBig.
func (s *Service) Publish(ctx context.Context, subject string, e cloudevent.Event) (*api.Published, error) {
	if subject == "" {
		subject = BusPrefix + subjectToken(e.Type())
	}
	if !api.ValidSubject(subject) {
		return nil, function.Invalid("subject", "%q is not a NATS subject to publish to", truncate(subject, 80))
	}
	b, err := cloudevent.ToJSON(e)
	if err != nil {
		return nil, async.EventError(err)
	}
	if len(b) > s.cfg.MaxEvent {
		return nil, fmt.Errorf("event is %d bytes, the limit is %d: %w", len(b), s.cfg.MaxEvent, function.ErrPayloadTooBig)
	}
	m := nats.NewMsg(subject)
	m.Data = b
	m.Header.Set("Content-Type", "application/cloudevents+json")
	// CloudEvents are unique by source and id: a republished event (a
	// client's retry) is stored once.
	sum := sha256.Sum256([]byte(e.Source() + "\x00" + e.ID()))
	m.Header.Set(jetstream.MsgIDHeader, hex.EncodeToString(sum[:16]))
	if _, err := s.js.StreamNameBySubject(ctx, subject); errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, function.Invalid("subject", "no stream captures %q: publish to the event bus (no subject, or events.*) or to a subject a trigger reads", subject)
	}
	ack, err := s.js.PublishMsg(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("publish to %s: %v: %w", subject, err, function.ErrUnavailable)
	}
	return &api.Published{ID: e.ID(), Subject: subject, Stream: ack.Stream, Seq: ack.Sequence}, nil
}

// subjectToken turns an event type into subject tokens: dots stay, every
// other character a subject cannot hold becomes '_'.
func subjectToken(t string) string {
	if t == "" {
		return "untyped"
	}
	b := []byte(t)
	for i, c := range b {
		if c <= ' ' || c == '*' || c == '>' || c >= 0x7f {
			b[i] = '_'
		}
	}
	s := strings.Trim(string(b), ".")
	for strings.Contains(s, "..") {
		s = strings.ReplaceAll(s, "..", "._.")
	}
	if s == "" {
		return "untyped"
	}
	return s
}

func (s *Service) publishHTTP(w http.ResponseWriter, r *http.Request) {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	if r.Header.Get("Ce-Specversion") == "" && !strings.HasPrefix(ct, "application/cloudevents") {
		gateway.WriteError(w, fmt.Errorf("%w: send a CloudEvent: binary mode (ce-* headers) or structured mode (Content-Type application/cloudevents+json); got content type %q",
			cloudevent.ErrNotCloudEvent, r.Header.Get("Content-Type")))
		return
	}
	e, err := cloudevent.FromHTTP(r, int64(s.cfg.MaxEvent))
	if err != nil {
		gateway.WriteError(w, async.EventError(err))
		return
	}
	pub, err := s.Publish(r.Context(), r.URL.Query().Get("subject"), e)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, pub)
}

func (s *Service) listTriggers(w http.ResponseWriter, r *http.Request) {
	fn := r.PathValue("function")
	if fn != "" {
		if _, err := s.cat.Get(fn); err != nil {
			gateway.WriteError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, api.TriggerList{Triggers: s.Triggers(r.Context(), fn)})
}

func (s *Service) listSchedules(w http.ResponseWriter, r *http.Request) {
	out := []api.TriggerStatus{}
	for _, t := range s.Triggers(r.Context(), "") {
		if t.Kind == api.KindSchedule {
			out = append(out, t)
		}
	}
	writeJSON(w, http.StatusOK, api.ScheduleList{Schedules: out})
}

func (s *Service) putTriggers(w http.ResponseWriter, r *http.Request) {
	fn := r.PathValue("function")
	var req api.PutTriggersRequest
	if err := decodeStrict(w, r, &req); err != nil {
		gateway.WriteError(w, err)
		return
	}
	change, err := s.PutTriggers(r.Context(), fn, req.Triggers)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.PutResult{Name: fn, Change: change})
}

func (s *Service) deleteTriggers(w http.ResponseWriter, r *http.Request) {
	fn := r.PathValue("function")
	if err := function.ValidateName(fn); err != nil {
		gateway.WriteError(w, err)
		return
	}
	if _, err := s.PutTriggers(r.Context(), fn, nil); err != nil && !errors.Is(err, function.ErrNotFound) {
		gateway.WriteError(w, err)
		return
	} else if err != nil {
		// The function is gone: its triggers may remain; remove them.
		if err := s.kv.Delete(r.Context(), keyFunction+fn); err != nil {
			gateway.WriteError(w, err)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) listRules(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.RuleList{Rules: s.Rules()})
}

func (s *Service) getRule(w http.ResponseWriter, r *http.Request) {
	rule, err := s.Rule(r.PathValue("name"))
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rule)
}

func (s *Service) putRule(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var rule api.Rule
	if err := decodeStrict(w, r, &rule); err != nil {
		gateway.WriteError(w, err)
		return
	}
	if rule.Name != "" && rule.Name != name {
		gateway.WriteError(w, function.Invalid("name", "body names %q but the URL names %q", rule.Name, name))
		return
	}
	change, err := s.PutRule(r.Context(), name, &rule)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.PutResult{Name: name, Change: change})
}

func (s *Service) deleteRule(w http.ResponseWriter, r *http.Request) {
	if err := s.DeleteRule(r.Context(), r.PathValue("name")); err != nil {
		gateway.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decodeStrict decodes a JSON body, refusing unknown fields by name.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ute):
			return function.Invalid(ute.Field, "expected %s, got %s", ute.Type, ute.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return function.Invalid(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unknown field")
		}
		return function.Invalid("body", "not valid JSON: %v", err)
	}
	return nil
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, string, error) {
	if r.ContentLength > limit {
		return nil, "", fmt.Errorf("body is %d bytes, the limit is %d: %w", r.ContentLength, limit, function.ErrPayloadTooBig)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, "", fmt.Errorf("body is over the limit of %d bytes: %w", limit, function.ErrPayloadTooBig)
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading the body: %v: %w", err, function.ErrInvalid)
	}
	return b, r.Header.Get("Content-Type"), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // the client went away
}
