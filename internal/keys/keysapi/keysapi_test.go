package keysapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/keys"
	"github.com/nimbus-run/nimbus/internal/keys/keysapi"
)

type fakeKeyring struct{ keys map[string]keys.Key }

func (f *fakeKeyring) Create(_ context.Context, name, kind string) (*keys.Key, error) {
	k := keys.Key{ID: fmt.Sprintf("NMBK%016d", len(f.keys)), Kind: "aws", Name: name, Secret: "s3cr3t", Created: time.Now()}
	f.keys[k.ID] = k
	return &k, nil
}

func (f *fakeKeyring) List() []keys.Key {
	var out []keys.Key
	for _, k := range f.keys {
		out = append(out, k) // with the secret: the API must drop it anyway
	}
	return out
}

func (f *fakeKeyring) Revoke(_ context.Context, id string) error {
	if _, ok := f.keys[id]; !ok {
		return keys.ErrNotFound
	}
	delete(f.keys, id)
	return nil
}

// mux is a gateway stand-in whose token check lets everything through.
type mux struct{ *http.ServeMux }

func (m mux) Protected(h http.HandlerFunc) http.Handler { return h }

func TestKeysAPI(t *testing.T) {
	m := mux{http.NewServeMux()}
	keysapi.Register(m, &fakeKeyring{keys: map[string]keys.Key{}})
	do := func(method, path, body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		m.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
		return w
	}
	w := do("POST", "/api/v1/keys", `{"name":"ci"}`)
	if w.Code != 201 || !strings.Contains(w.Body.String(), `"secret": "s3cr3t"`) || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %s %v", w.Code, w.Body, w.Header())
	}
	if w = do("POST", "/api/v1/keys", `{"name":"ci","secret":"mine"}`); w.Code != 400 || !strings.Contains(w.Body.String(), `"field": "secret"`) {
		t.Errorf("create with an unknown field: %d %s", w.Code, w.Body)
	}
	if w = do("POST", "/api/v1/keys", `not json`); w.Code != 400 {
		t.Errorf("create with a bad body: %d %s", w.Code, w.Body)
	}
	if w = do("GET", "/api/v1/keys", ""); w.Code != 200 || strings.Contains(w.Body.String(), "s3cr3t") || !strings.Contains(w.Body.String(), `"name": "ci"`) {
		t.Errorf("list: %d %s", w.Code, w.Body)
	}
	if w = do("DELETE", "/api/v1/keys/NMBK0000000000000000", ""); w.Code != 204 {
		t.Errorf("revoke: %d %s", w.Code, w.Body)
	}
	if w = do("DELETE", "/api/v1/keys/NMBK0000000000000000", ""); w.Code != 404 || !strings.Contains(w.Body.String(), "already revoked") {
		t.Errorf("revoke twice: %d %s", w.Code, w.Body)
	}
	if w = do("GET", "/api/v1/keys", ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"keys": []`) {
		t.Errorf("empty list: %d %s", w.Code, w.Body)
	}
}
