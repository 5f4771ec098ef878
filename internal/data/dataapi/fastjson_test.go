package dataapi

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/data"
)

// FuzzDecodePutItem checks the fast decoder of puts against the strict
// decoder it stands in for: whatever it accepts, the decoder accepts with
// the same result.
func FuzzDecodePutItem(f *testing.F) {
	for _, s := range []string{
		`{"item":{"pk":"a","sk":1}}`,
		`{"item":{"pk":"a"},"if_absent":true}`,
		` { "item" : [1,"]"] , "if_revision" : 42 , "if_absent" : false } `,
		`{"item":{"pk":"a"},"if_revision":1e3}`,
		`{"Item":{"pk":"a"}}`, `{"item":null}`, `{"item":{},"extra":1}`, `{"it\u0065m":1}`,
		`{"item":{"pk":"a"},"if_revision":-1}`, `{"item":1,"item":2}`, `[]`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { sameAsDecoder(t, body, decodePutItem) })
}

// sameAsDecoder fails the test when fast accepts body and the strict
// decoder does not, or decodes it differently.
func sameAsDecoder[T any](t *testing.T, body []byte, fast func([]byte, *T) bool) {
	var got T
	if !fast(body, &got) {
		return
	}
	var want T
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&want); err != nil {
		t.Fatalf("%s: the fast decoder accepts what the decoder refuses: %v", body, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: fast %+v, decoder %+v", body, got, want)
	}
}

// FuzzDecodeKeyRequest is FuzzDecodePutItem for gets and deletes.
func FuzzDecodeKeyRequest(f *testing.F) {
	for _, s := range []string{
		`{"key":{"pk":"a","sk":1}}`, `{"key":{"pk":"a"},"if_revision":7}`, ` { "if_revision" : 0 , "key" : [1,"}"] } `,
		`{"key":{"pk":"a"},"if_revision":1.5}`, `{"Key":{}}`, `{"key":null}`, `{"key":{},"if_absent":true}`, `{"k\u0065y":1}`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { sameAsDecoder(t, body, decodeKeyRequest) })
}

// TestWriteEntry checks writeEntry against encoding/json's encoding of
// api.Entry: the same document once decoded.
func TestWriteEntry(t *testing.T) {
	for _, e := range []data.Entry{
		{Item: json.RawMessage(`{"pk":"a","html":"<b>&amp;</b>","n":[1,2.5,{"x":null}]}`), Revision: 42, Updated: time.Date(2026, 11, 27, 21, 0, 0, 123456789, time.UTC)},
		{Item: json.RawMessage(`{"pk":"é\u00e9\"\\"}`), Revision: 1, Updated: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))},
		{Item: json.RawMessage(`{}`), Revision: 18446744073709551615},
	} {
		rec := httptest.NewRecorder()
		writeEntry(rec, &e)
		want, err := json.Marshal(api.Entry(e))
		if err != nil {
			t.Fatal(err)
		}
		var got, exp any
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%s: %v", rec.Body, err)
		}
		json.Unmarshal(want, &exp)
		if !reflect.DeepEqual(got, exp) || rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("wrote %s (%d, %s), encoding/json %s", rec.Body, rec.Code, rec.Header().Get("Content-Type"), want)
		}
	}
}
