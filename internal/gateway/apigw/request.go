// Package apigw owns the Amazon API Gateway HTTP API payload format 2.0 on
// both sides of a function call: it turns an *http.Request into the event a
// Lambda-style handler expects (NewRequest), and a handler's result back into
// an HTTP response (ParseResponse, WriteResponse), with the inference rules
// the real service applies to results that are not a response object.
//
// It does not route, authorize or invoke; the gateway passes in the route key,
// path parameters and authorizer output it already has.
package apigw

import (
	"crypto/rand"
	"encoding/base64"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Version is the payload format version this package speaks.
const Version = "2.0"

// DefaultStage is the stage name of every Nimbus route.
const DefaultStage = "$default"

// TimeLayout is the requestContext.time format, e.g. "12/Mar/2020:19:03:58 +0000".
const TimeLayout = "02/Jan/2006:15:04:05 -0700"

// Request is the event for payload format 2.0. Field names and omission
// rules follow AWS, so handlers written for API Gateway decode it unchanged.
type Request struct {
	Version               string            `json:"version"`
	RouteKey              string            `json:"routeKey"`
	RawPath               string            `json:"rawPath"`
	RawQueryString        string            `json:"rawQueryString"`
	Cookies               []string          `json:"cookies,omitempty"`
	Headers               map[string]string `json:"headers"`
	QueryStringParameters map[string]string `json:"queryStringParameters,omitempty"`
	PathParameters        map[string]string `json:"pathParameters,omitempty"`
	StageVariables        map[string]string `json:"stageVariables,omitempty"`
	RequestContext        RequestContext    `json:"requestContext"`
	Body                  string            `json:"body,omitempty"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`
}

// RequestContext is requestContext of a 2.0 event.
type RequestContext struct {
	AccountID    string      `json:"accountId"`
	APIID        string      `json:"apiId"`
	Authorizer   *Authorizer `json:"authorizer,omitempty"`
	DomainName   string      `json:"domainName"`
	DomainPrefix string      `json:"domainPrefix"`
	HTTP         HTTP        `json:"http"`
	RequestID    string      `json:"requestId"`
	RouteKey     string      `json:"routeKey"`
	Stage        string      `json:"stage"`
	Time         string      `json:"time"`
	TimeEpoch    int64       `json:"timeEpoch"`
}

// HTTP is requestContext.http.
type HTTP struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Protocol  string `json:"protocol"`
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

// Authorizer is requestContext.authorizer: what the route's authorizer found.
// At most one field is set.
type Authorizer struct {
	JWT *JWTAuthorizer `json:"jwt,omitempty"`
	// Lambda is the context returned by a function authorizer.
	Lambda map[string]any `json:"lambda,omitempty"`
	// APIKey is a Nimbus extension (AWS HTTP APIs have no API keys); AWS
	// event types ignore it.
	APIKey *APIKeyAuthorizer `json:"apiKey,omitempty"`
}

// JWTAuthorizer carries the claims of a verified token. AWS renders every
// claim as a string; use ClaimStrings to convert.
type JWTAuthorizer struct {
	Claims map[string]string `json:"claims"`
	Scopes []string          `json:"scopes"`
}

// APIKeyAuthorizer identifies the API key a request was made with.
type APIKeyAuthorizer struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	Plan string `json:"plan,omitempty"`
}

// Option adjusts NewRequest.
type Option func(*options)

type options struct {
	requestID      string
	apiID          string
	accountID      string
	stage          string
	now            time.Time
	trusted        []netip.Prefix
	authorizer     *Authorizer
	stageVariables map[string]string
}

// WithRequestID sets requestContext.requestId (default: 16 random bytes,
// base64). Pass the invocation ID so logs and events agree.
func WithRequestID(id string) Option { return func(o *options) { o.requestID = id } }

// WithAPIID sets requestContext.apiId.
func WithAPIID(id string) Option { return func(o *options) { o.apiID = id } }

// WithAccountID sets requestContext.accountId.
func WithAccountID(id string) Option { return func(o *options) { o.accountID = id } }

// WithStage sets requestContext.stage (default "$default").
func WithStage(s string) Option { return func(o *options) { o.stage = s } }

// WithTime sets the request time (default time.Now()).
func WithTime(t time.Time) Option { return func(o *options) { o.now = t } }

// WithAuthorizer sets requestContext.authorizer.
func WithAuthorizer(a *Authorizer) Option { return func(o *options) { o.authorizer = a } }

// WithStageVariables sets stageVariables (omitted when empty).
func WithStageVariables(v map[string]string) Option {
	return func(o *options) { o.stageVariables = v }
}

// WithTrustedProxies makes NewRequest believe X-Forwarded-For and
// X-Forwarded-Proto when the peer is in one of the prefixes. The source IP is
// then the right-most X-Forwarded-For address that is not itself trusted.
// Without it the peer address is the source IP: anyone can send the header.
func WithTrustedProxies(p []netip.Prefix) Option { return func(o *options) { o.trusted = p } }

// NewRequest builds the 2.0 event for r. body is the request body the caller
// has already read (and bounded); r.Body is not touched. routeKey and params
// come from the route table.
func NewRequest(r *http.Request, body []byte, routeKey string, params map[string]string, opts ...Option) *Request {
	o := options{stage: DefaultStage}
	for _, opt := range opts {
		opt(&o)
	}
	if o.now.IsZero() {
		o.now = time.Now()
	}
	if o.requestID == "" {
		o.requestID = randomID()
	}

	peer := peerIP(r.RemoteAddr)
	peerTrusted := trusted(peer, o.trusted)
	sourceIP := peer
	if peerTrusted {
		sourceIP = forwardedClient(r.Header.Values("X-Forwarded-For"), peer, o.trusted)
	}

	headers := make(map[string]string, len(r.Header)+4)
	var cookies []string
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if lk == "cookie" {
			// 2.0 moves cookies out of the headers into their own list.
			cookies = splitCookies(vs)
			continue
		}
		headers[lk] = strings.Join(vs, ",")
	}
	host := r.Host
	if host == "" && r.URL != nil {
		host = r.URL.Host
	}
	if host != "" {
		headers["host"] = host
	}
	// Like API Gateway, tell the function who called and how, whatever the
	// client claimed, unless a trusted proxy in front of us said so.
	xff := peer.String()
	if prev, ok := headers["x-forwarded-for"]; ok && peerTrusted && prev != "" {
		xff = prev + ", " + xff
	}
	if peer.IsValid() {
		headers["x-forwarded-for"] = xff
	}
	if !peerTrusted || headers["x-forwarded-proto"] == "" {
		delete(headers, "x-forwarded-port")
		if r.TLS != nil {
			headers["x-forwarded-proto"] = "https"
		} else {
			headers["x-forwarded-proto"] = "http"
		}
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if ap, err := netip.ParseAddrPort(la.String()); err == nil {
				headers["x-forwarded-port"] = strconv.Itoa(int(ap.Port()))
			}
		}
	}

	rawPath, path, rawQuery := "/", "/", ""
	if r.URL != nil {
		rawPath, path, rawQuery = r.URL.EscapedPath(), r.URL.Path, r.URL.RawQuery
		if rawPath == "" {
			rawPath = "/"
		}
		if path == "" {
			path = "/"
		}
	}

	domain := hostOnly(host)
	ev := &Request{
		Version:               Version,
		RouteKey:              routeKey,
		RawPath:               rawPath,
		RawQueryString:        rawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: queryParams(rawQuery),
		PathParameters:        nonEmpty(params),
		StageVariables:        nonEmpty(o.stageVariables),
		RequestContext: RequestContext{
			AccountID:    o.accountID,
			APIID:        o.apiID,
			Authorizer:   o.authorizer,
			DomainName:   domain,
			DomainPrefix: domainPrefix(domain),
			HTTP: HTTP{
				Method:    r.Method,
				Path:      path,
				Protocol:  r.Proto,
				SourceIP:  addrString(sourceIP),
				UserAgent: r.UserAgent(),
			},
			RequestID: o.requestID,
			RouteKey:  routeKey,
			Stage:     o.stage,
			Time:      o.now.UTC().Format(TimeLayout),
			TimeEpoch: o.now.UnixMilli(),
		},
	}
	if len(body) > 0 {
		if IsTextual(r.Header.Get("Content-Type")) && utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	return ev
}

// IsTextual reports whether a body of this content type goes into an event
// as text rather than base64: text/*, JSON, XML, JavaScript and form data,
// including the +json and +xml structured suffixes. A missing content type
// is not textual: nothing says the bytes are text.
func IsTextual(contentType string) bool {
	if contentType == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt, _, _ = strings.Cut(strings.ToLower(strings.TrimSpace(contentType)), ";")
		mt = strings.TrimSpace(mt)
	}
	if strings.HasPrefix(mt, "text/") || strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+xml") {
		return true
	}
	switch mt {
	case "application/json", "application/xml", "application/javascript", "application/x-javascript",
		"application/ecmascript", "application/x-www-form-urlencoded", "application/graphql":
		return true
	}
	return false
}

// ClaimStrings renders JWT claims the way API Gateway puts them in an event:
// every value a string, numbers without exponent, arrays as "[a b]", objects
// as JSON.
func ClaimStrings(claims map[string]any) map[string]string {
	out := make(map[string]string, len(claims))
	for k, v := range claims {
		out[k] = claimString(v)
	}
	return out
}

func claimString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = claimString(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case []string:
		return "[" + strings.Join(x, " ") + "]"
	default:
		if s, ok := v.(interface{ String() string }); ok {
			return s.String()
		}
		b, err := jsonMarshal(v)
		if err != nil {
			return ""
		}
		return string(b)
	}
}

func splitCookies(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, c := range strings.Split(v, ";") {
			if c = strings.TrimSpace(c); c != "" {
				out = append(out, c)
			}
		}
	}
	return out
}

// queryParams decodes the query string, joining repeated keys with ",".
// Pairs that do not decode are dropped, as url.ParseQuery does.
func queryParams(raw string) map[string]string {
	if raw == "" {
		return nil
	}
	vals, _ := url.ParseQuery(raw)
	if len(vals) == 0 {
		return nil
	}
	out := make(map[string]string, len(vals))
	for k, vs := range vals {
		out[k] = strings.Join(vs, ",")
	}
	return out
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func peerIP(remoteAddr string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(remoteAddr); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

func trusted(a netip.Addr, prefixes []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedClient walks X-Forwarded-For from the right, skipping trusted
// proxies; the first address that is not trusted is the client. Garbage
// stops the walk: everything left of it was written by someone untrusted.
func forwardedClient(values []string, peer netip.Addr, prefixes []netip.Prefix) netip.Addr {
	var hops []string
	for _, v := range values {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		client = a.Unmap()
		if !trusted(client, prefixes) {
			break
		}
	}
	return client
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func hostOnly(h string) string {
	if hh, _, err := net.SplitHostPort(h); err == nil {
		return hh
	}
	return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
}

func domainPrefix(domain string) string {
	if _, err := netip.ParseAddr(domain); err == nil {
		return domain
	}
	p, _, _ := strings.Cut(domain, ".")
	return p
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}
