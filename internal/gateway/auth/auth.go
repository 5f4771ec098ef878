// Package auth owns the credential checks of user routes: API keys (minted
// once, stored as SHA-256 hashes), JWT bearer tokens (HS256 by shared secret,
// RS256 and ES256 by a JWKS file or URL), and the plumbing for function
// authorizers in the API Gateway v2 "simple response" format (the event, the
// response parser and a bounded TTL cache of decisions).
//
// It does not store key records, invoke authorizer functions or write HTTP
// responses: callers pass lookups and results in, and map the typed errors
// below to statuses in one place.
//
// # Errors
//
// Every failure wraps exactly one of ErrMissingCredentials,
// ErrInvalidCredentials, ErrForbidden or ErrUnavailable. The wrapped text
// carries the detail for logs (which claim failed, which kid was unknown);
// clients get only PublicMessage, which tells an attacker nothing.
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinel errors; see the package doc.
var (
	// ErrMissingCredentials: no token or key where one was required (401).
	ErrMissingCredentials = errors.New("missing credentials")
	// ErrInvalidCredentials: a token or key was given and is not good (401).
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrForbidden: the caller is known but not allowed (403).
	ErrForbidden = errors.New("forbidden")
	// ErrUnavailable: credentials could not be checked, e.g. the JWKS
	// endpoint is down and no keys are cached (503).
	ErrUnavailable = errors.New("authorization unavailable")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidCredentials, fmt.Sprintf(format, args...))
}

// Status maps an auth error to the HTTP status and the message API Gateway
// sends for it. Errors from elsewhere map to 500.
func Status(err error) (code int, message string) {
	switch {
	case err == nil:
		return http.StatusOK, ""
	case errors.Is(err, ErrMissingCredentials), errors.Is(err, ErrInvalidCredentials):
		return http.StatusUnauthorized, "Unauthorized"
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, "Forbidden"
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, "Service Unavailable"
	default:
		return http.StatusInternalServerError, "Internal Server Error"
	}
}

// PublicMessage is the client-facing text for err: never the detail.
func PublicMessage(err error) string {
	_, msg := Status(err)
	return msg
}

// BearerToken returns the token of an "Authorization: Bearer <token>" header.
// The scheme is case-insensitive, as RFC 9110 says.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// RequireScopes returns ErrForbidden unless have holds every scope in need.
func RequireScopes(have []string, need ...string) error {
	for _, n := range need {
		found := false
		for _, h := range have {
			if h == n {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%w: missing scope %q", ErrForbidden, n)
		}
	}
	return nil
}
