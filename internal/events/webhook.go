package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/async"
	"github.com/nimbus-run/nimbus/internal/events/cloudevent"
	"github.com/nimbus-run/nimbus/internal/events/webhook"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway"
	"github.com/nimbus-run/nimbus/internal/invoke"
)

// WebhookType is the CloudEvents type of an hmac-style webhook request;
// GitHub's are com.github.<X-GitHub-Event> and Stripe's com.stripe.<type>.
const WebhookType = "run.nimbus.webhook"

// ErrNoSecret is returned when a webhook's secret variable is not set.
var ErrNoSecret = errors.New("webhook secret is not configured")

type webhookRunner struct {
	s        *Service
	fn       string
	t        api.Trigger
	accepted atomic.Uint64
	rejected atomic.Uint64
}

func (s *Service) startWebhook(fn string, t api.Trigger) (runner, error) {
	w := &webhookRunner{s: s, fn: fn, t: t}
	if old, loaded := s.webhooks.LoadOrStore(t.Webhook, w); loaded {
		if o := old.(*webhookRunner); o.fn != fn {
			return nil, fmt.Errorf("webhook %q is taken by function %s", t.Webhook, o.fn)
		}
		s.webhooks.Store(t.Webhook, w)
	}
	return w, nil
}

func (w *webhookRunner) spec() api.Trigger { return w.t }

func (w *webhookRunner) stop() { w.s.webhooks.CompareAndDelete(w.t.Webhook, w) }

func (w *webhookRunner) status(context.Context) api.TriggerStatus {
	st := api.TriggerStatus{Function: w.fn, Name: w.t.Name, Kind: api.KindWebhook, Trigger: w.t, State: "active",
		Path: "/webhook/" + w.t.Webhook, Accepted: w.accepted.Load(), Rejected: w.rejected.Load()}
	if _, err := w.secret(); err != nil {
		st.State = "error: " + err.Error()
	}
	return st
}

// secret reads the signing secret: the function's env, then the node's.
func (w *webhookRunner) secret() ([]byte, error) {
	if spec, err := w.s.cat.Get(w.fn); err == nil {
		if v := spec.Env[w.t.SecretEnv]; v != "" {
			return []byte(v), nil
		}
	}
	if v, ok := w.s.cfg.LookupEnv(w.t.SecretEnv); ok && v != "" {
		return []byte(v), nil
	}
	return nil, fmt.Errorf("%w: set %s in the function's env or the node's environment", ErrNoSecret, w.t.SecretEnv)
}

// serveWebhook is POST /webhook/{name}: verify the signature over the raw
// body, turn the request into a CloudEvent, queue the function with it and
// answer 202. Bad signatures get 401 and are counted.
func (s *Service) serveWebhook(rw http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	v, ok := s.webhooks.Load(name)
	if !ok {
		gateway.WriteError(rw, fmt.Errorf("webhook %q: %w", name, function.ErrNotFound))
		return
	}
	w := v.(*webhookRunner)
	fail := func(result string, err error) {
		s.m.webhooks.WithLabelValues(name, result).Inc()
		gateway.WriteError(rw, err)
	}
	body, _, err := readBody(rw, r, int64(s.cfg.MaxEvent))
	if err != nil {
		fail("error", err)
		return
	}
	secret, err := w.secret()
	if err != nil {
		s.log.Error("events: webhook without secret", "webhook", name, "err", err)
		fail("error", fmt.Errorf("%v: %w", err, function.ErrUnavailable))
		return
	}
	tol := time.Duration(0)
	if w.t.Tolerance != "" {
		tol, _ = time.ParseDuration(w.t.Tolerance)
	}
	ver := webhook.Verifier{Style: w.t.Style, Secret: secret, Header: w.t.Header, Prefix: w.t.Prefix, Encoding: w.t.Encoding, Tolerance: tol}
	if err := ver.Verify(r.Header, body, s.cfg.Now()); err != nil {
		w.rejected.Add(1)
		result := "bad_signature"
		switch {
		case errors.Is(err, webhook.ErrMissingSignature):
			result = "missing_signature"
		case errors.Is(err, webhook.ErrStale):
			result = "stale"
		}
		s.log.Warn("events: webhook rejected", "webhook", name, "reason", result, "remote", r.RemoteAddr)
		fail(result, err)
		return
	}
	payload, evID, err := w.event(r, body)
	if err != nil {
		fail("error", async.EventError(err))
		return
	}
	// The delivery id makes a redelivered webhook (the sender's retry, or a
	// replayed request) queue the function once.
	sum := sha256.Sum256([]byte(name + "\x00" + evID))
	id := "wh." + hex.EncodeToString(sum[:16])
	invID, err := s.queue.EnqueueWith(r.Context(), &invoke.Request{Function: w.fn, Payload: payload, Source: "webhook:" + name, ID: id},
		async.EnqueueOptions{DedupeID: id, ContentType: "application/cloudevents+json"})
	if err != nil {
		fail("error", err)
		return
	}
	w.accepted.Add(1)
	s.m.webhooks.WithLabelValues(name, "accepted").Inc()
	rw.Header().Set(api.HeaderInvocationID, invID)
	writeJSON(rw, http.StatusAccepted, api.Accepted{InvocationID: invID})
}

// event builds the CloudEvent of a verified request. A request that is a
// CloudEvent already keeps its attributes.
func (w *webhookRunner) event(r *http.Request, body []byte) ([]byte, string, error) {
	ct := r.Header.Get("Content-Type")
	if r.Header.Get("Ce-Specversion") != "" || strings.HasPrefix(strings.ToLower(ct), "application/cloudevents") {
		e, err := messageEvent(r.Header, body)
		if err != nil {
			return nil, "", err
		}
		b, err := cloudevent.ToJSON(e)
		return b, e.Source() + "\x00" + e.ID(), err
	}
	typ, id, subject := WebhookType, r.Header.Get("X-Request-Id"), ""
	switch w.t.Style {
	case webhook.StyleGitHub:
		typ = "com.github." + strings.ToLower(r.Header.Get("X-GitHub-Event"))
		if typ == "com.github." {
			typ = "com.github.event"
		}
		id = r.Header.Get("X-GitHub-Delivery")
	case webhook.StyleStripe:
		var ev struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		}
		_ = json.Unmarshal(body, &ev)
		typ, id = "com.stripe."+ev.Type, ev.ID
		if ev.Type == "" {
			typ = "com.stripe.event"
		}
	}
	if ct == "" {
		ct = "application/octet-stream"
		if json.Valid(body) {
			ct = "application/json"
		}
	}
	if len(body) == 0 {
		body = nil
	}
	e, err := cloudevent.New("/nimbus/webhooks/"+w.t.Webhook, typ, subject, body, ct)
	if err != nil {
		return nil, "", err
	}
	if id == "" {
		// Without a delivery id the body identifies the delivery.
		sum := sha256.Sum256(body)
		id = hex.EncodeToString(sum[:16])
	}
	e.SetID(id)
	b, err := cloudevent.ToJSON(e)
	return b, id, err
}
