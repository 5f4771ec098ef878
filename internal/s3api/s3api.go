// Package s3api serves Nimbus's buckets through the S3 API (path style,
// /{bucket}/{key}, and virtual-hosted style under configured domains), so
// S3 clients and SDKs work with an endpoint override:
// buckets, objects (with Range), copies, batch deletes, ListObjectsV2 and
// multipart uploads, with SigV4 verified against the node's access keys
// (package keys) and errors in S3's XML shape.
//
// The node sends it the requests whose SigV4 credential scope names the
// service "s3" (see node.mainHandler). It owns no data: package data does
// the work.
package s3api

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway/cors"
	"github.com/nimbus-run/nimbus/internal/httpbody"
	"github.com/nimbus-run/nimbus/internal/sigv4"
)

// Credentials looks up the secret of an access key id (keys.Keyring).
type Credentials interface {
	Lookup(accessKeyID string) (secret string, ok bool)
}

// Config configures the API.
type Config struct {
	// Dev accepts any credentials (the signature is not checked).
	Dev bool
	// Domains are the host names under which a request's host names its
	// bucket (virtual-hosted style: assets.s3.example.com/key, with the
	// domain s3.example.com). None by default, as in other S3-compatible
	// servers: a host such as nimbus.localhost would otherwise name a
	// bucket "nimbus" in a path-style request.
	Domains []string
	Logger  *slog.Logger
	// Now is the clock signatures are checked against (default time.Now).
	Now func() time.Time
}

// API is the S3 API over a data.Service.
type API struct {
	cfg   Config
	svc   *data.Service
	creds Credentials
	log   *slog.Logger
}

// New returns the API.
func New(cfg Config, svc *data.Service, creds Credentials) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &API{cfg: cfg, svc: svc, creds: creds, log: cfg.Logger}
}

const xmlns = "http://s3.amazonaws.com/doc/2006-03-01/"

// s3Error is an error in S3's shape.
type s3Error struct {
	status  int
	code    string
	message string
}

func (e *s3Error) Error() string { return e.code + ": " + e.message }

// Is makes a 4xx answer an invalid request to those who know only the
// function package's sentinels: the data layer's metrics count a put that
// failed its checksum as the client's error, not the node's.
func (e *s3Error) Is(target error) bool {
	return target == function.ErrInvalid && e.status >= 400 && e.status < 500
}

func newErr(status int, code, format string, args ...any) *s3Error {
	return &s3Error{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// toS3 maps an error to S3's status and code. It is the one place this API
// does so.
func toS3(err error) *s3Error {
	var se *s3Error
	if errors.As(err, &se) {
		return se
	}
	msg := err.Error()
	var fe *function.FieldError
	switch {
	case errors.Is(err, sigv4.ErrMissingAuth):
		return newErr(http.StatusForbidden, "AccessDenied", "%s", msg)
	case errors.Is(err, sigv4.ErrUnknownKey):
		return newErr(http.StatusForbidden, "InvalidAccessKeyId", "The AWS access key Id you provided does not exist in our records.")
	case errors.Is(err, sigv4.ErrContentSHA256), errors.Is(err, errContentSHA256):
		return newErr(http.StatusBadRequest, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.")
	case errors.Is(err, sigv4.ErrBadSignature), errors.Is(err, errChunkSignature):
		return newErr(http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
	case errors.Is(err, sigv4.ErrExpired):
		return newErr(http.StatusForbidden, "AccessDenied", "Request has expired %s", strings.TrimPrefix(msg, sigv4.ErrExpired.Error()+" "))
	case errors.Is(err, sigv4.ErrStale):
		return newErr(http.StatusForbidden, "RequestTimeTooSkewed", "%s", msg)
	case errors.Is(err, sigv4.ErrMalformed):
		return newErr(http.StatusBadRequest, "AuthorizationHeaderMalformed", "%s", msg)
	case errors.Is(err, data.ErrNoSuchBucket):
		return newErr(http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist")
	case errors.Is(err, data.ErrNoSuchKey):
		return newErr(http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
	case errors.Is(err, data.ErrNoSuchUpload):
		return newErr(http.StatusNotFound, "NoSuchUpload", "The specified multipart upload does not exist.")
	case errors.Is(err, data.ErrInvalidRange):
		return newErr(http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The requested range is not satisfiable")
	case errors.Is(err, data.ErrInvalidPart):
		return newErr(http.StatusRequestedRangeNotSatisfiable, "InvalidPartNumber", "The requested partnumber is not satisfiable")
	case errors.Is(err, data.ErrPreconditionFailed):
		return newErr(http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
	case errors.Is(err, data.ErrNotEmpty):
		return newErr(http.StatusConflict, "BucketNotEmpty", "The bucket you tried to delete is not empty")
	case errors.Is(err, data.ErrBusy):
		return newErr(http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate: %s", msg)
	case errors.Is(err, httpbody.ErrStalled):
		return newErr(http.StatusBadRequest, "RequestTimeout", "Your socket connection to the server was not read from or written to within the timeout period: %s", msg)
	case errors.Is(err, data.ErrTooLarge), errors.Is(err, function.ErrPayloadTooBig):
		return newErr(http.StatusBadRequest, "EntityTooLarge", "%s", msg)
	case errors.As(err, &fe):
		switch {
		case fe.Field == "bucket":
			return newErr(http.StatusBadRequest, "InvalidBucketName", "%s", fe.Reason)
		case strings.Contains(fe.Reason, "(InvalidPartOrder)"):
			return newErr(http.StatusBadRequest, "InvalidPartOrder", "%s", fe.Reason)
		case strings.Contains(fe.Reason, "(InvalidPart)"):
			return newErr(http.StatusBadRequest, "InvalidPart", "%s", fe.Reason)
		case strings.Contains(fe.Reason, "(EntityTooSmall)"):
			return newErr(http.StatusBadRequest, "EntityTooSmall", "%s", fe.Reason)
		case fe.Field == "key":
			return newErr(http.StatusBadRequest, "KeyTooLongError", "%s", fe.Reason)
		}
		return newErr(http.StatusBadRequest, "InvalidArgument", "%s", msg)
	case errors.Is(err, function.ErrInvalid):
		return newErr(http.StatusBadRequest, "InvalidArgument", "%s", msg)
	case errors.Is(err, function.ErrConflict):
		return newErr(http.StatusConflict, "OperationAborted", "%s", msg)
	}
	return newErr(http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
}

type errorBody struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := toS3(err)
	switch {
	case e.status == http.StatusNotImplemented:
		// Refused, not failed: which features clients ask for is worth
		// an operator's knowing, not an alarm (s3cmd's "info" asks for
		// five).
		a.log.Info("s3: request for a feature Nimbus lacks", "method", r.Method, "path", r.URL.Path, "err", err)
	case e.status >= 500:
		a.log.Error("s3: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	default:
		a.log.Debug("s3: request refused", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(e.status)
		return
	}
	if r.Method == http.MethodPut || r.Method == http.MethodPost {
		httpbody.DrainRefused(w, r)
	}
	writeXML(w, e.status, errorBody{Code: e.code, Message: e.message, Resource: r.URL.Path, RequestID: requestID()})
}

func requestID() string { return strconv.FormatInt(time.Now().UnixNano(), 36) }

func writeXML(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	io.WriteString(w, xml.Header) //nolint:errcheck // the client went away
	xml.NewEncoder(w).Encode(v)   //nolint:errcheck
}

// authenticate verifies the request's SigV4 signature (anything goes in
// dev mode) and returns the body to read: the request's, decoded from
// aws-chunked and checked against the signed hash as it is read.
func (a *API) authenticate(r *http.Request) (io.Reader, error) {
	var id *sigv4.Identity
	var secret string
	if !a.cfg.Dev {
		if SignedV2(r) {
			return nil, errSigV2
		}
		lookup := func(k string) (string, bool) {
			if a.creds == nil {
				return "", false
			}
			s, ok := a.creds.Lookup(k)
			secret = s
			return s, ok
		}
		var err error
		if id, err = (sigv4.Options{S3: true}).Verify(r, nil, lookup, a.cfg.Now()); err != nil {
			return nil, err
		}
		if id.Service != "s3" {
			return nil, newErr(http.StatusForbidden, "SignatureDoesNotMatch", "Credential should be scoped to correct service: 's3'.")
		}
	}
	declared := r.Header.Get(sigv4.HeaderContentSHA256)
	switch {
	case strings.HasPrefix(declared, "STREAMING-"):
		var signer *chunkSigner
		if id != nil && strings.HasPrefix(declared, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") {
			auth, err := sigv4.ParseAuthorization(r.Header.Get("Authorization"))
			if err != nil {
				return nil, err
			}
			signer = &chunkSigner{
				key:     signingKey(secret, auth.Scope.Date, auth.Scope.Region, auth.Scope.Service),
				amzDate: r.Header.Get(sigv4.HeaderDate), scope: auth.Scope.String(), prev: auth.Signature,
			}
		}
		return newChunkedReader(r.Body, signer), nil
	case id != nil && len(id.PayloadHash) == 64:
		return &hashingReader{r: r.Body, sum: newSHA256(), want: id.PayloadHash}, nil
	}
	return r.Body, nil
}

// SignedV2 says whether r is signed with S3's Signature Version 2: an
// "AWS ID:SIGNATURE" Authorization header, or a URL presigned with
// AWSAccessKeyId and Signature (the AWS CLI v1's "s3 presign" makes these
// unless told to use SigV4). Only S3 ever took it, so such a request is
// S3's, to be refused with S3's error rather than fall to user routes.
func SignedV2(r *http.Request) bool {
	if h := r.Header.Get("Authorization"); h != "" {
		rest, ok := strings.CutPrefix(h, "AWS ")
		id, _, signed := strings.Cut(rest, ":")
		return ok && signed && id != ""
	}
	q := r.URL.Query()
	return q.Has("AWSAccessKeyId") && q.Has("Signature")
}

// errSigV2 refuses Signature Version 2, which AWS has refused for buckets
// made since June 2020: HMAC-SHA1 over less of the request than SigV4
// signs. The message is S3's, with what to do about it.
var errSigV2 = newErr(http.StatusBadRequest, "InvalidRequest",
	"The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256. "+
		"(This request is signed with Signature Version 2; the AWS CLI v1 signs with SigV4 after "+
		"`aws configure set default.s3.signature_version s3v4`.)")

// bodySize is the decoded length of the body, -1 when unknown.
func bodySize(r *http.Request) int64 {
	if v := r.Header.Get("X-Amz-Decoded-Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
		return -1
	}
	if strings.HasPrefix(r.Header.Get(sigv4.HeaderContentSHA256), "STREAMING-") {
		return -1
	}
	return r.ContentLength
}

// signingRegion is the region of a request's SigV4 credential scope,
// us-east-1 for a request without one (in dev mode).
func signingRegion(r *http.Request) string {
	if scope, ok := sigv4.RequestScope(r); ok {
		return scope.Region
	}
	return "us-east-1"
}

// bucketAndKey reads the bucket and key a request names: from its host
// and path in the virtual-hosted style (bucket.<domain>/key, for any of
// the configured domains), from its path alone in the path style
// (/bucket/key).
func (a *API) bucketAndKey(r *http.Request) (bucket, key string) {
	if bucket, key, hosted := a.hostedBucket(r); hosted {
		return bucket, key
	}
	bucket, key, _ = strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	return bucket, key
}

// hostedBucket reads the bucket a request's host names under one of the
// configured domains, and the key its path names; hosted is false when
// its host names none.
func (a *API) hostedBucket(r *http.Request) (bucket, key string, hosted bool) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, d := range a.cfg.Domains {
		if b, ok := strings.CutSuffix(host, "."+strings.ToLower(d)); ok && b != "" {
			return b, strings.TrimPrefix(r.URL.Path, "/"), true
		}
	}
	return "", "", false
}

// ServeHTTP routes an S3 request by method, path and query.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A presigned URL (SigV4 in its query) may be used from any web page
	// (cors.Presigned); its preflight carries the query but no signature
	// of its own.
	if r.URL.Query().Has("X-Amz-Credential") && cors.Presigned.Handle(w, r) {
		return
	}
	// A browser's form, signed as a policy in its fields (postobject.go).
	if a.IsPostObject(r) {
		bucket, _, _ := a.hostedBucket(r)
		a.postObject(w, r, bucket)
		return
	}
	body, err := a.authenticate(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	bucket, key := a.bucketAndKey(r)
	q := r.URL.Query()
	if a.answerUnconfigured(w, r, bucket, key, q) {
		return
	}
	if name := unimplementedSubresource(r.Method, key == "", q); name != "" && bucket != "" {
		a.writeError(w, r, notImplemented(name))
		return
	}
	if r.Method == http.MethodPut || r.Method == http.MethodPost {
		if name := unimplementedHeader(r.Header); name != "" {
			a.writeError(w, r, headerNotImplemented(name))
			return
		}
	}
	switch {
	case bucket != "" && q.Has("acl"):
		a.acl(w, r, bucket, key, body)
	case key != "" && q.Has("attributes"):
		a.getObjectAttributes(w, r, bucket, key)
	case bucket == "":
		if r.Method != http.MethodGet {
			a.writeError(w, r, newErr(http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource."))
			return
		}
		a.listBuckets(w, r)
	case key == "":
		a.bucketOp(w, r, bucket, q, body)
	default:
		a.objectOp(w, r, bucket, key, q, body)
	}
}

func (a *API) bucketOp(w http.ResponseWriter, r *http.Request, bucket string, q url.Values, body io.Reader) {
	switch {
	case r.Method == http.MethodPut:
		if _, _, err := a.svc.PutBucket(r.Context(), bucket); err != nil {
			a.writeError(w, r, err)
			return
		}
		w.Header().Set("Location", "/"+bucket)
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodDelete:
		if err := a.svc.DeleteBucket(r.Context(), bucket, false); err != nil {
			a.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodHead:
		if _, err := a.svc.Bucket(bucket); err != nil {
			a.writeError(w, r, err)
			return
		}
		// The SDKs' region lookups (the Go transfer manager's
		// GetBucketRegion) read it: a node has no region, so the one the
		// request was signed for.
		w.Header().Set("X-Amz-Bucket-Region", signingRegion(r))
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodPost && q.Has("delete"):
		a.deleteObjects(w, r, bucket, body)
	case r.Method == http.MethodGet && (q.Has("location") || q.Has("versioning")):
		if _, err := a.svc.Bucket(bucket); err != nil {
			a.writeError(w, r, err)
			return
		}
		// No region to name; versioning never enabled (no Status).
		root := "LocationConstraint"
		if q.Has("versioning") {
			root = "VersioningConfiguration"
		}
		writeXML(w, http.StatusOK, struct {
			XMLName xml.Name
			Xmlns   string `xml:"xmlns,attr"`
		}{XMLName: xml.Name{Local: root}, Xmlns: xmlns})
	case r.Method == http.MethodGet && q.Has("uploads"):
		a.listUploads(w, r, bucket, q)
	case r.Method == http.MethodGet:
		a.listObjects(w, r, bucket, q)
	default:
		a.writeError(w, r, newErr(http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource."))
	}
}

func (a *API) objectOp(w http.ResponseWriter, r *http.Request, bucket, key string, q url.Values, body io.Reader) {
	uploadID := q.Get("uploadId")
	switch {
	case r.Method == http.MethodPut && uploadID != "":
		a.uploadPart(w, r, bucket, key, uploadID, q, body)
	case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
		a.copyObject(w, r, bucket, key)
	case r.Method == http.MethodPut:
		a.putObject(w, r, bucket, key, body)
	case r.Method == http.MethodGet && uploadID != "":
		a.listParts(w, r, bucket, key, uploadID)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		a.getObject(w, r, bucket, key)
	case r.Method == http.MethodDelete && uploadID != "":
		if err := a.svc.AbortUpload(r.Context(), bucket, key, uploadID); err != nil {
			a.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete:
		if r.Header.Get("X-Amz-If-Match-Last-Modified-Time") != "" || r.Header.Get("X-Amz-If-Match-Size") != "" {
			a.writeError(w, r, errDirectoryConditions)
			return
		}
		if err := a.svc.DeleteObjectIf(r.Context(), bucket, key, r.Header.Get("If-Match")); err != nil {
			a.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && q.Has("uploads"):
		a.createUpload(w, r, bucket, key)
	case r.Method == http.MethodPost && uploadID != "":
		a.completeUpload(w, r, bucket, key, uploadID, body)
	default:
		a.writeError(w, r, newErr(http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource."))
	}
}

func httpTime(t time.Time) string { return t.UTC().Format(http.TimeFormat) }
func isoTime(t time.Time) string  { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
func quote(etag string) string    { return `"` + etag + `"` }

// ownerXML is an owner (of buckets, of uploads): Nimbus has one.
type ownerXML struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

var nimbusOwner = ownerXML{ID: "nimbus", DisplayName: "nimbus"}

type bucketXML struct {
	Name         string `xml:"Name"`
	CreationDate string `xml:"CreationDate"`
}

func (a *API) listBuckets(w http.ResponseWriter, r *http.Request) {
	out := struct {
		XMLName xml.Name    `xml:"ListAllMyBucketsResult"`
		Xmlns   string      `xml:"xmlns,attr"`
		Owner   ownerXML    `xml:"Owner"`
		Buckets []bucketXML `xml:"Buckets>Bucket"`
	}{Xmlns: xmlns, Owner: nimbusOwner}
	for _, b := range a.svc.Buckets() {
		out.Buckets = append(out.Buckets, bucketXML{Name: b.Name, CreationDate: isoTime(b.Created)})
	}
	writeXML(w, http.StatusOK, out)
}

type contentXML struct {
	Key          string    `xml:"Key"`
	LastModified string    `xml:"LastModified"`
	ETag         string    `xml:"ETag"`
	Size         int64     `xml:"Size"`
	StorageClass string    `xml:"StorageClass"`
	Owner        *ownerXML `xml:"Owner,omitempty"`
}

type prefixXML struct {
	Prefix string `xml:"Prefix"`
}

// pageSize reads a listing's page size (max-keys, max-uploads): 1000 when
// absent, and at most 1000.
func pageSize(q url.Values, name string) (int, error) {
	s := q.Get(name)
	if s == "" {
		return 1000, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, newErr(http.StatusBadRequest, "InvalidArgument", "%s must be a non-negative integer", name)
	}
	return min(n, 1000), nil
}

// keyEncoder writes keys into a listing as its encoding-type asks:
// URL-encoded with "url", as they are otherwise.
func keyEncoder(q url.Values) func(string) string {
	if q.Get("encoding-type") == "url" {
		return func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	}
	return func(s string) string { return s }
}

// listObjects serves ListObjectsV2 (and the V1 form with marker).
func (a *API) listObjects(w http.ResponseWriter, r *http.Request, bucket string, q url.Values) {
	v2 := q.Get("list-type") == "2"
	opt := data.ListOptions{Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"), After: q.Get("start-after")}
	if !v2 {
		opt.After = q.Get("marker")
	}
	if tok := q.Get("continuation-token"); tok != "" {
		after, err := data.DecodeListCursor(tok)
		if err != nil {
			a.writeError(w, r, newErr(http.StatusBadRequest, "InvalidArgument", "The continuation token provided is incorrect"))
			return
		}
		opt.After = after
	}
	maxKeys, err := pageSize(q, "max-keys")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	opt.Limit = max(maxKeys, 1)
	l, err := a.svc.ListObjects(r.Context(), bucket, opt)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	enc := keyEncoder(q)
	type result struct {
		XMLName               xml.Name     `xml:"ListBucketResult"`
		Xmlns                 string       `xml:"xmlns,attr"`
		Name                  string       `xml:"Name"`
		Prefix                string       `xml:"Prefix"`
		Delimiter             string       `xml:"Delimiter,omitempty"`
		MaxKeys               int          `xml:"MaxKeys"`
		EncodingType          string       `xml:"EncodingType,omitempty"`
		IsTruncated           bool         `xml:"IsTruncated"`
		KeyCount              int          `xml:"KeyCount,omitempty"`
		Marker                string       `xml:"Marker,omitempty"`
		NextMarker            string       `xml:"NextMarker,omitempty"`
		ContinuationToken     string       `xml:"ContinuationToken,omitempty"`
		NextContinuationToken string       `xml:"NextContinuationToken,omitempty"`
		StartAfter            string       `xml:"StartAfter,omitempty"`
		Contents              []contentXML `xml:"Contents"`
		CommonPrefixes        []prefixXML  `xml:"CommonPrefixes"`
	}
	out := result{Xmlns: xmlns, Name: bucket, Prefix: enc(opt.Prefix), Delimiter: enc(opt.Delimiter), MaxKeys: maxKeys,
		EncodingType: q.Get("encoding-type")}
	// V1 names every object's owner, V2 when asked to (fetch-owner).
	var owner *ownerXML
	if !v2 || q.Get("fetch-owner") == "true" {
		owner = &nimbusOwner
	}
	if maxKeys > 0 {
		for _, o := range l.Objects {
			out.Contents = append(out.Contents, contentXML{Key: enc(o.Key), LastModified: isoTime(o.Modified), ETag: quote(o.ETag), Size: o.Size, StorageClass: "STANDARD", Owner: owner})
		}
		for _, p := range l.CommonPrefixes {
			out.CommonPrefixes = append(out.CommonPrefixes, prefixXML{Prefix: enc(p)})
		}
		out.IsTruncated = l.Truncated
	}
	if v2 {
		out.KeyCount = len(out.Contents) + len(out.CommonPrefixes)
		out.ContinuationToken, out.StartAfter = q.Get("continuation-token"), q.Get("start-after")
		if out.IsTruncated {
			out.NextContinuationToken = data.EncodeListCursor(l.Next)
		}
	} else {
		out.Marker = q.Get("marker")
		if out.IsTruncated {
			out.NextMarker = l.Next
		}
	}
	writeXML(w, http.StatusOK, out)
}

// storedHeaders are the headers an object keeps (data.HeadersOf), less
// the aws-chunked content coding, which describes the upload's body and
// not the object: S3 drops it, and an object served with
// "Content-Encoding: aws-chunked" is one no client can decode.
func storedHeaders(h http.Header) map[string]string {
	out := data.HeadersOf(h)
	ce, ok := out["Content-Encoding"]
	if !ok {
		return out
	}
	var kept []string
	for c := range strings.SplitSeq(ce, ",") {
		if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "aws-chunked") {
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		delete(out, "Content-Encoding")
	} else {
		out["Content-Encoding"] = strings.Join(kept, ",")
	}
	return out
}

// metaOf reads user metadata (x-amz-meta-*) from request headers.
func metaOf(h http.Header) map[string]string {
	var m map[string]string
	for k, vs := range h {
		if name, ok := strings.CutPrefix(strings.ToLower(k), "x-amz-meta-"); ok && len(vs) > 0 {
			if m == nil {
				m = map[string]string{}
			}
			m[name] = vs[0]
		}
	}
	return m
}

func (a *API) putObject(w http.ResponseWriter, r *http.Request, bucket, key string, body io.Reader) {
	body, sums, err := checkUpload(r, body)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	info, err := a.svc.PutObject(r.Context(), bucket, key, body, bodySize(r),
		data.PutObjectOptions{ContentType: r.Header.Get("Content-Type"), Metadata: metaOf(r.Header), Headers: storedHeaders(r.Header), MD5ETag: true,
			IfNoneMatch: r.Header.Get("If-None-Match"), IfMatch: r.Header.Get("If-Match"), Expect: sums.expect, Checksum: sums.kept})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.Header().Set("ETag", quote(info.ETag))
	sums.echo(w)
	w.WriteHeader(http.StatusOK)
}

// objectHeaders describes an object in a GET's or HEAD's response: its
// stored headers, then the response-* overrides of the query (S3's, for a
// presigned download that names its file, say).
func objectHeaders(w http.ResponseWriter, r *http.Request, info *data.ObjectInfo) {
	h := w.Header()
	h.Set("Content-Type", info.ContentType)
	h.Set("ETag", quote(info.ETag))
	h.Set("Last-Modified", httpTime(info.Modified))
	h.Set("Accept-Ranges", "bytes")
	for k, v := range info.Metadata {
		h["X-Amz-Meta-"+k] = []string{v}
	}
	for k, v := range info.Headers {
		h.Set(k, v)
	}
	q := r.URL.Query()
	for _, name := range responseOverrides {
		if v := q.Get("response-" + strings.ToLower(name)); v != "" {
			h.Set(name, v)
		}
	}
}

// responseOverrides are the headers a GET or HEAD may set with a
// response-<name> query parameter.
var responseOverrides = append([]string{"Content-Type"}, api.ObjectHeaders...)

// checksumHeaders gives a client that asks (x-amz-checksum-mode: ENABLED,
// which the AWS SDKs send by default) the checksum of a whole object,
// which the SDKs check the body against (the node does not hash what it
// reads): the one it was uploaded with, as S3 answers, or else its
// SHA-256. Of a multipart object's checksum of its parts' checksums
// (COMPOSITE) the SDKs check nothing.
func checksumHeaders(w http.ResponseWriter, r *http.Request, info *data.ObjectInfo) {
	if !strings.EqualFold(r.Header.Get("X-Amz-Checksum-Mode"), "ENABLED") {
		return
	}
	if label, v, typ := objectChecksum(info); label != "" {
		w.Header().Set(checksumHeaderPrefix+strings.ToLower(label), v)
		w.Header().Set("X-Amz-Checksum-Type", typ)
	}
}

func (a *API) getObject(w http.ResponseWriter, r *http.Request, bucket, key string) {
	partNumber := r.URL.Query().Get("partNumber")
	if r.Method == http.MethodHead && r.Header.Get("Range") == "" && partNumber == "" {
		info, err := a.svc.HeadObject(r.Context(), bucket, key)
		if err == nil {
			err = data.CheckConditions(r.Header, info)
		}
		if err != nil {
			if !data.NotModified(w, info, err) {
				a.writeError(w, r, err)
			}
			return
		}
		objectHeaders(w, r, info)
		checksumHeaders(w, r, info)
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
		w.WriteHeader(http.StatusOK)
		return
	}
	var seen *data.ObjectInfo
	check := func(info *data.ObjectInfo) error {
		seen = info
		return data.CheckConditions(r.Header, info)
	}
	var obj *data.Object
	var err error
	if partNumber == "" {
		obj, err = a.svc.GetObjectIf(r.Context(), bucket, key, r.Header.Get("Range"), check)
	} else {
		// One part of a multipart object, by its number (the transfer
		// managers' parallel downloads); an object put whole is one part.
		n, perr := strconv.Atoi(partNumber)
		switch {
		case perr != nil || n < 1 || n > data.MaxParts:
			err = newErr(http.StatusBadRequest, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive")
		case r.Header.Get("Range") != "":
			err = newErr(http.StatusBadRequest, "InvalidRequest", "Cannot specify both Range header and partNumber query parameter")
		default:
			var parts int
			obj, parts, err = a.svc.GetObjectPart(r.Context(), bucket, key, n, check)
			if err == nil && parts > 1 {
				w.Header().Set("X-Amz-Mp-Parts-Count", strconv.Itoa(parts))
			}
		}
	}
	if err != nil {
		if !data.NotModified(w, seen, err) {
			a.writeError(w, r, err)
		}
		return
	}
	defer obj.Body.Close()
	objectHeaders(w, r, obj.Info)
	status, length := http.StatusOK, obj.Info.Size
	switch {
	case obj.Range == nil:
		checksumHeaders(w, r, obj.Info)
	case obj.Range.Length == 0: // the one part of an empty object: no range to state
		length = 0
	default:
		status, length = http.StatusPartialContent, obj.Range.Length
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", obj.Range.Start, obj.Range.Start+obj.Range.Length-1, obj.Info.Size))
	}
	w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(w, obj.Body); err != nil {
		// The status is sent: all that is left is to cut the response
		// short, which the client sees as a short body.
		a.log.Warn("s3: download cut short", "bucket", bucket, "key", key, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// copySource reads x-amz-copy-source: "[/]bucket/key[?versionId=...]",
// URL-encoded.
func copySource(h string) (string, string, error) {
	h, query, _ := strings.Cut(h, "?")
	// The source's version: Nimbus keeps one, which S3 names "null".
	if q, err := url.ParseQuery(query); err != nil || (q.Has("versionId") && q.Get("versionId") != "null") {
		return "", "", notImplemented("versionId")
	}
	dec, err := url.PathUnescape(strings.TrimPrefix(h, "/"))
	if err != nil {
		return "", "", newErr(http.StatusBadRequest, "InvalidArgument", "x-amz-copy-source is not URL-encoded correctly")
	}
	b, k, ok := strings.Cut(dec, "/")
	if !ok || b == "" || k == "" {
		return "", "", newErr(http.StatusBadRequest, "InvalidArgument", "x-amz-copy-source must be bucket/key")
	}
	return b, k, nil
}

func (a *API) copyObject(w http.ResponseWriter, r *http.Request, bucket, key string) {
	sb, sk, err := copySource(r.Header.Get("X-Amz-Copy-Source"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	opt := data.CopyOptions{Check: data.CopySourceConditions(r.Header),
		IfNoneMatch: r.Header.Get("If-None-Match"), IfMatch: r.Header.Get("If-Match")}
	if strings.EqualFold(r.Header.Get("X-Amz-Metadata-Directive"), "REPLACE") {
		opt.Replace = &data.PutObjectOptions{ContentType: r.Header.Get("Content-Type"), Metadata: metaOf(r.Header), Headers: storedHeaders(r.Header)}
	}
	info, err := a.svc.CopyObject(r.Context(), sb, sk, bucket, key, opt)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeCopyResult(w, "CopyObjectResult", info.Modified, info.ETag)
}

// writeCopyResult answers a copy (CopyObjectResult) or a part's
// (CopyPartResult).
func writeCopyResult(w http.ResponseWriter, element string, modified time.Time, etag string) {
	writeXML(w, http.StatusOK, struct {
		XMLName      xml.Name
		Xmlns        string `xml:"xmlns,attr"`
		LastModified string `xml:"LastModified"`
		ETag         string `xml:"ETag"`
	}{XMLName: xml.Name{Local: element}, Xmlns: xmlns, LastModified: isoTime(modified), ETag: quote(etag)})
}

// maxXMLBody bounds XML request bodies (a batch delete of 1000 long keys).
const maxXMLBody = 4 << 20

func readXML(body io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(body, maxXMLBody+1))
	if err != nil {
		return err
	}
	if len(b) > maxXMLBody {
		return newErr(http.StatusBadRequest, "MalformedXML", "The XML you provided is too large.")
	}
	if err := xml.Unmarshal(b, v); err != nil {
		return newErr(http.StatusBadRequest, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema.")
	}
	return nil
}

func (a *API) deleteObjects(w http.ResponseWriter, r *http.Request, bucket string, body io.Reader) {
	var req struct {
		Quiet   bool `xml:"Quiet"`
		Objects []struct {
			Key  string `xml:"Key"`
			ETag string `xml:"ETag"` // a conditional delete's If-Match
			// Directory buckets' conditions, which Nimbus does not check,
			// and versions, which it does not keep.
			LastModifiedTime string `xml:"LastModifiedTime"`
			Size             string `xml:"Size"`
			VersionID        string `xml:"VersionId"`
		} `xml:"Object"`
	}
	if err := readXML(body, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if len(req.Objects) > 1000 {
		a.writeError(w, r, newErr(http.StatusBadRequest, "MalformedXML", "A batch delete names at most 1000 keys."))
		return
	}
	objs := make([]data.DeleteOne, len(req.Objects))
	for i, o := range req.Objects {
		if o.LastModifiedTime != "" || o.Size != "" {
			a.writeError(w, r, errDirectoryConditions)
			return
		}
		if o.VersionID != "" && o.VersionID != "null" {
			a.writeError(w, r, notImplemented("versionId"))
			return
		}
		objs[i] = data.DeleteOne{Key: o.Key, IfMatch: o.ETag}
	}
	errs, err := a.svc.DeleteObjects(r.Context(), bucket, objs)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	type deleted struct {
		Key string `xml:"Key"`
	}
	type failed struct {
		Key     string `xml:"Key"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	out := struct {
		XMLName xml.Name  `xml:"DeleteResult"`
		Xmlns   string    `xml:"xmlns,attr"`
		Deleted []deleted `xml:"Deleted"`
		Errors  []failed  `xml:"Error"`
	}{Xmlns: xmlns}
	for i, o := range objs {
		if err := errs[i]; err != nil {
			e := toS3(err)
			out.Errors = append(out.Errors, failed{Key: o.Key, Code: e.code, Message: e.message})
			continue
		}
		if !req.Quiet {
			out.Deleted = append(out.Deleted, deleted{Key: o.Key})
		}
	}
	writeXML(w, http.StatusOK, out)
}

func (a *API) createUpload(w http.ResponseWriter, r *http.Request, bucket, key string) {
	sum, err := uploadChecksumOf(r.Header)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	u, err := a.svc.CreateUpload(r.Context(), bucket, key, data.PutObjectOptions{ContentType: r.Header.Get("Content-Type"), Metadata: metaOf(r.Header), Headers: storedHeaders(r.Header)}, sum.String())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	sum.header(w)
	writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
		Xmlns    string   `xml:"xmlns,attr"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		UploadID string   `xml:"UploadId"`
	}{Xmlns: xmlns, Bucket: bucket, Key: key, UploadID: u.ID})
}

func (a *API) uploadPart(w http.ResponseWriter, r *http.Request, bucket, key, id string, q url.Values, body io.Reader) {
	n, err := strconv.Atoi(q.Get("partNumber"))
	if err != nil {
		a.writeError(w, r, newErr(http.StatusBadRequest, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive"))
		return
	}
	up, err := a.svc.Upload(r.Context(), bucket, key, id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if r.Header.Get("X-Amz-Copy-Source") != "" {
		a.uploadPartCopy(w, r, up, n)
		return
	}
	body, sums, err := checkUpload(r, body)
	if err == nil {
		body, sums, err = keptUploadChecksum(up).forPart(body, sums)
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	p, err := a.svc.UploadPart(r.Context(), bucket, key, id, n, body, bodySize(r), data.PartOptions{Expect: sums.expect, Checksum: sums.kept})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.Header().Set("ETag", quote(p.ETag))
	sums.echo(w)
	w.WriteHeader(http.StatusOK)
}

// copySourceRange is the form of x-amz-copy-source-range: both offsets,
// inclusive (no suffix or open ranges, as in S3).
var copySourceRange = regexp.MustCompile(`^bytes=[0-9]+-[0-9]+$`)

// uploadPartCopy is UploadPartCopy: a part copied from an object, whole
// or a range of it, under the x-amz-copy-source-if-* conditions. The AWS
// CLI and boto3 copy objects over 8 MB this way (aws s3 cp between
// buckets), the SDKs' copiers those over 5 GB.
func (a *API) uploadPartCopy(w http.ResponseWriter, r *http.Request, up *data.Upload, n int) {
	sb, sk, err := copySource(r.Header.Get("X-Amz-Copy-Source"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	rng := r.Header.Get("X-Amz-Copy-Source-Range")
	if rng != "" && !copySourceRange.MatchString(rng) {
		a.writeError(w, r, newErr(http.StatusBadRequest, "InvalidArgument", "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"))
		return
	}
	src, err := a.svc.GetObjectIf(r.Context(), sb, sk, rng, data.CopySourceConditions(r.Header))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	defer src.Body.Close()
	size := src.Info.Size
	if src.Range != nil {
		size = src.Range.Length
	}
	body, sums, err := keptUploadChecksum(up).forPart(src.Body, nil)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	p, err := a.svc.UploadPart(r.Context(), up.Bucket, up.Key, up.ID, n, body, size, data.PartOptions{Expect: sums.expect, Checksum: sums.kept})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	sums.echo(w)
	writeCopyResult(w, "CopyPartResult", p.Modified, p.ETag)
}

func (a *API) completeUpload(w http.ResponseWriter, r *http.Request, bucket, key, id string, body io.Reader) {
	var req struct {
		Parts []struct {
			PartNumber int    `xml:"PartNumber"`
			ETag       string `xml:"ETag"`
			partChecksums
		} `xml:"Part"`
	}
	if err := readXML(body, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	parts := make([]data.CompletePart, len(req.Parts))
	for i, p := range req.Parts {
		parts[i] = data.CompletePart{Number: p.PartNumber, ETag: p.ETag, Checksum: p.partChecksums.String()}
	}
	up, err := a.svc.Upload(r.Context(), bucket, key, id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	c, err := completionOf(r.Header)
	if err == nil {
		err = c.forUpload(keptUploadChecksum(up), parts)
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	info, err := a.svc.CompleteUpload(r.Context(), bucket, key, id, parts, data.CompleteOptions{
		IfNoneMatch: r.Header.Get("If-None-Match"), IfMatch: r.Header.Get("If-Match"), Check: c.check, Body: c.body, Checksum: c.kept})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	sums, typ := c.result()
	writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
		Xmlns    string   `xml:"xmlns,attr"`
		Location string   `xml:"Location"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		ETag     string   `xml:"ETag"`
		partChecksums
		ChecksumType string `xml:"ChecksumType,omitempty"`
	}{Xmlns: xmlns, Location: "/" + bucket + "/" + key, Bucket: bucket, Key: key, ETag: quote(info.ETag), partChecksums: sums, ChecksumType: typ})
}

func (a *API) listParts(w http.ResponseWriter, r *http.Request, bucket, key, id string) {
	up, err := a.svc.Upload(r.Context(), bucket, key, id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	parts, err := a.svc.Parts(r.Context(), bucket, key, id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	type partXML struct {
		PartNumber   int    `xml:"PartNumber"`
		LastModified string `xml:"LastModified"`
		ETag         string `xml:"ETag"`
		Size         int64  `xml:"Size"`
		partChecksums
	}
	q := r.URL.Query()
	marker, _ := strconv.Atoi(q.Get("part-number-marker"))
	maxParts := 1000
	if s := q.Get("max-parts"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 1000 {
			maxParts = n
		}
	}
	out := struct {
		XMLName              xml.Name  `xml:"ListPartsResult"`
		Xmlns                string    `xml:"xmlns,attr"`
		Bucket               string    `xml:"Bucket"`
		Key                  string    `xml:"Key"`
		UploadID             string    `xml:"UploadId"`
		PartNumberMarker     int       `xml:"PartNumberMarker"`
		NextPartNumberMarker int       `xml:"NextPartNumberMarker"`
		MaxParts             int       `xml:"MaxParts"`
		IsTruncated          bool      `xml:"IsTruncated"`
		StorageClass         string    `xml:"StorageClass"`
		ChecksumAlgorithm    string    `xml:"ChecksumAlgorithm,omitempty"`
		ChecksumType         string    `xml:"ChecksumType,omitempty"`
		Parts                []partXML `xml:"Part"`
	}{Xmlns: xmlns, Bucket: bucket, Key: key, UploadID: id, PartNumberMarker: marker, MaxParts: maxParts, StorageClass: "STANDARD"}
	sum := keptUploadChecksum(up)
	out.ChecksumAlgorithm, out.ChecksumType = sum.label, sum.typ
	for _, p := range parts {
		if p.Number <= marker {
			continue
		}
		if len(out.Parts) == maxParts {
			out.IsTruncated = true
			break
		}
		out.Parts = append(out.Parts, partXML{PartNumber: p.Number, LastModified: isoTime(p.Modified), ETag: quote(p.ETag), Size: p.Size, partChecksums: checksumsOf(p.Checksum)})
		out.NextPartNumberMarker = p.Number
	}
	writeXML(w, http.StatusOK, out)
}
