package lambdaapi

// This file holds the Invoke API (version 2015-03-31): the HTTP API AWS SDKs
// and the AWS CLI call to run a function ("aws lambda invoke"), so they can
// call Nimbus with an endpoint override. It authenticates the caller (SigV4
// with a Nimbus access key, the admin bearer token, or nothing in dev mode),
// turns the request into an invoke.Request and answers in the service's
// shapes: payloads, X-Amz-* headers, and errors as {"Type","message"} with
// X-Amzn-ErrorType. It runs nothing itself; the invoker does.

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/runtime"
	"github.com/nimbus-run/nimbus/internal/sigv4"
)

// InvokePattern is the ServeMux pattern the Invoke API is served at.
const InvokePattern = "/2015-03-31/functions/{FunctionName}/invocations"

// Limits of the Invoke API, as in Lambda.
const (
	// MaxSyncPayload bounds a RequestResponse (and DryRun) payload.
	MaxSyncPayload = 6 << 20
	// MaxEventPayload bounds an Event payload.
	MaxEventPayload = 256 << 10
	// LogTailBytes is how much of the log X-Amz-Log-Result carries.
	LogTailBytes = 4 << 10
	// maxClientContext bounds X-Amz-Client-Context (base64).
	maxClientContext = 3583
	// defaultMaxBackground bounds Event invocations run in-process at once
	// when there is no durable queue.
	defaultMaxBackground = 1024
)

// Invoke API headers.
const (
	HeaderInvocationType  = "X-Amz-Invocation-Type"
	HeaderLogType         = "X-Amz-Log-Type"
	HeaderLogResult       = "X-Amz-Log-Result"
	HeaderClientContextIn = "X-Amz-Client-Context"
	HeaderExecutedVersion = "X-Amz-Executed-Version"
	HeaderFunctionError   = "X-Amz-Function-Error"
	HeaderErrorType       = "X-Amzn-ErrorType"
	HeaderAWSRequestID    = "X-Amzn-RequestId"
	HeaderAWSTraceID      = "X-Amzn-Trace-Id"
)

// Invocation types.
const (
	InvocationRequestResponse = "RequestResponse"
	InvocationEvent           = "Event"
	InvocationDryRun          = "DryRun"
)

// Invoker runs a synchronous invocation (invoke.Invoker).
type Invoker interface {
	Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error)
}

// Catalog resolves a function and qualifier (the registry), for DryRun,
// Event and the timeout in a Sandbox.Timedout message.
type Catalog interface {
	Resolve(name, qualifier string) (*function.Spec, error)
}

// AsyncInvoker queues an Event invocation durably and returns its id.
//
// internal/async implements it; until the node passes one, Event
// invocations run in-process (see InvokeAPI).
type AsyncInvoker interface {
	Enqueue(ctx context.Context, req *invoke.Request) (id string, err error)
}

// Credentials looks up the secret of an access key id (keys.Keyring).
type Credentials interface {
	Lookup(accessKeyID string) (secret string, ok bool)
}

// InvokeAPIConfig configures the Invoke API.
type InvokeAPIConfig struct {
	// Dev accepts every request, signed or not.
	Dev bool
	// AdminToken, sent as "Authorization: Bearer <token>", is accepted in
	// place of a signature (for curl users).
	AdminToken string
	// MaxPayload bounds synchronous payloads (default MaxSyncPayload).
	MaxPayload int
	// MaxEventPayload bounds Event payloads (default MaxEventPayload).
	MaxEventPayload int
	// MaxBackground bounds in-process Event invocations (default 1024).
	MaxBackground int
	Logger        *slog.Logger
	// Now is the clock signatures are checked against (default time.Now).
	Now func() time.Time
}

// InvokeAPI serves POST /2015-03-31/functions/{FunctionName}/invocations.
//
// # Event invocations
//
// With an AsyncInvoker, Event invocations are queued durably. Without one
// (until internal/async is wired in), an Event invocation runs in a
// goroutine the InvokeAPI owns, after the 202: it is not retried and does
// not survive a restart. Stop waits for those goroutines.
type InvokeAPI struct {
	cfg   InvokeAPIConfig
	inv   Invoker
	cat   Catalog
	creds Credentials
	async AsyncInvoker
	log   *slog.Logger

	bgCtx    context.Context // canceled when Stop gives up waiting
	bgCancel context.CancelFunc
	mu       sync.Mutex
	stopping bool
	bg       int // in-process Event invocations running
	wg       sync.WaitGroup
}

// NewInvokeAPI returns the Invoke API handler. creds may be nil (then only
// the admin token, or dev mode, lets requests in); async may be nil.
func NewInvokeAPI(cfg InvokeAPIConfig, inv Invoker, cat Catalog, creds Credentials, async AsyncInvoker) *InvokeAPI {
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = MaxSyncPayload
	}
	if cfg.MaxEventPayload <= 0 {
		cfg.MaxEventPayload = MaxEventPayload
	}
	if cfg.MaxBackground <= 0 {
		cfg.MaxBackground = defaultMaxBackground
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &InvokeAPI{cfg: cfg, inv: inv, cat: cat, creds: creds, async: async, log: cfg.Logger, bgCtx: ctx, bgCancel: cancel}
}

// Stop refuses new in-process Event invocations and waits for running ones;
// when ctx ends first it cancels them (their instances are stopped) and
// still waits, since each leaves a record the recorder must take before it
// stops.
func (a *InvokeAPI) Stop(ctx context.Context) error {
	a.mu.Lock()
	a.stopping = true
	a.mu.Unlock()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		a.bgCancel()
		return nil
	case <-ctx.Done():
		a.bgCancel()
		<-done
		return fmt.Errorf("lambda invoke API: Event invocations canceled at shutdown: %w", ctx.Err())
	}
}

// apiError is an error in the Lambda API's own shape.
type apiError struct {
	status int
	code   string // X-Amzn-ErrorType
	msg    string
	reason string // TooManyRequestsException's Reason
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func userError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func (a *InvokeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := invoke.NewID()
	w.Header().Set(HeaderAWSRequestID, id)
	if e := a.serve(w, r, id); e != nil {
		writeAWSError(w, e)
	}
}

// serve handles one request; an error it returns has not been written.
func (a *InvokeAPI) serve(w http.ResponseWriter, r *http.Request, id string) *apiError {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return userError(http.StatusMethodNotAllowed, "MethodNotAllowedException", "the Invoke API takes POST, not %s", r.Method)
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return userError(http.StatusUnsupportedMediaType, "UnsupportedMediaTypeException", "Content-Encoding %q is not supported: send the payload as it is", truncate(ce, 40))
	}
	// A request with no credentials at all is refused before its body is
	// read: anyone can send one, and it may be 6 MB.
	if !a.cfg.Dev && r.Header.Get("Authorization") == "" && !r.URL.Query().Has(sigv4.QueryAlgorithm) {
		return authError(sigv4.ErrMissingAuth)
	}
	body, e := a.readBody(w, r)
	if e != nil {
		return e
	}
	if e := a.authenticate(r, body); e != nil {
		return e
	}

	name, qualifier, e := parseFunctionName(r.PathValue("FunctionName"))
	if e != nil {
		return e
	}
	if q := r.URL.Query().Get("Qualifier"); q != "" {
		if !validQualifier(q) {
			return userError(http.StatusBadRequest, "InvalidParameterValueException", "Qualifier %q is not valid", truncate(q, 40))
		}
		if qualifier != "" && qualifier != q {
			return userError(http.StatusBadRequest, "InvalidParameterValueException", "The derived qualifier from the function name does not match the specified qualifier.")
		}
		qualifier = q
	}
	typ := r.Header.Get(HeaderInvocationType)
	switch typ {
	case "":
		typ = InvocationRequestResponse
	case InvocationRequestResponse, InvocationEvent, InvocationDryRun:
	default:
		return userError(http.StatusBadRequest, "InvalidParameterValueException", "X-Amz-Invocation-Type %q is not one of RequestResponse, Event, DryRun", truncate(typ, 40))
	}
	if typ == InvocationEvent && len(body) > a.cfg.MaxEventPayload {
		return userError(http.StatusRequestEntityTooLarge, "RequestTooLargeException",
			"Request must be smaller than %d bytes for the InvokeFunction operation with InvocationType Event (got %d bytes)", a.cfg.MaxEventPayload, len(body))
	}
	tail := false
	switch lt := r.Header.Get(HeaderLogType); lt {
	case "", "None":
	case "Tail":
		tail = typ == InvocationRequestResponse
	default:
		return userError(http.StatusBadRequest, "InvalidParameterValueException", "X-Amz-Log-Type %q is not None or Tail", truncate(lt, 40))
	}
	clientCtx, e := decodeClientContext(r.Header.Get(HeaderClientContextIn))
	if e != nil {
		return e
	}
	if len(body) > 0 && !json.Valid(body) {
		return userError(http.StatusBadRequest, "InvalidRequestContentException", "Could not parse request body into json: the payload must be a JSON document")
	}

	req := &invoke.Request{
		Function: name, Qualifier: qualifier, Payload: body, Source: "lambda-api",
		ID: id, TraceID: traceID(r), ClientContext: clientCtx,
	}
	switch typ {
	case InvocationDryRun:
		if _, err := a.cat.Resolve(name, qualifier); err != nil {
			return engineError(err)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	case InvocationEvent:
		return a.event(r.Context(), w, req)
	}
	return a.sync(w, r, req, tail)
}

func (a *InvokeAPI) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	limit := int64(a.cfg.MaxPayload)
	tooBig := func(n string) *apiError {
		return userError(http.StatusRequestEntityTooLarge, "RequestTooLargeException",
			"Request must be smaller than %d bytes for the InvokeFunction operation (got %s)", limit, n)
	}
	if r.ContentLength > limit {
		return nil, tooBig(strconv.FormatInt(r.ContentLength, 10) + " bytes")
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooBig("more")
	}
	if err != nil {
		return nil, userError(http.StatusBadRequest, "InvalidRequestContentException", "reading the request body: %v", err)
	}
	if b == nil {
		b = []byte{} // non-nil: sigv4 hashes it rather than trusting a declared hash
	}
	return b, nil
}

// authenticate lets the request in: anything in dev mode; else the admin
// bearer token, or a valid SigV4 signature for the lambda service by a
// current access key.
func (a *InvokeAPI) authenticate(r *http.Request, body []byte) *apiError {
	if a.cfg.Dev {
		return nil
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if a.cfg.AdminToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.cfg.AdminToken)) == 1 {
			return nil
		}
		return userError(http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid.")
	}
	lookup := func(string) (string, bool) { return "", false }
	if a.creds != nil {
		lookup = a.creds.Lookup
	}
	id, err := sigv4.Verify(r, body, lookup, a.cfg.Now())
	if err != nil {
		a.log.Debug("lambda invoke API: authentication failed", "remote", r.RemoteAddr, "err", err)
		return authError(err)
	}
	if id.Service != "lambda" {
		return userError(http.StatusForbidden, "InvalidSignatureException", "Credential should be scoped to correct service: 'lambda'.")
	}
	return nil
}

// authError maps sigv4's errors to the codes AWS's JSON services use.
func authError(err error) *apiError {
	switch {
	case errors.Is(err, sigv4.ErrMissingAuth):
		return userError(http.StatusUnauthorized, "MissingAuthenticationTokenException",
			"Missing Authentication Token: sign the request with a Nimbus access key (nimbus keys create) or send the admin token as a bearer token")
	case errors.Is(err, sigv4.ErrUnknownKey):
		return userError(http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid.")
	case errors.Is(err, sigv4.ErrMalformed):
		return userError(http.StatusForbidden, "IncompleteSignatureException", "%s", strings.TrimPrefix(err.Error(), "sigv4: "))
	case errors.Is(err, sigv4.ErrStale):
		return userError(http.StatusForbidden, "InvalidSignatureException", "Signature expired: %s", strings.TrimPrefix(err.Error(), "sigv4: stale date: "))
	}
	return userError(http.StatusForbidden, "InvalidSignatureException",
		"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
}

// engineError maps an error of the engine (not a function failure).
func engineError(err error) *apiError {
	status, code := gateway.LambdaError(err)
	e := &apiError{status: status, code: code, msg: err.Error()}
	if status == http.StatusTooManyRequests {
		e.reason = "ReservedFunctionConcurrentInvocationLimitExceeded"
	}
	return e
}

func (a *InvokeAPI) sync(w http.ResponseWriter, r *http.Request, req *invoke.Request, tail bool) *apiError {
	resp, err := a.inv.Invoke(r.Context(), req)
	var payload []byte
	h := w.Header()
	switch {
	case err == nil:
		payload = resp.Payload
	case resp == nil || errors.Is(err, function.ErrThrottled) || errors.Is(err, function.ErrUnavailable):
		// Nothing ran, or Nimbus (not the function) could not run it.
		return engineError(err)
	default:
		// The function failed, timed out or crashed: for Lambda that is a
		// successful call of a failed function.
		payload = a.functionError(req, resp, err)
		h.Set(HeaderFunctionError, "Unhandled")
	}
	if v := resp.Record.Version; v != "" {
		h.Set(HeaderExecutedVersion, v)
	}
	if tail {
		h.Set(HeaderLogResult, logTail(lambdaLog(resp.Record)))
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(payload)))
	w.WriteHeader(http.StatusOK)
	w.Write(payload) //nolint:errcheck // the client went away
	return nil
}

// functionError is the payload Lambda returns for a failed function.
func (a *InvokeAPI) functionError(req *invoke.Request, resp *invoke.Response, err error) []byte {
	fe := resp.Err
	if fe == nil {
		fe = &runtime.FunctionError{Type: resp.Record.ErrorType}
		switch {
		case errors.Is(err, function.ErrTimeout):
			fe.Type = "Sandbox.Timedout"
			timeout := "the function's timeout"
			if spec, serr := a.cat.Resolve(req.Function, resp.Record.Version); serr == nil {
				timeout = fmt.Sprintf("%.2f seconds", time.Duration(spec.Timeout).Seconds())
			}
			fe.Message = "RequestId: " + req.ID + " Error: Task timed out after " + timeout
		case errors.Is(err, function.ErrMemoryLimit):
			fe.Type = "Runtime.OutOfMemory"
			fe.Message = "RequestId: " + req.ID + " Error: Runtime exited with error: memory limit exceeded"
		default:
			if fe.Type == "" {
				fe.Type = "Runtime.Unknown"
			}
			fe.Message = "RequestId: " + req.ID + " Error: " + err.Error()
		}
	}
	b, merr := json.Marshal(fe)
	if merr != nil {
		return []byte(`{"errorType":"Runtime.Unknown","errorMessage":"unencodable error"}`)
	}
	return b
}

func (a *InvokeAPI) event(ctx context.Context, w http.ResponseWriter, req *invoke.Request) *apiError {
	// Unknown functions fail now, with a 404, as Lambda does, not later in
	// a queue.
	if _, err := a.cat.Resolve(req.Function, req.Qualifier); err != nil {
		return engineError(err)
	}
	req.Source = "lambda-api-event"
	if a.async != nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		id, err := a.async.Enqueue(ctx, req)
		if err != nil {
			return engineError(err)
		}
		w.Header().Set(HeaderAWSRequestID, id)
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	a.mu.Lock()
	switch {
	case a.stopping:
		a.mu.Unlock()
		return userError(http.StatusServiceUnavailable, "ServiceException", "the node is shutting down")
	case a.bg >= a.cfg.MaxBackground:
		a.mu.Unlock()
		e := userError(http.StatusTooManyRequests, "TooManyRequestsException", "Rate Exceeded: %d Event invocations are running on this node", a.cfg.MaxBackground)
		e.reason = "ConcurrentInvocationLimitExceeded"
		return e
	}
	a.bg++
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer func() {
			a.mu.Lock()
			a.bg--
			a.mu.Unlock()
			a.wg.Done()
		}()
		// The invoker leaves the record, success or not; nothing else to do
		// with the outcome here.
		if _, err := a.inv.Invoke(a.bgCtx, req); err != nil {
			a.log.Debug("lambda invoke API: Event invocation failed", "function", req.Function, "id", req.ID, "err", err)
		}
	}()
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// awsErrorBody is the JSON body of an error. Most Lambda errors spell the
// message "message"; ResourceNotFoundException and ServiceException spell
// it "Message" (that is what the service model, and so the SDKs, read).
type awsErrorBody struct {
	Type       string `json:"Type"`
	Message    string `json:"message,omitempty"`
	MessageCap string `json:"Message,omitempty"`
	Reason     string `json:"Reason,omitempty"`
}

func writeAWSError(w http.ResponseWriter, e *apiError) {
	body := awsErrorBody{Type: "User", Reason: e.reason}
	if e.status >= 500 {
		body.Type = "Service"
	}
	switch e.code {
	case "ResourceNotFoundException", "ServiceException":
		body.MessageCap = e.msg
	default:
		body.Message = e.msg
	}
	h := w.Header()
	h.Set(HeaderErrorType, e.code)
	h.Set("Content-Type", "application/json")
	switch e.status {
	case http.StatusTooManyRequests:
		h.Set("Retry-After", "1")
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `AWS4-HMAC-SHA256 realm="nimbus", Bearer realm="nimbus"`)
	}
	b, _ := json.Marshal(body)
	w.WriteHeader(e.status)
	w.Write(b) //nolint:errcheck // the client went away
}

// parseFunctionName reads the FunctionName path parameter: a name, a
// name:qualifier, a partial ARN (ACCOUNT:function:NAME[:QUALIFIER]) or a full
// ARN (arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]). The
// region and account of an ARN are not checked: a Nimbus cluster is one
// account in every region.
func parseFunctionName(s string) (name, qualifier string, e *apiError) {
	bad := func() (string, string, *apiError) {
		return "", "", userError(http.StatusBadRequest, "InvalidParameterValueException",
			"FunctionName %q is not a function name, NAME:QUALIFIER, or a Lambda function ARN", truncate(s, 80))
	}
	if len(s) > 256 {
		return bad()
	}
	parts := strings.Split(s, ":")
	switch {
	case parts[0] == "arn":
		if len(parts) < 7 || len(parts) > 8 || parts[2] != "lambda" || parts[5] != "function" {
			return bad()
		}
		parts = parts[6:]
	case len(parts) >= 3:
		if len(parts) > 4 || parts[1] != "function" || !isDigits(parts[0]) {
			return bad()
		}
		parts = parts[2:]
	}
	if len(parts) > 2 {
		return bad()
	}
	name = parts[0]
	if function.ValidateName(name) != nil {
		return bad()
	}
	if len(parts) == 2 {
		qualifier = parts[1]
		if !validQualifier(qualifier) {
			return bad()
		}
	}
	return name, qualifier, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validQualifier accepts $LATEST, version numbers and alias names.
func validQualifier(q string) bool {
	if q == "" || len(q) > 128 {
		return false
	}
	if q == function.LatestVersion {
		return true
	}
	for i := 0; i < len(q); i++ {
		c := q[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// decodeClientContext turns X-Amz-Client-Context (base64 of a JSON object)
// into the JSON the Runtime API hands the function.
func decodeClientContext(h string) (string, *apiError) {
	if h == "" {
		return "", nil
	}
	bad := userError(http.StatusBadRequest, "InvalidRequestContentException", "Client context must be a valid Base64-encoded JSON object.")
	if len(h) > maxClientContext {
		return "", userError(http.StatusBadRequest, "InvalidRequestContentException", "Client context must be at most %d bytes of base64", maxClientContext)
	}
	raw, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return "", bad
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return "", bad
	}
	// Compact: it travels as one header line to the runtime.
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return "", bad
	}
	return b.String(), nil
}

// lambdaLog is an invocation's log as Lambda writes it: the function's
// output between START and END lines, then the REPORT line with the
// figures of the record (tab-separated, as tools that parse it expect).
func lambdaLog(rec *function.Record) string {
	var b strings.Builder
	version := rec.Version
	if version == "" {
		version = function.LatestVersion
	}
	fmt.Fprintf(&b, "START RequestId: %s Version: %s\n", rec.ID, version)
	b.WriteString(rec.Logs)
	if rec.Logs != "" && !strings.HasSuffix(rec.Logs, "\n") {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "END RequestId: %s\n", rec.ID)
	fmt.Fprintf(&b, "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB\t",
		rec.ID, rec.DurationMS, rec.BilledMS, rec.MemoryMB, int(math.Ceil(rec.MaxMemoryMB)))
	if rec.ColdStart {
		fmt.Fprintf(&b, "Init Duration: %.2f ms\t", rec.InitMS)
	}
	b.WriteByte('\n')
	return b.String()
}

// logTail is the base64 of the last LogTailBytes of logs, cut at a
// character boundary.
func logTail(logs string) string {
	if len(logs) > LogTailBytes {
		logs = logs[len(logs)-LogTailBytes:]
		for i := 0; i < utf8.UTFMax && len(logs) > 0 && !utf8.RuneStart(logs[0]); i++ {
			logs = logs[1:]
		}
	}
	return base64.StdEncoding.EncodeToString([]byte(logs))
}

// traceID takes the trace id from X-Amzn-Trace-Id ("Root=1-5759e988-
// bd862e3fe1be46a994272793;...", an X-Ray id whose 8+24 hex digits make a
// W3C trace id) or from a W3C traceparent.
func traceID(r *http.Request) string {
	for part := range strings.SplitSeq(r.Header.Get(HeaderAWSTraceID), ";") {
		root, ok := strings.CutPrefix(strings.TrimSpace(part), "Root=")
		if !ok {
			continue
		}
		f := strings.Split(root, "-")
		if len(f) == 3 && f[0] == "1" && len(f[1]) == 8 && len(f[2]) == 24 && isHex(f[1]+f[2]) {
			return strings.ToLower(f[1] + f[2])
		}
	}
	tp := r.Header.Get("Traceparent")
	if len(tp) == 55 && tp[2] == '-' && tp[35] == '-' && isHex(tp[3:35]) && tp[3:35] != strings.Repeat("0", 32) {
		return strings.ToLower(tp[3:35])
	}
	return ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
