package apigateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nimbus-run/nimbus/api"
)

// RequestIDHeader carries the request id on every response of the node.
const RequestIDHeader = "X-Request-Id"

// accessInfo is what handlers deeper in the chain tell the access log.
// Written by the one goroutine serving the request, read after it returns.
type accessInfo struct {
	route string
	err   error
}

type accessKey struct{}

func noteRoute(ctx context.Context, key string) {
	if ai, ok := ctx.Value(accessKey{}).(*accessInfo); ok {
		ai.route = key
	}
}

// noteError records the detail of an error whose public message says
// nothing, so that operators still see why.
func noteError(ctx context.Context, err error) {
	if ai, ok := ctx.Value(accessKey{}).(*accessInfo); ok {
		ai.err = err
	}
}

// Observe wraps the node's whole handler: it gives every response an
// X-Request-Id (the client's, when it sent a sane one, else a new one) and
// writes one access log line per request with the route, status, latency
// and invocation id.
func Observe(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(RequestIDHeader, id)
		ai := &accessInfo{}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), accessKey{}, ai)))

		level := slog.LevelInfo
		if p := r.URL.Path; p == "/healthz" || p == "/readyz" || p == "/metrics" {
			level = slog.LevelDebug // probes would drown everything else
		}
		ctx := r.Context()
		if !log.Enabled(ctx, level) {
			return
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		attrs := make([]slog.Attr, 0, 12)
		attrs = append(attrs,
			slog.String("request_id", id),
			slog.String("method", r.Method),
			slog.String("host", r.Host),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000),
			slog.Int64("bytes", sw.bytes),
			slog.String("remote", r.RemoteAddr),
			slog.String("proto", r.Proto),
		)
		if ai.route != "" {
			attrs = append(attrs, slog.String("route", ai.route))
		}
		if inv := w.Header().Get(api.HeaderInvocationID); inv != "" {
			attrs = append(attrs, slog.String("invocation_id", inv))
		}
		if ai.err != nil {
			attrs = append(attrs, slog.String("err", ai.err.Error()))
		}
		log.LogAttrs(ctx, level, "access", attrs...)
	})
}

// validRequestID accepts what a proxy in front may have set: up to 128
// visible ASCII characters. Anything else is replaced, so a client cannot
// inject into logs.
func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// statusWriter remembers the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush, deadlines and hijacking.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush keeps streaming handlers streaming through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// hopHeaders describe one connection, not the request: a proxy drops them
// (RFC 9110 section 7.6.1), so functions never see them.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// endToEnd returns h without hop-by-hop headers, including those Connection
// names. h is not modified; it is returned as is when it has none.
func endToEnd(h http.Header) http.Header {
	dirty := false
	for _, k := range hopHeaders {
		if _, ok := h[k]; ok {
			dirty = true
			break
		}
	}
	if !dirty {
		return h
	}
	out := h.Clone()
	for _, v := range out["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				out.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(out, k)
	}
	return out
}
