package data_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

func TestObjects(t *testing.T) {
	n, c := startNode(t)
	ctx := context.Background()
	if _, err := c.PutBucket(ctx, "avatars"); err != nil {
		t.Fatal(err)
	}
	// Bigger than a few chunks, not a multiple of the chunk size.
	body := make([]byte, 3<<20+12345)
	rand.Read(body)
	o, err := c.PutObject(ctx, "avatars", "img/a.bin", bytes.NewReader(body), int64(len(body)), "application/x-test", map[string]string{"owner": "ada"})
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(body); o.Size != int64(len(body)) || o.ETag != hex.EncodeToString(sum[:]) {
		t.Fatalf("put = %+v, want the SHA-256 for ETag", o)
	}
	for _, tc := range []struct {
		rng        string
		start, end int // end exclusive
	}{
		{"", 0, len(body)},
		{"bytes=0-0", 0, 1},
		{"bytes=262143-262144", 262143, 262145}, // across a chunk boundary
		{"bytes=1000000-", 1000000, len(body)},
		{"bytes=-100", len(body) - 100, len(body)},
	} {
		t.Run("range "+tc.rng, func(t *testing.T) {
			resp, err := c.GetObject(ctx, "avatars", "img/a.bin", tc.rng)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, body[tc.start:tc.end]) {
				t.Fatalf("got %d bytes, want %d (bytes %d-%d)", len(got), tc.end-tc.start, tc.start, tc.end)
			}
			if tc.rng != "" && resp.StatusCode != http.StatusPartialContent {
				t.Fatalf("status %d, want 206", resp.StatusCode)
			}
			if resp.Header.Get("Content-Type") != "application/x-test" || resp.Header.Get(api.HeaderMetaPrefix+"Owner") != "ada" {
				t.Fatalf("headers %v", resp.Header)
			}
		})
	}
	if _, err := c.GetObject(ctx, "avatars", "img/a.bin", "bytes=99999999-"); !isCode(err, api.CodeInvalidRange) {
		t.Fatalf("range past the end: err = %v, want InvalidRange", err)
	}
	if _, err := c.GetObject(ctx, "avatars", "img/none", ""); !isCode(err, api.CodeNotFound) {
		t.Fatalf("missing: err = %v", err)
	}
	for _, k := range []string{"img/b.png", "img/sub/c.png", "doc/d.txt", "e.txt"} {
		if _, err := c.PutObject(ctx, "avatars", k, strings.NewReader(k), int64(len(k)), "", nil); err != nil {
			t.Fatal(err)
		}
	}
	l, err := c.ListObjects(ctx, "avatars", "img/", "/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Objects) != 2 || l.Objects[0].Key != "img/a.bin" || len(l.CommonPrefixes) != 1 || l.CommonPrefixes[0] != "img/sub/" {
		t.Fatalf("list = %+v", l)
	}
	var keys []string
	cur := ""
	for {
		l, err := c.ListObjects(ctx, "avatars", "", "", cur, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range l.Objects {
			keys = append(keys, o.Key)
		}
		if cur = l.Cursor; cur == "" {
			break
		}
	}
	if strings.Join(keys, ",") != "doc/d.txt,e.txt,img/a.bin,img/b.png,img/sub/c.png" {
		t.Fatalf("paged keys %v", keys)
	}
	cp, err := c.CopyObject(ctx, "avatars", &api.CopyObjectRequest{SourceKey: "img/a.bin", Key: "copy.bin"})
	if err != nil || cp.ETag != o.ETag || cp.Metadata["owner"] != "ada" {
		t.Fatalf("copy = %+v, %v", cp, err)
	}

	// Presigned URLs: the URL works once minted; tampering or expiry is 403.
	ps, err := c.Presign(ctx, "avatars", &api.PresignRequest{Key: "img/b.png", Method: "GET", Expires: "1m"})
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, b := get(n.URL() + ps.Path); code != 200 || b != "img/b.png" {
		t.Fatalf("presigned GET: %d %q", code, b)
	}
	// A browser revalidating what it cached: 304, no body; HEAD too.
	conditional := func(method, header, value string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, n.URL()+ps.Path, nil)
		req.Header.Set(header, value)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	first, _ := conditional(http.MethodGet, "Cache-Control", "no-cache")
	etag := first.Header.Get("ETag")
	if etag == "" {
		t.Fatal("a presigned GET without an ETag")
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		if resp, b := conditional(m, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified || b != "" || resp.Header.Get("ETag") != etag {
			t.Fatalf("%s If-None-Match its ETag: %d %q, ETag %q; want 304, no body, the ETag", m, resp.StatusCode, b, resp.Header.Get("ETag"))
		}
	}
	if resp, b := conditional(http.MethodGet, "If-Match", `"other"`); resp.StatusCode != http.StatusPreconditionFailed || !strings.Contains(b, api.CodePreconditionFailed) {
		t.Fatalf("If-Match another ETag: %d %q, want 412 PreconditionFailed", resp.StatusCode, b)
	}
	if resp, b := conditional(http.MethodGet, "If-None-Match", `"other"`); resp.StatusCode != http.StatusOK || b != "img/b.png" {
		t.Fatalf("If-None-Match another ETag: %d %q, want the object", resp.StatusCode, b)
	}
	if code, _ := get(n.URL() + strings.Replace(ps.Path, "img/b.png", "img/a.bin", 1)); code != 403 {
		t.Fatalf("tampered key: %d, want 403", code)
	}
	if code, _ := get(n.URL() + strings.Replace(ps.Path, "expires=", "expires=9", 1)); code != 403 {
		t.Fatalf("tampered expiry: %d, want 403", code)
	}
	up, err := c.Presign(ctx, "avatars", &api.PresignRequest{Key: "up.txt", Method: "PUT"})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, n.URL()+up.Path, strings.NewReader("hello"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("presigned PUT: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, _ := get(n.URL() + up.Path); code != 403 {
		t.Fatalf("GET with a PUT URL: %d, want 403", code)
	}

	if err := c.DeleteBucket(ctx, "avatars", false); !isCode(err, api.CodeNotEmpty) {
		t.Fatalf("delete non-empty bucket: %v", err)
	}
	if err := c.DeleteObject(ctx, "avatars", "e.txt"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteBucket(ctx, "avatars", true); err != nil {
		t.Fatal(err)
	}
}

// TestBucketRecreatedEmpty: a bucket deleted and created again under its
// name starts empty, though nats-server may hand the new stream the old
// one's files (data's leftovers: ten quick rounds make that likely).
func TestBucketRecreatedEmpty(t *testing.T) {
	_, c := startNode(t)
	ctx := context.Background()
	for round := range 10 {
		if _, err := c.PutBucket(ctx, "again"); err != nil {
			t.Fatal(err)
		}
		l, err := c.ListObjects(ctx, "again", "", "", "", 0)
		if err != nil || len(l.Objects) != 0 {
			t.Fatalf("round %d: the new bucket lists %+v, %v; want nothing", round, l, err)
		}
		body := strings.Repeat("x", round+1)
		if _, err := c.PutObject(ctx, "again", "k", strings.NewReader(body), int64(len(body)), "", nil); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := c.DeleteBucket(ctx, "again", true); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStoredHeaders: the Nimbus API keeps an object's Cache-Control,
// Content-Encoding and the other stored headers, serves them with gets and
// heads and lists them in the object's JSON; a gzip-encoded object comes
// back to api.Client as stored (Go's transport would inflate it); a header
// objects do not keep, or a value with control characters, is refused.
func TestStoredHeaders(t *testing.T) {
	n, c := startNode(t)
	ctx := context.Background()
	if _, err := c.PutBucket(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Repeat("console.log('hi');\n", 200)))
	zw.Close()
	req, _ := http.NewRequest(http.MethodPut, n.URL()+"/api/v1/buckets/web/objects/app.js", bytes.NewReader(gz.Bytes()))
	req.Header.Set("Authorization", "Bearer "+n.Token())
	req.Header.Set("Content-Type", "text/javascript")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Cache-Control", "max-age=600")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var put api.Object
	json.NewDecoder(resp.Body).Decode(&put)
	resp.Body.Close()
	if resp.StatusCode != 200 || put.Headers["Content-Encoding"] != "gzip" || put.Headers["Cache-Control"] != "max-age=600" {
		t.Fatalf("put: %d, headers %v", resp.StatusCode, put.Headers)
	}
	get, err := c.GetObject(ctx, "web", "app.js", "")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if get.Header.Get("Content-Encoding") != "gzip" || get.Header.Get("Cache-Control") != "max-age=600" {
		t.Errorf("get: Content-Encoding %q, Cache-Control %q", get.Header.Get("Content-Encoding"), get.Header.Get("Cache-Control"))
	}
	if !bytes.Equal(body, gz.Bytes()) {
		t.Errorf("get: %d bytes, want the %d gzip bytes as stored", len(body), gz.Len())
	}

	for name, value := range map[string]string{"X-Frame-Options": "DENY", "Content-Disposition": "a\x01b"} {
		_, err := n.Data.PutObject(ctx, "web", "bad.js", strings.NewReader("x"), 1, data.PutObjectOptions{Headers: map[string]string{name: value}})
		if !errors.Is(err, function.ErrInvalid) {
			t.Errorf("header %s: %q: %v, want an invalid-request error", name, value, err)
		}
	}
	if _, err := n.Data.HeadObject(ctx, "web", "bad.js"); !data.IsNotFound(err) {
		t.Errorf("a refused put stored something: %v", err)
	}
}

// TestPresignedCORS: a web page of another origin can upload through a
// presigned PUT URL and read through a presigned GET URL, as a browser
// does it: the preflight is answered, responses (refusals too) allow the
// page's origin and let its scripts read the object's headers.
func TestPresignedCORS(t *testing.T) {
	n, c := startNode(t)
	ctx := context.Background()
	if _, err := c.PutBucket(ctx, "uploads"); err != nil {
		t.Fatal(err)
	}
	up, err := c.Presign(ctx, "uploads", &api.PresignRequest{Key: "photo.jpg", Method: "PUT"})
	if err != nil {
		t.Fatal(err)
	}
	const origin = "https://app.example.com"
	send := func(method, path string, body io.Reader, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, n.URL()+path, body)
		req.Header.Set("Origin", origin)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	pre := send(http.MethodOptions, up.Path, nil, map[string]string{
		"Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type, cache-control"})
	if pre.StatusCode != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(pre.Header.Get("Access-Control-Allow-Methods"), "PUT") ||
		!strings.Contains(strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers")), "cache-control") {
		t.Fatalf("preflight of a presigned PUT: %d %v", pre.StatusCode, pre.Header)
	}
	put := send(http.MethodPut, up.Path, strings.NewReader("jpeg bytes"), map[string]string{"Content-Type": "image/jpeg"})
	if put.StatusCode != 200 || put.Header.Get("Access-Control-Allow-Origin") != "*" || put.Header.Get("Access-Control-Expose-Headers") == "" {
		t.Fatalf("cross-origin presigned PUT: %d %v", put.StatusCode, put.Header)
	}
	down, err := c.Presign(ctx, "uploads", &api.PresignRequest{Key: "photo.jpg", Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if get := send(http.MethodGet, down.Path, nil, nil); get.StatusCode != 200 || get.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("cross-origin presigned GET: %d %v", get.StatusCode, get.Header)
	}
	// A refusal reaches the page's script too, which can then say why.
	bad := send(http.MethodGet, strings.Replace(down.Path, "photo.jpg", "other.jpg", 1), nil, nil)
	if bad.StatusCode != 403 || bad.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("tampered presigned GET: %d %v", bad.StatusCode, bad.Header)
	}
	// The management API itself stays same-origin.
	resp := send(http.MethodGet, "/api/v1/buckets/uploads", nil, map[string]string{"Authorization": "Bearer " + n.Token()})
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("the management API answered a cross-origin request with CORS headers: %v", resp.Header)
	}
}

// TestPresignedDownloadName: a presigned GET URL minted with a download
// name makes browsers save the object under it (Content-Disposition, with
// RFC 2231's encoding for a name that is not ASCII); the name is signed
// with the URL, and only a GET URL takes one.
func TestPresignedDownloadName(t *testing.T) {
	n, c := startNode(t)
	ctx := context.Background()
	if _, err := c.PutBucket(ctx, "invoices"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, "invoices", "2026/0042.pdf", strings.NewReader("%PDF-1.7"), 8, "application/pdf", nil); err != nil {
		t.Fatal(err)
	}
	ps, err := c.Presign(ctx, "invoices", &api.PresignRequest{Key: "2026/0042.pdf", Method: "GET", Download: "Rechnung März.pdf"})
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(method, n.URL()+ps.Path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
		if resp.StatusCode != 200 || err != nil || params["filename"] != "Rechnung März.pdf" ||
			!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
			t.Fatalf("%s: %d, Content-Disposition %q (%v)", method, resp.StatusCode, resp.Header.Get("Content-Disposition"), err)
		}
	}
	tampered := strings.Replace(ps.Path, "download=", "download=x", 1)
	if resp, err := http.Get(n.URL() + tampered); err != nil || resp.StatusCode != 403 {
		t.Fatalf("a changed download name: %v %v, want 403", resp, err)
	}
	plain, err := c.Presign(ctx, "invoices", &api.PresignRequest{Key: "2026/0042.pdf", Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(n.URL() + plain.Path + "&download=evil.html"); err != nil || resp.StatusCode != 403 {
		t.Fatalf("a download name added to a URL minted without one: %v %v, want 403", resp, err)
	}
	if _, err := c.Presign(ctx, "invoices", &api.PresignRequest{Key: "up.pdf", Method: "PUT", Download: "x.pdf"}); !isCode(err, api.CodeInvalid) {
		t.Fatalf("a PUT URL with a download name: %v, want InvalidRequest", err)
	}
	if _, err := c.Presign(ctx, "invoices", &api.PresignRequest{Key: "2026/0042.pdf", Method: "GET", Download: "../../etc/passwd"}); !isCode(err, api.CodeInvalid) {
		t.Fatalf("a download name with a path: %v, want InvalidRequest", err)
	}
}

// TestConcurrentWritesOfOneKey: puts and deletes of one key from many
// goroutines leave one of the objects put, or none, whole; and no chunks of
// the others. Each write replaces the info it read, or reads again: before,
// a put that replaced another put landed meanwhile left that put's chunks in
// the stream for good. After the sweep's compaction the key has one info.
func TestConcurrentWritesOfOneKey(t *testing.T) {
	n, _ := startNode(t)
	ctx := context.Background()
	if _, _, err := n.Data.PutBucket(ctx, "contended"); err != nil {
		t.Fatal(err)
	}
	bodies := make([][]byte, 8)
	for i := range bodies {
		bodies[i] = bytes.Repeat([]byte{byte('a' + i)}, 600_000+i) // three chunks
	}
	var wg sync.WaitGroup
	for round := range 5 {
		for i, b := range bodies {
			wg.Go(func() {
				if round == 4 && i%3 == 0 {
					if err := n.Data.DeleteObject(ctx, "contended", "k"); err != nil {
						t.Error(err)
					}
					return
				}
				if _, err := n.Data.PutObject(ctx, "contended", "k", bytes.NewReader(b), int64(len(b)), data.PutObjectOptions{}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	stream, err := n.Store.JS.Stream(ctx, "OBJ_"+data.BucketPrefix+"contended")
	if err != nil {
		t.Fatal(err)
	}
	chunks := func() uint64 {
		si, err := stream.Info(ctx, jetstream.WithSubjectFilter("$O."+data.BucketPrefix+"contended.C.>"))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, c := range si.State.Subjects {
			n += c
		}
		return n
	}
	// The chunks of the objects replaced and deleted are purged a moment
	// after (purges.go).
	obj, err := n.Data.GetObject(ctx, "contended", "k", "")
	switch {
	case errors.Is(err, data.ErrNoSuchKey):
		testutil.Eventually(t, "no chunk left of the deleted key", func() bool { return chunks() == 0 })
	case err != nil:
		t.Fatal(err)
	default:
		got, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil || !slices.ContainsFunc(bodies, func(b []byte) bool { return bytes.Equal(b, got) }) {
			t.Fatalf("the key holds %d bytes (%v), not one of the objects put", len(got), err)
		}
		testutil.Eventually(t, "the object's 3 chunks alone", func() bool { return chunks() == 3 })
	}
	n.Data.CompactInfos(ctx)
	if got := objectInfos(t, n, "contended", "k"); got != 1 {
		t.Errorf("after compaction the key has %d infos, want 1", got)
	}
}

// TestNATSClientsReadObjects reads what Nimbus writes with nats.go's own
// object store client, which checks every object against the SHA-256
// digest of its info: objects of one and of many chunks, with and without
// an MD5 ETag (the hashing of a put runs apart from its reading and
// publishing), and a key written twice.
func TestNATSClientsReadObjects(t *testing.T) {
	n, _ := startNode(t)
	ctx := context.Background()
	if _, _, err := n.Data.PutBucket(ctx, "shared"); err != nil {
		t.Fatal(err)
	}
	obs, err := n.Store.JS.ObjectStore(ctx, data.BucketPrefix+"shared")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  string
		size int
		md5  bool
	}{
		{"empty", 0, false},
		{"small", 1000, true},
		{"one-chunk", data.ChunkSize, false},
		{"many", 9*data.ChunkSize + 777, false},
		{"many-md5", 9*data.ChunkSize + 777, true},
		{"many", 5*data.ChunkSize + 1, true}, // replaces the first "many"
	} {
		body := make([]byte, tc.size)
		rand.Read(body)
		o, err := n.Data.PutObject(ctx, "shared", tc.key, bytes.NewReader(body), int64(len(body)), data.PutObjectOptions{MD5ETag: tc.md5})
		if err != nil {
			t.Fatalf("put %s: %v", tc.key, err)
		}
		want := sha256.Sum256(body)
		if tc.md5 {
			sum := md5.Sum(body)
			if o.ETag != hex.EncodeToString(sum[:]) {
				t.Errorf("%s: ETag %s, want the MD5 %x", tc.key, o.ETag, sum)
			}
		} else if o.ETag != hex.EncodeToString(want[:]) {
			t.Errorf("%s: ETag %s, want the SHA-256 %x", tc.key, o.ETag, want)
		}
		got, err := obs.GetBytes(ctx, tc.key)
		if err != nil {
			t.Fatalf("nats.go reads %s: %v", tc.key, err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("nats.go reads %s: %d bytes, not the %d put", tc.key, len(got), len(body))
		}
	}
}

// TestConditionalDelete: DELETE with If-Match through the management API
// (api.Client.DeleteObjectIf) deletes only the object with that ETag, or
// with "*" only an object that exists.
func TestConditionalDelete(t *testing.T) {
	_, c := startNode(t)
	ctx := context.Background()
	if _, err := c.PutBucket(ctx, "notes"); err != nil {
		t.Fatal(err)
	}
	o, err := c.PutObject(ctx, "notes", "n", strings.NewReader("first"), 5, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var ae *api.Error
	if err := c.DeleteObjectIf(ctx, "notes", "n", "0123"); !errors.As(err, &ae) || ae.Code != api.CodePreconditionFailed {
		t.Fatalf("delete with another ETag: %v", err)
	}
	if _, err := c.HeadObject(ctx, "notes", "n"); err != nil {
		t.Fatalf("the object after a refused delete: %v", err)
	}
	if err := c.DeleteObjectIf(ctx, "notes", "n", o.ETag); err != nil {
		t.Fatalf("delete with its ETag: %v", err)
	}
	if err := c.DeleteObjectIf(ctx, "notes", "n", "*"); !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
		t.Fatalf("delete if it exists, of a deleted object: %v", err)
	}
}
