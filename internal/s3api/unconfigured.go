package s3api

import (
	"encoding/xml"
	"net/http"
	"net/url"
)

// Reads of what a bucket or an object never has. A bucket has no CORS
// rules, policy, lifecycle, encryption, website, object lock, public
// access block, ownership controls, replication or tags in Nimbus, and an
// object no tags: reading one answers what S3 answers for a bucket or
// object without it (404 NoSuchCORSConfiguration, an empty tag set, ...),
// which is the truth. Tools that read a bucket's whole configuration
// (Terraform's aws_s3_bucket on every refresh, s3cmd's info, Cyberduck)
// then work; with 501 they failed. Writing any of them stays 501
// (unimplemented.go), and so does any other method.

// absentConfig is S3's answer to a GET of a bucket's subresource it does
// not have: 404 and this code and message.
var absentConfig = map[string][2]string{
	"cors":              {"NoSuchCORSConfiguration", "The CORS configuration does not exist"},
	"policy":            {"NoSuchBucketPolicy", "The bucket policy does not exist"},
	"lifecycle":         {"NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist"},
	"encryption":        {"ServerSideEncryptionConfigurationNotFoundError", "The server side encryption configuration was not found: Nimbus does not encrypt objects at rest"},
	"website":           {"NoSuchWebsiteConfiguration", "The specified bucket does not have a website configuration"},
	"object-lock":       {"ObjectLockConfigurationNotFoundError", "Object Lock configuration does not exist for this bucket"},
	"publicAccessBlock": {"NoSuchPublicAccessBlockConfiguration", "The public access block configuration was not found"},
	"ownershipControls": {"OwnershipControlsNotFoundError", "The bucket ownership controls were not found"},
	"replication":       {"ReplicationConfigurationNotFoundError", "The replication configuration was not found"},
	"tagging":           {"NoSuchTagSet", "The TagSet does not exist"},
}

// emptyConfig is S3's answer to a GET of a bucket's subresource that
// always exists but says nothing was set: this document, empty.
var emptyConfig = map[string]string{
	"accelerate":     "AccelerateConfiguration",
	"logging":        "BucketLoggingStatus",
	"notification":   "NotificationConfiguration",
	"requestPayment": "RequestPaymentConfiguration",
}

// answerUnconfigured answers a GET of one of them, once the bucket (and
// the object) is found; false when r asks for something else.
func (a *API) answerUnconfigured(w http.ResponseWriter, r *http.Request, bucket, key string, q url.Values) bool {
	if r.Method != http.MethodGet || bucket == "" {
		return false
	}
	var sub string
	for name := range q {
		switch {
		case name == "x-id": // the AWS SDKs name the operation so
		case sub != "":
			return false // more than one subresource: not one of these
		default:
			sub = name
		}
	}
	absent, isAbsent := absentConfig[sub]
	empty, isEmpty := emptyConfig[sub]
	objectTags := key != "" && sub == "tagging"
	if key != "" && !objectTags || !isAbsent && !isEmpty {
		return false
	}
	if _, err := a.svc.Bucket(bucket); err != nil {
		a.writeError(w, r, err)
		return true
	}
	switch {
	case objectTags:
		if _, err := a.svc.HeadObject(r.Context(), bucket, key); err != nil {
			a.writeError(w, r, err)
			return true
		}
		writeXML(w, http.StatusOK, struct {
			XMLName xml.Name `xml:"Tagging"`
			Xmlns   string   `xml:"xmlns,attr"`
			TagSet  struct{} `xml:"TagSet"`
		}{Xmlns: xmlns})
	case isAbsent:
		a.writeError(w, r, newErr(http.StatusNotFound, absent[0], "%s", absent[1]))
	case sub == "requestPayment":
		writeXML(w, http.StatusOK, struct {
			XMLName xml.Name `xml:"RequestPaymentConfiguration"`
			Xmlns   string   `xml:"xmlns,attr"`
			Payer   string   `xml:"Payer"`
		}{Xmlns: xmlns, Payer: "BucketOwner"})
	default:
		writeXML(w, http.StatusOK, struct {
			XMLName xml.Name
			Xmlns   string `xml:"xmlns,attr"`
		}{XMLName: xml.Name{Local: empty}, Xmlns: xmlns})
	}
	return true
}
