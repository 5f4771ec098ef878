package dataapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/nimbus-run/nimbus/api"
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
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast api.PutItemRequest
		if !decodePutItem(body, &fast) {
			return
		}
		var slow api.PutItemRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&slow); err != nil {
			t.Fatalf("%s: the fast decoder accepts what the decoder refuses: %v", body, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%s: fast %+v, decoder %+v", body, fast, slow)
		}
	})
}
