// Package async owns asynchronous invocation: the durable work queue every
// "fire and forget" invocation goes through (stream NIMBUS_ASYNC, subjects
// nimbus.async.<function>), the workers that run it at least once with
// retries and backoff, the outcome of each invocation (kept in the
// nimbus_invocations bucket for a bounded time), destinations on success and
// failure, callbacks, and the dead-letter queue (stream NIMBUS_DLQ).
//
// Every node runs workers on one durable pull consumer, so the work of a
// cluster is spread over its nodes and survives any of them. A message is
// acknowledged only after its outcome is written and delivered; a node that
// dies mid-invocation leaves the message unacknowledged and JetStream
// redelivers it after AckWait. Invocations are thus at least once, never at
// most once.
//
// It does not own running functions (package invoke does) nor event
// sources (package events enqueues through Enqueue).
package async

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/store"
)

// Names of the streams, bucket and consumer.
const (
	Stream         = "NIMBUS_ASYNC"
	SubjectPrefix  = "nimbus.async."
	DLQStream      = "NIMBUS_DLQ"
	DLQPrefix      = "nimbus.dlq."
	ResultsBucket  = "nimbus_invocations"
	ConsumerName   = "nimbus-async-workers"
	dedupeWindow   = 15 * time.Minute
	maxResultBytes = 256 << 10
)

// Message headers. The ce-* ones make every queued invocation a CloudEvent
// in the binary content mode of the CloudEvents NATS binding; the rest are
// Nimbus's own.
const (
	hSpecVersion = "ce-specversion"
	hID          = "ce-id"
	hSource      = "ce-source"
	hType        = "ce-type"
	hTime        = "ce-time"
	hSubject     = "ce-subject"
	hTraceparent = "ce-traceparent"
	hQualifier   = "ce-nimbusqualifier"
	hCallback    = "ce-nimbuscallback"
	hContentType = "content-type"
	hOrigin      = "Nimbus-Source"
	hReason      = "Nimbus-Reason"
	hError       = "Nimbus-Error"
	hErrorType   = "Nimbus-Error-Type"
	hAttempts    = "Nimbus-Attempts"
	hFailed      = "Nimbus-Failed"
	hSeq         = "Nimbus-Queue-Seq"
)

// EventType is the CloudEvents type of a queued invocation.
const EventType = "run.nimbus.invoke.async"

// Catalog resolves functions (the registry).
type Catalog interface {
	Get(name string) (*function.Spec, error)
	Resolve(name, qualifier string) (*function.Spec, error)
}

// Invoker runs one invocation (invoke.Invoker).
type Invoker interface {
	Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error)
}

// Config sizes a Service.
type Config struct {
	// Workers bounds the invocations this node runs at once (default 256).
	Workers int
	// AckWait is how long a message may go without a sign of life before
	// JetStream gives it to another worker (default 30s). Running
	// invocations send progress every AckWait/3, so it bounds only how soon
	// the work of a dead node is picked up again.
	AckWait time.Duration
	// MaxPayload bounds an event (default 256 KiB, as Lambda and EventBridge).
	MaxPayload int
	// ResultsTTL is how long outcomes are kept (default 24h).
	ResultsTTL time.Duration
	// DLQMaxAge is how long dead letters are kept (default 14 days).
	DLQMaxAge time.Duration
	// Replicas of the streams and bucket (default: the store's).
	Replicas int
	// CallbackAllow limits the addresses X-Callback-Url callbacks may
	// connect to, checked on each address dialled (after DNS, and for
	// every redirect). Empty: any address except where cloud metadata
	// services answer (link-local 169.254.0.0/16 and fe80::/10, AWS's
	// fd00:ec2::254, Alibaba's 100.100.100.200). Not empty: only addresses
	// inside one of the prefixes, and a metadata address only by a prefix
	// within its metadata range.
	// Unspecified and multicast addresses are always refused.
	CallbackAllow []netip.Prefix
	// Metrics, when set, receives the package's counters.
	Metrics prometheus.Registerer
	Logger  *slog.Logger
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 256
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = 256 << 10
	}
	if c.ResultsTTL <= 0 {
		c.ResultsTTL = 24 * time.Hour
	}
	if c.DLQMaxAge <= 0 {
		c.DLQMaxAge = 14 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Service is the async invocation queue and its workers on one node.
type Service struct {
	cfg Config
	st  *store.Store
	js  jetstream.JetStream
	cat Catalog
	inv Invoker
	log *slog.Logger
	m   *metrics

	stream  jetstream.Stream
	dlq     jetstream.Stream
	results jetstream.KeyValue
	cons    jetstream.Consumer

	iter     jetstream.MessagesContext
	jobs     chan jetstream.Msg
	stopping chan struct{}   // closed when Stop begins
	ctx      context.Context // cancelled when Stop gives up waiting
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once

	callbacks callbackClient
}

// New returns a Service; Start creates its streams and starts its workers.
func New(cfg Config, st *store.Store, cat Catalog, inv Invoker) *Service {
	cfg.defaults()
	s := &Service{cfg: cfg, st: st, js: st.JS, cat: cat, inv: inv, log: cfg.Logger, m: newMetrics(cfg.Metrics)}
	s.callbacks = newCallbackClient(cfg.CallbackAllow)
	return s
}

// Start creates (or binds to) the queue, the dead-letter stream and the
// results bucket, and starts the workers.
func (s *Service) Start(ctx context.Context) error {
	var err error
	s.stream, err = s.st.Stream(ctx, jetstream.StreamConfig{
		Name: Stream, Description: "queued asynchronous invocations",
		Subjects: []string{SubjectPrefix + ">"}, Storage: jetstream.FileStorage,
		Retention: jetstream.WorkQueuePolicy, Replicas: s.cfg.Replicas,
		MaxAge: function.MaxAsyncMaxAge, Duplicates: dedupeWindow,
		MaxMsgSize: int32(s.cfg.MaxPayload + 64<<10),
	})
	if err != nil {
		return fmt.Errorf("async: stream %s: %w", Stream, err)
	}
	s.dlq, err = s.st.Stream(ctx, jetstream.StreamConfig{
		Name: DLQStream, Description: "asynchronous invocations that failed for good",
		Subjects: []string{DLQPrefix + ">"}, Storage: jetstream.FileStorage,
		Replicas: s.cfg.Replicas, MaxAge: s.cfg.DLQMaxAge, Discard: jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("async: stream %s: %w", DLQStream, err)
	}
	s.results, err = s.st.KV(ctx, jetstream.KeyValueConfig{
		Bucket: ResultsBucket, Description: "outcomes of asynchronous invocations",
		TTL: s.cfg.ResultsTTL, Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas,
		MaxBytes: 1 << 30,
	})
	if err != nil {
		return fmt.Errorf("async: %w", err)
	}
	s.cons, err = s.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: ConsumerName, Description: "async workers of every node",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: s.cfg.AckWait,
		// Attempts are counted and limited here, per function, not by the
		// server: -1 keeps the server from dropping a message silently.
		MaxDeliver:    -1,
		MaxAckPending: 100_000,
	})
	if err != nil {
		return fmt.Errorf("async: consumer: %w", err)
	}
	s.iter, err = s.cons.Messages(jetstream.PullMaxMessages(s.cfg.Workers))
	if err != nil {
		return fmt.Errorf("async: consume: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.jobs = make(chan jetstream.Msg)
	s.stopping = make(chan struct{})
	s.wg.Add(1 + s.cfg.Workers)
	go s.fetch()
	for range s.cfg.Workers {
		go s.work()
	}
	return nil
}

// Stop stops taking work, hands back the messages fetched but not yet
// started (so that another node's workers take them at once rather than
// after AckWait), waits for running invocations to finish and record
// their outcome (bounded by ctx), and returns. An invocation cut short by
// ctx is redelivered after AckWait.
func (s *Service) Stop(ctx context.Context) error {
	if s.iter == nil {
		return nil
	}
	// A second Stop (a test stopping the service before its node) waits
	// like the first, without closing what is closed already.
	s.stopOnce.Do(func() {
		close(s.stopping)
		s.iter.Drain() // fetch hands back what it still holds
	})
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return fmt.Errorf("async: stop: %w", ctx.Err())
	}
}

func (s *Service) fetch() {
	defer s.wg.Done()
	defer close(s.jobs)
	for {
		msg, err := s.iter.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			s.log.Warn("async: fetch", "err", err)
			continue
		}
		select {
		case <-s.stopping:
			_ = msg.Nak()
			continue
		default:
		}
		select {
		case s.jobs <- msg:
		case <-s.stopping:
			_ = msg.Nak()
		}
	}
}

// EnqueueOptions are the extras of EnqueueWith.
type EnqueueOptions struct {
	// CallbackURL receives the result by POST when the invocation is done.
	CallbackURL string
	// DedupeID makes the enqueue idempotent for 15 minutes: a second
	// enqueue with the same DedupeID is dropped by JetStream. Use it with a
	// deterministic req.ID (schedule ticks, webhook deliveries).
	DedupeID string
	// ContentType describes the payload (CloudEvents datacontenttype).
	ContentType string
}

// Enqueue queues req for asynchronous invocation and returns its id once
// the event is durably stored (JetStream has acknowledged it). It is the
// Lambda Invoke API's Event invocation type.
//
// # Errors
//
// Wrapping function.ErrNotFound for an unknown function or qualifier,
// function.ErrPayloadTooBig, function.ErrInvalid for a bad callback URL,
// function.ErrUnavailable when JetStream does not acknowledge in time.
func (s *Service) Enqueue(ctx context.Context, req *invoke.Request) (string, error) {
	return s.EnqueueWith(ctx, req, EnqueueOptions{})
}

// EnqueueWith is Enqueue with options.
func (s *Service) EnqueueWith(ctx context.Context, req *invoke.Request, opt EnqueueOptions) (string, error) {
	if _, err := s.cat.Resolve(req.Function, req.Qualifier); err != nil {
		return "", fmt.Errorf("async invoke: %w", err)
	}
	if len(req.Payload) > s.cfg.MaxPayload {
		return "", fmt.Errorf("async invoke %s: event is %d bytes, the limit is %d: %w", req.Function, len(req.Payload), s.cfg.MaxPayload, function.ErrPayloadTooBig)
	}
	if opt.CallbackURL != "" {
		if err := ValidateCallbackURL(opt.CallbackURL); err != nil {
			return "", err
		}
	}
	if req.ID == "" {
		req.ID = invoke.NewID()
	} else if !validID(req.ID) {
		return "", function.Invalid("id", "%q: an invocation id holds 1 to 128 letters, digits, '-', '_' or '.'", req.ID)
	}
	if req.TraceID == "" {
		req.TraceID = invoke.NewTraceID()
	}
	source := req.Source
	if source == "" {
		source = "async"
	}
	now := time.Now().UTC()
	// The subject carries the invocation id (nimbus.async.<function>.<id>)
	// so that GET /api/v1/invocations/{id} can find a pending invocation in
	// the stream itself (see pending): no separate "queued" record has to
	// be written, and one JetStream write per accept is all it costs.
	msg := &nats.Msg{Subject: SubjectPrefix + req.Function + "." + subjectToken(req.ID), Data: req.Payload, Header: make(nats.Header, 12)}
	h := msg.Header
	h[hSpecVersion] = []string{"1.0"}
	h[hID] = []string{req.ID}
	h[hSource] = []string{"/nimbus/" + source}
	h[hType] = []string{EventType}
	h[hTime] = []string{now.Format(time.RFC3339Nano)}
	h[hSubject] = []string{req.Function}
	h[hTraceparent] = []string{"00-" + req.TraceID + "-" + spanID() + "-01"}
	h[hOrigin] = []string{source}
	if req.Qualifier != "" {
		h[hQualifier] = []string{req.Qualifier}
	}
	if opt.CallbackURL != "" {
		h[hCallback] = []string{opt.CallbackURL}
	}
	if opt.ContentType != "" {
		h[hContentType] = []string{opt.ContentType}
	}
	if opt.DedupeID != "" {
		h[jetstream.MsgIDHeader] = []string{opt.DedupeID}
	}

	// JetStream answers in milliseconds; the bound only keeps a request
	// from hanging on a server that went away.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	fut, err := s.js.PublishMsgAsync(msg)
	if err != nil {
		return "", fmt.Errorf("async invoke %s: queue: %v: %w", req.Function, err, function.ErrUnavailable)
	}
	// The 202 waits for this acknowledgement: JetStream has stored the
	// event in the file-backed stream, which is what "accepted" promises.
	ack, err := waitAck(ctx, fut)
	if err != nil {
		return "", fmt.Errorf("async invoke %s: queue: %v: %w", req.Function, err, function.ErrUnavailable)
	}
	if !ack.Duplicate {
		s.m.enqueued.Inc()
	}
	return req.ID, nil
}

func waitAck(ctx context.Context, fut jetstream.PubAckFuture) (*jetstream.PubAck, error) {
	select {
	case ack := <-fut.Ok():
		return ack, nil
	case err := <-fut.Err():
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// subjectToken is id as one subject token: ids may hold '.', a subject's
// token separator, which no id holds '~' to be confused with.
func subjectToken(id string) string {
	if strings.IndexByte(id, '.') < 0 {
		return id
	}
	return strings.ReplaceAll(id, ".", "~")
}

func validID(id string) bool {
	// The Lambda Runtime API's request ids (the process runtime) allow no
	// more; KV keys and JetStream message ids are happy with them too.
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return id[0] != '.' && id[len(id)-1] != '.'
}

// ValidateCallbackURL accepts absolute http and https URLs. Which
// addresses a callback may reach is decided when it connects
// (Config.CallbackAllow), not here: a name may resolve differently then.
func ValidateCallbackURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return function.Invalid("X-Callback-Url", "%q is not an absolute http or https URL", truncate(s, 200))
	}
	return nil
}

func spanID() string {
	return strconv.FormatUint(rand.Uint64()|1<<63, 16)
}

// backoff is the delay before retry n (1-based): base·2^(n-1), capped at
// 15 minutes, with "equal jitter" (half fixed, half random) so that a burst
// of failures does not come back as a burst.
func backoff(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < 15*time.Minute; i++ {
		d *= 2
	}
	d = min(d, 15*time.Minute)
	half := d / 2
	return half + rand.N(half+1)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// traceID takes the trace id out of a traceparent.
func traceID(tp string) string {
	parts := strings.Split(tp, "-")
	if len(parts) == 4 && len(parts[1]) == 32 {
		return parts[1]
	}
	return ""
}
