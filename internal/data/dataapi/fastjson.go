package dataapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway"
	"github.com/nimbus-run/nimbus/internal/jsonscan"
)

// fastBodyMax bounds the bodies readFast reads whole: an item of
// data.MaxItemBytes, escaped, and the envelope.
const fastBodyMax = 1 << 20

// readFast decodes a request body into req: the common bodies of the item
// calls by fast, without reflection (with the write itself made cheap,
// encoding/json was a put's largest cost in this package), and any other
// through the same strict decoder as readJSON, so what is accepted and how
// it fails do not change. fast reports whether it decoded the body.
func readFast[T any](w http.ResponseWriter, r *http.Request, req *T, fast func(body []byte, req *T) bool) bool {
	if r.ContentLength <= 0 || r.ContentLength > fastBodyMax {
		return readJSON(w, r, req)
	}
	body := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		gateway.WriteError(w, function.Invalid("body", "not a valid request: %v", err))
		return false
	}
	var got T // a body fast gives up on may have set some fields
	if fast(body, &got) {
		*req = got
		return true
	}
	return decodeJSON(w, bytes.NewReader(body), req)
}

// decodeKeyRequest decodes body into req when it is a valid JSON object of
// the members key and if_revision (a plain integer), and reports whether it
// did.
func decodeKeyRequest(body []byte, req *api.KeyRequest) bool {
	return json.Valid(body) && jsonscan.PlainMembers(body, func(name, val []byte) bool {
		switch string(name) {
		case "key":
			req.Key = val
			return true
		case "if_revision":
			return decodeRevision(val, &req.IfRevision)
		}
		return false
	}) && req.Key != nil
}

// decodeRevision decodes an if_revision member: a plain integer.
func decodeRevision(val []byte, rev *uint64) bool {
	n, err := strconv.ParseUint(string(val), 10, 64)
	*rev = n
	return err == nil
}

// writeEntry writes what writeJSON writes for api.Entry, without
// reflection: the item is stored as compact JSON, so it goes out as it is
// instead of being validated and compacted again. (encoding/json would
// also escape <, > and & in it, which JSON does not need.)
func writeEntry(w http.ResponseWriter, e *data.Entry) {
	b := make([]byte, 0, len(e.Item)+80)
	b = append(append(b, `{"item":`...), e.Item...)
	b = strconv.AppendUint(append(b, `,"revision":`...), e.Revision, 10)
	if !e.Updated.IsZero() {
		b = append(e.Updated.AppendFormat(append(b, `,"updated":"`...), time.RFC3339Nano), '"')
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(append(b, "}\n"...)) //nolint:errcheck // the client went away
}

// decodePutItem decodes body into req when it is a valid JSON object of
// the members item, if_absent (true or false) and if_revision (a plain
// integer), and reports whether it did.
func decodePutItem(body []byte, req *api.PutItemRequest) bool {
	return json.Valid(body) && jsonscan.PlainMembers(body, func(name, val []byte) bool {
		switch string(name) {
		case "item":
			req.Item = val
			return true
		case "if_absent":
			req.IfAbsent = string(val) == "true"
			return req.IfAbsent || string(val) == "false"
		case "if_revision":
			return decodeRevision(val, &req.IfRevision)
		}
		return false
	}) && req.Item != nil
}
