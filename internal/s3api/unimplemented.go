package s3api

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// S3 names a feature of a bucket or an object other than its contents
// (its tags, ACL, CORS rules, policy, versions, ...) by a subresource: a
// query parameter such as ?tagging. Nimbus implements few of them, and a
// request for one it does not implement must be refused, never taken for
// the plain request it otherwise is: PutObjectTagging is a PUT of the
// object's key with the tag set as its body, which stored the tag set as
// the object, and DeleteBucketCors a DELETE of the bucket.

// unimplemented are S3's subresources (those of the signature's canonical
// resource and the newer ones) that Nimbus does not implement for any
// request.
var unimplemented = []string{
	"accelerate", "analytics", "cors", "encryption",
	"intelligent-tiering", "inventory", "legal-hold", "lifecycle", "logging",
	"metadataConfiguration", "metadataTable", "metrics", "notification",
	"object-lock", "ownershipControls", "policy", "policyStatus",
	"publicAccessBlock", "renameObject", "replication", "requestPayment",
	"restore", "retention", "select", "session", "tagging", "torrent",
	"versions", "website",
}

// unimplementedSubresource returns the subresource of a request that Nimbus
// does not implement, "" if there is none. Of those it implements in part:
// a bucket's versioning may be read (it is never enabled), the only
// version of an object is "null", as S3 names the version of an object in
// a bucket that was never versioned, ACLs may be read and set to what
// they are (acl.go), and an object's attributes read (attributes.go).
func unimplementedSubresource(method string, onBucket bool, q url.Values) string {
	for name := range q {
		if slices.Contains(unimplemented, name) {
			return name
		}
	}
	switch {
	case q.Has("versioning") && (!onBucket || method != http.MethodGet):
		return "versioning"
	case q.Has("versionId") && q.Get("versionId") != "null":
		return "versionId"
	case q.Has("acl") && method != http.MethodGet && method != http.MethodPut:
		return "acl"
	case q.Has("attributes") && (onBucket || method != http.MethodGet):
		return "attributes"
	}
	return ""
}

func notImplemented(name string) *s3Error {
	return newErr(http.StatusNotImplemented, "NotImplemented",
		"Nimbus does not implement the %q subresource of S3: the request was refused and changed nothing", name)
}

// unimplementedHeader returns the header of a write (PUT or POST) that asks
// for what Nimbus would not do, "" if there is none: a client told its
// object was stored must not be wrong about what was stored. So a write is
// refused when it asks for server-side encryption (Nimbus does not encrypt
// objects at rest, and has no KMS; with SSE-C the client believes only its
// key reads the object), an object lock (retention or legal hold: nothing
// would keep the object from being deleted), tags (which would be
// dropped), or an append (x-amz-write-offset-bytes, S3 Express's: the
// object would be replaced by what was to be appended). Canned ACLs
// (x-amz-acl, which tools send as "private") and storage classes are
// accepted and ignored, as most S3-compatible stores do: every object is
// private to the node's keys and stored one way.
func unimplementedHeader(h http.Header) string {
	for name := range h {
		switch {
		case strings.HasPrefix(name, "X-Amz-Server-Side-Encryption"),
			strings.HasPrefix(name, "X-Amz-Copy-Source-Server-Side-Encryption"),
			strings.HasPrefix(name, "X-Amz-Object-Lock-"),
			name == "X-Amz-Bucket-Object-Lock-Enabled" && strings.EqualFold(h.Get(name), "true"),
			name == "X-Amz-Tagging" && h.Get(name) != "",
			name == "X-Amz-Write-Offset-Bytes":
			return name
		}
	}
	return ""
}

func headerNotImplemented(name string) *s3Error {
	return newErr(http.StatusNotImplemented, "NotImplemented",
		"Nimbus does not implement the %s header (server-side encryption, object locks, tags and appends are not done): nothing was stored", name)
}

// errDirectoryConditions refuses a delete conditional on an object's size
// or time, which S3 checks in directory buckets only, and Nimbus not at
// all.
var errDirectoryConditions = newErr(http.StatusNotImplemented, "NotImplemented",
	"Nimbus checks a delete's If-Match (an ETag), not an object's size or last-modified time (directory buckets' conditions): nothing was deleted")
