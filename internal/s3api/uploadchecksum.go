package s3api

import (
	"crypto/sha256"
	"io"
	"net/http"
	"strings"

	"github.com/nimbus-run/nimbus/internal/data"
)

// An upload's checksum. CreateMultipartUpload may name an algorithm
// (x-amz-checksum-algorithm) and how the object's checksum is made of the
// parts (x-amz-checksum-type: COMPOSITE, a checksum of the parts'
// checksums, or FULL_OBJECT, a CRC of the bytes). S3 then gives every
// part a checksum of that algorithm, computing it when the part carries
// none and refusing a part that carries another, and gives the object its
// checksum at completion, computing it when the completion declares none.
// The upload record keeps the declaration (data.Upload.Checksum).
type uploadChecksum struct {
	label string // "CRC32", ...; "" when the upload declared none
	typ   string // "COMPOSITE" or "FULL_OBJECT"
}

// uploadChecksumOf reads a CreateMultipartUpload's declaration.
func uploadChecksumOf(h http.Header) (uploadChecksum, error) {
	name, typ := h.Get("X-Amz-Checksum-Algorithm"), strings.ToUpper(h.Get("X-Amz-Checksum-Type"))
	if name == "" {
		if typ != "" {
			return uploadChecksum{}, newErr(http.StatusBadRequest, "InvalidRequest", "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.")
		}
		return uploadChecksum{}, nil
	}
	alg, ok := checksumAlgorithms[strings.ToLower(name)]
	if !ok {
		return uploadChecksum{}, newErr(http.StatusBadRequest, "InvalidRequest", "Checksum algorithm %q is not one S3 knows: use CRC32, CRC32C, CRC64NVME, SHA1 or SHA256.", truncate(name, 40))
	}
	switch {
	case typ == "" && alg.label == "CRC64NVME":
		typ = "FULL_OBJECT" // its only type
	case typ == "":
		typ = "COMPOSITE"
	case typ == "FULL_OBJECT" && !isCRC(alg.label):
		return uploadChecksum{}, newErr(http.StatusBadRequest, "InvalidRequest", "The FULL_OBJECT checksum type cannot be used with the %s checksum algorithm.", strings.ToLower(alg.label))
	case typ == "COMPOSITE" && alg.label == "CRC64NVME":
		return uploadChecksum{}, newErr(http.StatusBadRequest, "InvalidRequest", "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.")
	case typ != "COMPOSITE" && typ != "FULL_OBJECT":
		return uploadChecksum{}, newErr(http.StatusBadRequest, "InvalidRequest", "Value for x-amz-checksum-type header is invalid: use FULL_OBJECT or COMPOSITE.")
	}
	return uploadChecksum{label: alg.label, typ: typ}, nil
}

// keptUploadChecksum reads the declaration an upload record keeps.
func keptUploadChecksum(u *data.Upload) uploadChecksum {
	label, typ, _ := strings.Cut(u.Checksum, " ")
	return uploadChecksum{label: label, typ: typ}
}

// String is the form the upload record keeps: "CRC32 COMPOSITE", "" for none.
func (c uploadChecksum) String() string {
	if c.label == "" {
		return ""
	}
	return c.label + " " + c.typ
}

// header sets the answer's x-amz-checksum-algorithm and -type.
func (c uploadChecksum) header(w http.ResponseWriter) {
	if c.label != "" {
		w.Header().Set("X-Amz-Checksum-Algorithm", c.label)
		w.Header().Set("X-Amz-Checksum-Type", c.typ)
	}
}

// forPart makes a part's sums (checkUpload's) carry the upload's
// checksum: a part that declares another is refused; one that declares
// none has it computed as its body streams.
func (c uploadChecksum) forPart(body io.Reader, u *upload) (io.Reader, *upload, error) {
	if c.label == "" {
		return body, u, nil
	}
	if u != nil && u.sum != nil {
		if u.sum.label != c.label {
			return nil, nil, newErr(http.StatusBadRequest, "InvalidRequest", "Checksum Type mismatch occurred, expected checksum Type: %s, actual checksum Type: %s",
				strings.ToLower(c.label), strings.ToLower(u.sum.label))
		}
		return body, u, nil
	}
	if u == nil {
		u = &upload{}
	}
	alg := checksumAlgorithms[strings.ToLower(c.label)]
	u.sum = &digestCheck{header: checksumHeaderPrefix + strings.ToLower(c.label), label: alg.label, size: alg.size, computed: true}
	u.checks = append(u.checks, u.sum)
	if alg.new == nil {
		return body, u, nil // the data layer's SHA-256
	}
	u.sum.h = alg.new()
	return &digestReader{r: body, u: u}, u, nil
}

// forUpload makes a completion give the object the upload's checksum:
// one the completion declares must be of the upload's algorithm and type;
// without one, it is computed. A composite checksum is made of the parts'
// checksums, so the completion must name each part's, as S3 requires.
func (c *completion) forUpload(want uploadChecksum, named []data.CompletePart) error {
	if want.label == "" {
		return nil
	}
	composite := want.typ == "COMPOSITE"
	if composite {
		for _, p := range named {
			if label, _, _ := strings.Cut(p.Checksum, " "); label != want.label {
				return newErr(http.StatusBadRequest, "InvalidRequest", "The upload was created using a %s checksum. The complete request must include the checksum for each part. It was missing for part %d in the request.",
					strings.ToLower(want.label), p.Number)
			}
		}
	}
	if c.sum != nil {
		if c.sum.label != want.label {
			return newErr(http.StatusBadRequest, "InvalidRequest", "The upload was created using a %s checksum. The complete request must use the same checksum algorithm.", strings.ToLower(want.label))
		}
		if c.typ != "" && c.typ != want.typ || c.parts != 0 && !composite {
			return newErr(http.StatusBadRequest, "BadDigest", "The upload was created with the %s checksum type; the completion names another.", want.typ)
		}
		c.composite = composite || c.parts != 0
		return nil
	}
	alg := checksumAlgorithms[strings.ToLower(want.label)]
	c.sum = &digestCheck{label: alg.label, size: alg.size, computed: true}
	c.newHash, c.composite = alg.new, composite
	if c.newHash == nil {
		c.newHash = sha256.New
	}
	if composite {
		c.parts = len(named)
	}
	return nil
}
