package data

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nimbus-run/nimbus/internal/function"
)

// Operation metrics: every table and bucket operation, whichever surface
// it came through (the HTTP API, S3, functions through the SDK), counted
// by result and timed, per table or bucket; and the bytes clients move in
// and out of buckets (S3's BytesUploaded and BytesDownloaded):
//
//	nimbus_table_operations_total{table, op, result}
//	nimbus_table_operation_duration_seconds{table, op}
//	nimbus_bucket_operations_total{bucket, op, result}
//	nimbus_bucket_operation_duration_seconds{bucket, op}
//	nimbus_bucket_bytes_total{bucket, direction="in"|"out"}
//	nimbus_bucket_uploads_running, nimbus_bucket_uploads_waiting
//	nimbus_bucket_orphans_purged_total, nimbus_data_chores_total{chore}
//
// A get's duration is the time to its first byte; its bytes count as the
// client reads them. An operation that names no existing table or bucket
// is counted under the name "", so clients cannot mint series with names
// of their own. A deleted table's or bucket's series go with it.
type opMetrics struct {
	s         *Service
	ops       [2]*prometheus.CounterVec
	durations [2]*prometheus.HistogramVec
	bytes     *prometheus.CounterVec
	orphans   prometheus.Counter     // chunk subjects the sweeps purged (orphans.go)
	chores    *prometheus.CounterVec // rounds of shared chores this node ran (chores.go)
	names     [2]sync.Map            // table or bucket name -> *nameSeries
}

type opKind int

const (
	kindTable opKind = iota
	kindBucket
)

var kindLabel = [2]string{"table", "bucket"}

// op is an operation, result an outcome: indexes into nameSeries, so the
// hot path resolves its series without hashing label values.
type (
	op     int
	result int
)

const (
	opPut op = iota
	opGet
	opDelete
	opUpdate
	opBatchPut
	opBatchGet
	opQuery
	opScan
	opHead
	opList
	opCopy
	opDeleteObjects
	opCreateUpload
	opUploadPart
	opCompleteUpload
	opAbortUpload
	opListUploads
	numOps
)

var opLabel = [numOps]string{"put", "get", "delete", "update", "batch_put", "batch_get", "query", "scan",
	"head", "list", "copy", "delete_objects", "create_upload", "upload_part", "complete_upload", "abort_upload", "list_uploads"}

const (
	resOK result = iota
	resNotFound
	resConditionFailed
	resNotModified
	resInvalid
	resCanceled
	resError
	numResults
)

var resultLabel = [numResults]string{"ok", "not_found", "condition_failed", "not_modified", "invalid", "canceled", "error"}

// nameSeries are one table's or bucket's series, resolved on first use.
type nameSeries struct {
	counts    [numOps][numResults]atomic.Pointer[prometheus.Counter]
	durations [numOps]atomic.Pointer[prometheus.Observer]
	bytesIn   atomic.Pointer[prometheus.Counter]
	bytesOut  atomic.Pointer[prometheus.Counter]
}

// resolve returns *p, setting it with make on first use.
func resolve[T any](p *atomic.Pointer[T], mk func() T) T {
	if v := p.Load(); v != nil {
		return *v
	}
	v := mk()
	p.CompareAndSwap(nil, &v)
	return *p.Load()
}

func newOpMetrics(s *Service, reg prometheus.Registerer) *opMetrics {
	m := &opMetrics{s: s}
	buckets := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30}
	for k, what := range kindLabel {
		m.ops[k] = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nimbus_" + what + "_operations_total",
			Help: "Operations on " + what + "s, by " + what + ", operation and result (" + strings.Join(resultLabel[:], ", ") + ").",
		}, []string{what, "op", "result"})
		m.durations[k] = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nimbus_" + what + "_operation_duration_seconds", Help: "Time " + what + " operations take (a get's: to its first byte).", Buckets: buckets,
		}, []string{what, "op"})
	}
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nimbus_bucket_bytes_total", Help: "Object bytes received from clients (in: puts, parts) and sent to them (out: gets).",
	}, []string{"bucket", "direction"})
	m.orphans = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nimbus_bucket_orphans_purged_total", Help: "Unfinished puts (a node killed mid-upload) whose chunks the sweeps purged.",
	})
	m.chores = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nimbus_data_chores_total", Help: "Rounds of the chores the nodes of a cluster share (ttl_sweep, orphan_sweep) that this node ran.",
	}, []string{"chore"})
	if reg != nil && s.slots != nil {
		// Uploads of more than a chunk running and waiting for a slot
		// (Config.MaxUploads): one registry may serve several services
		// in tests, and the first one's are kept.
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{ //nolint:errcheck // see above
			Name: "nimbus_bucket_uploads_running", Help: "Uploads of more than one chunk running (at most nimbus up --max-uploads).",
		}, func() float64 { return float64(len(s.slots.ch)) }))
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{ //nolint:errcheck // see above
			Name: "nimbus_bucket_uploads_waiting", Help: "Uploads of more than one chunk waiting for one of --max-uploads to end.",
		}, func() float64 { return float64(s.slots.waiting.Load()) }))
	}
	if reg != nil {
		m.ops[0] = register(reg, m.ops[0])
		m.ops[1] = register(reg, m.ops[1])
		m.durations[0] = register(reg, m.durations[0])
		m.durations[1] = register(reg, m.durations[1])
		m.bytes = register(reg, m.bytes)
		m.orphans = register(reg, m.orphans)
		m.chores = register(reg, m.chores)
	}
	return m
}

// register registers c, or returns the collector of that name already
// registered (tests run several services on one registry): all count into
// it.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

func (m *opMetrics) series(kind opKind, name string) *nameSeries {
	if v, ok := m.names[kind].Load(name); ok {
		return v.(*nameSeries)
	}
	v, _ := m.names[kind].LoadOrStore(name, new(nameSeries))
	return v.(*nameSeries)
}

// done counts an operation that began at start and ended with *err. It is
// deferred: defer s.ops.done(kindTable, table, opPut, time.Now(), &err).
func (m *opMetrics) done(kind opKind, name string, o op, start time.Time, err *error) {
	r := resultOf(*err)
	if !m.s.exists(kind, name) { // made up, or deleted meanwhile (forget ran)
		name = ""
	}
	ns := m.series(kind, name)
	resolve(&ns.counts[o][r], func() prometheus.Counter {
		return m.ops[kind].WithLabelValues(name, opLabel[o], resultLabel[r])
	}).Inc()
	resolve(&ns.durations[o], func() prometheus.Observer {
		return m.durations[kind].WithLabelValues(name, opLabel[o])
	}).Observe(time.Since(start).Seconds())
}

// bytesIn counts n bytes received into bucket.
func (m *opMetrics) bytesIn(bucket string, n int64) {
	resolve(&m.series(kindBucket, bucket).bytesIn, func() prometheus.Counter {
		return m.bytes.WithLabelValues(bucket, "in")
	}).Add(float64(n))
}

// counted counts what is read of body as bytes sent out of bucket.
func (m *opMetrics) counted(bucket string, body io.ReadCloser) io.ReadCloser {
	c := resolve(&m.series(kindBucket, bucket).bytesOut, func() prometheus.Counter {
		return m.bytes.WithLabelValues(bucket, "out")
	})
	return &countedBody{ReadCloser: body, c: c}
}

// forget drops the series of a deleted table or bucket.
func (m *opMetrics) forget(kind opKind, name string) {
	m.names[kind].Delete(name)
	m.ops[kind].DeletePartialMatch(prometheus.Labels{kindLabel[kind]: name})
	m.durations[kind].DeletePartialMatch(prometheus.Labels{kindLabel[kind]: name})
	if kind == kindBucket {
		m.bytes.DeletePartialMatch(prometheus.Labels{"bucket": name})
	}
}

// resultOf is an operation's outcome.
func resultOf(err error) result {
	switch {
	case err == nil:
		return resOK
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return resCanceled
	case IsNotFound(err):
		return resNotFound
	case errors.Is(err, ErrConditionFailed), errors.Is(err, ErrPreconditionFailed):
		return resConditionFailed
	case errors.Is(err, ErrNotModified):
		return resNotModified
	case errors.Is(err, function.ErrInvalid), errors.Is(err, ErrTooLarge), errors.Is(err, ErrInvalidRange):
		return resInvalid
	}
	return resError
}

// exists reports whether a table or bucket of that name is defined.
func (s *Service) exists(kind opKind, name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if kind == kindTable {
		return s.tables[name] != nil
	}
	return s.buckets[name] != nil
}

// countedBody counts the bytes read through it, by Read or WriteTo (which
// keeps the body's own WriteTo, and its saved copy).
type countedBody struct {
	io.ReadCloser
	c prometheus.Counter
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.Add(float64(n))
	return n, err
}

func (b *countedBody) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := b.ReadCloser.(io.WriterTo); ok {
		return wt.WriteTo(countingWriter{w, b.c})
	}
	return io.Copy(countingWriter{w, b.c}, struct{ io.Reader }{b.ReadCloser})
}

type countingWriter struct {
	w io.Writer
	c prometheus.Counter
}

func (cw countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.c.Add(float64(n))
	return n, err
}
