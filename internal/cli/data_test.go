package cli_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/cli"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// TestCLITables drives `nimbus table` against a node: create, ls, put
// (conditional), get, query, scan, and rm, which needs --force for a
// table holding items.
func TestCLITables(t *testing.T) {
	n := nodetest.Start(t, node.Config{})
	if r := run(t, n, "", "table", "create", "orders", "--key", "customer", "--sort", "created"); r.code != 0 || !strings.Contains(r.stdout, "orders") {
		t.Fatalf("create: %+v", r)
	}
	if r := run(t, n, "", "table", "create", "bad name"); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "--key") {
		t.Fatalf("create without --key: %+v", r)
	}
	if r := run(t, n, "", "table", "ls"); r.code != 0 || !strings.Contains(r.stdout, "orders") || !strings.Contains(r.stdout, "customer") {
		t.Fatalf("ls: %+v", r)
	}
	for i, day := range []string{"2024-05-01", "2024-05-02", "2024-05-03"} {
		item := `{"customer":"c1","created":"` + day + `","total":` + string(rune('1'+i)) + `}`
		if r := run(t, n, "", "table", "put", "orders", item); r.code != 0 || !strings.Contains(r.stdout, "revision") {
			t.Fatalf("put %s: %+v", item, r)
		}
	}
	// Stdin, and a conditional put that loses.
	if r := run(t, n, `{"customer":"c2","created":"2024-06-01"}`, "table", "put", "orders", "-"); r.code != 0 {
		t.Fatalf("put from stdin: %+v", r)
	}
	if r := run(t, n, "", "table", "put", "orders", `{"customer":"c2","created":"2024-06-01"}`, "--if-absent"); r.code != cli.ExitConditionFailed || !strings.Contains(r.stderr, "condition failed") {
		t.Fatalf("put --if-absent over an item: %+v", r)
	}
	if r := run(t, n, "", "table", "del", "orders", `{"customer":"c2","created":"2024-06-01"}`, "--if-revision", "999"); r.code != cli.ExitConditionFailed {
		t.Fatalf("del --if-revision of another revision: %+v", r)
	}
	if r := run(t, n, "", "table", "put", "orders", `{"customer":`); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "not valid JSON") {
		t.Fatalf("put of bad JSON: %+v", r)
	}
	// What the table holds, in bytes, once it has items.
	var tables []struct {
		Name        string `json:"name"`
		StoredBytes uint64 `json:"stored_bytes"`
	}
	if r := run(t, n, "", "table", "ls", "-o", "json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &tables) != nil || len(tables) != 1 || tables[0].StoredBytes == 0 {
		t.Fatalf("table ls -o json: %+v (%+v)", r, tables)
	}
	if r := run(t, n, "", "table", "ls"); r.code != 0 || !strings.Contains(r.stdout, "STORED") {
		t.Fatalf("table ls: %+v", r)
	}
	r := run(t, n, "", "table", "get", "orders", `{"customer":"c1","created":"2024-05-02"}`, "-o", "json")
	var en struct {
		Item     struct{ Total int }
		Revision uint64
	}
	if err := json.Unmarshal([]byte(r.stdout), &en); r.code != 0 || err != nil || en.Item.Total != 2 || en.Revision == 0 {
		t.Fatalf("get -o json: %+v (%v)", r, err)
	}
	// The key as its values, in the order the table names them.
	if r := run(t, n, "", "table", "get", "orders", "c1", "2024-05-02"); r.code != 0 || !strings.Contains(r.stdout, `"total":2`) {
		t.Fatalf("get by the key's values: %+v", r)
	}
	if r := run(t, n, "", "table", "get", "orders", "c1"); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "sort key (created)") {
		t.Fatalf("get without the sort key's value: %+v", r)
	}
	if r := run(t, n, "", "table", "del", "orders", "c2", "2024-06-01"); r.code != 0 {
		t.Fatalf("del by the key's values: %+v", r)
	}
	if r := run(t, n, "", "table", "get", "orders", `{"customer":"c2","created":"2024-06-01"}`); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "no such key") {
		t.Fatalf("get of the item deleted: %+v", r)
	}
	if r := run(t, n, "", "table", "query", "orders", "c1", "--where", `>= "2024-05-02"`, "--reverse"); r.code != 0 ||
		strings.Count(r.stdout, "\n") != 2 || strings.Index(r.stdout, "05-03") > strings.Index(r.stdout, "05-02") {
		t.Fatalf("query --reverse: %+v", r)
	}
	first := run(t, n, "", "table", "query", "orders", "c1", "--limit", "2")
	_, cursor, _ := strings.Cut(strings.TrimSpace(first.stderr), "more: --cursor ")
	if first.code != 0 || strings.Count(first.stdout, "\n") != 2 || cursor == "" {
		t.Fatalf("query page: %+v", first)
	}
	// The cursor printed continues where the page ended (the flag was
	// ignored, and the first page printed again).
	if r := run(t, n, "", "table", "query", "orders", "c1", "--limit", "2", "--cursor", cursor); r.code != 0 || r.stdout == "" || strings.Contains(first.stdout, strings.Split(r.stdout, "\n")[0]) {
		t.Fatalf("query --cursor: %+v after %q", r, first.stdout)
	}
	for _, args := range [][]string{{"query", "orders", "c1"}, {"scan", "orders"}} {
		if r := run(t, n, "", append([]string{"table"}, append(args, "--cursor", "garbage")...)...); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "malformed cursor") {
			t.Fatalf("%s with a malformed cursor: %+v", args[0], r)
		}
	}
	if r := run(t, n, "", "table", "scan", "orders", "--limit", "1", "--all"); r.code != 0 || strings.Count(r.stdout, "\n") != 3 { // c1's three: c2's was deleted
		t.Fatalf("scan --all: %+v", r)
	}
	if r := run(t, n, "", "table", "rm", "orders"); r.code == 0 || !strings.Contains(r.stderr, "force") {
		t.Fatalf("rm of a table with items: %+v", r)
	}
	if r := run(t, n, "", "table", "rm", "orders", "--force"); r.code != 0 {
		t.Fatalf("rm --force: %+v", r)
	}
	if r := run(t, n, "", "table", "ls"); r.code != 0 || strings.Contains(r.stdout, "orders") {
		t.Fatalf("ls after rm: %+v", r)
	}
}

// TestCLIObjects drives `nimbus obj` against a node: mb, put (with a
// progress bar), get (checked against the object's SHA-256), a range, ls,
// presign, rm, and rb, which needs --force for a bucket holding objects.
func TestCLIObjects(t *testing.T) {
	n := nodetest.Start(t, node.Config{})
	dir := t.TempDir()
	body := make([]byte, 3<<20+5)
	rand.Read(body)
	src := filepath.Join(dir, "photo.bin")
	if err := os.WriteFile(src, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, n, "", "obj", "mb", "avatars"); r.code != 0 {
		t.Fatalf("mb: %+v", r)
	}
	// A key ending in / takes the file's name.
	r := run(t, n, "", "obj", "put", "avatars/img/", src, "--content-type", "image/x-test", "--meta", "owner=ada")
	sum := sha256.Sum256(body)
	if r.code != 0 || !strings.Contains(r.stdout, "avatars/img/photo.bin") || !strings.Contains(r.stdout, hex.EncodeToString(sum[:])) || !strings.Contains(r.stderr, "upload [") {
		t.Fatalf("put: %+v", r)
	}
	// Conditional puts: a condition that does not hold exits 3 and
	// changes nothing.
	etag := hex.EncodeToString(sum[:])
	if r := run(t, n, "", "obj", "put", "avatars/img/photo.bin", src, "--if-absent", "-q"); r.code != cli.ExitConditionFailed || !strings.Contains(r.stderr, "precondition failed") {
		t.Fatalf("put --if-absent over an object: %+v, want exit 3", r)
	}
	if r := run(t, n, "", "obj", "put", "avatars/img/photo.bin", src, "--if-match", "0123", "-q"); r.code != cli.ExitConditionFailed {
		t.Fatalf("put --if-match another ETag: %+v, want exit 3", r)
	}
	if r := run(t, n, "", "obj", "put", "avatars/img/photo.bin", src, "--if-match", etag, "-q", "--content-type", "image/x-test", "--meta", "owner=ada"); r.code != 0 {
		t.Fatalf("put --if-match its ETag: %+v", r)
	}
	if r := run(t, n, "", "obj", "put", "avatars/new.bin", src, "--if-absent", "-q"); r.code != 0 {
		t.Fatalf("put --if-absent of a new key: %+v", r)
	}
	if r := run(t, n, "", "obj", "rm", "avatars/new.bin", "--if-match", "0123"); r.code != cli.ExitConditionFailed {
		t.Fatalf("rm --if-match another ETag: %+v, want exit 3", r)
	}
	if r := run(t, n, "", "obj", "rm", "avatars/new.bin", "--if-match", etag); r.code != 0 {
		t.Fatalf("rm --if-match its ETag: %+v", r)
	}
	if r := run(t, n, "", "obj", "rm", "avatars/new.bin"); r.code != 0 {
		t.Fatalf("rm of a deleted object: %+v", r)
	}
	out := filepath.Join(dir, "back.bin")
	if r := run(t, n, "", "obj", "get", "avatars/img/photo.bin", out); r.code != 0 || !strings.Contains(r.stderr, "download [") {
		t.Fatalf("get: %+v", r)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("downloaded %d bytes (%v), want the %d put", len(got), err, len(body))
	}
	if r := run(t, n, "", "obj", "get", "avatars/img/photo.bin", "--range", "10-19"); r.code != 0 || r.stdout != string(body[10:20]) {
		t.Fatalf("get --range to stdout: %d bytes, %q", len(r.stdout), r.stderr)
	}
	// Stored headers: a precompressed file keeps its Content-Encoding
	// and comes back as stored (the download checks its SHA-256).
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte("let x = 1;\n"), 500))
	zw.Close()
	js := filepath.Join(dir, "app.js.gz")
	if err := os.WriteFile(js, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, n, "", "obj", "put", "avatars/app.js", js, "-q", "-o", "json", "-H", "Content-Encoding: gzip", "--header", "Cache-Control: max-age=600")
	if r.code != 0 || !strings.Contains(r.stdout, `"Content-Encoding": "gzip"`) || !strings.Contains(r.stdout, `"Cache-Control": "max-age=600"`) {
		t.Fatalf("put -H: %+v", r)
	}
	if r := run(t, n, "", "obj", "get", "avatars/app.js", filepath.Join(dir, "app.js.back"), "-q"); r.code != 0 {
		t.Fatalf("get of a gzip-encoded object: %+v", r)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "app.js.back")); !bytes.Equal(got, gz.Bytes()) {
		t.Fatalf("got %d bytes back, want the %d gzip bytes", len(got), gz.Len())
	}
	if r := run(t, n, "", "obj", "stat", "avatars/app.js"); r.code != 0 || !strings.Contains(r.stdout, "header        Cache-Control: max-age=600") ||
		!strings.Contains(r.stdout, "Content-Encoding: gzip") || !strings.Contains(r.stdout, fmt.Sprintf("(%d bytes)", gz.Len())) {
		t.Fatalf("stat: %+v", r)
	}
	var st api.Object
	if r := run(t, n, "", "obj", "stat", "avatars/app.js", "-o", "json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil ||
		st.Size != int64(gz.Len()) || st.Headers["Content-Encoding"] != "gzip" || st.ContentType != "application/octet-stream" {
		t.Fatalf("stat -o json: %+v (%+v)", r, st)
	}
	if r := run(t, n, "", "obj", "stat", "avatars/none"); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "no object none in bucket avatars") {
		t.Fatalf("stat of a missing object: %+v", r)
	}
	if r := run(t, n, "", "obj", "put", "avatars/x", js, "-q", "-H", "X-Frame-Options: DENY"); r.code != 2 || !strings.Contains(r.stderr, "Cache-Control") {
		t.Fatalf("put -H of a header objects do not keep: %+v, want exit 2 naming the ones they do", r)
	}
	if r := run(t, n, "", "obj", "put", "avatars/x", js, "-q", "-H", "no colon"); r.code != 2 || !strings.Contains(r.stderr, "NAME: VALUE") {
		t.Fatalf("put -H without a colon: %+v", r)
	}
	if r := run(t, n, "", "obj", "rm", "avatars/app.js"); r.code != 0 {
		t.Fatalf("rm: %+v", r)
	}
	if r := run(t, n, "", "obj", "ls", "avatars", "--delimiter", "/"); r.code != 0 || !strings.Contains(r.stdout, "img/") {
		t.Fatalf("ls --delimiter: %+v", r)
	}
	// The bucket's stored bytes: the 3 MiB object and its info.
	if r := run(t, n, "", "obj", "ls"); r.code != 0 || !strings.Contains(r.stdout, "STORED") || !strings.Contains(r.stdout, "avatars") || !strings.Contains(r.stdout, " 3.0 MiB") {
		t.Fatalf("ls of the buckets: %+v", r)
	}
	if r := run(t, n, "", "obj", "ls", "avatars/img/"); r.code != 0 || !strings.Contains(r.stdout, "img/photo.bin") || !strings.Contains(r.stdout, "3.0 MiB") {
		t.Fatalf("ls prefix: %+v", r)
	}
	r = run(t, n, "", "obj", "presign", "avatars/img/photo.bin", "--expires", "5m")
	if r.code != 0 || !strings.HasPrefix(r.stdout, n.URL()) {
		t.Fatalf("presign: %+v", r)
	}
	resp, err := http.Get(strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(body)) {
		t.Fatalf("GET of the presigned URL: %s, %d bytes", resp.Status, resp.ContentLength)
	}
	r = run(t, n, "", "obj", "presign", "avatars/img/photo.bin", "--download-as", "ada.bin")
	if r.code != 0 {
		t.Fatalf("presign --download-as: %+v", r)
	}
	if resp, err = http.Get(strings.TrimSpace(r.stdout)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cd := resp.Header.Get("Content-Disposition"); resp.StatusCode != http.StatusOK || cd != `attachment; filename=ada.bin` {
		t.Fatalf("GET of a URL presigned --download-as: %s, Content-Disposition %q", resp.Status, cd)
	}
	if r := run(t, n, "", "obj", "get", "avatars/none", filepath.Join(dir, "none")); r.code == 0 || !strings.Contains(r.stderr, "no such key") {
		t.Fatalf("get of a missing key: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "none")); !os.IsNotExist(err) {
		t.Fatalf("get of a missing key left a file: %v", err)
	}
	for _, cmd := range []string{"get", "stat", "rm", "presign"} {
		if r := run(t, n, "", "obj", cmd, "avatars"); r.code != cli.ExitUsage || !strings.Contains(r.stderr, `"avatars" names no object: name one as BUCKET/KEY`) {
			t.Fatalf("%s of a bucket's name: %+v, want exit 2 saying an object is named BUCKET/KEY", cmd, r)
		}
	}
	if r := run(t, n, "", "obj", "rb", "avatars"); r.code == 0 || !strings.Contains(r.stderr, "force") {
		t.Fatalf("rb of a bucket with objects: %+v", r)
	}
	if r := run(t, n, "", "obj", "rm", "avatars/img/photo.bin"); r.code != 0 {
		t.Fatalf("rm: %+v", r)
	}
	if r := run(t, n, "", "obj", "rb", "avatars"); r.code != 0 {
		t.Fatalf("rb of an empty bucket: %+v", r)
	}
}

// TestCLIGetChecksDigest: a download whose bytes do not match the
// Repr-Digest the server sent fails, and leaves no file behind.
func TestCLIGetChecksDigest(t *testing.T) {
	body := []byte("the bytes the server sends")
	wrong := sha256.Sum256([]byte("other bytes"))
	right := sha256.Sum256(body)
	digest := wrong[:]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderReprDigest, api.FormatReprDigest(digest))
		w.Write(body)
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "out.bin")
	get := func() result {
		var o, e bytes.Buffer
		code := cli.Run(t.Context(), []string{"--server", srv.URL, "obj", "get", "b/k", out}, nil, &o, &e)
		return result{code, o.String(), e.String()}
	}
	if r := get(); r.code != cli.ExitError || !strings.Contains(r.stderr, "do not match the object's SHA-256") {
		t.Fatalf("get of damaged bytes: %+v", r)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the damaged download was left at %s: %v", out, err)
	}
	digest = right[:]
	if r := get(); r.code != 0 {
		t.Fatalf("get of intact bytes: %+v", r)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("downloaded %q (%v)", got, err)
	}
}

// TestCLIUploads lists the multipart uploads in progress into a bucket
// and aborts them by id and by age.
func TestCLIUploads(t *testing.T) {
	n := nodetest.Start(t, node.Config{})
	c := nodetest.Client(n)
	ctx := context.Background()
	if _, err := c.PutBucket(ctx, "media"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, key := range []string{"a.mov", "b.mov", "c.mov"} {
		u, err := c.CreateUpload(ctx, "media", &api.Upload{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.UploadPart(ctx, "media", u.ID, 1, strings.NewReader("part"), 4); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	r := run(t, n, "", "obj", "uploads", "media")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ID") {
		t.Fatalf("uploads: %+v", r)
	}
	for i, key := range []string{"a.mov", "b.mov", "c.mov"} {
		if !strings.Contains(r.stdout, ids[i]) || !strings.Contains(r.stdout, key) {
			t.Fatalf("uploads: %q, want %s (%s)", r.stdout, ids[i], key)
		}
	}
	if r := run(t, n, "", "obj", "uploads", "media", "--abort", ids[1]); r.code != 0 || !strings.Contains(r.stdout, "aborted 1 uploads") {
		t.Fatalf("--abort: %+v", r)
	}
	var ae *api.Error
	if _, err := c.GetUpload(ctx, "media", ids[1]); !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
		t.Fatalf("aborted upload: %v", err)
	}
	if r := run(t, n, "", "obj", "uploads", "media", "--abort", ids[1]); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "no such multipart upload") {
		t.Fatalf("--abort of an aborted upload: %+v, want exit 2", r)
	}
	if r := run(t, n, "", "obj", "uploads", "media", "--abort-older-than", "-1s"); r.code != cli.ExitUsage {
		t.Fatalf("a negative age: %+v, want exit 2", r)
	}
	if r := run(t, n, "", "obj", "uploads", "media", "--abort-older-than", "1h"); r.code != 0 || !strings.Contains(r.stdout, "aborted 0 uploads") {
		t.Fatalf("--abort-older-than 1h: %+v, want none aborted", r)
	}
	r = run(t, n, "", "obj", "uploads", "media", "--abort-older-than", "1ns", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, ids[0]) || !strings.Contains(r.stdout, ids[2]) {
		t.Fatalf("--abort-older-than 1ns: %+v", r)
	}
	if r := run(t, n, "", "obj", "uploads", "media", "-o", "json"); r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("uploads after aborting all: %+v", r)
	}
}

// TestCLITableChanges reads a table's change stream: every change from the
// oldest, a page with where to go on, JSON, a bad --from, and --follow,
// which prints a change as it is made (the node holds its request until
// then), rides out a node gone away, and stops when interrupted.
func TestCLITableChanges(t *testing.T) {
	n := nodetest.Start(t, node.Config{})
	c := nodetest.Client(n)
	ctx := context.Background()
	if _, err := c.PutTable(ctx, &api.Table{Name: "orders", Key: "id"}); err != nil {
		t.Fatal(err)
	}
	put := func(item string) {
		t.Helper()
		if _, err := c.PutItem(ctx, "orders", &api.PutItemRequest{Item: json.RawMessage(item)}); err != nil {
			t.Fatal(err)
		}
	}
	put(`{"id":"a","v":1}`)
	put(`{"id":"a","v":2}`)
	r := run(t, n, "", "table", "changes", "orders")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 || !strings.Contains(lines[0], `INSERT {"id":"a"} {"id":"a","v":1}`) || !strings.Contains(lines[1], `MODIFY {"id":"a"} {"id":"a","v":2}`) {
		t.Fatalf("changes: %+v", r)
	}
	r = run(t, n, "", "table", "changes", "orders", "--limit", "1")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stderr, "more: --from ") {
		t.Fatalf("changes --limit 1: %+v, want one change and where to go on", r)
	}
	next := strings.TrimSpace(strings.TrimPrefix(r.stderr, "more: --from "))
	if r := run(t, n, "", "table", "changes", "orders", "--from", next); r.code != 0 || !strings.Contains(r.stdout, "MODIFY") || strings.Contains(r.stdout, "INSERT") {
		t.Fatalf("changes --from %s: %+v, want the MODIFY alone", next, r)
	}
	var page api.ChangePage
	if r := run(t, n, "", "table", "changes", "orders", "-o", "json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &page) != nil || len(page.Changes) != 2 || page.Next == 0 {
		t.Fatalf("changes -o json: %+v", r)
	}
	if r := run(t, n, "", "table", "changes", "orders", "--from", "yesterday"); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "--from") {
		t.Fatalf("changes --from yesterday: %+v, want exit 2", r)
	}

	// --follow through a proxy that can play a node gone away (503).
	target, _ := url.Parse(n.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	var down atomic.Bool
	var passed, waiting atomic.Int32 // requests passed to the node; those not yet answered
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":{"code":"Unavailable","message":"the node is restarting"}}`))
			return
		}
		passed.Add(1)
		waiting.Add(1)
		defer waiting.Add(-1)
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	fctx, stop := context.WithCancel(ctx)
	var out, errb testutil.SyncBuffer
	done := make(chan int)
	go func() {
		done <- cli.Run(fctx, []string{"--server", front.URL, "--token", n.Token(), "table", "changes", "orders", "--from", next, "--follow", "-o", "json"}, strings.NewReader(""), &out, &errb)
	}()
	nodetest.Eventually(t, 5*time.Second, "the MODIFY", func() bool { return strings.Contains(out.String(), `"MODIFY"`) })
	// The node holds --follow's request until a change comes (a long
	// poll of 20 s): this one answers it at once, and the next request
	// meets the node gone.
	nodetest.Eventually(t, 5*time.Second, "--follow's next request held by the node", func() bool { return passed.Load() == 2 && waiting.Load() == 1 })
	down.Store(true)
	put(`{"id":"b","v":1}`)
	nodetest.Eventually(t, 5*time.Second, "the INSERT made while --follow waited", func() bool { return strings.Contains(out.String(), `"INSERT"`) })
	nodetest.Eventually(t, 5*time.Second, "--follow to say it asks again", func() bool { return strings.Contains(errb.String(), "asking again") })
	if err := c.DeleteItem(ctx, "orders", json.RawMessage(`{"id":"a"}`), 0); err != nil {
		t.Fatal(err)
	}
	down.Store(false)
	nodetest.Eventually(t, 5*time.Second, "the REMOVE made after --follow began, once the node is back", func() bool { return strings.Contains(out.String(), `"REMOVE"`) })
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("--follow interrupted: exit %d, %s", code, errb.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !json.Valid([]byte(l)) {
			t.Fatalf("--follow -o json printed %q, want a JSON object per line", l)
		}
	}
}
