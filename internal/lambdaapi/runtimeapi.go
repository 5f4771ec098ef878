// Package lambdaapi serves the AWS Lambda APIs Nimbus speaks, so that code
// and tools written for Lambda work unchanged.
//
// This file holds the Runtime API (version 2018-06-01): the HTTP API that a
// function process (an aws-lambda-go binary, a custom runtime "bootstrap")
// polls for invocations and posts results to. A RuntimeServer serves one
// execution environment; the process runtime starts one per instance. The
// server does not start or watch processes and does not capture logs: that is
// internal/runtime/process.
package lambdaapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nimbus-run/nimbus/internal/httploop"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

// RuntimeAPIVersion is the path prefix every Runtime API call carries.
const RuntimeAPIVersion = "2018-06-01"

// MaxResponseBytes is Lambda's limit on a synchronous response payload.
const MaxResponseBytes = 6 << 20

// Runtime API headers.
const (
	HeaderRequestID       = "Lambda-Runtime-Aws-Request-Id"
	HeaderDeadlineMS      = "Lambda-Runtime-Deadline-Ms"
	HeaderFunctionARN     = "Lambda-Runtime-Invoked-Function-Arn"
	HeaderTraceID         = "Lambda-Runtime-Trace-Id"
	HeaderClientContext   = "Lambda-Runtime-Client-Context"
	HeaderCognitoIdentity = "Lambda-Runtime-Cognito-Identity"
	// HeaderFunctionErrorType names the error type on /error and
	// /init/error. aws-lambda-go also sends it as a trailer of a /response
	// whose body failed mid-stream, with the error in HeaderFunctionErrorBody.
	HeaderFunctionErrorType = "Lambda-Runtime-Function-Error-Type"
	HeaderFunctionErrorBody = "Lambda-Runtime-Function-Error-Body"
	// HeaderNimbusHTTP is a Nimbus extension on /next: the HTTP request
	// behind the invocation (runtime.HTTPInfo as base64 JSON), for the Go
	// SDK's sdk.HTTPRequest. Other runtimes ignore headers they do not know.
	HeaderNimbusHTTP = "Lambda-Runtime-Nimbus-Http"
)

// Error types Nimbus reports for a response the runtime got wrong.
const (
	ErrorTypeResponseTooLarge = "Function.ResponseSizeTooLarge"
	errorTypeUnhandled        = "Unhandled"
)

// Errors returned by RuntimeServer.Invoke.
var (
	// ErrClosed means the server was closed (its instance is gone) before the
	// invocation completed.
	ErrClosed = errors.New("lambdaapi: runtime API closed")
	// ErrNotDelivered is wrapped, next to the cause, when the runtime never
	// received the invocation: no poller took it before ctx ended or the
	// server closed.
	ErrNotDelivered = errors.New("invocation not delivered to the runtime")
)

// Bounds that keep a misbehaving runtime from costing the node much.
const (
	maxErrorBodyBytes = 1 << 20  // an error document bigger than this is cut
	maxErrorMessage   = 16 << 10 // bytes of errorMessage kept
	maxErrorFrames    = 100      // stackTrace entries kept
	maxRequestIDLen   = 128
	recentIDs         = 256 // finished request ids remembered to tell "duplicate" from "unknown"
)

// RuntimeServerConfig configures a RuntimeServer.
type RuntimeServerConfig struct {
	// Concurrency is how many invocations the runtime may hold at once
	// (AWS_LAMBDA_MAX_CONCURRENCY). Default 1.
	Concurrency int
	// FunctionARN is sent as Lambda-Runtime-Invoked-Function-Arn unless an
	// Invocation names its own.
	FunctionARN string
	// MaxResponseBytes bounds a response payload. Default MaxResponseBytes.
	MaxResponseBytes int
}

// Invocation is one event handed to the runtime.
type Invocation struct {
	ID            string
	Payload       []byte
	Deadline      time.Time
	TraceID       string
	ClientContext string
	Identity      string
	FunctionARN   string
	// HTTP is sent as HeaderNimbusHTTP when set.
	HTTP *runtime.HTTPInfo
}

// Response is what the runtime posted for an invocation: a payload, or an
// error (Err set, Payload nil).
type Response struct {
	Payload     []byte
	ContentType string
	Err         *runtime.FunctionError
}

// call is an invocation on its way through the server.
type call struct {
	inv  *Invocation
	done chan struct{} // closed once resp is set
	// back gets a value when a poll took the call but found its runtime
	// gone: Invoke hands it over again.
	back chan struct{}
	resp *Response
}

// RuntimeServer serves the Runtime API for one execution environment on its
// own loopback listener.
//
// Why a listener per environment rather than one for the whole node: the
// runtime finds the API from AWS_LAMBDA_RUNTIME_API, which is "host:port",
// and the paths are fixed, so the address is the only thing that can tell two
// environments apart. A path prefix smuggled into the variable works with
// clients that concatenate strings (aws-lambda-go, curl) but not with those
// that parse host and port (the Python and Java runtime interface clients, the
// Rust runtime). A loopback listener costs one file descriptor and one
// goroutine.
type RuntimeServer struct {
	cfg     RuntimeServerConfig
	srv     *httploop.Server
	handoff chan *call // unbuffered: a send completes only when a poller takes it

	closed    chan struct{}
	closeOnce sync.Once

	mu         sync.Mutex
	handlers   int           // requests being served; Close waits for 0
	handlersCh chan struct{} // closed when handlers drops to 0 after close
	isClosed   bool
	inflight   map[string]*call
	recent     map[string]struct{}
	recentRing []string
	recentNext int
	pollers    int           // runtimes waiting in /next
	pollersCh  chan struct{} // closed and replaced whenever pollers changes
	readyAt    time.Time
	ready      chan struct{} // closed at the first /next
	initErr    *runtime.FunctionError
	initFailed chan struct{} // closed by /init/error
}

// NewRuntimeServer listens on 127.0.0.1 (a free port) and serves the Runtime
// API until Close.
func NewRuntimeServer(cfg RuntimeServerConfig) (*RuntimeServer, error) {
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = MaxResponseBytes
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("lambdaapi: listen: %w", err)
	}
	s := &RuntimeServer{
		cfg:        cfg,
		handoff:    make(chan *call),
		closed:     make(chan struct{}),
		inflight:   make(map[string]*call),
		recent:     make(map[string]struct{}),
		recentRing: make([]string, recentIDs),
		pollersCh:  make(chan struct{}),
		ready:      make(chan struct{}),
		initFailed: make(chan struct{}),
	}
	s.srv = httploop.Start(ln, s, func(w http.ResponseWriter, status int, msg string) {
		writeError(w, status, "InvalidRequest", msg)
	})
	return s, nil
}

// Addr is the value for AWS_LAMBDA_RUNTIME_API ("127.0.0.1:port").
func (s *RuntimeServer) Addr() string { return s.srv.Addr().String() }

// Ready is closed when the runtime first calls /next: it has initialized.
func (s *RuntimeServer) Ready() <-chan struct{} { return s.ready }

// ReadyAt is when Ready was closed (zero before).
func (s *RuntimeServer) ReadyAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readyAt
}

// InitFailed is closed when the runtime posts /init/error.
func (s *RuntimeServer) InitFailed() <-chan struct{} { return s.initFailed }

// InitError is the error posted to /init/error, nil if none.
func (s *RuntimeServer) InitError() *runtime.FunctionError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.initErr
}

// Invoke hands inv to a runtime waiting in /next and waits for its response
// or error.
//
// # Errors
//
// A function error is a Response with Err set, not an error. Invoke returns
// an error when ctx ends or the server closes first; it wraps ErrNotDelivered
// when the runtime never saw the invocation, and ctx.Err() or ErrClosed.
func (s *RuntimeServer) Invoke(ctx context.Context, inv *Invocation) (*Response, error) {
	if err := validRequestID(inv.ID); err != nil {
		return nil, fmt.Errorf("lambdaapi: invoke: %w", err)
	}
	if inv.Deadline.IsZero() {
		// The runtime needs a deadline (aws-lambda-go refuses an invocation
		// without one); without ctx's, it gets Lambda's longest timeout.
		cp := *inv
		cp.Deadline = time.Now().Add(15 * time.Minute)
		if d, ok := ctx.Deadline(); ok {
			cp.Deadline = d
		}
		inv = &cp
	}
	c := &call{inv: inv, done: make(chan struct{}), back: make(chan struct{}, 1)}
deliver:
	select {
	case s.handoff <- c:
	case <-ctx.Done():
		return nil, fmt.Errorf("lambdaapi: invoke %s: %w: %w", inv.ID, ErrNotDelivered, ctx.Err())
	case <-s.closed:
		return nil, fmt.Errorf("lambdaapi: invoke %s: %w: %w", inv.ID, ErrNotDelivered, ErrClosed)
	}
	select {
	case <-c.done:
		return c.resp, nil
	case <-c.back:
		goto deliver
	case <-ctx.Done():
		s.abandon(inv.ID)
	case <-s.closed:
	}
	// An answer that raced with the end of ctx or of the server still counts.
	select {
	case <-c.done:
		return c.resp, nil
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lambdaapi: invoke %s: %w", inv.ID, err)
	}
	return nil, fmt.Errorf("lambdaapi: invoke %s: %w", inv.ID, ErrClosed)
}

// AwaitPollers returns once at least n runtimes wait in /next, that is, once
// the runtime is idle again after a response. It returns ErrClosed if the
// server closes and ctx.Err() if ctx ends first.
func (s *RuntimeServer) AwaitPollers(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		p, ch := s.pollers, s.pollersCh
		s.mu.Unlock()
		if p >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closed:
			return ErrClosed
		}
	}
}

// Close stops the server: pending Invoke calls return ErrClosed, open
// connections are dropped, and Close returns when every handler has returned.
func (s *RuntimeServer) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.isClosed = true
		close(s.closed)
		if s.handlers == 0 {
			s.handlersCh = nil
		} else {
			s.handlersCh = make(chan struct{})
		}
		wait := s.handlersCh
		s.mu.Unlock()
		// The process behind this server is already dead or being killed:
		// its connections are dropped, not drained.
		err = s.srv.Close()
		if wait != nil {
			<-wait
		}
	})
	return err
}

// ServeHTTP routes a Runtime API request. Every refusal is a 4xx with a
// {"errorMessage","errorType"} body, as the Runtime API specifies.
func (s *RuntimeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		writeError(w, http.StatusInternalServerError, "Runtime.Closed", "the execution environment is shutting down")
		return
	}
	defer s.leave()

	rest, ok := strings.CutPrefix(r.URL.Path, "/"+RuntimeAPIVersion+"/runtime/")
	if !ok {
		writeError(w, http.StatusNotFound, "NotFound", "unknown path: the Runtime API lives under /"+RuntimeAPIVersion+"/runtime/")
		return
	}
	switch {
	case rest == "invocation/next":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, http.MethodGet)
			return
		}
		s.next(w, r)
	case rest == "init/error":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, http.MethodPost)
			return
		}
		s.initError(w, r)
	case strings.HasPrefix(rest, "invocation/"):
		id, verb, ok := strings.Cut(strings.TrimPrefix(rest, "invocation/"), "/")
		if !ok || (verb != "response" && verb != "error") {
			writeError(w, http.StatusNotFound, "NotFound", "unknown path: use invocation/{id}/response or invocation/{id}/error")
			return
		}
		if err := validRequestID(id); err != nil {
			writeError(w, http.StatusBadRequest, "InvalidRequestID", err.Error())
			return
		}
		if r.Method != http.MethodPost {
			methodNotAllowed(w, http.MethodPost)
			return
		}
		if verb == "response" {
			s.response(w, r, id)
		} else {
			s.invocationError(w, r, id)
		}
	default:
		writeError(w, http.StatusNotFound, "NotFound", "unknown Runtime API path")
	}
}

func (s *RuntimeServer) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isClosed {
		return false
	}
	s.handlers++
	return true
}

func (s *RuntimeServer) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers--
	if s.handlers == 0 && s.handlersCh != nil {
		close(s.handlersCh)
		s.handlersCh = nil
	}
}

// next is the long poll: it blocks until Invoke hands over an invocation.
func (s *RuntimeServer) next(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	// A runtime polls at most Concurrency times at once; the slack covers
	// clients that reconnect before the server saw the old poll end.
	if s.pollers >= 2*s.cfg.Concurrency+4 {
		s.mu.Unlock()
		writeError(w, http.StatusForbidden, "Runtime.TooManyPollers",
			fmt.Sprintf("more concurrent /next calls than AWS_LAMBDA_MAX_CONCURRENCY (%d) allows", s.cfg.Concurrency))
		return
	}
	if s.readyAt.IsZero() {
		s.readyAt = time.Now()
		close(s.ready)
	}
	s.addPollerLocked(1)
	s.mu.Unlock()

	var c *call
	select {
	case c = <-s.handoff:
	case <-r.Context().Done():
	case <-s.closed:
	}
	if c != nil && httploop.PeerGone(w) {
		// The runtime gave this poll up (a client timeout) while it waited:
		// the invocation goes back to Invoke, for the next poll.
		s.mu.Lock()
		s.addPollerLocked(-1)
		s.mu.Unlock()
		c.back <- struct{}{}
		return
	}
	s.mu.Lock()
	s.addPollerLocked(-1)
	if c != nil {
		// Registered before the runtime can see the id, so its answer always
		// finds the call.
		s.inflight[c.inv.ID] = c
	}
	s.mu.Unlock()
	if c == nil {
		if r.Context().Err() == nil {
			writeError(w, http.StatusInternalServerError, "Runtime.Closed", "the execution environment is shutting down")
		}
		return
	}

	inv := c.inv
	h := w.Header()
	h.Set(HeaderRequestID, inv.ID)
	h.Set(HeaderDeadlineMS, strconv.FormatInt(inv.Deadline.UnixMilli(), 10))
	arn := inv.FunctionARN
	if arn == "" {
		arn = s.cfg.FunctionARN
	}
	setHeader(h, HeaderFunctionARN, arn)
	setHeader(h, HeaderTraceID, inv.TraceID)
	setHeader(h, HeaderClientContext, inv.ClientContext)
	setHeader(h, HeaderCognitoIdentity, inv.Identity)
	if inv.HTTP != nil {
		if b, err := json.Marshal(inv.HTTP); err == nil {
			h.Set(HeaderNimbusHTTP, base64.StdEncoding.EncodeToString(b))
		}
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(inv.Payload)))
	w.WriteHeader(http.StatusOK)
	// A failed write leaves the call in flight: the runtime is going away
	// and the invocation ends by its deadline or by the instance's exit.
	_, _ = w.Write(inv.Payload)
}

func (s *RuntimeServer) addPollerLocked(d int) {
	s.pollers += d
	close(s.pollersCh)
	s.pollersCh = make(chan struct{})
}

// lookup reports whether id is in flight, and refuses the request if not.
func (s *RuntimeServer) lookup(w http.ResponseWriter, id string) bool {
	s.mu.Lock()
	_, inflight := s.inflight[id]
	_, finished := s.recent[id]
	s.mu.Unlock()
	switch {
	case inflight:
		return true
	case finished:
		writeError(w, http.StatusForbidden, "InvalidStateTransition", "invocation "+id+" already has a response or has ended")
	default:
		writeError(w, http.StatusBadRequest, "InvalidRequestID", "no invocation in progress has request id "+id)
	}
	return false
}

// complete ends the call id with resp and answers the runtime.
func (s *RuntimeServer) complete(w http.ResponseWriter, id string, resp *Response) bool {
	s.mu.Lock()
	c, ok := s.inflight[id]
	if ok {
		delete(s.inflight, id)
		s.rememberLocked(id)
	}
	s.mu.Unlock()
	if !ok {
		// Another answer for the same id won the race.
		writeError(w, http.StatusForbidden, "InvalidStateTransition", "invocation "+id+" already has a response or has ended")
		return false
	}
	c.resp = resp
	close(c.done)
	return true
}

// abandon forgets an invocation whose caller gave up, so a late answer is
// refused rather than kept.
func (s *RuntimeServer) abandon(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.inflight[id]; ok {
		delete(s.inflight, id)
		s.rememberLocked(id)
	}
}

func (s *RuntimeServer) rememberLocked(id string) {
	if old := s.recentRing[s.recentNext]; old != "" {
		delete(s.recent, old)
	}
	s.recentRing[s.recentNext] = id
	s.recentNext = (s.recentNext + 1) % len(s.recentRing)
	s.recent[id] = struct{}{}
}

func (s *RuntimeServer) response(w http.ResponseWriter, r *http.Request, id string) {
	if !s.lookup(w, id) {
		return
	}
	limit := s.cfg.MaxResponseBytes
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequest", "reading the response body: "+err.Error())
		return
	}
	if len(body) > limit {
		msg := fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", limit)
		if s.complete(w, id, &Response{Err: &runtime.FunctionError{Type: ErrorTypeResponseTooLarge, Message: msg}}) {
			writeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", msg)
		}
		return
	}
	resp := &Response{Payload: body, ContentType: r.Header.Get("Content-Type")}
	// aws-lambda-go reports an error that happens while it streams the body
	// (a failing io.Reader response) in trailers, readable after EOF.
	if typ := r.Trailer.Get(HeaderFunctionErrorType); typ != "" {
		raw, _ := base64.StdEncoding.DecodeString(r.Trailer.Get(HeaderFunctionErrorBody))
		resp = &Response{Err: ParseFunctionError(raw, typ)}
	}
	if s.complete(w, id, resp) {
		accepted(w)
	}
}

func (s *RuntimeServer) invocationError(w http.ResponseWriter, r *http.Request, id string) {
	if !s.lookup(w, id) {
		return
	}
	body, err := readErrorBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequest", "reading the error body: "+err.Error())
		return
	}
	fe := ParseFunctionError(body, r.Header.Get(HeaderFunctionErrorType))
	if s.complete(w, id, &Response{Err: fe}) {
		accepted(w)
	}
}

func (s *RuntimeServer) initError(w http.ResponseWriter, r *http.Request) {
	body, err := readErrorBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequest", "reading the error body: "+err.Error())
		return
	}
	fe := ParseFunctionError(body, r.Header.Get(HeaderFunctionErrorType))
	s.mu.Lock()
	if !s.readyAt.IsZero() || s.initErr != nil {
		s.mu.Unlock()
		writeError(w, http.StatusForbidden, "InvalidStateTransition", "init/error is only valid before the first /next")
		return
	}
	s.initErr = fe
	close(s.initFailed)
	s.mu.Unlock()
	accepted(w)
}

// readErrorBody reads an error document, keeping at most maxErrorBodyBytes:
// an oversized error is still an error, so it is cut, not refused.
func readErrorBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxErrorBodyBytes))
	if err != nil {
		return nil, err
	}
	return body, nil
}

// ParseFunctionError turns an error document posted by a runtime into a
// FunctionError. The body is normally {"errorMessage","errorType",
// "stackTrace"}; stackTrace is a list of strings (Python, Node.js) or of
// {"label","path","line"} frames (aws-lambda-go). A body that is not such a
// document becomes the message. The type comes from the body, else from
// headerType, else "Unhandled".
func ParseFunctionError(body []byte, headerType string) *runtime.FunctionError {
	var doc struct {
		Message    json.RawMessage `json:"errorMessage"`
		Type       json.RawMessage `json:"errorType"`
		StackTrace json.RawMessage `json:"stackTrace"`
	}
	fe := &runtime.FunctionError{}
	if err := json.Unmarshal(body, &doc); err == nil {
		fe.Message = jsonString(doc.Message)
		fe.Type = jsonString(doc.Type)
		fe.Trace = parseStackTrace(doc.StackTrace)
	} else {
		fe.Message = strings.TrimSpace(string(body))
	}
	if fe.Type == "" {
		fe.Type = cleanText(headerType, 256)
	}
	if fe.Type == "" {
		fe.Type = errorTypeUnhandled
	}
	fe.Message = cleanText(fe.Message, maxErrorMessage)
	return fe
}

// jsonString is raw as a string if it is one, else raw as text (a number,
// an object), so a sloppy runtime's message is not lost.
func jsonString(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func parseStackTrace(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var lines []string
	if json.Unmarshal(raw, &lines) != nil {
		lines = nil // Unmarshal fills what it can before it fails
		var frames []struct {
			Label string `json:"label"`
			Path  string `json:"path"`
			Line  int    `json:"line"`
		}
		if json.Unmarshal(raw, &frames) != nil {
			return nil
		}
		for _, f := range frames {
			lines = append(lines, fmt.Sprintf("%s (%s:%d)", f.Label, f.Path, f.Line))
		}
	}
	if len(lines) > maxErrorFrames {
		lines = lines[:maxErrorFrames]
	}
	for i, l := range lines {
		lines[i] = cleanText(l, 1024)
	}
	return lines
}

// cleanText cuts s to about n bytes and replaces invalid UTF-8,
// so what a runtime sends is safe to store and show.
func cleanText(s string, n int) string {
	if len(s) > n {
		s = s[:n] // a rune cut in two becomes U+FFFD below
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// validRequestID accepts ids safe to place in a URL path segment and a
// header, which is all a runtime does with them.
func validRequestID(id string) error {
	if id == "" || len(id) > maxRequestIDLen {
		return fmt.Errorf("request id must be 1 to %d characters", maxRequestIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return fmt.Errorf("request id %q holds %q: use letters, digits, '-', '_', '.' or ':'", id, c)
		}
	}
	if id == "." || id == ".." {
		return fmt.Errorf("request id %q is a path element", id)
	}
	return nil
}

func setHeader(h http.Header, k, v string) {
	if v != "" {
		h.Set(k, v)
	}
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use "+allow)
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	b, _ := json.Marshal(struct {
		Message string `json:"errorMessage"`
		Type    string `json:"errorType"`
	}{msg, typ})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
