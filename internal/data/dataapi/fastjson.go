package dataapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway"
	"github.com/nimbus-run/nimbus/internal/jsonscan"
)

// fastBodyMax bounds the bodies readPutItem reads whole: an item of
// data.MaxItemBytes, escaped, and the envelope.
const fastBodyMax = 1 << 20

// readPutItem decodes the body of a put. The common body, {"item": ...}
// with at most if_absent and if_revision, spelled exactly, is read without
// reflection: with the write itself made cheap, encoding/json was a
// put's largest cost in this package. Any other body goes through the
// same strict decoder as readJSON, so what it accepts and how it fails do
// not change.
func readPutItem(w http.ResponseWriter, r *http.Request, req *api.PutItemRequest) bool {
	if r.ContentLength <= 0 || r.ContentLength > fastBodyMax {
		return readJSON(w, r, req)
	}
	body := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		gateway.WriteError(w, function.Invalid("body", "not a valid request: %v", err))
		return false
	}
	if decodePutItem(body, req) {
		return true
	}
	*req = api.PutItemRequest{}
	return decodeJSON(w, bytes.NewReader(body), req)
}

// decodePutItem decodes body into req when it is a valid JSON object of
// the members item, if_absent (true or false) and if_revision (a plain
// integer), and reports whether it did.
func decodePutItem(body []byte, req *api.PutItemRequest) bool {
	if !json.Valid(body) {
		return false
	}
	return eachMember(body, func(name, val []byte) bool {
		switch string(name) {
		case "item":
			req.Item = val
		case "if_absent":
			switch string(val) {
			case "true":
				req.IfAbsent = true
			case "false":
				req.IfAbsent = false
			default:
				return false
			}
		case "if_revision":
			n, err := strconv.ParseUint(string(val), 10, 64)
			if err != nil {
				return false
			}
			req.IfRevision = n
		default:
			return false
		}
		return true
	}) && req.Item != nil
}

// eachMember calls f with the name (unquoted, and only names without
// escapes are accepted) and raw value of each member of obj, a valid JSON
// document, until f returns false. It reports false when obj is not an
// object, a name has an escape, or f returned false.
func eachMember(obj []byte, f func(name, val []byte) bool) bool {
	return jsonscan.Members(obj, func(name, val []byte) bool {
		name = name[1 : len(name)-1]
		return bytes.IndexByte(name, '\\') < 0 && f(name, val)
	})
}
