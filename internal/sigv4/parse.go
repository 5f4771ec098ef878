package sigv4

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Scope is a credential scope: date/region/service/aws4_request.
type Scope struct {
	Date    string // YYYYMMDD
	Region  string
	Service string
}

func (s Scope) String() string { return s.Date + "/" + s.Region + "/" + s.Service + "/aws4_request" }

// Authorization is a parsed SigV4 Authorization header (or the equivalent
// query parameters of a presigned URL).
type Authorization struct {
	AccessKeyID string
	Scope       Scope
	// SignedHeaders are lower-case header names, in the order signed.
	SignedHeaders []string
	// Signature is 64 lower-case hex digits.
	Signature string
}

// String formats a as an Authorization header value.
func (a *Authorization) String() string {
	return Algorithm + " Credential=" + a.AccessKeyID + "/" + a.Scope.String() +
		", SignedHeaders=" + strings.Join(a.SignedHeaders, ";") + ", Signature=" + a.Signature
}

// Limits on untrusted input, far above anything a real client sends.
const (
	maxHeaderLen     = 8 << 10
	maxSignedHeaders = 64
	maxFieldLen      = 128
)

// ParseAuthorization parses an Authorization header value of the form
//
//	AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=<64 hex>
//
// The three components may come in any order, separated by commas with
// optional spaces. Errors wrap ErrMalformed (ErrMissingAuth when the scheme
// is not AWS4-HMAC-SHA256).
func ParseAuthorization(h string) (*Authorization, error) {
	if len(h) > maxHeaderLen {
		return nil, fmt.Errorf("%w: Authorization header is %d bytes", ErrMalformed, len(h))
	}
	rest, ok := strings.CutPrefix(h, Algorithm+" ")
	if !ok {
		return nil, fmt.Errorf("%w: authorization scheme is not %s", ErrMissingAuth, Algorithm)
	}
	var cred, signed, sig string
	var seen [3]bool
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("%w: Authorization component %q is not key=value", ErrMalformed, truncate(part, 40))
		}
		var i int
		switch k {
		case "Credential":
			i, cred = 0, v
		case "SignedHeaders":
			i, signed = 1, v
		case "Signature":
			i, sig = 2, v
		default:
			return nil, fmt.Errorf("%w: unknown Authorization component %q", ErrMalformed, truncate(k, 40))
		}
		if seen[i] {
			return nil, fmt.Errorf("%w: Authorization component %s given twice", ErrMalformed, k)
		}
		seen[i] = true
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return nil, fmt.Errorf("%w: Authorization needs Credential, SignedHeaders and Signature", ErrMalformed)
	}
	return parseParts(cred, signed, sig)
}

func parseParts(cred, signed, sig string) (*Authorization, error) {
	a := &Authorization{}
	var err error
	if a.AccessKeyID, a.Scope, err = ParseCredential(cred); err != nil {
		return nil, err
	}
	if a.SignedHeaders, err = parseSignedHeaders(signed); err != nil {
		return nil, err
	}
	if len(sig) != 64 || !isLowerHex(sig) {
		return nil, fmt.Errorf("%w: Signature must be 64 lower-case hex digits", ErrMalformed)
	}
	a.Signature = sig
	return a, nil
}

// ParseCredential parses "AKID/YYYYMMDD/region/service/aws4_request".
func ParseCredential(cred string) (accessKeyID string, scope Scope, err error) {
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return "", Scope{}, fmt.Errorf("%w: Credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request", ErrMalformed)
	}
	id, date, region, service := parts[0], parts[1], parts[2], parts[3]
	if !validToken(id, isKeyChar) {
		return "", Scope{}, fmt.Errorf("%w: access key id must be 1 to %d letters and digits", ErrMalformed, maxFieldLen)
	}
	if _, err := time.Parse("20060102", date); err != nil || len(date) != 8 {
		return "", Scope{}, fmt.Errorf("%w: credential scope date %q is not YYYYMMDD", ErrMalformed, truncate(date, 16))
	}
	if !validToken(region, isRegionChar) {
		return "", Scope{}, fmt.Errorf("%w: credential scope region %q is not valid", ErrMalformed, truncate(region, 32))
	}
	if !validToken(service, isScopeChar) {
		return "", Scope{}, fmt.Errorf("%w: credential scope service %q is not valid", ErrMalformed, truncate(service, 32))
	}
	return id, Scope{Date: date, Region: region, Service: service}, nil
}

func parseSignedHeaders(s string) ([]string, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: SignedHeaders is empty", ErrMalformed)
	}
	hs := strings.Split(s, ";")
	if len(hs) > maxSignedHeaders {
		return nil, fmt.Errorf("%w: more than %d signed headers", ErrMalformed, maxSignedHeaders)
	}
	host := false
	for i, h := range hs {
		if !validToken(h, isHeaderChar) {
			return nil, fmt.Errorf("%w: signed header %q is not a lower-case header name", ErrMalformed, truncate(h, 40))
		}
		// Sorted and unique, as the spec requires: a canonical request
		// has exactly one spelling.
		if i > 0 && hs[i-1] >= h {
			return nil, fmt.Errorf("%w: SignedHeaders must be sorted and unique", ErrMalformed)
		}
		host = host || h == "host"
	}
	if !host {
		return nil, fmt.Errorf("%w: the host header must be signed", ErrMalformed)
	}
	return hs, nil
}

// parsePresigned reads the query-string form.
func parsePresigned(q url.Values) (*Authorization, time.Duration, error) {
	if alg := q.Get(QueryAlgorithm); alg != Algorithm {
		return nil, 0, fmt.Errorf("%w: X-Amz-Algorithm %q is not %s", ErrMalformed, truncate(alg, 32), Algorithm)
	}
	for _, k := range []string{QueryCredential, QueryDate, QuerySignedHeaders, QuerySignature, QueryExpires} {
		if len(q[k]) != 1 {
			return nil, 0, fmt.Errorf("%w: presigned URL needs exactly one %s", ErrMalformed, k)
		}
	}
	a, err := parseParts(q.Get(QueryCredential), q.Get(QuerySignedHeaders), q.Get(QuerySignature))
	if err != nil {
		return nil, 0, err
	}
	secs, err := strconv.Atoi(q.Get(QueryExpires))
	if err != nil || secs < 1 || time.Duration(secs)*time.Second > maxPresignExpiry {
		return nil, 0, fmt.Errorf("%w: X-Amz-Expires must be 1 to %d seconds", ErrMalformed, int(maxPresignExpiry/time.Second))
	}
	return a, time.Duration(secs) * time.Second, nil
}

// Service returns the service named in r's credential scope ("lambda",
// "states", "s3"); "" when r is not SigV4-signed or the scope does not
// parse. It is for routing only: the chosen surface must still Verify.
func Service(r *http.Request) string {
	scope, _ := RequestScope(r)
	return scope.Service
}

// RequestScope returns r's credential scope, from the Authorization header
// or a presigned URL's X-Amz-Credential, without verifying anything; ok is
// false when r is not SigV4-signed or the scope does not parse.
func RequestScope(r *http.Request) (scope Scope, ok bool) {
	var cred string
	if h := r.Header.Get("Authorization"); h != "" {
		rest, ok := strings.CutPrefix(h, Algorithm+" ")
		if !ok || len(h) > maxHeaderLen {
			return Scope{}, false
		}
		for part := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(part), "Credential="); ok {
				cred = v
				break
			}
		}
	} else if strings.Contains(r.URL.RawQuery, QueryCredential) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return Scope{}, false
		}
		cred = q.Get(QueryCredential)
	}
	if cred == "" {
		return Scope{}, false
	}
	_, scope, err := ParseCredential(cred)
	return scope, err == nil
}

func validToken(s string, ok func(byte) bool) bool {
	if s == "" || len(s) > maxFieldLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isKeyChar(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
}

func isScopeChar(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// isRegionChar lets a region have capitals too: a node has no region and
// takes whichever the client signs for, and some clients' defaults have
// them (s3cmd signs bucket creations for "US").
func isRegionChar(c byte) bool { return isScopeChar(c) || 'A' <= c && c <= 'Z' }

// isHeaderChar allows the lower-case subset of RFC 9110 token characters.
func isHeaderChar(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
