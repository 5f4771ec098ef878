package s3api

import (
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
)

// getObjectAttributes serves GetObjectAttributes: what
// x-amz-object-attributes asks for of ETag, Checksum, ObjectParts,
// StorageClass and ObjectSize, without the object's bytes. Backup and
// sync tools use it to check an upload without downloading it.
func (a *API) getObjectAttributes(w http.ResponseWriter, r *http.Request, bucket, key string) {
	want := map[string]bool{}
	for _, v := range r.Header.Values("X-Amz-Object-Attributes") {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.TrimSpace(name)
			switch name {
			case "ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize":
				want[name] = true
			case "":
			default:
				a.writeError(w, r, newErr(http.StatusBadRequest, "InvalidArgument", "Invalid attribute name specified: %q (ETag, Checksum, ObjectParts, StorageClass or ObjectSize).", truncate(name, 40)))
				return
			}
		}
	}
	if len(want) == 0 {
		a.writeError(w, r, newErr(http.StatusBadRequest, "InvalidArgument", "x-amz-object-attributes must name at least one of ETag, Checksum, ObjectParts, StorageClass and ObjectSize."))
		return
	}
	maxParts, marker := 1000, 0
	for name, p := range map[string]*int{"X-Amz-Max-Parts": &maxParts, "X-Amz-Part-Number-Marker": &marker} {
		if s := r.Header.Get(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				a.writeError(w, r, newErr(http.StatusBadRequest, "InvalidArgument", "%s must be a non-negative integer.", strings.ToLower(name)))
				return
			}
			*p = n
		}
	}
	maxParts = min(maxParts, 1000)
	info, err := a.svc.HeadObject(r.Context(), bucket, key)
	if err != nil {
		a.writeError(w, r, err)
		return
	}

	type checksumXML struct {
		partChecksums
		Type string `xml:"ChecksumType,omitempty"`
	}
	type partXML struct {
		PartNumber int   `xml:"PartNumber"`
		Size       int64 `xml:"Size"`
	}
	type partsXML struct {
		TotalPartsCount      int       `xml:"PartsCount"`
		PartNumberMarker     int       `xml:"PartNumberMarker"`
		NextPartNumberMarker int       `xml:"NextPartNumberMarker"`
		MaxParts             int       `xml:"MaxParts"`
		IsTruncated          bool      `xml:"IsTruncated"`
		Parts                []partXML `xml:"Part"`
	}
	out := struct {
		XMLName      xml.Name     `xml:"GetObjectAttributesResponse"`
		Xmlns        string       `xml:"xmlns,attr"`
		ETag         string       `xml:"ETag,omitempty"`
		Checksum     *checksumXML `xml:"Checksum,omitempty"`
		ObjectParts  *partsXML    `xml:"ObjectParts,omitempty"`
		StorageClass string       `xml:"StorageClass,omitempty"`
		ObjectSize   *int64       `xml:"ObjectSize,omitempty"`
	}{Xmlns: xmlns}
	if want["ETag"] {
		out.ETag = info.ETag // unquoted, unlike everywhere else in S3
	}
	if want["Checksum"] {
		if label, v, typ := objectChecksum(info); label != "" {
			out.Checksum = &checksumXML{partChecksums: checksumsOf(label + " " + v), Type: typ}
		}
	}
	if want["ObjectParts"] && info.Multipart() {
		_, count, err := info.Part(1)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		parts := &partsXML{TotalPartsCount: count, PartNumberMarker: marker, MaxParts: maxParts}
		for n := marker + 1; n <= count; n++ {
			if len(parts.Parts) == maxParts {
				parts.IsTruncated = true
				break
			}
			rng, _, err := info.Part(n)
			if err != nil {
				a.writeError(w, r, err)
				return
			}
			parts.Parts = append(parts.Parts, partXML{PartNumber: n, Size: rng.Length})
			parts.NextPartNumberMarker = n
		}
		out.ObjectParts = parts
	}
	if want["StorageClass"] {
		out.StorageClass = "STANDARD"
	}
	if want["ObjectSize"] {
		out.ObjectSize = &info.Size
	}
	w.Header().Set("Last-Modified", httpTime(info.Modified))
	writeXML(w, http.StatusOK, out)
}
