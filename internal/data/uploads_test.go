package data_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
)

// TestUploadsThroughTheAPI sends an object in parts through the node's
// HTTP API (api.Client): parts out of order and one sent twice, the
// upload's listing, the completed object with its ETag, type, metadata and
// headers, the upload gone after; the refusals (parts too small, a wrong
// ETag, bad part numbers, an upload of another bucket, a condition that
// does not hold) store nothing and leave the upload to complete; an
// aborted upload is gone with its parts.
func TestUploadsThroughTheAPI(t *testing.T) {
	_, c := startNode(t)
	ctx := context.Background()
	for _, b := range []string{"media", "other"} {
		if _, err := c.PutBucket(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	part1, part2 := make([]byte, api.MinPartBytes+100), make([]byte, 1234)
	rand.Read(part1)
	rand.Read(part2)
	u, err := c.CreateUpload(ctx, "media", &api.Upload{Key: "films/a b.bin", ContentType: "video/x-test",
		Metadata: map[string]string{"owner": "ada"}, Headers: map[string]string{"Cache-Control": "max-age=60"}})
	if err != nil {
		t.Fatal(err)
	}
	if u.ID == "" || u.Key != "films/a b.bin" || u.Bucket != "media" {
		t.Fatalf("created %+v", u)
	}
	put := func(n int, body []byte) *api.Part {
		t.Helper()
		p, err := c.UploadPart(ctx, "media", u.ID, n, bytes.NewReader(body), int64(len(body)))
		if err != nil {
			t.Fatalf("part %d: %v", n, err)
		}
		if sum := md5.Sum(body); p.Number != n || p.Size != int64(len(body)) || p.ETag != hex.EncodeToString(sum[:]) {
			t.Fatalf("part %d = %+v, want its size and MD5", n, p)
		}
		return p
	}
	p2 := put(2, part2)
	put(1, part2) // replaced below
	p1 := put(1, part1)

	got, err := c.GetUpload(ctx, "media", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Parts) != 2 || got.Parts[0].ETag != p1.ETag || got.Parts[1].ETag != p2.ETag || got.Key != u.Key {
		t.Fatalf("upload = %+v, want parts 1 and 2 as last put", got)
	}
	if l, err := c.ListUploads(ctx, "media"); err != nil || len(l) != 1 || l[0].ID != u.ID {
		t.Fatalf("uploads = %+v, %v", l, err)
	}
	if l, err := c.ListUploads(ctx, "other"); err != nil || len(l) != 0 {
		t.Fatalf("uploads of another bucket = %+v, %v", l, err)
	}

	// Refusals, each leaving the upload as it was.
	for _, tc := range []struct {
		name  string
		err   func() error
		code  string
		words string
	}{
		{"a small part before the last", func() error {
			_, err := c.CompleteUpload(ctx, "media", u.ID, &api.CompleteUploadRequest{Parts: []api.Part{{Number: 2, ETag: p2.ETag}, {Number: 1, ETag: p1.ETag}}})
			return err
		}, api.CodeInvalid, "EntityTooSmall"},
		{"parts out of order", func() error {
			_, err := c.CompleteUpload(ctx, "media", u.ID, &api.CompleteUploadRequest{Parts: []api.Part{{Number: 1, ETag: p1.ETag}, {Number: 1, ETag: p1.ETag}}})
			return err
		}, api.CodeInvalid, "ascending"},
		{"a wrong ETag", func() error {
			_, err := c.CompleteUpload(ctx, "media", u.ID, &api.CompleteUploadRequest{Parts: []api.Part{{Number: 1, ETag: p2.ETag}, {Number: 2, ETag: p2.ETag}}})
			return err
		}, api.CodeInvalid, "part 1"},
		{"no parts", func() error {
			_, err := c.CompleteUpload(ctx, "media", u.ID, &api.CompleteUploadRequest{})
			return err
		}, api.CodeInvalid, "at least one part"},
		{"part 0", func() error {
			_, err := c.UploadPart(ctx, "media", u.ID, 0, strings.NewReader("x"), 1)
			return err
		}, api.CodeInvalid, "1 to 10000"},
		{"part 10001", func() error {
			_, err := c.UploadPart(ctx, "media", u.ID, 10001, strings.NewReader("x"), 1)
			return err
		}, api.CodeInvalid, "1 to 10000"},
		{"the upload through another bucket", func() error {
			_, err := c.UploadPart(ctx, "other", u.ID, 3, strings.NewReader("x"), 1)
			return err
		}, api.CodeNotFound, "not into bucket other"},
		{"no such upload", func() error {
			_, err := c.GetUpload(ctx, "media", strings.Repeat("0", 32))
			return err
		}, api.CodeNotFound, "upload"},
		{"a malformed id", func() error {
			return c.AbortUpload(ctx, "media", "../x")
		}, api.CodeNotFound, "upload"},
		{"a bad key", func() error {
			_, err := c.CreateUpload(ctx, "media", &api.Upload{Key: "bad\x00key"})
			return err
		}, api.CodeInvalid, "key"},
		{"no key", func() error {
			_, err := c.CreateUpload(ctx, "media", &api.Upload{})
			return err
		}, api.CodeInvalid, "key"},
	} {
		if err := tc.err(); !isCode(err, tc.code) || !strings.Contains(err.Error(), tc.words) {
			t.Errorf("%s: err = %v, want %s saying %q", tc.name, err, tc.code, tc.words)
		}
	}
	if _, err := c.HeadObject(ctx, "media", u.Key); !isCode(err, api.CodeNotFound) {
		t.Fatalf("after the refusals: head = %v, want no object", err)
	}

	// A condition that does not hold refuses the completion and leaves the
	// upload to complete.
	if _, err := c.PutObject(ctx, "media", u.Key, strings.NewReader("old"), 3, "", nil); err != nil {
		t.Fatal(err)
	}
	done := &api.CompleteUploadRequest{Parts: []api.Part{{Number: 1, ETag: p1.ETag}, {Number: 2, ETag: `"` + p2.ETag + `"`}}, IfNoneMatch: "*"}
	if _, err := c.CompleteUpload(ctx, "media", u.ID, done); !isCode(err, api.CodePreconditionFailed) {
		t.Fatalf("completion over an object with If-None-Match *: %v, want PreconditionFailed", err)
	}
	done.IfNoneMatch = ""
	o, err := c.CompleteUpload(ctx, "media", u.ID, done)
	if err != nil {
		t.Fatal(err)
	}
	whole := append(append([]byte(nil), part1...), part2...)
	sums := md5.New()
	for _, p := range []*api.Part{p1, p2} {
		b, _ := hex.DecodeString(p.ETag)
		sums.Write(b)
	}
	if want := hex.EncodeToString(sums.Sum(nil)) + "-2"; o.ETag != want || o.Size != int64(len(whole)) {
		t.Fatalf("completed = %+v, want ETag %s and size %d", o, want, len(whole))
	}
	resp, err := c.GetObject(ctx, "media", u.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(body, whole) {
		t.Fatalf("object: %d bytes, %v; want the parts in order", len(body), err)
	}
	if h := resp.Header; h.Get("Content-Type") != "video/x-test" || h.Get(api.HeaderMetaPrefix+"Owner") != "ada" || h.Get("Cache-Control") != "max-age=60" {
		t.Fatalf("object headers %v, want the upload's type, metadata and Cache-Control", h)
	}
	if _, err := c.GetUpload(ctx, "media", u.ID); !isCode(err, api.CodeNotFound) {
		t.Fatalf("completed upload: %v, want NotFound", err)
	}

	// Abort.
	u2, err := c.CreateUpload(ctx, "media", &api.Upload{Key: "dropped"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPart(ctx, "media", u2.ID, 1, strings.NewReader("gone"), 4); err != nil {
		t.Fatal(err)
	}
	if err := c.AbortUpload(ctx, "media", u2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetUpload(ctx, "media", u2.ID); !isCode(err, api.CodeNotFound) {
		t.Fatalf("aborted upload: %v, want NotFound", err)
	}
	if l, err := c.ListUploads(ctx, "media"); err != nil || len(l) != 0 {
		t.Fatalf("uploads after completion and abort = %+v, %v", l, err)
	}
	if _, err := c.HeadObject(ctx, "media", "dropped"); !isCode(err, api.CodeNotFound) {
		t.Fatalf("aborted upload's object: %v, want none", err)
	}
}

// TestPartReplacedWhileCompleting sends a part again while its upload is
// being completed: the completion either fails, storing nothing, or makes
// the object of the parts it named, never of the part sent meanwhile
// under the ETag of the one named.
func TestPartReplacedWhileCompleting(t *testing.T) {
	_, c := startNode(t)
	ctx := context.Background()
	if _, err := c.PutBucket(ctx, "media"); err != nil {
		t.Fatal(err)
	}
	part1 := make([]byte, 40<<20)
	rand.Read(part1)
	old, replacement := []byte("the part named"), []byte("the part sent again")
	failed := 0
	for round := range 4 {
		key := "obj" + strings.Repeat("x", round)
		u, err := c.CreateUpload(ctx, "media", &api.Upload{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		p1, err := c.UploadPart(ctx, "media", u.ID, 1, bytes.NewReader(part1), int64(len(part1)))
		if err != nil {
			t.Fatal(err)
		}
		p2, err := c.UploadPart(ctx, "media", u.ID, 2, bytes.NewReader(old), int64(len(old)))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := c.CompleteUpload(ctx, "media", u.ID, &api.CompleteUploadRequest{Parts: []api.Part{{Number: 1, ETag: p1.ETag}, {Number: 2, ETag: p2.ETag}}})
			done <- err
		}()
		time.Sleep(time.Duration(round) * 10 * time.Millisecond)
		_, perr := c.UploadPart(ctx, "media", u.ID, 2, bytes.NewReader(replacement), int64(len(replacement)))
		if err := <-done; err != nil {
			failed++
			if !isCode(err, api.CodeInvalid) {
				t.Fatalf("round %d: completion failed with %v, want a 400", round, err)
			}
			if _, err := c.HeadObject(ctx, "media", key); !isCode(err, api.CodeNotFound) {
				t.Fatalf("round %d: a failed completion stored an object (%v)", round, err)
			}
			continue
		}
		resp, err := c.GetObject(ctx, "media", key, "")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[len(part1):], old) || !bytes.Equal(got[:len(part1)], part1) {
			t.Fatalf("round %d: the object ends with %q, want the part named (the part sent again: %v)", round, got[len(part1):], perr)
		}
	}
	t.Logf("%d of 4 completions failed", failed)
}
