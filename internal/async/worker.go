package async

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/invoke"
)

// event is a queued invocation read back from its message.
type event struct {
	id, fn, qualifier, source string
	traceparent, callback     string
	contentType               string
	enqueued                  time.Time
	payload                   []byte
	header                    nats.Header
}

func parseEvent(subject string, h nats.Header, data []byte) (*event, error) {
	get := func(k string) string {
		if v := h[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	ev := &event{
		id: get(hID), fn: get(hSubject), qualifier: get(hQualifier), source: get(hOrigin),
		traceparent: get(hTraceparent), callback: get(hCallback), contentType: get(hContentType),
		payload: data, header: h,
	}
	if ev.fn == "" && len(subject) > len(SubjectPrefix) {
		// nimbus.async.<function>.<id>, or nimbus.async.<function> for
		// events queued before ids were part of the subject.
		ev.fn, _, _ = strings.Cut(subject[len(SubjectPrefix):], ".")
	}
	t, err := time.Parse(time.RFC3339Nano, get(hTime))
	if ev.id == "" || ev.fn == "" || err != nil {
		return nil, fmt.Errorf("not a queued invocation (id %q, function %q, time %q)", ev.id, ev.fn, get(hTime))
	}
	ev.enqueued = t
	return ev, nil
}

func (s *Service) work() {
	defer s.wg.Done()
	for msg := range s.jobs {
		s.handle(msg)
	}
}

// outcome is how an invocation ended.
type outcome struct {
	ok        bool
	reason    string // error, retries, max_age, not_found
	attempts  int
	resp      *invoke.Response
	err       error
	errorType string
}

func (s *Service) handle(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		s.log.Error("async: message without metadata, dropped", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	ev, err := parseEvent(msg.Subject(), msg.Headers(), msg.Data())
	if err != nil {
		s.log.Error("async: malformed message, dropped", "seq", md.Sequence.Stream, "err", err)
		_ = msg.TermWithReason(err.Error())
		return
	}
	attempt := int(md.NumDelivered)
	if attempt > 1 && s.alreadyFinished(ev.id) {
		// The outcome was written but the ack was lost (a crash between
		// the two): do not run it again.
		_ = msg.Ack()
		return
	}
	spec, err := s.cat.Get(ev.fn)
	if err != nil {
		s.finish(msg, ev, nil, outcome{reason: "not_found", attempts: attempt - 1, err: err, errorType: "ResourceNotFoundException"})
		return
	}
	cfg := spec.Async
	maxAge := cfg.MaxAgeOrDefault()
	if time.Since(ev.enqueued) > maxAge {
		s.finish(msg, ev, cfg, outcome{reason: "max_age", attempts: attempt - 1,
			err: fmt.Errorf("event is older than the maximum event age (%s)", maxAge), errorType: "EventAgeExceeded"})
		return
	}

	stopBeat := s.heartbeat(msg)
	resp, err := s.run(ev, maxAge)
	stopBeat()
	switch {
	case err == nil:
		s.finish(msg, ev, cfg, outcome{ok: true, attempts: attempt, resp: resp})
	case errors.Is(err, function.ErrThrottled), s.stoppingNow():
		// Still throttled when this node stops or the event expires:
		// hand it back without counting an attempt. NumDelivered grows,
		// so allow one more by not failing here.
		s.m.throttled.Inc()
		_ = msg.NakWithDelay(100 * time.Millisecond)
	case attempt <= cfg.RetriesOrDefault():
		s.m.retries.Inc()
		st := &status{ID: ev.id, Function: ev.fn, Status: statusQueued, Source: ev.source, Enqueued: ev.enqueued,
			Attempts: attempt, Error: err.Error(), ErrorType: errType(resp, err)}
		if resp != nil {
			st.Record = resp.Record
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 5*time.Second)
		if _, perr := s.results.Put(ctx, ev.id, st.encode()); perr != nil {
			s.log.Debug("async: status not stored", "id", ev.id, "err", perr)
		}
		cancel()
		_ = msg.NakWithDelay(backoff(cfg.BackoffOrDefault(), attempt))
	default:
		s.finish(msg, ev, cfg, outcome{reason: "retries", attempts: attempt, resp: resp, err: err, errorType: errType(resp, err)})
	}
}

func errType(resp *invoke.Response, err error) string {
	if resp != nil && resp.Err != nil && resp.Err.Type != "" {
		return resp.Err.Type
	}
	if resp != nil && resp.Record != nil && resp.Record.ErrorType != "" {
		return resp.Record.ErrorType
	}
	switch {
	case errors.Is(err, function.ErrTimeout):
		return "Sandbox.Timedout"
	case errors.Is(err, function.ErrNotFound):
		return "ResourceNotFoundException"
	}
	return "Runtime.Error"
}

// run invokes the function, waiting out throttling (no capacity on this
// node) with short jittered sleeps: a throttled attempt did not run, so it
// does not count against the retries, as in Lambda.
func (s *Service) run(ev *event, maxAge time.Duration) (*invoke.Response, error) {
	req := &invoke.Request{
		Function: ev.fn, Qualifier: ev.qualifier, Payload: ev.payload, Source: "async",
		TraceID: traceID(ev.traceparent), ID: ev.id,
	}
	if ev.source != "" && ev.source != "async" {
		req.Source = "async:" + ev.source
	}
	wait := 10 * time.Millisecond
	for {
		resp, err := s.inv.Invoke(s.ctx, req)
		if !errors.Is(err, function.ErrThrottled) || time.Since(ev.enqueued) > maxAge {
			return resp, err
		}
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-t.C:
		case <-s.stopping:
			t.Stop()
			return resp, err
		}
		wait = min(wait*2, time.Second)
	}
}

func (s *Service) stoppingNow() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// heartbeat tells JetStream the message is still being worked on, so that a
// long invocation is not redelivered to another worker while it runs.
func (s *Service) heartbeat(msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(s.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = msg.InProgress()
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-exited }
}

func (s *Service) alreadyFinished(id string) bool {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	e, err := s.results.Get(ctx, id)
	if err != nil {
		return false
	}
	st, err := decodeStatus(e.Value())
	return err == nil && st.Status != statusQueued
}
