package s3api

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/gateway/cors"
	"github.com/nimbus-run/nimbus/internal/sigv4"
)

// POST Object: a browser uploads a file straight to a bucket with an HTML
// form, which a server signed beforehand as a policy (the SDKs'
// PresignPostObject, boto3's generate_presigned_post): the policy says
// until when the form may be posted, which key (or key prefix) it may
// name, how large the file may be, and which other fields it may carry;
// the form carries the policy, its SigV4 signature, and then the file.
// Unlike a presigned PUT URL, it bounds the upload's size.
//
// The form's request carries no signature of its own, so nothing in it
// names S3 but its host: Nimbus serves it in the virtual-hosted style only
// (BUCKET.DOMAIN under --s3-domain), where the host says the request is
// S3's. A path-style POST /BUCKET could be a user route's.

// IsPostObject says whether r is a POST Object, or its CORS preflight, to
// a bucket named by r's host.
func (a *API) IsPostObject(r *http.Request) bool {
	if r.Method != http.MethodPost && r.Method != http.MethodOptions {
		return false
	}
	bucket, key, hosted := a.hostedBucket(r)
	if !hosted || bucket == "" || key != "" {
		return false
	}
	if r.Method == http.MethodOptions {
		return cors.IsPreflight(r)
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "multipart/form-data"
}

// Bounds of a POST Object's form fields, which come before the file.
const (
	maxPostField  = 20 << 10
	maxPostFields = 1 << 20
)

// postPolicy is the policy document a POST Object's form carries.
type postPolicy struct {
	Expiration string            `json:"expiration"`
	Conditions []json.RawMessage `json:"conditions"`
}

func (a *API) postObject(w http.ResponseWriter, r *http.Request, bucket string) {
	if cors.Presigned.Handle(w, r) {
		return // the preflight, answered, or the POST's headers set
	}
	mr, err := r.MultipartReader()
	if err != nil {
		a.writeError(w, r, newErr(http.StatusBadRequest, "MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data: %v", err))
		return
	}
	fields := map[string]string{} // lower-cased names
	var size int
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			a.writeError(w, r, newErr(http.StatusBadRequest, "InvalidArgument", "POST requires exactly one file upload per request."))
			return
		}
		if err != nil {
			a.writeError(w, r, newErr(http.StatusBadRequest, "MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data: %v", err))
			return
		}
		name := strings.ToLower(p.FormName())
		if name == "file" {
			a.postFile(w, r, bucket, fields, p)
			return
		}
		b, err := io.ReadAll(io.LimitReader(p, maxPostField+1))
		size += len(b)
		if err != nil || len(b) > maxPostField || size > maxPostFields {
			a.writeError(w, r, newErr(http.StatusBadRequest, "MaxPostPreDataLengthExceeded", "Your POST request fields preceding the upload file were too large."))
			return
		}
		fields[name] = string(b)
	}
}

// postFile checks the form's signature and policy and stores the file.
func (a *API) postFile(w http.ResponseWriter, r *http.Request, bucket string, fields map[string]string, file io.Reader) {
	filename := ""
	if fp, ok := file.(interface{ FileName() string }); ok {
		filename = fp.FileName()
	}
	key := strings.ReplaceAll(fields["key"], "${filename}", filename)
	fields["bucket"] = bucket
	if key == "" {
		a.writeError(w, r, newErr(http.StatusBadRequest, "InvalidArgument", "Bucket POST must contain a field named 'key'."))
		return
	}
	minSize, maxSize, err := a.checkPostPolicy(fields, key)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	// The form's fields are the headers a PUT would carry: user metadata,
	// the headers an object keeps, and x-amz-* asking for what Nimbus
	// would not keep (encryption, tags, locks: refused, as on a PUT).
	meta := map[string]string{}
	headers := http.Header{}
	for name, v := range fields {
		if m, ok := strings.CutPrefix(name, "x-amz-meta-"); ok {
			meta[m] = v
		} else if name != "policy" && name != "key" && name != "file" {
			headers.Set(name, v)
		}
	}
	if name := unimplementedHeader(headers); name != "" {
		a.writeError(w, r, headerNotImplemented(name))
		return
	}
	body := &sizeChecked{r: file, min: minSize}
	info, err := a.svc.PutObject(r.Context(), bucket, key, body, -1, data.PutObjectOptions{
		ContentType: fields["content-type"], Metadata: meta, Headers: storedHeaders(headers), MD5ETag: true, MaxBytes: maxSize})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.Header().Set("ETag", quote(info.ETag))
	location := "/" + bucket + "/" + url.PathEscape(key)
	w.Header().Set("Location", location)
	if redirect := fields["success_action_redirect"]; redirect != "" {
		if u, err := url.Parse(redirect); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			q := u.Query()
			q.Set("bucket", bucket)
			q.Set("key", key)
			q.Set("etag", quote(info.ETag))
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.String(), http.StatusSeeOther)
			return
		}
	}
	switch fields["success_action_status"] {
	case "200":
		w.WriteHeader(http.StatusOK)
	case "201":
		writeXML(w, http.StatusCreated, struct {
			XMLName  xml.Name `xml:"PostResponse"`
			Location string   `xml:"Location"`
			Bucket   string   `xml:"Bucket"`
			Key      string   `xml:"Key"`
			ETag     string   `xml:"ETag"`
		}{Location: location, Bucket: bucket, Key: key, ETag: quote(info.ETag)})
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// checkPostPolicy verifies the form's signature of its policy (in dev
// mode any is taken), the policy's expiration, and that the form meets
// every condition and carries no field the policy does not name. It
// returns the file's size bounds (content-length-range; -1: none).
func (a *API) checkPostPolicy(fields map[string]string, key string) (minSize, maxSize int64, err error) {
	denied := func(format string, args ...any) error {
		return newErr(http.StatusForbidden, "AccessDenied", "Invalid according to Policy: "+format, args...)
	}
	policyB64 := fields["policy"]
	if policyB64 == "" {
		return 0, 0, newErr(http.StatusBadRequest, "InvalidArgument", "Bucket POST must contain a field named 'policy'.")
	}
	if !a.cfg.Dev {
		if alg := fields["x-amz-algorithm"]; alg != sigv4.Algorithm {
			return 0, 0, newErr(http.StatusBadRequest, "InvalidArgument", "x-amz-algorithm must be %s, not %q.", sigv4.Algorithm, truncate(alg, 40))
		}
		id, scope, perr := sigv4.ParseCredential(fields["x-amz-credential"])
		if perr != nil {
			return 0, 0, newErr(http.StatusBadRequest, "InvalidArgument", "x-amz-credential: %v", perr)
		}
		secret, ok := "", false
		if a.creds != nil {
			secret, ok = a.creds.Lookup(id)
		}
		if !ok {
			return 0, 0, newErr(http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
		}
		want := hmacSum(signingKey(secret, scope.Date, scope.Region, scope.Service), policyB64)
		got, _ := hex.DecodeString(fields["x-amz-signature"])
		if !hmac.Equal(got, want) {
			return 0, 0, newErr(http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
		}
	}
	raw, err := base64.StdEncoding.DecodeString(policyB64)
	var policy postPolicy
	if err != nil || json.Unmarshal(raw, &policy) != nil {
		return 0, 0, newErr(http.StatusBadRequest, "InvalidPolicyDocument", "Invalid Policy: the policy is not base64-encoded JSON.")
	}
	expires, err := time.Parse(time.RFC3339, policy.Expiration)
	if err != nil {
		return 0, 0, newErr(http.StatusBadRequest, "InvalidPolicyDocument", "Invalid Policy: Invalid 'expiration' value: %q.", truncate(policy.Expiration, 40))
	}
	if !a.cfg.Now().Before(expires) {
		return 0, 0, newErr(http.StatusForbidden, "AccessDenied", "Invalid according to Policy: Policy expired.")
	}
	value := func(field string) string {
		if field == "key" {
			return key
		}
		return fields[field]
	}
	named := map[string]bool{}
	minSize, maxSize = 0, -1
	for _, c := range policy.Conditions {
		var exact map[string]string
		if json.Unmarshal(c, &exact) == nil {
			for f, v := range exact {
				f = strings.ToLower(f)
				named[f] = true
				if value(f) != v {
					return 0, 0, denied("Policy Condition failed: [\"eq\", \"$%s\", %q]", f, v)
				}
			}
			continue
		}
		var list []json.RawMessage
		if json.Unmarshal(c, &list) != nil || len(list) != 3 {
			return 0, 0, newErr(http.StatusBadRequest, "InvalidPolicyDocument", "Invalid Policy: Invalid Condition: %s", truncate(string(c), 100))
		}
		var op string
		json.Unmarshal(list[0], &op) //nolint:errcheck // "" fails below
		switch strings.ToLower(op) {
		case "content-length-range":
			var lo, hi int64
			if json.Unmarshal(list[1], &lo) != nil || json.Unmarshal(list[2], &hi) != nil || lo < 0 || hi < lo {
				return 0, 0, newErr(http.StatusBadRequest, "InvalidPolicyDocument", "Invalid Policy: Invalid content-length-range: %s", truncate(string(c), 100))
			}
			minSize, maxSize = lo, hi
		case "eq", "starts-with":
			var f, v string
			if json.Unmarshal(list[1], &f) != nil || json.Unmarshal(list[2], &v) != nil || !strings.HasPrefix(f, "$") {
				return 0, 0, newErr(http.StatusBadRequest, "InvalidPolicyDocument", "Invalid Policy: Invalid Condition: %s", truncate(string(c), 100))
			}
			f = strings.ToLower(strings.TrimPrefix(f, "$"))
			named[f] = true
			if got := value(f); op == "eq" && got != v || op == "starts-with" && !strings.HasPrefix(got, v) {
				return 0, 0, denied("Policy Condition failed: [%q, \"$%s\", %q]", op, f, v)
			}
		default:
			return 0, 0, newErr(http.StatusBadRequest, "InvalidPolicyDocument", "Invalid Policy: Invalid Condition: %s", truncate(string(c), 100))
		}
	}
	// Every field the form carries must be one the policy names, but
	// those of the signature and the ones S3 exempts.
	for f := range fields {
		switch {
		case named[f], f == "policy", f == "x-amz-signature", f == "bucket", strings.HasPrefix(f, "x-ignore-"):
		default:
			return 0, 0, denied("Extra input fields: %s", f)
		}
	}
	return minSize, maxSize, nil
}

// sizeChecked fails a body shorter than min at its end, so that the put
// stores nothing.
type sizeChecked struct {
	r   io.Reader
	n   int64
	min int64
}

func (s *sizeChecked) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	if errors.Is(err, io.EOF) && s.n < s.min {
		return n, newErr(http.StatusBadRequest, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size: %s bytes, the policy asks for %d", strconv.FormatInt(s.n, 10), s.min)
	}
	return n, err
}
