// Package cors owns cross-origin resource sharing for user routes, the way
// API Gateway HTTP APIs do it: a route with a CORS configuration has its
// preflight requests answered by the gateway (the function never sees them),
// and its other responses get the Access-Control-* headers of the
// configuration, whatever the function itself set.
//
// It does not route or authenticate; preflights are answered before auth,
// as browsers send them without credentials.
package cors

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Presigned is the policy of presigned object URLs (the Nimbus API's and
// S3's): web pages of any origin may use them, so that a browser uploads
// straight to a bucket and downloads from it. The URL is the credential;
// no cookie or other ambient authority rides along, so the same-origin
// rule has nothing to protect. Preflights are answered; responses, errors
// too, carry Access-Control-Allow-Origin: * and expose every header.
var Presigned = func() *Policy {
	p, err := New(Config{
		AllowOrigins: []string{"*"}, AllowMethods: []string{http.MethodGet, http.MethodHead, http.MethodPut},
		AllowHeaders: []string{"*"}, ExposeHeaders: []string{"*"}, MaxAge: time.Hour,
	})
	if err != nil {
		panic(err)
	}
	return p
}()

// MaxMaxAge is the largest MaxAge accepted (API Gateway's limit).
const MaxMaxAge = 24 * time.Hour

// Config is a route's CORS configuration.
type Config struct {
	// AllowOrigins: "*", exact origins ("https://app.example.com"), or one
	// wildcard label ("https://*.example.com", matching any subdomain).
	AllowOrigins []string
	// AllowMethods: methods allowed cross-origin, or "*". GET, HEAD and
	// POST are always allowed, as browsers do not preflight-check them.
	AllowMethods []string
	// AllowHeaders: request headers allowed cross-origin, or "*".
	AllowHeaders []string
	// ExposeHeaders: response headers scripts may read, or "*".
	ExposeHeaders []string
	// AllowCredentials lets browsers send cookies and read the response.
	AllowCredentials bool
	// MaxAge is how long browsers may cache a preflight answer.
	MaxAge time.Duration
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if len(c.AllowOrigins) == 0 {
		errs = append(errs, errors.New("cors: allow origins is empty"))
	}
	for _, o := range c.AllowOrigins {
		if o == "*" {
			if c.AllowCredentials {
				errs = append(errs, errors.New(`cors: allow credentials cannot be used with origin "*"; list the origins`))
			}
			continue
		}
		if _, err := parsePattern(o); err != nil {
			errs = append(errs, err)
		}
	}
	for _, m := range c.AllowMethods {
		if m != "*" && !isToken(m) {
			errs = append(errs, fmt.Errorf("cors: method %q is not an HTTP token", m))
		}
	}
	for _, list := range [][]string{c.AllowHeaders, c.ExposeHeaders} {
		for _, h := range list {
			if h != "*" && !isToken(h) {
				errs = append(errs, fmt.Errorf("cors: header %q is not an HTTP token", h))
			}
		}
	}
	if c.MaxAge < 0 || c.MaxAge > MaxMaxAge {
		errs = append(errs, fmt.Errorf("cors: max age %v must be between 0 and %v", c.MaxAge, MaxMaxAge))
	}
	return errors.Join(errs...)
}

type pattern struct {
	scheme string
	host   string // exact host, or the suffix ".example.com" when wild
	port   string
	wild   bool
	null   bool // the literal origin "null"
}

func parsePattern(o string) (pattern, error) {
	if o == "null" {
		return pattern{null: true}, nil
	}
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" || u.Path != "" || u.RawQuery != "" ||
		u.Fragment != "" || u.User != nil || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return pattern{}, fmt.Errorf("cors: origin %q: want scheme://host[:port] with no path, like https://app.example.com", o)
	}
	p := pattern{scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Hostname()), port: u.Port()}
	if strings.Contains(p.host, "*") {
		rest, ok := strings.CutPrefix(p.host, "*.")
		if !ok || rest == "" || strings.Contains(rest, "*") {
			return pattern{}, fmt.Errorf("cors: origin %q: a wildcard may only be the first label, like https://*.example.com", o)
		}
		p.wild, p.host = true, "."+rest
	}
	return p, nil
}

func (p pattern) match(o origin) bool {
	if p.null || o.null {
		return p.null && o.null
	}
	if p.scheme != o.scheme || p.port != o.port {
		return false
	}
	if p.wild {
		return len(o.host) > len(p.host) && strings.HasSuffix(o.host, p.host)
	}
	return p.host == o.host
}

type origin struct {
	scheme, host, port string
	null               bool
}

func parseOrigin(s string) (origin, bool) {
	if s == "null" {
		return origin{null: true}, true
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || rest == "" || strings.ContainsAny(rest, "/?#@ ") {
		return origin{}, false
	}
	o := origin{scheme: strings.ToLower(scheme), host: strings.ToLower(rest)}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
		o.host, o.port = strings.ToLower(rest[:i]), rest[i+1:]
	}
	if strings.HasPrefix(o.host, "[") {
		o.host = strings.TrimSuffix(strings.TrimPrefix(o.host, "["), "]")
	}
	return o, o.host != ""
}

// Policy is a validated Config, ready to answer requests. It is immutable
// and safe for concurrent use.
type Policy struct {
	anyOrigin   bool
	patterns    []pattern
	anyMethod   bool
	methods     []string // upper case
	anyHeader   bool
	headers     []string // lower case
	expose      string
	credentials bool
	maxAge      string
	allowMeth   string
	allowHdr    string
}

// New validates cfg and compiles it.
func New(cfg Config) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Policy{credentials: cfg.AllowCredentials}
	for _, o := range cfg.AllowOrigins {
		if o == "*" {
			p.anyOrigin = true
			continue
		}
		pat, _ := parsePattern(o)
		p.patterns = append(p.patterns, pat)
	}
	for _, m := range cfg.AllowMethods {
		if m == "*" {
			p.anyMethod = true
			continue
		}
		if m = strings.ToUpper(m); !slices.Contains(p.methods, m) {
			p.methods = append(p.methods, m)
		}
	}
	for _, h := range cfg.AllowHeaders {
		if h == "*" {
			p.anyHeader = true
			continue
		}
		if h = strings.ToLower(h); !slices.Contains(p.headers, h) {
			p.headers = append(p.headers, h)
		}
	}
	p.expose = strings.Join(cfg.ExposeHeaders, ", ")
	p.allowMeth = strings.Join(p.methods, ", ")
	p.allowHdr = strings.Join(p.headers, ", ")
	if cfg.MaxAge > 0 {
		p.maxAge = strconv.Itoa(int(cfg.MaxAge / time.Second))
	}
	return p, nil
}

func (p *Policy) originAllowed(s string) bool {
	o, ok := parseOrigin(s)
	if !ok {
		return false
	}
	if p.anyOrigin {
		return true
	}
	for _, pat := range p.patterns {
		if pat.match(o) {
			return true
		}
	}
	return false
}

// allowOriginValue is what Access-Control-Allow-Origin says: "*" when any
// origin may read without credentials (cacheable for everyone), else the
// request's origin echoed.
func (p *Policy) allowOriginValue(origin string) string {
	if p.anyOrigin && !p.credentials {
		return "*"
	}
	return origin
}

// variesByOrigin is false only for the "*" answer, which is the same for
// every origin.
func (p *Policy) variesByOrigin() bool { return !(p.anyOrigin && !p.credentials) }

// IsPreflight reports whether r is a CORS preflight request.
func IsPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

var safelistedMethods = []string{"GET", "HEAD", "POST"}

// Handle applies the policy to r. For a preflight it writes the whole
// answer (204 with the CORS headers, or 403 without them when the origin,
// method or headers are not allowed) and returns true: the caller must not
// write anything else. For other requests it sets the response headers on
// w (nothing when there is no Origin or it is not allowed) and returns
// false: the caller goes on to serve the request.
func (p *Policy) Handle(w http.ResponseWriter, r *http.Request) (preflightHandled bool) {
	h := w.Header()
	origin := r.Header.Get("Origin")
	if IsPreflight(r) {
		h.Add("Vary", "Origin")
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		if !p.preflightAllowed(r) {
			w.WriteHeader(http.StatusForbidden)
			return true
		}
		h.Set("Access-Control-Allow-Origin", p.allowOriginValue(origin))
		if p.credentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if p.anyMethod {
			h.Set("Access-Control-Allow-Methods", strings.ToUpper(strings.TrimSpace(r.Header.Get("Access-Control-Request-Method"))))
		} else if p.allowMeth != "" {
			h.Set("Access-Control-Allow-Methods", p.allowMeth)
		}
		// A "*" answer is taken literally by browsers when credentials are
		// on, so echo what was asked instead.
		if reqHdr := requestedHeaders(r); p.anyHeader && len(reqHdr) > 0 {
			h.Set("Access-Control-Allow-Headers", strings.Join(reqHdr, ", "))
		} else if p.allowHdr != "" {
			h.Set("Access-Control-Allow-Headers", p.allowHdr)
		}
		if p.maxAge != "" {
			h.Set("Access-Control-Max-Age", p.maxAge)
		}
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	if p.variesByOrigin() {
		h.Add("Vary", "Origin")
	}
	if origin == "" || !p.originAllowed(origin) {
		return false
	}
	h.Set("Access-Control-Allow-Origin", p.allowOriginValue(origin))
	if p.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if p.expose != "" {
		h.Set("Access-Control-Expose-Headers", p.expose)
	}
	return false
}

func (p *Policy) preflightAllowed(r *http.Request) bool {
	if !p.originAllowed(r.Header.Get("Origin")) {
		return false
	}
	m := strings.ToUpper(strings.TrimSpace(r.Header.Get("Access-Control-Request-Method")))
	if !p.anyMethod && !slices.Contains(p.methods, m) && !slices.Contains(safelistedMethods, m) {
		return false
	}
	if p.anyHeader {
		return true
	}
	for _, h := range requestedHeaders(r) {
		if !slices.Contains(p.headers, h) {
			return false
		}
	}
	return true
}

func requestedHeaders(r *http.Request) []string {
	var out []string
	for _, v := range r.Header.Values("Access-Control-Request-Headers") {
		for _, h := range strings.Split(v, ",") {
			if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
				out = append(out, h)
			}
		}
	}
	return out
}

// Middleware serves preflights itself and passes other requests to next
// with the CORS headers set. Access-Control-* headers next sets are
// replaced by the policy's, as API Gateway ignores a backend's own.
func (p *Policy) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.Handle(w, r) {
			return
		}
		cw := &corsWriter{ResponseWriter: w, vary: p.variesByOrigin()}
		cw.saved = saveCORS(w.Header())
		next.ServeHTTP(cw, r)
	})
}

// corsWriter restores the policy's headers just before the response
// headers go out.
type corsWriter struct {
	http.ResponseWriter
	saved       http.Header
	vary        bool
	wroteHeader bool
}

func saveCORS(h http.Header) http.Header {
	s := http.Header{}
	for k, v := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			s[k] = slices.Clone(v)
		}
	}
	return s
}

func (cw *corsWriter) restore() {
	if cw.wroteHeader {
		return
	}
	cw.wroteHeader = true
	h := cw.ResponseWriter.Header()
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			delete(h, k)
		}
	}
	for k, v := range cw.saved {
		h[k] = v
	}
	// A handler that set its own Vary must not make caches share answers
	// meant for different origins.
	if cw.vary && !varyHasOrigin(h.Values("Vary")) {
		h.Add("Vary", "Origin")
	}
}

func varyHasOrigin(vs []string) bool {
	for _, v := range vs {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, "Origin") {
				return true
			}
		}
	}
	return false
}

func (cw *corsWriter) WriteHeader(code int) {
	if code >= 200 {
		cw.restore()
	}
	cw.ResponseWriter.WriteHeader(code)
}

func (cw *corsWriter) Write(b []byte) (int, error) {
	cw.restore()
	return cw.ResponseWriter.Write(b)
}

// Flush supports streaming handlers.
func (cw *corsWriter) Flush() {
	cw.restore()
	if f, ok := cw.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (cw *corsWriter) Unwrap() http.ResponseWriter { return cw.ResponseWriter }

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
