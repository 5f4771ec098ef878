package urlpath_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nimbus-run/nimbus/internal/urlpath"
)

// Every key reaches a {key...} route unchanged: no redirect to a cleaned
// path, no lost or merged segment.
func TestKeyRoundTripsThroughServeMux(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /objects/{key...}", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.PathValue("key")))
	})
	for _, key := range []string{"a", "img/cat.png", "a//b", "dots/../x", ".", "..", "/odd", "dir/", "sp ace/ü?#%", "a/./b"} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", "/objects/"+urlpath.Key(key), nil))
		if w.Code != 200 || w.Body.String() != key {
			t.Errorf("key %q: status %d, routed as %q", key, w.Code, w.Body.String())
		}
	}
	if got := urlpath.Key("img/cat.png"); got != "img/cat.png" {
		t.Errorf("plain key escaped to %q, want its slashes kept", got)
	}
}
