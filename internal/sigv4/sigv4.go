// Package sigv4 verifies AWS Signature Version 4 on incoming HTTP requests,
// so AWS SDKs and the AWS CLI can call Nimbus's AWS-compatible surfaces (the
// Lambda Invoke API today; Step Functions and S3 later) with ordinary access
// keys.
//
// It checks both forms AWS clients send: the Authorization header
// ("AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...") and
// the presigned query string (X-Amz-Algorithm, X-Amz-Credential, ...), builds
// the canonical request as the specification says, and compares signatures in
// constant time. It knows nothing of where secrets live (the caller passes a
// lookup) nor of HTTP error shapes (each surface maps the typed errors to its
// service's codes).
//
// Specification: https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
// and, for S3's variations, https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Algorithm is the only signing algorithm accepted.
const Algorithm = "AWS4-HMAC-SHA256"

// Payload hash values with a special meaning.
const (
	// UnsignedPayload in x-amz-content-sha256 says the body is not part of
	// the signature (S3, and presigned URLs).
	UnsignedPayload = "UNSIGNED-PAYLOAD"
	// EmptySHA256 is the hex SHA-256 of no bytes.
	EmptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// Header and query names.
const (
	HeaderDate          = "X-Amz-Date"
	HeaderContentSHA256 = "X-Amz-Content-Sha256"
	QueryAlgorithm      = "X-Amz-Algorithm"
	QueryCredential     = "X-Amz-Credential"
	QueryDate           = "X-Amz-Date"
	QueryExpires        = "X-Amz-Expires"
	QuerySignedHeaders  = "X-Amz-SignedHeaders"
	QuerySignature      = "X-Amz-Signature"
)

// DefaultMaxSkew is how far a request's date may be from the verifier's
// clock, as AWS allows.
const DefaultMaxSkew = 15 * time.Minute

// maxPresignExpiry is AWS's limit on X-Amz-Expires (7 days).
const maxPresignExpiry = 7 * 24 * time.Hour

// Errors callers branch on. Every error Verify returns wraps exactly one of
// them (ErrContentSHA256 also wraps ErrBadSignature).
var (
	// ErrMissingAuth: the request carries no SigV4 signature at all.
	ErrMissingAuth = errors.New("sigv4: request is not signed")
	// ErrMalformed: a signature is there but cannot be read (bad header,
	// bad scope, a date that does not parse, a required header not signed).
	ErrMalformed = errors.New("sigv4: malformed signature")
	// ErrUnknownKey: the access key id is unknown (or revoked).
	ErrUnknownKey = errors.New("sigv4: unknown access key")
	// ErrBadSignature: the signature does not match the request.
	ErrBadSignature = errors.New("sigv4: signature does not match")
	// ErrContentSHA256: x-amz-content-sha256 does not match the body.
	ErrContentSHA256 = fmt.Errorf("%w: x-amz-content-sha256 does not match the body", ErrBadSignature)
	// ErrStale: the signed date is too far from now, or a presigned URL
	// has expired.
	ErrStale = errors.New("sigv4: stale date")
	// ErrExpired: a presigned URL has expired (also ErrStale). S3 tells
	// it apart: AccessDenied, "Request has expired".
	ErrExpired = fmt.Errorf("%w: presigned URL expired", ErrStale)
)

// Lookup returns the secret access key of an access key id.
type Lookup func(accessKeyID string) (secret string, ok bool)

// Identity is who signed a request and for what.
type Identity struct {
	AccessKeyID string
	// Service and Region come from the credential scope.
	Service string
	Region  string
	// Date is the signing time (X-Amz-Date).
	Date time.Time
	// Presigned is true for the query-string form.
	Presigned bool
	// PayloadHash is the payload hash that was signed: a hex SHA-256,
	// UnsignedPayload, or a STREAMING-* value. When Verify was given a nil
	// body and this is a hex hash, the caller must check the body it
	// streams against it.
	PayloadHash string
}

// Options adjust verification per service.
type Options struct {
	// S3 canonicalizes the path as S3 does: the path exactly as sent, with
	// no second round of URI encoding. Every other service encodes the
	// (already encoded) path once more.
	S3 bool
	// MaxSkew bounds the distance between the signed date and now
	// (default DefaultMaxSkew).
	MaxSkew time.Duration
}

// Verify checks the SigV4 signature of r with the default options (not S3).
// See Options.Verify.
func Verify(r *http.Request, body []byte, lookup Lookup, now time.Time) (*Identity, error) {
	return Options{}.Verify(r, body, lookup, now)
}

// Verify checks the SigV4 signature of r, whose body has already been read
// into body, against the secret lookup returns for the signing key, as of
// now.
//
// A nil body means the caller has not read it (a streamed upload): the
// signed payload hash is then taken on trust and returned in
// Identity.PayloadHash for the caller to check. A non-nil body (even empty)
// is hashed and must match x-amz-content-sha256 when that header is sent.
//
// # Errors
//
// Wrapping ErrMissingAuth, ErrMalformed, ErrUnknownKey, ErrBadSignature
// (ErrContentSHA256 for a body that does not match its declared hash) or
// ErrStale. Messages never contain the secret or the expected signature.
func (o Options) Verify(r *http.Request, body []byte, lookup Lookup, now time.Time) (*Identity, error) {
	if o.MaxSkew <= 0 {
		o.MaxSkew = DefaultMaxSkew
	}
	var (
		auth      *Authorization
		err       error
		amzDate   string
		presigned bool
		expires   time.Duration
		query     url.Values
	)
	query, err = url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: query string: %v", ErrMalformed, err)
	}
	switch h := r.Header.Get("Authorization"); {
	case h != "":
		if !strings.HasPrefix(h, Algorithm+" ") {
			scheme, _, _ := strings.Cut(h, " ")
			return nil, fmt.Errorf("%w: authorization scheme %q is not %s", ErrMissingAuth, truncate(scheme, 32), Algorithm)
		}
		if auth, err = ParseAuthorization(h); err != nil {
			return nil, err
		}
		amzDate = r.Header.Get(HeaderDate)
		dateHeader := "x-amz-date"
		if amzDate == "" {
			// AWS accepts the standard Date header when X-Amz-Date is absent.
			dateHeader = "date"
			t, perr := http.ParseTime(r.Header.Get("Date"))
			if perr != nil {
				return nil, fmt.Errorf("%w: no X-Amz-Date or Date header", ErrMalformed)
			}
			amzDate = t.UTC().Format(timeFormat)
		}
		// The date must be signed, or a captured request could be replayed
		// forever with a fresh date; likewise the declared payload hash.
		if !slices.Contains(auth.SignedHeaders, dateHeader) {
			return nil, fmt.Errorf("%w: the %s header must be signed", ErrMalformed, dateHeader)
		}
		if r.Header.Get(HeaderContentSHA256) != "" && !slices.Contains(auth.SignedHeaders, "x-amz-content-sha256") {
			return nil, fmt.Errorf("%w: the x-amz-content-sha256 header must be signed", ErrMalformed)
		}
	case query.Has(QueryAlgorithm):
		presigned = true
		if auth, expires, err = parsePresigned(query); err != nil {
			return nil, err
		}
		amzDate = query.Get(QueryDate)
	default:
		return nil, ErrMissingAuth
	}

	date, err := time.Parse(timeFormat, amzDate)
	if err != nil {
		return nil, fmt.Errorf("%w: X-Amz-Date %q is not in the form 20060102T150405Z", ErrMalformed, truncate(amzDate, 32))
	}
	if amzDate[:8] != auth.Scope.Date {
		return nil, fmt.Errorf("%w: credential scope date %s does not match X-Amz-Date %s", ErrMalformed, auth.Scope.Date, amzDate)
	}
	if presigned {
		if now.Before(date.Add(-o.MaxSkew)) {
			return nil, fmt.Errorf("%w: presigned URL is dated %s, in the future", ErrStale, amzDate)
		}
		if now.After(date.Add(expires)) {
			return nil, fmt.Errorf("%w at %s", ErrExpired, date.Add(expires).Format(timeFormat))
		}
	} else if d := now.Sub(date); d > o.MaxSkew || d < -o.MaxSkew {
		return nil, fmt.Errorf("%w: signature date %s is more than %s from the server time %s", ErrStale, amzDate, o.MaxSkew, now.UTC().Format(timeFormat))
	}

	secret, ok := lookup(auth.AccessKeyID)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKey, auth.AccessKeyID)
	}

	payloadHash, err := o.payloadHash(r, query, body, presigned)
	if err != nil {
		return nil, err
	}
	canonical := canonicalRequest(r, o.S3, query, presigned, auth.SignedHeaders, payloadHash)
	want := signature(signingKey(auth.AccessKeyID, secret, auth.Scope), auth.Scope, amzDate, canonical)
	if !hmac.Equal([]byte(want), []byte(auth.Signature)) {
		return nil, fmt.Errorf("%w: check the secret access key and the signing method", ErrBadSignature)
	}
	return &Identity{
		AccessKeyID: auth.AccessKeyID, Service: auth.Scope.Service, Region: auth.Scope.Region,
		Date: date, Presigned: presigned, PayloadHash: payloadHash,
	}, nil
}

const timeFormat = "20060102T150405Z"

// payloadHash is the last line of the canonical request.
func (o Options) payloadHash(r *http.Request, query url.Values, body []byte, presigned bool) (string, error) {
	declared := r.Header.Get(HeaderContentSHA256)
	if presigned && declared == "" {
		declared = query.Get(HeaderContentSHA256)
		if declared == "" && (o.S3 || body == nil) {
			// S3's presigned URLs are made before the body exists; other
			// services sign the body's hash, as with the header form.
			return UnsignedPayload, nil
		}
	}
	switch {
	case declared == UnsignedPayload, strings.HasPrefix(declared, "STREAMING-"):
		// STREAMING-* is the seed of a chunk-signed upload; the chunks are
		// the caller's to check (S3 only), so it passes through.
		return declared, nil
	case declared != "":
		if len(declared) != 64 || !isLowerHex(declared) {
			return "", fmt.Errorf("%w: x-amz-content-sha256 is not a hex SHA-256", ErrMalformed)
		}
		if body != nil && !hmac.Equal([]byte(declared), []byte(hashHex(body))) {
			return "", ErrContentSHA256
		}
		return declared, nil
	case body == nil:
		return "", fmt.Errorf("%w: the body was not read and x-amz-content-sha256 is not sent", ErrMalformed)
	}
	return hashHex(body), nil
}

// canonicalRequest builds the canonical request string of the spec.
func canonicalRequest(r *http.Request, s3 bool, query url.Values, presigned bool, signed []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(r, s3))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(query, presigned))
	b.WriteByte('\n')
	for _, h := range signed {
		b.WriteString(h)
		b.WriteByte(':')
		b.WriteString(headerValue(r, h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// rawPath is the path as the client sent it, still percent-encoded: that is
// what the client signed, and decoding then re-encoding would not give it
// back (%2F, lower-case hex, needless escapes).
func rawPath(r *http.Request) string {
	p := r.RequestURI
	if p == "" || p == "*" {
		return r.URL.EscapedPath()
	}
	if !strings.HasPrefix(p, "/") { // absolute form: http://host/path?query
		u, err := url.ParseRequestURI(p)
		if err != nil {
			return r.URL.EscapedPath()
		}
		return u.EscapedPath()
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return p
}

func canonicalURI(r *http.Request, s3 bool) string {
	p := rawPath(r)
	if p == "" {
		p = "/"
	}
	if s3 {
		return p
	}
	// Every service but S3 encodes the encoded path once more, so "%3A"
	// becomes "%253A" (what aws-sdk-go-v2, botocore and the Java SDK do).
	return uriEncode(p, false)
}

// uriEncode percent-encodes every byte outside the RFC 3986 unreserved set,
// with upper-case hex; '/' too when encodeSlash.
func uriEncode(s string, encodeSlash bool) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) || (c == '/' && !encodeSlash) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
	return b.String()
}

const upperHex = "0123456789ABCDEF"

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// canonicalQuery encodes every name and value, then sorts: the spec sorts
// after encoding, and the two orders differ ("a-b" vs "a/b").
func canonicalQuery(query url.Values, presigned bool) string {
	type pair struct{ k, v string }
	var ps []pair
	for k, vs := range query {
		if presigned && k == QuerySignature {
			continue
		}
		ek := uriEncode(k, true)
		for _, v := range vs {
			ps = append(ps, pair{ek, uriEncode(v, true)})
		}
	}
	slices.SortFunc(ps, func(a, b pair) int {
		if c := strings.Compare(a.k, b.k); c != 0 {
			return c
		}
		return strings.Compare(a.v, b.v)
	})
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// headerValue is a signed header's canonical value: values joined by
// commas, each trimmed with inner runs of spaces collapsed.
func headerValue(r *http.Request, name string) string {
	var vs []string
	switch name {
	case "host":
		// net/http moves Host out of the header map.
		vs = []string{r.Host}
	case "transfer-encoding":
		vs = r.TransferEncoding // likewise moved out
	default:
		vs = r.Header.Values(name)
		if len(vs) == 0 && name == "content-length" && r.ContentLength > 0 {
			vs = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	}
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(collapseSpaces(v))
	}
	return b.String()
}

func collapseSpaces(s string) string {
	s = strings.Trim(s, " ")
	if !strings.Contains(s, "  ") {
		return s
	}
	var b strings.Builder
	space := false
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// signature signs the string to sign built from the canonical request.
func signature(key []byte, scope Scope, amzDate, canonical string) string {
	sts := Algorithm + "\n" + amzDate + "\n" + scope.String() + "\n" + hashHex([]byte(canonical))
	return hex.EncodeToString(hmacSHA256(key, sts))
}

// signingKeys caches derived signing keys. Deriving one takes four HMACs
// (about half the cost of a verification), and a client signs all its
// requests of a day with one key and scope.
var signingKeys struct {
	sync.Mutex
	m map[string]cachedKey // access key id + "/" + scope
}

type cachedKey struct {
	secret string // the key is used only while the secret is unchanged
	key    []byte
}

const maxCachedKeys = 1024

func signingKey(id, secret string, scope Scope) []byte {
	ck := id + "/" + scope.String()
	signingKeys.Lock()
	c, ok := signingKeys.m[ck]
	signingKeys.Unlock()
	if ok && subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) == 1 {
		return c.key
	}
	k := hmacSHA256([]byte("AWS4"+secret), scope.Date)
	k = hmacSHA256(k, scope.Region)
	k = hmacSHA256(k, scope.Service)
	k = hmacSHA256(k, "aws4_request")
	signingKeys.Lock()
	if signingKeys.m == nil || len(signingKeys.m) >= maxCachedKeys {
		// Crude but bounded: entries are cheap to rebuild.
		signingKeys.m = make(map[string]cachedKey)
	}
	signingKeys.m[ck] = cachedKey{secret: secret, key: k}
	signingKeys.Unlock()
	return k
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
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
