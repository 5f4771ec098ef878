package s3api

import (
	"net/http"
	"net/url"
	"slices"
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
	"accelerate", "acl", "analytics", "attributes", "cors", "encryption",
	"intelligent-tiering", "inventory", "legal-hold", "lifecycle", "logging",
	"metadataConfiguration", "metadataTable", "metrics", "notification",
	"object-lock", "ownershipControls", "policy", "policyStatus",
	"publicAccessBlock", "renameObject", "replication", "requestPayment",
	"restore", "retention", "select", "session", "tagging", "torrent",
	"versions", "website",
}

// unimplementedSubresource returns the subresource of a request that Nimbus
// does not implement, "" if there is none. Of those it implements in part:
// a bucket's versioning may be read (it is never enabled), and the only
// version of an object is "null", as S3 names the version of an object in
// a bucket that was never versioned.
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
	}
	return ""
}

func notImplemented(name string) *s3Error {
	return newErr(http.StatusNotImplemented, "NotImplemented",
		"Nimbus does not implement the %q subresource of S3: the request was refused and changed nothing", name)
}
