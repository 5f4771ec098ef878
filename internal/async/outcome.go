package async

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/events/cloudevent"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/invoke"
)

// Destination CloudEvent types.
const (
	TypeSuccess = "run.nimbus.async.success"
	TypeFailure = "run.nimbus.async.failure"
)

// finish writes the outcome, delivers it to its destination and callback,
// then acknowledges the message. When the outcome cannot be written the
// message is handed back instead, so that nothing is lost: the cost is a
// second run.
func (s *Service) finish(msg jetstream.Msg, ev *event, cfg *function.AsyncConfig, o outcome) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 30*time.Second)
	defer cancel()
	st := &status{ID: ev.id, Function: ev.fn, Source: ev.source, Enqueued: ev.enqueued,
		Finished: time.Now().UTC(), Attempts: o.attempts}
	if o.resp != nil {
		st.Record = o.resp.Record
	}
	if o.ok {
		st.Status = statusSucceeded
		st.Result, st.ResultTruncated = resultJSON(o.resp.Payload)
	} else {
		st.Status = statusFailed
		st.Error, st.ErrorType = errorText(o), o.errorType
	}
	if _, err := s.results.Put(ctx, ev.id, st.encode()); err != nil {
		s.log.Warn("async: outcome not stored, handing the event back", "id", ev.id, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}

	var dest *function.Destination
	if cfg != nil {
		dest = cfg.OnFailure
		if o.ok {
			dest = cfg.OnSuccess
		}
	}
	if !o.ok && dest == nil {
		dest = &function.Destination{DLQ: true}
	}
	if dest != nil {
		if err := s.deliver(ctx, dest, ev, st, o, msg); err != nil {
			s.log.Warn("async: destination failed", "id", ev.id, "function", ev.fn, "err", err)
			if !o.ok && !dest.DLQ {
				// A failed event must land somewhere a person can see it.
				err = s.deliver(ctx, &function.Destination{DLQ: true}, ev, st, o, msg)
			}
			if err != nil {
				_ = msg.NakWithDelay(time.Second)
				return
			}
		}
	}
	if ev.callback != "" {
		s.callback(ctx, ev, st, o)
	}
	reason := o.reason
	if o.ok {
		reason = "ok"
	}
	s.m.outcomes.WithLabelValues(st.Status, reason).Inc()
	if err := msg.Ack(); err != nil {
		s.log.Warn("async: ack failed; the event may run again", "id", ev.id, "err", err)
	}
}

func errorText(o outcome) string {
	if o.resp != nil && o.resp.Err != nil && o.resp.Err.Message != "" {
		return o.resp.Err.Message
	}
	if o.err != nil {
		return o.err.Error()
	}
	return "failed"
}

// deliver sends the outcome to dest.
func (s *Service) deliver(ctx context.Context, dest *function.Destination, ev *event, st *status, o outcome, msg jetstream.Msg) error {
	if dest.DLQ {
		return s.deadLetter(ctx, ev, st, o, msg)
	}
	b, err := destinationEvent(ev, st, o)
	if err != nil {
		return err
	}
	switch {
	case dest.Function != "":
		// The destination id is derived from the invocation's, so a
		// redelivered outcome is queued once (JetStream deduplication).
		id := ev.id + ".ok"
		if !o.ok {
			id = ev.id + ".failed"
		}
		_, err := s.EnqueueWith(ctx, &invoke.Request{Function: dest.Function, Payload: b, Source: "destination", ID: id},
			EnqueueOptions{DedupeID: id, ContentType: "application/cloudevents+json"})
		return err
	case dest.Subject != "":
		return s.publish(ctx, dest.Subject, b, ev.id)
	}
	return nil
}

// publish sends b to subject: through JetStream when a stream captures the
// subject (so it is stored, and acknowledged), else as a plain NATS message.
func (s *Service) publish(ctx context.Context, subject string, b []byte, msgID string) error {
	m := nats.NewMsg(subject)
	m.Data = b
	m.Header.Set("Content-Type", "application/cloudevents+json")
	if msgID != "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	// Ask first: a JetStream publish to a subject no stream captures but
	// plain subscribers listen on would wait for an acknowledgement that
	// never comes.
	_, err := s.js.StreamNameBySubject(ctx, subject)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if err := s.st.NC.PublishMsg(m); err != nil {
			return fmt.Errorf("publish to %s: %w", subject, err)
		}
		return s.st.NC.FlushWithContext(ctx)
	}
	if err == nil {
		_, err = s.js.PublishMsg(ctx, m)
	}
	if err != nil {
		return fmt.Errorf("publish to %s: %w", subject, err)
	}
	return nil
}

// record is Lambda's destination record, so that code written for Lambda
// destinations reads it unchanged.
type record struct {
	Version         string          `json:"version"`
	Timestamp       time.Time       `json:"timestamp"`
	RequestContext  requestContext  `json:"requestContext"`
	RequestPayload  json.RawMessage `json:"requestPayload"`
	ResponseContext responseContext `json:"responseContext"`
	ResponsePayload json.RawMessage `json:"responsePayload,omitempty"`
}

type requestContext struct {
	RequestID              string `json:"requestId"`
	FunctionArn            string `json:"functionArn"`
	Condition              string `json:"condition"`
	ApproximateInvokeCount int    `json:"approximateInvokeCount"`
}

type responseContext struct {
	StatusCode      int    `json:"statusCode"`
	ExecutedVersion string `json:"executedVersion"`
	FunctionError   string `json:"functionError,omitempty"`
}

// FunctionARN is the ARN-shaped name Nimbus gives a function in records.
func FunctionARN(fn, qualifier string) string {
	arn := "arn:nimbus:lambda:::function:" + fn
	if qualifier != "" {
		arn += ":" + qualifier
	}
	return arn
}

// destinationEvent is the CloudEvent a destination receives: type
// run.nimbus.async.success or .failure, data the Lambda destination record
// carrying the original event, the result or error, and the attempt count.
func destinationEvent(ev *event, st *status, o outcome) ([]byte, error) {
	r := record{
		Version: "1.0", Timestamp: st.Finished,
		RequestContext:  requestContext{RequestID: ev.id, FunctionArn: FunctionARN(ev.fn, ev.qualifier), ApproximateInvokeCount: o.attempts},
		RequestPayload:  jsonOrString(ev.payload),
		ResponseContext: responseContext{StatusCode: 200, ExecutedVersion: function.LatestVersion},
	}
	if st.Record != nil && st.Record.Version != "" {
		r.ResponseContext.ExecutedVersion = st.Record.Version
	}
	typ := TypeSuccess
	switch {
	case o.ok:
		r.RequestContext.Condition = "Success"
		r.ResponsePayload = jsonOrString(o.resp.Payload)
	default:
		typ = TypeFailure
		r.RequestContext.Condition = map[string]string{"max_age": "EventAgeExceeded", "not_found": "FunctionNotFound"}[o.reason]
		if r.RequestContext.Condition == "" {
			r.RequestContext.Condition = "RetriesExhausted"
		}
		r.ResponseContext.FunctionError = "Unhandled"
		r.ResponsePayload, _ = json.Marshal(map[string]string{"errorType": st.ErrorType, "errorMessage": st.Error})
	}
	data, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("destination record: %w", err)
	}
	e, err := cloudevent.New("/nimbus/functions/"+ev.fn, typ, ev.id, data, "application/json")
	if err != nil {
		return nil, err
	}
	e.SetID(ev.id + "." + map[bool]string{true: "ok", false: "failed"}[o.ok])
	return cloudevent.ToJSON(e)
}

func jsonOrString(p []byte) json.RawMessage {
	if len(p) == 0 {
		return json.RawMessage("null")
	}
	if json.Valid(p) {
		return p
	}
	s := string(p)
	if !utf8.Valid(p) {
		s = string(bytes.ToValidUTF8(p, []byte("\uFFFD")))
	}
	b, _ := json.Marshal(s)
	return b
}

// deadLetter stores the event in the DLQ: the original message (headers
// and payload) plus why, when and after how many attempts it failed, so
// that replay can queue it again exactly.
func (s *Service) deadLetter(ctx context.Context, ev *event, st *status, o outcome, msg jetstream.Msg) error {
	m := nats.NewMsg(DLQPrefix + ev.fn)
	for k, v := range ev.header {
		if k == jetstream.MsgIDHeader {
			continue
		}
		m.Header[k] = append([]string(nil), v...)
	}
	m.Data = ev.payload
	m.Header.Set(hReason, o.reason)
	m.Header.Set(hError, truncate(st.Error, 4096))
	m.Header.Set(hErrorType, st.ErrorType)
	m.Header.Set(hAttempts, strconv.Itoa(o.attempts))
	m.Header.Set(hFailed, st.Finished.Format(time.RFC3339Nano))
	if md, err := msg.Metadata(); err == nil {
		m.Header.Set(hSeq, strconv.FormatUint(md.Sequence.Stream, 10))
		// A redelivered failure is dead-lettered once.
		m.Header.Set(jetstream.MsgIDHeader, "dlq."+ev.id+"."+strconv.FormatUint(md.Sequence.Stream, 10))
	}
	if _, err := s.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("dead-letter %s: %w", ev.id, err)
	}
	return nil
}

// callback POSTs the result to the caller's X-Callback-Url, with OpenFaaS's
// headers, trying three times. It is best effort: a callback that cannot be
// delivered is logged and the outcome stays readable through the API. An
// address the callback policy refuses (Config.CallbackAllow) is not tried
// again.
func (s *Service) callback(ctx context.Context, ev *event, st *status, o outcome) {
	var body []byte
	code := http.StatusOK
	if o.ok {
		body = o.resp.Payload
	} else {
		code = http.StatusInternalServerError
		body, _ = json.Marshal(api.ErrorBody{Error: &api.Error{Code: api.CodeFunctionError, Message: st.Error, Type: st.ErrorType, InvocationID: ev.id}})
	}
	for try := 0; try < 3; try++ {
		if try > 0 {
			select {
			case <-time.After(time.Duration(try) * 500 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, ev.callback, bytes.NewReader(body))
		if err != nil {
			return
		}
		h := req.Header
		if json.Valid(body) {
			h.Set("Content-Type", "application/json")
		} else {
			h.Set("Content-Type", "application/octet-stream")
		}
		h.Set(api.HeaderInvocationID, ev.id)
		h.Set(api.HeaderStatus, st.Status)
		h.Set(api.HeaderAttempts, strconv.Itoa(o.attempts))
		h.Set("X-Call-Id", ev.id)
		h.Set("X-Function-Name", ev.fn)
		h.Set("X-Function-Status", strconv.Itoa(code))
		resp, err := s.callbacks.http.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if refused, ok := errors.AsType[*refusedError](err); ok {
			s.log.Warn("async: callback refused", "id", ev.id, "url", callbackLogURL(ev.callback), "reason", refused.Error())
			return
		}
		s.log.Debug("async: callback failed", "id", ev.id, "url", callbackLogURL(ev.callback), "try", try+1, "err", callbackErr(err))
	}
	s.log.Warn("async: callback not delivered after 3 tries", "id", ev.id, "url", callbackLogURL(ev.callback))
}
