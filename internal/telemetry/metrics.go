// Package telemetry owns the node's Prometheus metrics (and, later, traces).
// Engine packages report through the small hooks here; they never import
// Prometheus themselves.
package telemetry

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the node's metric registry.
type Metrics struct {
	reg         *prometheus.Registry
	invocations *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	coldStarts  *prometheus.CounterVec
	throttles   *prometheus.CounterVec
	instances   *prometheus.GaugeVec

	mu  sync.RWMutex
	per map[string]*FunctionMetrics
}

// FunctionMetrics are one function's series, resolved once so the request
// path does not hash label values.
type FunctionMetrics struct {
	ok, errs, timeouts, throttled prometheus.Counter
	duration                      prometheus.Observer
	cold                          prometheus.Counter
}

// NewMetrics registers the platform's metrics and the Go runtime's.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), per: map[string]*FunctionMetrics{}}
	m.invocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nimbus_invocations_total", Help: "Invocations by function and status.",
	}, []string{"function", "status"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "nimbus_invocation_duration_seconds", Help: "Time spent running invocations (excluding queueing).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900},
	}, []string{"function"})
	m.coldStarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nimbus_cold_starts_total", Help: "Invocations that started a new instance.",
	}, []string{"function"})
	m.throttles = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nimbus_throttles_total", Help: "Invocations refused at max concurrency.",
	}, []string{"function"})
	m.instances = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "nimbus_instances", Help: "Live instances per function on this node.",
	}, []string{"function"})
	m.reg.MustRegister(m.invocations, m.duration, m.coldStarts, m.throttles, m.instances,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is for components that register their own metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Function returns fn's series.
func (m *Metrics) Function(fn string) *FunctionMetrics {
	m.mu.RLock()
	f := m.per[fn]
	m.mu.RUnlock()
	if f != nil {
		return f
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if f = m.per[fn]; f == nil {
		f = &FunctionMetrics{
			ok:        m.invocations.WithLabelValues(fn, "ok"),
			errs:      m.invocations.WithLabelValues(fn, "error"),
			timeouts:  m.invocations.WithLabelValues(fn, "timeout"),
			throttled: m.invocations.WithLabelValues(fn, "throttled"),
			duration:  m.duration.WithLabelValues(fn),
			cold:      m.coldStarts.WithLabelValues(fn),
		}
		m.per[fn] = f
	}
	return f
}

// Observe counts one finished invocation.
func (m *Metrics) Observe(fn, status string, d time.Duration, cold bool) {
	f := m.Function(fn)
	switch status {
	case "ok":
		f.ok.Inc()
	case "timeout":
		f.timeouts.Inc()
	case "throttled":
		f.throttled.Inc()
		m.throttles.WithLabelValues(fn).Inc()
		return
	default:
		f.errs.Inc()
	}
	f.duration.Observe(d.Seconds())
	if cold {
		f.cold.Inc()
	}
}

// Instances implements pool.Observer.
func (m *Metrics) Instances(fn string, n int) { m.instances.WithLabelValues(fn).Set(float64(n)) }

// Forget drops a deleted function's series.
func (m *Metrics) Forget(fn string) {
	m.mu.Lock()
	delete(m.per, fn)
	m.mu.Unlock()
	m.invocations.DeletePartialMatch(prometheus.Labels{"function": fn})
	m.duration.DeletePartialMatch(prometheus.Labels{"function": fn})
	m.coldStarts.DeletePartialMatch(prometheus.Labels{"function": fn})
	m.throttles.DeletePartialMatch(prometheus.Labels{"function": fn})
	m.instances.DeletePartialMatch(prometheus.Labels{"function": fn})
}
