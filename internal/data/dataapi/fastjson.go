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
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipWS(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return true
	}
	for i < len(obj) {
		kend := skipString(obj, i)
		name := obj[i+1 : kend-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			return false
		}
		i = skipWS(obj, skipWS(obj, kend)+1) // past ':'
		vend := skipValue(obj, i)
		if !f(name, obj[i:vend]) {
			return false
		}
		i = skipWS(obj, vend)
		if i >= len(obj) || obj[i] == '}' {
			return true
		}
		i = skipWS(obj, i+1) // past ','
	}
	return true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}
