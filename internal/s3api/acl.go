package s3api

import (
	"encoding/xml"
	"io"
	"net/http"
	"strings"
)

// ACLs. Every bucket and object is private to the node's access keys,
// which is what S3 calls the canned ACL "private": the owner has
// FULL_CONTROL and no one else anything. So GetBucketAcl and GetObjectAcl
// answer that, and PutBucketAcl and PutObjectAcl accept it (s3cmd,
// Cyberduck and Terraform read ACLs; tools set "private" explicitly);
// any other grant is refused, since Nimbus could not keep it.

type granteeXML struct {
	XMLNSXsi    string `xml:"xmlns:xsi,attr"`
	Type        string `xml:"xsi:type,attr"`
	ID          string `xml:"ID,omitempty"`
	DisplayName string `xml:"DisplayName,omitempty"`
	URI         string `xml:"URI,omitempty"`
	Email       string `xml:"EmailAddress,omitempty"`
}

type grantXML struct {
	Grantee    granteeXML `xml:"Grantee"`
	Permission string     `xml:"Permission"`
}

type aclXML struct {
	XMLName xml.Name   `xml:"AccessControlPolicy"`
	Xmlns   string     `xml:"xmlns,attr,omitempty"`
	Owner   ownerXML   `xml:"Owner"`
	Grants  []grantXML `xml:"AccessControlList>Grant"`
}

// privateACL is the ACL of everything Nimbus stores.
var privateACL = aclXML{Xmlns: xmlns, Owner: nimbusOwner, Grants: []grantXML{{
	Grantee: granteeXML{
		XMLNSXsi: "http://www.w3.org/2001/XMLSchema-instance", Type: "CanonicalUser",
		ID: nimbusOwner.ID, DisplayName: nimbusOwner.DisplayName,
	},
	Permission: "FULL_CONTROL",
}}}

// maxACLBytes bounds an ACL document; S3's hold at most 100 grants.
const maxACLBytes = 64 << 10

func (a *API) acl(w http.ResponseWriter, r *http.Request, bucket, key string, body io.Reader) {
	var err error
	if key == "" {
		_, err = a.svc.Bucket(bucket)
	} else {
		_, err = a.svc.HeadObject(r.Context(), bucket, key)
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if r.Method == http.MethodGet {
		writeXML(w, http.StatusOK, privateACL)
		return
	}
	if err := privateOnly(r.Header, body); err != nil {
		a.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// privateOnly accepts an ACL that is the canned "private", given by
// x-amz-acl or as a document granting the owner FULL_CONTROL and no one
// anything else.
func privateOnly(h http.Header, body io.Reader) error {
	for name := range h {
		if strings.HasPrefix(name, "X-Amz-Grant-") {
			return aclNotKept(name + " grants")
		}
	}
	b, err := io.ReadAll(io.LimitReader(body, maxACLBytes+1))
	if err != nil {
		return err
	}
	canned := h.Get("X-Amz-Acl")
	switch {
	case canned != "" && len(b) > 0:
		return newErr(http.StatusBadRequest, "UnexpectedContent", "This request does not support content: give x-amz-acl or an AccessControlPolicy, not both.")
	case canned != "":
		if canned != "private" {
			return aclNotKept("the canned ACL " + truncate(canned, 40))
		}
		return nil
	case len(b) == 0:
		return newErr(http.StatusBadRequest, "MissingSecurityHeader", "Your request is missing x-amz-acl or an AccessControlPolicy body.")
	case len(b) > maxACLBytes:
		return newErr(http.StatusBadRequest, "MalformedACLError", "The ACL document is over %d bytes.", maxACLBytes)
	}
	var doc aclXML
	if err := xml.Unmarshal(b, &doc); err != nil {
		return newErr(http.StatusBadRequest, "MalformedACLError", "The XML you provided was not well-formed or did not validate against our published schema: %s", truncate(err.Error(), 120))
	}
	if len(doc.Grants) == 0 {
		return aclNotKept("an ACL that grants nothing, not even to the owner,")
	}
	for _, g := range doc.Grants {
		if g.Grantee.ID != nimbusOwner.ID || g.Grantee.URI != "" || g.Grantee.Email != "" || g.Permission != "FULL_CONTROL" {
			return aclNotKept("a grant of " + truncate(g.Permission, 20) + " to anyone but the owner (ID " + nimbusOwner.ID + ")")
		}
	}
	return nil
}

func aclNotKept(what string) *s3Error {
	return newErr(http.StatusNotImplemented, "NotImplemented",
		"Nimbus keeps every bucket and object private to the node's access keys (the canned ACL \"private\") and cannot keep %s: the request was refused and changed nothing", what)
}
