// Package webhook owns the verification of signed webhook requests: GitHub's
// X-Hub-Signature-256, Stripe's Stripe-Signature with its replay window, and
// a generic HMAC-SHA256 header for everything else.
//
// It does not own the HTTP route, body size limits, or turning a verified
// request into an event: the webhook trigger in the events package reads the
// body (bounded), calls Verify, then builds a CloudEvent. Nothing here does
// I/O or keeps state.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Styles of signature.
const (
	StyleGitHub = "github"
	StyleStripe = "stripe"
	StyleHMAC   = "hmac"
)

// Encodings of a generic HMAC signature.
const (
	EncodingAuto   = ""       // hex or base64, told apart by length
	EncodingHex    = "hex"    // lower- or upper-case hex
	EncodingBase64 = "base64" // standard or URL alphabet, padded or not
)

// DefaultStripeTolerance is the replay window when Tolerance is zero; it is
// the window Stripe's own libraries use.
const DefaultStripeTolerance = 5 * time.Minute

// Errors callers branch on: the gateway answers 401 to the first two and
// to ErrStale, and logs which one it was.
var (
	ErrMissingSignature = errors.New("webhook: missing signature")
	ErrBadSignature     = errors.New("webhook: signature does not match")
	ErrStale            = errors.New("webhook: signature timestamp outside the tolerance")
)

// Verifier checks a request's signature over its raw body.
type Verifier struct {
	// Style is "github", "stripe" or "hmac".
	Style string
	// Secret is the shared signing secret.
	Secret []byte
	// Header overrides the signature header: defaults are
	// X-Hub-Signature-256 (github) and Stripe-Signature (stripe); required
	// for hmac.
	Header string
	// Prefix is stripped from an hmac signature before decoding, e.g.
	// "sha256=". GitHub's "sha256=" is implied by its style.
	Prefix string
	// Encoding of an hmac signature: "", "hex" or "base64".
	Encoding string
	// Tolerance is how far a Stripe timestamp may be from now, either way
	// (a timestamp in the future is as suspicious as an old one). Zero means
	// DefaultStripeTolerance; negative disables the check.
	Tolerance time.Duration
}

// Validate checks the configuration; Verify calls it too.
func (v *Verifier) Validate() error {
	if len(v.Secret) == 0 {
		return errors.New("webhook: empty secret")
	}
	switch v.Style {
	case StyleGitHub, StyleStripe:
	case StyleHMAC:
		if v.Header == "" {
			return errors.New("webhook: hmac style needs a header name")
		}
	default:
		return fmt.Errorf("webhook: unknown style %q (want github, stripe or hmac)", v.Style)
	}
	switch v.Encoding {
	case EncodingAuto, EncodingHex, EncodingBase64:
	default:
		return fmt.Errorf("webhook: unknown encoding %q (want hex or base64)", v.Encoding)
	}
	return nil
}

// Verify checks the signature in header over body.
//
// # Errors
//
// ErrMissingSignature when the header is absent or has no signature,
// ErrStale when a Stripe timestamp is outside the tolerance, ErrBadSignature
// otherwise (wrapped with a detail); a configuration error when Validate
// fails.
func (v *Verifier) Verify(header http.Header, body []byte, now time.Time) error {
	if err := v.Validate(); err != nil {
		return err
	}
	switch v.Style {
	case StyleGitHub:
		name := v.headerOr("X-Hub-Signature-256")
		return v.verifyOne(header.Values(name), "sha256=", EncodingHex, body)
	case StyleStripe:
		return v.verifyStripe(header.Get(v.headerOr("Stripe-Signature")), body, now)
	default:
		return v.verifyOne(header.Values(v.Header), v.Prefix, v.Encoding, body)
	}
}

func (v *Verifier) headerOr(def string) string {
	if v.Header != "" {
		return v.Header
	}
	return def
}

func (v *Verifier) mac(parts ...[]byte) []byte {
	m := hmac.New(sha256.New, v.Secret)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// verifyOne accepts the request when any header value carries the right
// signature (a proxy may have folded a repeated header).
func (v *Verifier) verifyOne(values []string, prefix, encoding string, body []byte) error {
	want := v.mac(body)
	seen := false
	for _, val := range values {
		val = strings.TrimSpace(val)
		if val == "" {
			continue
		}
		seen = true
		sig, ok := strings.CutPrefix(val, prefix)
		if !ok && prefix != "" {
			continue
		}
		got, err := decodeSig(sig, encoding)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	if !seen {
		return ErrMissingSignature
	}
	return ErrBadSignature
}

func decodeSig(s, encoding string) ([]byte, error) {
	if encoding == EncodingHex || encoding == EncodingAuto && len(s) == hex.EncodedLen(sha256.Size) {
		return hex.DecodeString(s)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not hex or base64")
}

// verifyStripe checks "t=<unix>,v1=<hex>[,v1=<hex>...]" over "<t>.<body>".
// Several v1 entries appear while a secret is being rolled; any may match.
func (v *Verifier) verifyStripe(h string, body []byte, now time.Time) error {
	if strings.TrimSpace(h) == "" {
		return ErrMissingSignature
	}
	var ts string
	var sigs []string
	for _, item := range strings.Split(h, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = val
		case "v1":
			sigs = append(sigs, val)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return fmt.Errorf("%w: no t= timestamp or v1= signature", ErrMissingSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad timestamp %q", ErrBadSignature, ts)
	}
	// The signature is checked before the timestamp so that a forged
	// request learns nothing about the tolerance.
	want := v.mac([]byte(ts), []byte("."), body)
	ok := false
	for _, s := range sigs {
		if got, err := hex.DecodeString(s); err == nil && hmac.Equal(got, want) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	tol := v.Tolerance
	if tol == 0 {
		tol = DefaultStripeTolerance
	}
	if tol > 0 {
		age := now.Sub(time.Unix(sec, 0))
		if age > tol || age < -tol {
			return fmt.Errorf("%w: signed %s ago, tolerance %s", ErrStale, age.Round(time.Second), tol)
		}
	}
	return nil
}

// SignGitHub returns the X-Hub-Signature-256 value for body, for tests and
// for clients of Nimbus that forward webhooks.
func SignGitHub(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// SignStripe returns the Stripe-Signature value for body signed at t.
func SignStripe(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}
