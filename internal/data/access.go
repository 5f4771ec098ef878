package data

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/urlpath"
)

// Principal is who calls the data services: a function (through the SDK,
// with the credential of its instance) or, when nil, an administrator.
type Principal struct {
	Function string `json:"f"`
	Version  string `json:"v,omitempty"`
}

// CredentialPrefix starts every function credential, so that the API can
// tell one from the admin token at a glance.
const CredentialPrefix = "nmbf_"

// Resource kinds a permission is about.
const (
	KindTable  = "table"
	KindBucket = "bucket"
)

// Credential mints the credential an instance of spec uses to reach the
// data API: the function and version, signed with the cluster's secret. It
// carries no expiry because it lives only in the instance's environment,
// and grants only what the spec's uses list (checked on every call, so a
// redeploy that drops a table takes effect at once).
func (s *Service) Credential(spec *function.Spec) string {
	var nonce [8]byte
	rand.Read(nonce[:])
	body, _ := json.Marshal(struct {
		Principal
		N string `json:"n"`
	}{Principal{Function: spec.Name, Version: spec.Version}, hex.EncodeToString(nonce[:])})
	p := base64.RawURLEncoding.EncodeToString(body)
	return CredentialPrefix + p + "." + s.mac("cred", p)
}

// VerifyCredential checks a credential and returns its principal, which
// the caller must not change.
//
// A credential lives as long as its instance and is sent with every data
// call, so verified ones are remembered: checking the MAC and decoding the
// principal took a tenth of a small data call's CPU in the node. The cache
// is bounded (emptied when full); a credential is valid for as long as the
// secret, which never changes, so no entry goes stale.
func (s *Service) VerifyCredential(tok string) (*Principal, error) {
	s.credMu.RLock()
	p, ok := s.creds[tok]
	s.credMu.RUnlock()
	if ok {
		return p, nil
	}
	p, err := s.verifyCredential(tok)
	if err != nil {
		return nil, err
	}
	s.credMu.Lock()
	if len(s.creds) >= maxCachedCredentials {
		clear(s.creds)
	}
	s.creds[tok] = p
	s.credMu.Unlock()
	return p, nil
}

// maxCachedCredentials bounds VerifyCredential's cache: an entry per live
// instance that makes data calls, a few hundred bytes each.
const maxCachedCredentials = 4096

func (s *Service) verifyCredential(tok string) (*Principal, error) {
	rest, ok := strings.CutPrefix(tok, CredentialPrefix)
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || !hmac.Equal([]byte(sig), []byte(s.mac("cred", p))) {
		return nil, wrapf(ErrForbidden, "the function credential is not valid")
	}
	b, err := base64.RawURLEncoding.DecodeString(p)
	var pr Principal
	if err != nil || json.Unmarshal(b, &pr) != nil || pr.Function == "" {
		return nil, wrapf(ErrForbidden, "the function credential is not valid")
	}
	return &pr, nil
}

func (s *Service) mac(purpose, msg string) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Allow checks that p may use the table or bucket name (kind KindTable or
// KindBucket). Administrators (nil) may use everything; a function only
// what its spec's uses list, else ErrForbidden naming what is missing.
func (s *Service) Allow(p *Principal, kind, name string) error {
	if p == nil {
		return nil
	}
	if s.cfg.Functions == nil {
		return wrapf(ErrForbidden, "function %s may not use %s %s: permissions cannot be checked on this node", p.Function, kind, name)
	}
	spec, err := s.cfg.Functions.Resolve(p.Function, p.Version)
	if err != nil {
		return wrapf(ErrForbidden, "function %s (version %s) no longer exists", p.Function, p.Version)
	}
	var list []string
	if spec.Uses != nil {
		if kind == KindTable {
			list = spec.Uses.Tables
		} else {
			list = spec.Uses.Buckets
		}
	}
	if !slices.Contains(list, name) {
		return wrapf(ErrForbidden, "function %s may not use %s %s: add it to uses.%ss in its spec", p.Function, kind, name, kind)
	}
	return nil
}

// Presigned URLs: a path and a query carrying the expiry and an HMAC of
// the method, bucket, key and expiry under the cluster's secret. Anyone
// holding the URL may do that one thing to that one object until it
// expires; changing any part of it breaks the signature.
const (
	// PresignPath is where presigned URLs point: PresignPath + bucket + "/" + key.
	PresignPath = "/api/v1/presigned/"
	// MaxPresignExpiry is the longest a presigned URL may live.
	MaxPresignExpiry = 7 * 24 * time.Hour
)

// Presign returns the path and query of a presigned URL for method (GET or
// PUT) of bucket/key, valid for expires. download, for a GET, is a file
// name: the URL's answers say Content-Disposition: attachment with it
// (Disposition), so a browser saves the object under that name. It is
// signed with the rest.
func (s *Service) Presign(method, bucket, key string, expires time.Duration, download string) (string, time.Time, error) {
	if method != "GET" && method != "PUT" {
		return "", time.Time{}, invalid("method", "presigned URLs are for GET or PUT, not %q", truncate(method, 20))
	}
	if download != "" {
		if method != "GET" {
			return "", time.Time{}, invalid("download", "a download name is for a GET URL")
		}
		if len(download) > 255 || !validHeaderValue(download) || strings.ContainsAny(download, "/\\") {
			return "", time.Time{}, invalid("download", "a download name is a file name of at most 255 bytes of printable text, without / or \\")
		}
	}
	if _, err := s.Bucket(bucket); err != nil {
		return "", time.Time{}, err
	}
	if err := ValidateObjectKey(key); err != nil {
		return "", time.Time{}, err
	}
	if expires <= 0 || expires > MaxPresignExpiry {
		return "", time.Time{}, invalid("expires", "%s is out of range: use 1s to %s", expires, MaxPresignExpiry)
	}
	exp := s.cfg.Now().Add(expires).Truncate(time.Second)
	es := strconv.FormatInt(exp.Unix(), 10)
	q := url.Values{"method": {method}, "expires": {es}, "signature": {s.presignMAC(method, bucket, key, es, download)}}
	if download != "" {
		q.Set("download", download)
	}
	return PresignPath + url.PathEscape(bucket) + "/" + urlpath.Key(key) + "?" + q.Encode(), exp, nil
}

// VerifyPresigned checks a presigned request for method of bucket/key.
// HEAD is allowed by a GET URL.
func (s *Service) VerifyPresigned(method, bucket, key string, q url.Values) error {
	if method == "HEAD" {
		method = "GET"
	}
	es := q.Get("expires")
	exp, err := strconv.ParseInt(es, 10, 64)
	if err != nil || q.Get("method") != method {
		return wrapf(ErrBadSignature, "the presigned URL is malformed or for another method")
	}
	if !hmac.Equal([]byte(q.Get("signature")), []byte(s.presignMAC(method, bucket, key, es, q.Get("download")))) {
		return wrapf(ErrBadSignature, "the presigned URL's signature does not match")
	}
	if s.cfg.Now().Unix() > exp {
		return wrapf(ErrBadSignature, "the presigned URL expired at %s", time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

func (s *Service) presignMAC(method, bucket, key, expires, download string) string {
	msg := method + "\n" + bucket + "\n" + key + "\n" + expires
	if download != "" { // URLs minted before download names keep their signatures
		msg += "\ndownload\n" + download
	}
	return s.mac("presign", msg)
}

// Disposition is the Content-Disposition of a download saved as name.
func Disposition(name string) string {
	return mime.FormatMediaType("attachment", map[string]string{"filename": name})
}

// Describe says what a principal is, for logs and errors.
func (p *Principal) String() string {
	if p == nil {
		return "admin"
	}
	return fmt.Sprintf("function %s:%s", p.Function, p.Version)
}
