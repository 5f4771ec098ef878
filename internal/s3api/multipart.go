package s3api

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"

	"github.com/nimbus-run/nimbus/internal/data"
)

// listUploads serves ListMultipartUploads: the uploads in progress into a
// bucket, by key and then by the time they were created, with S3's prefix,
// delimiter and paging by key-marker and upload-id-marker.
func (a *API) listUploads(w http.ResponseWriter, r *http.Request, bucket string, q url.Values) {
	maxUploads, err := pageSize(q, "max-uploads")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	uploads, err := a.svc.Uploads(r.Context(), bucket)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	keyMarker, idMarker := q.Get("key-marker"), q.Get("upload-id-marker")
	enc := keyEncoder(q)
	type uploadXML struct {
		Key          string   `xml:"Key"`
		UploadID     string   `xml:"UploadId"`
		Initiator    ownerXML `xml:"Initiator"`
		Owner        ownerXML `xml:"Owner"`
		StorageClass string   `xml:"StorageClass"`
		Initiated    string   `xml:"Initiated"`
		// The upload's checksum (uploadchecksum.go), if it declared one.
		ChecksumAlgorithm string `xml:"ChecksumAlgorithm,omitempty"`
		ChecksumType      string `xml:"ChecksumType,omitempty"`
	}
	out := struct {
		XMLName            xml.Name    `xml:"ListMultipartUploadsResult"`
		Xmlns              string      `xml:"xmlns,attr"`
		Bucket             string      `xml:"Bucket"`
		KeyMarker          string      `xml:"KeyMarker"`
		UploadIDMarker     string      `xml:"UploadIdMarker"`
		NextKeyMarker      string      `xml:"NextKeyMarker,omitempty"`
		NextUploadIDMarker string      `xml:"NextUploadIdMarker,omitempty"`
		Prefix             string      `xml:"Prefix"`
		Delimiter          string      `xml:"Delimiter,omitempty"`
		MaxUploads         int         `xml:"MaxUploads"`
		EncodingType       string      `xml:"EncodingType,omitempty"`
		IsTruncated        bool        `xml:"IsTruncated"`
		Uploads            []uploadXML `xml:"Upload"`
		CommonPrefixes     []prefixXML `xml:"CommonPrefixes"`
	}{Xmlns: xmlns, Bucket: bucket, KeyMarker: enc(keyMarker), UploadIDMarker: idMarker, Prefix: enc(prefix),
		Delimiter: enc(delim), MaxUploads: maxUploads, EncodingType: q.Get("encoding-type")}
	// With an upload-id-marker, the uploads of key-marker after that one
	// follow; without, those of keys after key-marker.
	after := func(u data.Upload) bool { return u.Key > keyMarker }
	if idMarker != "" {
		passed := false
		after = func(u data.Upload) bool {
			if u.Key == keyMarker && !passed {
				passed = u.ID == idMarker
				return false
			}
			return u.Key >= keyMarker
		}
	}
	// A key-marker that is a common prefix (the last of a page) skips the
	// keys rolled up into it.
	rolledUp := func(u data.Upload) bool {
		return delim != "" && strings.HasSuffix(keyMarker, delim) && strings.HasPrefix(u.Key, keyMarker)
	}
	lastPrefix := ""
	for _, u := range uploads {
		if !strings.HasPrefix(u.Key, prefix) || !after(u) || rolledUp(u) {
			continue
		}
		cp := ""
		if delim != "" {
			if i := strings.Index(u.Key[len(prefix):], delim); i >= 0 {
				cp = u.Key[:len(prefix)+i+len(delim)]
			}
		}
		if cp != "" && cp == lastPrefix {
			continue // rolled up into the prefix already listed
		}
		if len(out.Uploads)+len(out.CommonPrefixes) == maxUploads {
			out.IsTruncated = maxUploads > 0
			break
		}
		if cp != "" {
			lastPrefix = cp
			out.CommonPrefixes = append(out.CommonPrefixes, prefixXML{Prefix: enc(cp)})
			out.NextKeyMarker, out.NextUploadIDMarker = enc(cp), ""
			continue
		}
		sum := keptUploadChecksum(&u)
		out.Uploads = append(out.Uploads, uploadXML{Key: enc(u.Key), UploadID: u.ID, Initiator: nimbusOwner, Owner: nimbusOwner,
			StorageClass: "STANDARD", Initiated: isoTime(u.Created), ChecksumAlgorithm: sum.label, ChecksumType: sum.typ})
		out.NextKeyMarker, out.NextUploadIDMarker = enc(u.Key), u.ID
	}
	writeXML(w, http.StatusOK, out)
}
