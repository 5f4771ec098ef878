package async

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/store"
)

// MaxDeadLetters bounds one listing.
const MaxDeadLetters = 1000

func deadLetterOf(seq uint64, subject string, h nats.Header, data []byte, withPayload bool) api.DeadLetter {
	get := func(k string) string {
		if v := h[k]; len(v) > 0 {
			return v[0]
		}
		return h.Get(k)
	}
	d := api.DeadLetter{
		Seq: seq, ID: get(hID), Function: subject[len(DLQPrefix):], Reason: get(hReason),
		Error: get(hError), ErrorType: get(hErrorType), Source: get(hOrigin),
	}
	d.Attempts, _ = strconv.Atoi(get(hAttempts))
	d.Failed, _ = time.Parse(time.RFC3339Nano, get(hFailed))
	d.Enqueued, _ = time.Parse(time.RFC3339Nano, get(hTime))
	if withPayload {
		if json.Valid(data) {
			d.Payload = append(json.RawMessage(nil), data...)
		} else {
			d.PayloadBase64 = append([]byte(nil), data...)
		}
	}
	return d
}

// DeadLetters lists up to limit dead letters of fn, oldest first, without
// their payloads; total counts them all.
func (s *Service) DeadLetters(ctx context.Context, fn string, limit int) (entries []api.DeadLetter, total uint64, err error) {
	if err := function.ValidateName(fn); err != nil {
		return nil, 0, err
	}
	if limit <= 0 || limit > MaxDeadLetters {
		limit = MaxDeadLetters
	}
	err = s.scanDLQ(ctx, fn, func(m jetstream.Msg, md *jetstream.MsgMetadata) bool {
		if total == 0 {
			total = md.NumPending + 1
		}
		entries = append(entries, deadLetterOf(md.Sequence.Stream, m.Subject(), m.Headers(), m.Data(), false))
		return len(entries) < limit
	})
	return entries, total, err
}

// scanDLQ calls fn for the dead letters of function, oldest first, until
// fn returns false or there are no more.
func (s *Service) scanDLQ(ctx context.Context, function string, fn func(jetstream.Msg, *jetstream.MsgMetadata) bool) error {
	err := store.ReadAll(ctx, s.dlq, jetstream.OrderedConsumerConfig{FilterSubjects: []string{DLQPrefix + function}}, 256, fn)
	if err != nil {
		return fmt.Errorf("dlq %s: %w", function, err)
	}
	return nil
}

// DeadLetter returns one dead letter of fn, with its payload, by invocation
// id or stream sequence number.
func (s *Service) DeadLetter(ctx context.Context, fn, idOrSeq string) (*api.DeadLetter, error) {
	if err := function.ValidateName(fn); err != nil {
		return nil, err
	}
	if seq, err := strconv.ParseUint(idOrSeq, 10, 64); err == nil {
		m, err := s.dlq.GetMsg(ctx, seq)
		if err != nil || m.Subject != DLQPrefix+fn {
			return nil, fmt.Errorf("dead letter %d of %s: %w", seq, fn, function.ErrNotFound)
		}
		d := deadLetterOf(m.Sequence, m.Subject, m.Header, m.Data, true)
		return &d, nil
	}
	var found *api.DeadLetter
	err := s.scanDLQ(ctx, fn, func(m jetstream.Msg, md *jetstream.MsgMetadata) bool {
		if v := m.Headers()[hID]; len(v) > 0 && v[0] == idOrSeq {
			d := deadLetterOf(md.Sequence.Stream, m.Subject(), m.Headers(), m.Data(), true)
			found = &d
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("dead letter %q of %s: %w", truncate(idOrSeq, 80), fn, function.ErrNotFound)
	}
	return found, nil
}

// Replay queues dead letters of fn again, as new invocations with a fresh
// attempt count, and removes each from the DLQ once it is queued. ids are
// invocation ids or sequence numbers; all replays every one.
func (s *Service) Replay(ctx context.Context, fn string, ids []string, all bool) ([]api.Replayed, error) {
	if err := function.ValidateName(fn); err != nil {
		return nil, err
	}
	if !all && len(ids) == 0 {
		return nil, function.Invalid("ids", "name the dead letters to replay, or ask for all")
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	type item struct {
		seq uint64
		h   nats.Header
		b   []byte
	}
	var items []item
	err := s.scanDLQ(ctx, fn, func(m jetstream.Msg, md *jetstream.MsgMetadata) bool {
		id := ""
		if v := m.Headers()[hID]; len(v) > 0 {
			id = v[0]
		}
		if all || want[id] || want[strconv.FormatUint(md.Sequence.Stream, 10)] {
			items = append(items, item{md.Sequence.Stream, m.Headers(), append([]byte(nil), m.Data()...)})
		}
		return len(items) < MaxDeadLetters
	})
	if err != nil {
		return nil, err
	}
	if len(items) == 0 && !all {
		return nil, fmt.Errorf("no dead letters of %s match %v: %w", fn, ids, function.ErrNotFound)
	}
	out := []api.Replayed{}
	for _, it := range items {
		get := func(k string) string {
			if v := it.h[k]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
		req := &invoke.Request{Function: fn, Qualifier: get(hQualifier), Payload: it.b, Source: "dlq-replay", TraceID: traceID(get(hTraceparent))}
		newID, err := s.EnqueueWith(ctx, req, EnqueueOptions{CallbackURL: get(hCallback), ContentType: get(hContentType)})
		if err != nil {
			return out, fmt.Errorf("replay %s: %w", get(hID), err)
		}
		if err := s.dlq.DeleteMsg(ctx, it.seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, fmt.Errorf("replay %s: queued as %s but not removed from the DLQ: %w", get(hID), newID, err)
		}
		out = append(out, api.Replayed{ID: get(hID), InvocationID: newID})
	}
	return out, nil
}

// Purge removes every dead letter of fn and returns how many there were.
func (s *Service) Purge(ctx context.Context, fn string) (uint64, error) {
	if err := function.ValidateName(fn); err != nil {
		return 0, err
	}
	info, err := s.dlq.Info(ctx, jetstream.WithSubjectFilter(DLQPrefix+fn))
	if err != nil {
		return 0, fmt.Errorf("dlq %s: %w", fn, err)
	}
	n := info.State.Subjects[DLQPrefix+fn]
	if err := s.dlq.Purge(ctx, jetstream.WithPurgeSubject(DLQPrefix+fn)); err != nil {
		return 0, fmt.Errorf("dlq %s: purge: %w", fn, err)
	}
	return n, nil
}

// DeadLetterInput is an event that failed outside the async queue (a stream
// trigger's record) and goes to a function's DLQ, where replay queues it as
// an async invocation with Payload.
type DeadLetterInput struct {
	Function    string
	ID          string
	Source      string
	Reason      string
	Error       string
	ErrorType   string
	Attempts    int
	Payload     []byte
	ContentType string
	Enqueued    time.Time
	// DedupeID makes a repeated dead-lettering of the same failure store once.
	DedupeID string
}

// AddDeadLetter stores d in the DLQ of d.Function.
func (s *Service) AddDeadLetter(ctx context.Context, d DeadLetterInput) error {
	m := nats.NewMsg(DLQPrefix + d.Function)
	h := m.Header
	h[hSpecVersion] = []string{"1.0"}
	h[hID] = []string{d.ID}
	h[hSource] = []string{"/nimbus/" + d.Source}
	h[hType] = []string{EventType}
	h[hSubject] = []string{d.Function}
	h[hOrigin] = []string{d.Source}
	if d.Enqueued.IsZero() {
		d.Enqueued = time.Now()
	}
	h[hTime] = []string{d.Enqueued.UTC().Format(time.RFC3339Nano)}
	if d.ContentType != "" {
		h[hContentType] = []string{d.ContentType}
	}
	h.Set(hReason, d.Reason)
	h.Set(hError, truncate(d.Error, 4096))
	h.Set(hErrorType, d.ErrorType)
	h.Set(hAttempts, strconv.Itoa(d.Attempts))
	h.Set(hFailed, time.Now().UTC().Format(time.RFC3339Nano))
	if d.DedupeID != "" {
		h.Set(jetstream.MsgIDHeader, d.DedupeID)
	}
	m.Data = d.Payload
	if _, err := s.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("dead-letter %s of %s: %w", d.ID, d.Function, err)
	}
	return nil
}
