package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"hash/crc32"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/sdk"
)

// patternByte is byte i of the bytes sdkops's obj_upload sends (its
// patternByte).
func patternByte(i int64) byte { return byte(i*31 + i>>13) }

func patternBytes(off, n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = patternByte(off + int64(i))
	}
	return b
}

// testSDKStream stores and reads, from a function whose memory (64 MB) is
// smaller than the object, an object of 72 MB with Bucket.Upload and
// Bucket.Open: the upload streams one put; a small upload is a plain put;
// an upload whose body fails or whose condition does not hold leaves no
// object behind, nor does one whose function times out mid-body (short,
// the same code with a timeout of 10 s); a read of an object replaced
// meanwhile fails instead of mixing the two.
func testSDKStream(t *testing.T, fn, short opsFn, nd *node.Node, bucket string) {
	ctx := context.Background()
	c := nodetest.Client(nd)
	const size = 72<<20 + 12345
	want := crc32.ChecksumIEEE(patternBytes(0, size))
	noUploads := func(t *testing.T) {
		t.Helper()
		if l, err := c.ListUploads(ctx, bucket); err != nil || len(l) != 0 {
			t.Fatalf("uploads left: %+v, %v", l, err)
		}
	}

	var info sdk.ObjectInfo
	fn.ok(t, op{"op": "obj_upload", "bucket": bucket, "object": "big.bin", "size": size, "content_type": "application/x-big", "meta": map[string]string{"run": "1"}}, &info)
	if info.Size != size || strings.Contains(info.ETag, "-") || info.ContentType != "application/x-big" || info.Metadata["run"] != "1" {
		t.Fatalf("upload = %+v, want %d bytes in one put, with its type and metadata", info, size)
	}
	resp, err := c.GetObject(ctx, bucket, "big.bin", "")
	if err != nil {
		t.Fatal(err)
	}
	sum := crc32.NewIEEE()
	n, err := io.Copy(sum, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || sum.Sum32() != want {
		t.Fatalf("stored: %d bytes (%v), CRC %x; want %d, %x", n, err, sum.Sum32(), size, want)
	}
	noUploads(t)

	var read struct {
		Size  int64  `json:"size"`
		CRC32 uint32 `json:"crc32"`
		ETag  string `json:"etag"`
	}
	fn.ok(t, op{"op": "obj_read", "bucket": bucket, "object": "big.bin"}, &read)
	if read.Size != size || read.CRC32 != want || read.ETag != info.ETag {
		t.Fatalf("read = %+v, want %d bytes, CRC %x, ETag %s", read, size, want, info.ETag)
	}

	// An upload whose body is another object read through Open: the
	// reader's range reads run while the upload streams.
	var copied sdk.ObjectInfo
	fn.ok(t, op{"op": "obj_stream_copy", "bucket": bucket, "src_object": "big.bin", "object": "copy.bin"}, &copied)
	if copied.Size != size || copied.ETag != info.ETag {
		t.Fatalf("stream copy = %+v, want %d bytes and the ETag %s of the same bytes", copied, size, info.ETag)
	}

	// Across the boundary of two ranges, and running past the end.
	for _, at := range []struct{ off, n, got int64 }{{sdk.ReadRangeSize - 10, 20, 20}, {size - 5, 10, 5}, {0, 3, 3}} {
		var r struct {
			ReadAt []byte `json:"read_at"`
			Read   []byte `json:"read"`
		}
		fn.ok(t, op{"op": "obj_read_at", "bucket": bucket, "object": "big.bin", "offset": at.off, "length": at.n}, &r)
		if exp := patternBytes(at.off, at.got); !bytes.Equal(r.ReadAt, exp) || !bytes.Equal(r.Read, exp) {
			t.Fatalf("%d bytes at %d: ReadAt %x, Seek and Read %x; want %x", at.n, at.off, r.ReadAt, r.Read, exp)
		}
	}

	// Replaced while read: the read fails, with no byte of the new object.
	e := fn.fail(t, op{"op": "obj_read", "bucket": bucket, "object": "big.bin", "replace_at": sdk.ReadRangeSize + 1})
	if !e.Condition {
		t.Fatalf("read of a replaced object: %+v, want ErrConditionFailed", e)
	}

	// One part's worth or less is one put (its ETag the SHA-256, no parts).
	fn.ok(t, op{"op": "obj_upload", "bucket": bucket, "object": "small.bin", "size": 1000}, &info)
	if info.Size != 1000 || strings.Contains(info.ETag, "-") {
		t.Fatalf("small upload = %+v, want a plain put", info)
	}

	// Failures leave nothing.
	e = fn.fail(t, op{"op": "obj_upload", "bucket": bucket, "object": "failed.bin", "size": size, "fail_at": 20 << 20})
	if !strings.Contains(e.Message, "failed on purpose") {
		t.Fatalf("failing body: %+v", e)
	}
	if _, err := c.HeadObject(ctx, bucket, "failed.bin"); err == nil {
		t.Fatal("an upload whose body failed stored an object")
	}
	noUploads(t)
	// A body that ends cut short (what net/http says of a download cut
	// off, read through to Upload) is a failure, not the object's end: in
	// the first part or a later one.
	for _, at := range []int64{1 << 20, 20 << 20} {
		e = fn.fail(t, op{"op": "obj_upload", "bucket": bucket, "object": "cut.bin", "size": size, "cut_at": at})
		if !strings.Contains(e.Message, "unexpected EOF") {
			t.Fatalf("body cut short at %d: %+v", at, e)
		}
		if o, err := c.HeadObject(ctx, bucket, "cut.bin"); err == nil {
			t.Fatalf("an upload whose body was cut short at %d stored %d bytes", at, o.Size)
		}
		noUploads(t)
	}
	e = fn.fail(t, op{"op": "obj_upload", "bucket": bucket, "object": "small.bin", "size": 20 << 20, "if_absent": true})
	if !e.Condition {
		t.Fatalf("upload over an object with PutIfAbsent: %+v, want ErrConditionFailed", e)
	}
	if o, err := c.HeadObject(ctx, bucket, "small.bin"); err != nil || o.Size != 1000 {
		t.Fatalf("after the refused upload: %+v, %v; want the small object", o, err)
	}
	noUploads(t)
	fn.ok(t, op{"op": "obj_upload", "bucket": bucket, "object": "small.bin", "size": 20 << 20, "if_match": info.ETag}, &info)
	if info.Size != 20<<20 {
		t.Fatalf("upload with PutIfMatch = %+v", info)
	}

	// Stopped by its timeout mid-body: the put fails and its chunks go.
	stream, err := nd.Store.JS.Stream(ctx, "OBJ_"+data.StoreName(bucket))
	if err != nil {
		t.Fatal(err)
	}
	chunks := func() int {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter("$O."+data.StoreName(bucket)+".C.>"))
		if err != nil {
			t.Fatal(err)
		}
		return len(info.State.Subjects)
	}
	before := chunks()
	payload, _ := json.Marshal(op{"op": "obj_upload", "bucket": bucket, "object": "hung.bin", "size": size, "hang_at": 20 << 20})
	if _, err := c.Invoke(ctx, short.name, payload); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("an upload past the function's timeout: %v", err)
	}
	nodetest.Eventually(t, 10*time.Second, "the timed-out upload's chunks purged", func() bool { return chunks() == before })
	if o, err := c.HeadObject(ctx, bucket, "hung.bin"); err == nil {
		t.Fatalf("an upload stopped by its function's timeout stored %d bytes", o.Size)
	}
}

// testSDKBucketBackfill deploys a bucket trigger with start: oldest on a
// bucket that already holds objects: the function sees every object there
// (a backfill), and then the new ones; the same trigger without a start,
// on a bucket holding the same, sees only the new ones.
func testSDKBucketBackfill(t *testing.T, n *node.Node, runtime string, code []byte) {
	c := nodetest.Client(n)
	ctx := context.Background()
	put := func(bucket, key string) {
		t.Helper()
		if _, err := c.PutObject(ctx, bucket, key, strings.NewReader(key), int64(len(key)), "", nil); err != nil {
			t.Fatal(err)
		}
	}
	// The function records what it sees under the bucket's name in "seen".
	seen := func(bucket string) []string {
		p, err := c.Query(ctx, "seen", &api.QueryRequest{Partition: json.RawMessage(strconv.Quote(bucket))})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, e := range p.Items {
			var s struct{ Key string }
			json.Unmarshal(e.Item, &s)
			keys = append(keys, s.Key)
		}
		slices.Sort(keys)
		return keys
	}
	fn := "backfill-" + runtime
	nodetest.Deploy(t, n, api.Function{Name: fn, Runtime: runtime, Memory: 64, Timeout: "10s",
		Uses: &api.Uses{Tables: []string{"seen"}}}, code)
	for _, b := range []struct{ bucket, start string }{{"backfill-" + runtime, "oldest"}, {"newonly-" + runtime, ""}} {
		if _, err := c.PutBucket(ctx, b.bucket); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"old/1", "old/2", "old/3"} {
			put(b.bucket, k)
		}
	}
	if _, err := c.PutTriggers(ctx, fn, []api.Trigger{{Name: "all", Bucket: "backfill-" + runtime, Start: "oldest"}, {Name: "new", Bucket: "newonly-" + runtime}}); err != nil {
		t.Fatal(err)
	}
	put("backfill-"+runtime, "new/4")
	put("newonly-"+runtime, "new/4")
	nodetest.Eventually(t, 10*time.Second, "the new objects", func() bool {
		return slices.Contains(seen("backfill-"+runtime), "new/4") && slices.Contains(seen("newonly-"+runtime), "new/4")
	})
	time.Sleep(200 * time.Millisecond)
	if got, want := seen("backfill-"+runtime), []string{"new/4", "old/1", "old/2", "old/3"}; !slices.Equal(got, want) {
		t.Errorf("start: oldest saw %v, want %v", got, want)
	}
	if got, want := seen("newonly-"+runtime), []string{"new/4"}; !slices.Equal(got, want) {
		t.Errorf("no start saw %v, want %v", got, want)
	}
}

// testSDKChanges reads a table's changes from a function, from the
// revision of a put it made: the put's INSERT, then the update's MODIFY.
func testSDKChanges(t *testing.T, fn, narrow opsFn, table, other string) {
	var rev uint64
	fn.ok(t, op{"op": "put", "table": table, "item": op{"pk": "changes", "sk": "x", "v": 1}}, &rev)
	fn.ok(t, op{"op": "put", "table": table, "item": op{"pk": "changes", "sk": "x", "v": 2}}, nil)
	var p sdk.ChangePage
	fn.ok(t, op{"op": "changes", "table": table, "from": strconv.FormatUint(rev, 10), "limit": 2}, &p)
	if len(p.Changes) != 2 || p.Changes[0].EventName != "INSERT" || p.Changes[0].Revision != rev || p.Changes[1].EventName != "MODIFY" ||
		string(p.Changes[1].OldImage) != string(p.Changes[0].NewImage) || p.Next != p.Changes[1].Revision+1 {
		t.Fatalf("changes from %d = %+v, want the put's INSERT and the MODIFY after", rev, p)
	}
	// A long poll (sdk.Wait): with no change the page is empty after the
	// wait; a change made while the function waits answers it at once.
	next := strconv.FormatUint(p.Next, 10)
	start := time.Now()
	var empty sdk.ChangePage
	fn.ok(t, op{"op": "changes", "table": table, "from": next, "wait": "300ms"}, &empty)
	if waited := time.Since(start); len(empty.Changes) != 0 || waited < 250*time.Millisecond {
		t.Fatalf("a wait of 300ms with no change: %+v after %v", empty, waited)
	}
	put := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		_, err := fn.c.PutItem(context.Background(), table, &api.PutItemRequest{Item: json.RawMessage(`{"pk":"changes","sk":"x","v":3}`)})
		put <- err
	}()
	start = time.Now()
	var waited sdk.ChangePage
	fn.ok(t, op{"op": "changes", "table": table, "from": next, "wait": "8s"}, &waited)
	if err := <-put; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); len(waited.Changes) != 1 || waited.Changes[0].EventName != "MODIFY" || string(waited.Changes[0].NewImage) != `{"pk":"changes","sk":"x","v":3}` ||
		took < 250*time.Millisecond || took > 5*time.Second {
		t.Fatalf("a wait for the change made after 300ms: %+v after %v", waited, took)
	}
	if e := fn.fail(t, op{"op": "changes", "table": table, "from": "whenever"}); e.Status != 400 || !strings.Contains(e.Message, "not a start") {
		t.Fatalf("changes from a bad start: %+v", e)
	}
	if e := narrow.fail(t, op{"op": "changes", "table": other}); !e.Denied {
		t.Fatalf("changes of a table the function does not use: %+v, want ErrAccessDenied", e)
	}
}
