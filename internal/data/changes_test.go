package data_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

// recorder is an Invoker that keeps the records it is given, failing the
// first failN calls.
type recorder struct {
	mu      sync.Mutex
	recs    []data.TableChange
	batches int
	failN   int
}

func (r *recorder) Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failN > 0 {
		r.failN--
		return &invoke.Response{Err: &runtime.FunctionError{Type: "Boom", Message: "failing on purpose"}}, nil
	}
	var body struct{ Records []data.TableChange }
	if err := json.Unmarshal(req.Payload, &body); err != nil {
		return nil, err
	}
	if req.Source != "table" {
		return nil, errors.New("source " + req.Source)
	}
	r.recs = append(r.recs, body.Records...)
	r.batches++
	return &invoke.Response{Payload: []byte("null")}, nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.recs)
}

type memDLQ struct {
	mu sync.Mutex
	ls []data.DeadLetter
}

func (d *memDLQ) AddDeadLetter(_ context.Context, l data.DeadLetter) error {
	d.mu.Lock()
	d.ls = append(d.ls, l)
	d.mu.Unlock()
	return nil
}

func TestTableTrigger(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n := nodetest.Start(t, node.Config{DataDir: dir})
	if _, _, err := n.Data.PutTable(ctx, data.TableDef{Name: "orders", Key: "id", Sort: "n"}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	spec := data.TriggerSpec{Function: "f", Name: "t1", Table: "orders", Batch: 10}
	trig, err := n.Data.StartTrigger(ctx, spec, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 5 keys, each inserted, modified 3 times and removed: 25 changes.
	write := func(n *node.Node) {
		for k := range 5 {
			key := fmt.Sprintf(`{"id":"k%d","n":1}`, k)
			for v := range 4 {
				if _, err := n.Data.Put(ctx, "orders", json.RawMessage(fmt.Sprintf(`{"id":"k%d","n":1,"v":%d}`, k, v)), data.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := n.Data.Delete(ctx, "orders", json.RawMessage(key), data.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(n)
	nodetest.Eventually(t, 10*time.Second, "25 changes", func() bool { return rec.count() >= 25 })
	trig.Stop()
	checkChanges(t, rec.recs, 25)

	// The position is durable: after the node restarts, a trigger of the
	// same name resumes after what was acknowledged.
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	n2 := nodetest.Start(t, node.Config{DataDir: dir})
	rec2 := &recorder{failN: 1} // the first attempt fails and is retried
	trig2, err := n2.Data.StartTrigger(ctx, spec, rec2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer trig2.Stop()
	write(n2)
	nodetest.Eventually(t, 20*time.Second, "25 more changes", func() bool { return rec2.count() >= 25 })
	time.Sleep(200 * time.Millisecond)
	checkChanges(t, rec2.recs, 25)

	// A batch that keeps failing is dead-lettered and the trigger moves on.
	dlq := &memDLQ{}
	zero := 0
	failing := &recorder{failN: 1 << 30}
	trig3, err := n2.Data.StartTrigger(ctx, data.TriggerSpec{Function: "g", Name: "t3", Table: "orders", Batch: 100, Retries: &zero, Start: data.Start{Oldest: true}}, failing, dlq)
	if err != nil {
		t.Fatal(err)
	}
	defer trig3.Stop()
	nodetest.Eventually(t, 10*time.Second, "a dead letter", func() bool { dlq.mu.Lock(); defer dlq.mu.Unlock(); return len(dlq.ls) > 0 })
	if l := dlq.ls[0]; l.Function != "g" || l.Source != "table" || l.Attempts != 1 {
		t.Fatalf("dead letter %+v", l)
	}
	// Replay from a revision reads the stream directly.
	chs, err := n2.Data.Changes(ctx, "orders", data.Start{}, 1000, 0)
	if err != nil || len(chs) < 25 {
		t.Fatalf("Changes: %d, %v", len(chs), err)
	}
	_ = function.ErrNotFound
}

// checkChanges asserts exactly want changes, each key's in order: INSERT,
// MODIFY x3 (old image = previous new image), REMOVE with the last image.
func checkChanges(t *testing.T, recs []data.TableChange, want int) {
	t.Helper()
	if len(recs) != want {
		t.Fatalf("got %d changes, want %d", len(recs), want)
	}
	byKey := map[string][]data.TableChange{}
	for _, c := range recs {
		k := string(c.Keys["id"])
		byKey[k] = append(byKey[k], c)
	}
	for k, cs := range byKey {
		if len(cs) != 5 {
			t.Fatalf("key %s: %d changes, want 5", k, len(cs))
		}
		for i, c := range cs {
			wantName := data.EventModify
			switch i {
			case 0:
				wantName = data.EventInsert
			case 4:
				wantName = data.EventRemove
			}
			if c.EventName != wantName {
				t.Fatalf("key %s change %d is %s, want %s", k, i, c.EventName, wantName)
			}
			if i > 0 {
				if c.Revision <= cs[i-1].Revision {
					t.Fatalf("key %s: revisions out of order", k)
				}
				if string(c.OldImage) != string(cs[i-1].NewImage) && !(i == 4 && string(c.OldImage) == string(cs[3].NewImage)) {
					t.Fatalf("key %s change %d: old image %s, want %s", k, i, c.OldImage, cs[i-1].NewImage)
				}
			}
		}
	}
}

// gate is an Invoker whose calls wait until it opens, then append their
// records to a log shared with other invokers.
type gate struct {
	log     *changeLog
	entered chan struct{} // closed by the first call
	open    chan struct{}
	once    sync.Once
}

// changeLog keeps the records of the batches a gate lets through.
type changeLog struct {
	mu   sync.Mutex
	recs []json.RawMessage
}

func (c *changeLog) add(payload []byte) error {
	var body struct{ Records []json.RawMessage }
	if err := json.Unmarshal(payload, &body); err != nil {
		return err
	}
	c.mu.Lock()
	c.recs = append(c.recs, body.Records...)
	c.mu.Unlock()
	return nil
}

// snapshot returns the records so far, as table changes.
func (c *changeLog) snapshot() []data.TableChange { return records[data.TableChange](c) }

// records decodes the records so far as T.
func records[T any](c *changeLog) []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]T, len(c.recs))
	for i, r := range c.recs {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			panic(err) // the gate unmarshalled the batch already
		}
	}
	return out
}

func (g *gate) Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error) {
	g.once.Do(func() { close(g.entered) })
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := g.log.add(req.Payload); err != nil {
		return nil, err
	}
	return &invoke.Response{Payload: []byte("null")}, nil
}

// heldFirst runs one trigger on two runners, as two nodes do, over a
// table of one item "k" keeping history revisions: the first runner's
// function holds its batch until slow.open is closed; the second's
// delivers at once. It puts changes 0 to held-1, waits for the first
// runner to hold them, then puts changes held to total-1 and checks for
// 1.5 s that the second runner delivers none of them meanwhile. It
// returns the log of what the function saw and the first runner's gate.
func heldFirst(t *testing.T, history, held, total int) (*changeLog, *gate) {
	t.Helper()
	ctx := context.Background()
	n := nodetest.Start(t, node.Config{})
	if _, _, err := n.Data.PutTable(ctx, data.TableDef{Name: "orders", Key: "id", History: history}); err != nil {
		t.Fatal(err)
	}
	put := func(i int) {
		t.Helper()
		if _, err := n.Data.Put(ctx, "orders", raw(fmt.Sprintf(`{"id":"k","v":%d}`, i)), data.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	log := &changeLog{}
	slow := &gate{log: log, entered: make(chan struct{}), open: make(chan struct{})}
	fast := &gate{log: log, entered: make(chan struct{}), open: make(chan struct{})}
	close(fast.open)
	spec := data.TriggerSpec{Function: "f", Name: "ordered", Table: "orders", Batch: 10}
	start := func(g *gate) {
		t.Helper()
		r, err := n.Data.StartTrigger(ctx, spec, g, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Stop)
	}
	start(slow)
	for i := range held {
		put(i)
	}
	select {
	case <-slow.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first runner got no batch")
	}
	start(fast)
	for i := held; i < total; i++ {
		put(i)
	}
	// Give the second runner time to take the later changes and
	// (wrongly) deliver them.
	time.Sleep(1500 * time.Millisecond)
	if got := log.snapshot(); len(got) != 0 {
		t.Fatalf("%d changes reached the function while the first runner's were still in flight", len(got))
	}
	return log, slow
}

// TestTriggerOrderAcrossRunners: two nodes run the same trigger (one
// durable consumer). The first takes a partial batch (the only changes
// there were) and is slow to finish it; the changes written meanwhile must
// wait for it, not reach the function through the second node first. The
// same holds after a kill -9, when the consumer's state can strand a
// partial batch as pending until its ack wait ends.
func TestTriggerOrderAcrossRunners(t *testing.T) {
	// A history that keeps all ten changes of the one item: a trigger
	// further behind on an item misses changes (TestTriggerOrderWithShortHistory).
	log, slow := heldFirst(t, 16, 3, 10)
	close(slow.open)
	nodetest.Eventually(t, 30*time.Second, "all 10 changes", func() bool { return len(log.snapshot()) >= 10 })
	got := log.snapshot()
	if len(got) != 10 {
		t.Fatalf("%d changes, want 10", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].Revision <= got[i-1].Revision {
			t.Fatalf("change %d has revision %d after %d", i, got[i].Revision, got[i-1].Revision)
		}
	}
}

// TestTriggerOrderWithShortHistory: as TestTriggerOrderAcrossRunners, but
// the item is written more times than its table keeps while the first
// runner holds a batch with its first change. JetStream drops the changes
// pushed out of the history from the consumer's pending set, so the
// consumer alone no longer shows the batch in flight; the trigger's turn
// (turns.go) still does. Without it the second runner delivered the later
// changes first.
func TestTriggerOrderWithShortHistory(t *testing.T) {
	log, slow := heldFirst(t, 2, 1, 6)
	close(slow.open)
	nodetest.Eventually(t, 30*time.Second, "the changes the history kept", func() bool { return len(log.snapshot()) >= 3 })
	time.Sleep(300 * time.Millisecond)
	var vs []string
	for _, c := range log.snapshot() {
		vs = append(vs, string(c.NewImage))
	}
	if len(vs) != 3 || !strings.Contains(vs[0], `"v":0`) || !strings.Contains(vs[1], `"v":4`) || !strings.Contains(vs[2], `"v":5`) {
		t.Fatalf("the function saw %v, want v 0, then 4 and 5 (the history keeps two)", vs)
	}
}

// TestTriggerStopHandsBatchOver: a runner stopped while its function holds
// a batch (a node shutting down, a function redeployed) hands the batch
// back, so the other runner delivers it at once instead of after the
// consumer's ack wait (10 s).
func TestTriggerStopHandsBatchOver(t *testing.T) {
	ctx := context.Background()
	n := nodetest.Start(t, node.Config{})
	if _, _, err := n.Data.PutTable(ctx, data.TableDef{Name: "orders", Key: "id"}); err != nil {
		t.Fatal(err)
	}
	log := &changeLog{}
	held := &gate{log: log, entered: make(chan struct{}), open: make(chan struct{})} // never opened
	fast := &gate{log: log, entered: make(chan struct{}), open: make(chan struct{})}
	close(fast.open)
	spec := data.TriggerSpec{Function: "f", Name: "handover", Table: "orders", Batch: 10}
	a, err := n.Data.StartTrigger(ctx, spec, held, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := n.Data.Put(ctx, "orders", raw(fmt.Sprintf(`{"id":"k%d"}`, i)), data.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-held.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first runner got no batch")
	}
	b, err := n.Data.StartTrigger(ctx, spec, fast, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	stopped := time.Now()
	a.Stop()
	nodetest.Eventually(t, 5*time.Second, "the held batch on the other runner", func() bool { return len(log.snapshot()) >= 5 })
	t.Logf("handed over in %v", time.Since(stopped).Round(time.Millisecond))
	if got := log.snapshot(); len(got) != 5 {
		t.Fatalf("%d changes, want 5", len(got))
	}
}

// TestBucketTriggerSeesReplacedObjects: a bucket trigger behind by several
// writes of one key (an upload, its replacements, its deletion) gets an
// event for each, in order. The object store's own writes roll a key's
// previous info up at once, read or not, so a trigger one write behind
// lost the earlier ObjectCreated. Once the trigger has read them, the
// sweep's compaction leaves each key one info, as it does in a bucket
// without triggers (where a write rolls up at once once the floor it read
// is a second old); and removing the trigger deletes its consumer. The
// bucket's name has a dot, as S3's names may.
func TestBucketTriggerSeesReplacedObjects(t *testing.T) {
	ctx := context.Background()
	n := nodetest.Start(t, node.Config{})
	for _, b := range []string{"img.uploads", "plain"} {
		if _, _, err := n.Data.PutBucket(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	log := &changeLog{}
	g := &gate{log: log, entered: make(chan struct{}), open: make(chan struct{})}
	tr, err := n.Data.StartTrigger(ctx, data.TriggerSpec{Function: "f", Name: "uploads", Bucket: "img.uploads"}, g, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Stop()
	put := func(bucket, key, body string) *data.ObjectInfo {
		t.Helper()
		o, err := n.Data.PutObject(ctx, bucket, key, strings.NewReader(body), int64(len(body)), data.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	v1 := put("img.uploads", "a", "one")
	select {
	case <-g.entered: // the function holds v1's event
	case <-time.After(10 * time.Second):
		t.Fatal("the trigger delivered nothing")
	}
	v2 := put("img.uploads", "a", "two two")
	v3 := put("img.uploads", "a", "three three three")
	for range 2 { // the second finds nothing to delete: no second event
		if err := n.Data.DeleteObject(ctx, "img.uploads", "a"); err != nil {
			t.Fatal(err)
		}
	}
	b := put("img.uploads", "b", "bee")
	for _, body := range []string{"1", "22", "333"} {
		put("plain", "k", body)
	}
	n.Data.CompactInfos(ctx)
	if got := objectInfos(t, n, "img.uploads", "a"); got != 4 {
		t.Errorf("a has %d infos while the trigger has read none of them, want 4", got)
	}
	if got := objectInfos(t, n, "plain", "k"); got != 1 {
		t.Errorf("k, in a bucket without triggers, has %d infos after compaction, want 1", got)
	}
	// The info "4444" writes lies past the floor the compaction read; a
	// write a second later reads the floor again and rolls it up at once,
	// rather than keep it for the next sweep.
	put("plain", "k", "4444")
	time.Sleep(1100 * time.Millisecond)
	put("plain", "k", "55555")
	if got := objectInfos(t, n, "plain", "k"); got != 1 {
		t.Errorf("k written again a second later has %d infos, want 1", got)
	}

	close(g.open)
	nodetest.Eventually(t, 20*time.Second, "5 events", func() bool { return len(log.snapshot()) >= 5 })
	type ev struct {
		Name, Key, ETag string
		Size            int64
	}
	var got []ev
	for _, e := range records[data.ObjectEvent](log) {
		got = append(got, ev{e.Name, e.Key, e.ETag, e.Size})
	}
	want := []ev{
		{data.EventObjectCreated, "a", v1.ETag, 3}, {data.EventObjectCreated, "a", v2.ETag, 7},
		{data.EventObjectCreated, "a", v3.ETag, 17}, {data.EventObjectRemoved, "a", "", 0},
		{data.EventObjectCreated, "b", b.ETag, 3},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events %+v\nwant %+v", got, want)
	}
	// Acknowledgements land asynchronously: the floor follows.
	nodetest.Eventually(t, 10*time.Second, "a compacted to its delete marker", func() bool {
		n.Data.CompactInfos(ctx)
		return objectInfos(t, n, "img.uploads", "a") == 1
	})
	if _, err := n.Data.GetObject(ctx, "img.uploads", "a", ""); !errors.Is(err, data.ErrNoSuchKey) {
		t.Errorf("get of the deleted a: err = %v, want ErrNoSuchKey", err)
	}
	for _, o := range []struct{ bucket, key, body string }{{"img.uploads", "b", "bee"}, {"plain", "k", "55555"}} {
		obj, err := n.Data.GetObject(ctx, o.bucket, o.key, "")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil || string(body) != o.body {
			t.Errorf("%s/%s = %q, %v; want %q", o.bucket, o.key, body, err, o.body)
		}
	}
	l, err := n.Data.ListObjects(ctx, "img.uploads", data.ListOptions{})
	if err != nil || len(l.Objects) != 1 || l.Objects[0].Key != "b" {
		t.Errorf("list of uploads = %+v, %v; want b alone", l, err)
	}

	if err := tr.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	stream, err := n.Store.JS.Stream(ctx, "OBJ_"+data.StoreName("img.uploads"))
	if err != nil {
		t.Fatal(err)
	}
	names := stream.ConsumerNames(ctx)
	for name := range names.Name() {
		if strings.HasPrefix(name, "nimbus-trigger-") {
			t.Errorf("consumer %s is left after the trigger was removed", name)
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestRemoveSparesASuccessor: a node told late that a trigger was removed
// must not delete the consumer another node has made since for the
// trigger's return under the same name (its position is the new one's).
func TestRemoveSparesASuccessor(t *testing.T) {
	ctx := context.Background()
	n := nodetest.Start(t, node.Config{})
	if _, _, err := n.Data.PutTable(ctx, data.TableDef{Name: "orders", Key: "id"}); err != nil {
		t.Fatal(err)
	}
	spec := data.TriggerSpec{Function: "f", Name: "back", Table: "orders"}
	late, err := n.Data.StartTrigger(ctx, spec, &recorder{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Elsewhere: the trigger was removed (its consumer deleted), then
	// added back.
	stream, err := n.Store.JS.Stream(ctx, "KV_"+data.TablePrefix+"orders")
	if err != nil {
		t.Fatal(err)
	}
	var name string
	names := stream.ConsumerNames(ctx)
	for c := range names.Name() {
		if strings.HasPrefix(c, "nimbus-trigger-") {
			name = c
		}
	}
	if err := n.Store.JS.DeleteConsumer(ctx, "KV_"+data.TablePrefix+"orders", name); err != nil {
		t.Fatalf("deleting the trigger's consumer %q: %v", name, err)
	}
	back, err := n.Data.StartTrigger(ctx, spec, &recorder{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Stop()
	if err := late.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Store.JS.Consumer(ctx, "KV_"+data.TablePrefix+"orders", name); err != nil {
		t.Fatalf("the successor's consumer: %v, want it kept", err)
	}
	if err := back.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Store.JS.Consumer(ctx, "KV_"+data.TablePrefix+"orders", name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("after its own removal the consumer: %v, want it gone", err)
	}
}

// objectInfos counts the infos key's subject holds in bucket's stream: its
// last, and the older ones kept for triggers (objhistory.go).
func objectInfos(t *testing.T, n *node.Node, bucket, key string) uint64 {
	t.Helper()
	ctx := context.Background()
	stream, err := n.Store.JS.Stream(ctx, "OBJ_"+data.StoreName(bucket))
	if err != nil {
		t.Fatal(err)
	}
	subj := "$O." + data.StoreName(bucket) + ".M." + base64.URLEncoding.EncodeToString([]byte(key))
	si, err := stream.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		t.Fatal(err)
	}
	return si.State.Subjects[subj]
}
