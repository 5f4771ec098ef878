package node_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
	"github.com/nimbus-run/nimbus/sdk"
)

// sdkOps is the fixture that makes one SDK data call per invocation and
// answers what it returned (see its doc).
const sdkOps = "./internal/node/testdata/sdkops"

// opAnswer is sdkops's answer: the call's result, or what its error was.
type opAnswer struct {
	OK  json.RawMessage `json:"ok"`
	Err *opErr          `json:"err"`
}

type opErr struct {
	Message   string `json:"message"`
	Code      string `json:"code"`
	Status    int    `json:"status"`
	NotFound  bool   `json:"not_found"`
	Condition bool   `json:"condition_failed"`
	Denied    bool   `json:"denied"`
	Range     bool   `json:"invalid_range"`
}

// opsFn invokes a deployed sdkops function.
type opsFn struct {
	c    *api.Client
	name string
}

// op is one call for sdkops (see its call type for the fields).
type op map[string]any

func (f opsFn) call(t *testing.T, o op) opAnswer {
	t.Helper()
	payload, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.c.Invoke(context.Background(), f.name, payload)
	if err != nil {
		t.Fatalf("%s %v: invoke: %v", f.name, o["op"], err)
	}
	var a opAnswer
	if err := json.Unmarshal(res.Payload, &a); err != nil {
		t.Fatalf("%s %v: answer %s: %v", f.name, o["op"], res.Payload, err)
	}
	return a
}

// ok runs o, fails the test if it failed, and decodes its result into out
// (when not nil).
func (f opsFn) ok(t *testing.T, o op, out any) {
	t.Helper()
	a := f.call(t, o)
	if a.Err != nil {
		t.Fatalf("%s %v: got error %+v, want success", f.name, o["op"], *a.Err)
	}
	if out != nil {
		if err := json.Unmarshal(a.OK, out); err != nil {
			t.Fatalf("%s %v: decode %s: %v", f.name, o["op"], a.OK, err)
		}
	}
}

// fail runs o and returns its error, failing the test if it succeeded.
func (f opsFn) fail(t *testing.T, o op) *opErr {
	t.Helper()
	a := f.call(t, o)
	if a.Err == nil {
		t.Fatalf("%s %v %v: succeeded with %s, want an error", f.name, o["op"], o, a.OK)
	}
	return a.Err
}

// decodeItem unmarshals an item's JSON into a generic map.
func decodeItem(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("item %s: %v", raw, err)
	}
	return m
}

// TestSDKData drives every table and bucket operation of the Go SDK from a
// real function, the same source built for wasm and as a process, on one
// node: conditional writes, merge updates, queries with each condition,
// paging, batches, objects with metadata, listing, copying, presigned URLs
// fetched over HTTP, and the permission errors of a function whose uses
// leave a table or bucket out; and a bucket trigger invoking a function.
func TestSDKData(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm module and a native binary")
	}
	n := nodetest.Start(t, node.Config{})
	c := nodetest.Client(n)
	ctx := context.Background()
	wasmCode := testutil.BuildWasm(t, sdkOps)
	nativeCode := buildNative(t, sdkOps)

	for _, rt := range []struct {
		name, runtime string
		code          []byte
		concurrency   int
	}{
		{"wasm", "wasm", wasmCode, 0},
		{"process", "process", nativeCode, 0},
		// One process takes four invocations at once: the SDK's loops
		// share its connections to the node.
		{"process-c4", "process", nativeCode, 4},
	} {
		// Each runtime has its own tables and buckets, so they can run
		// side by side.
		kv, nums, ttl := "kv-"+rt.name, "nums-"+rt.name, "ttl-"+rt.name
		files, other := "files-"+rt.name, "other-"+rt.name
		for _, tbl := range []*api.Table{{Name: kv, Key: "pk", Sort: "sk"}, {Name: nums, Key: "pk", Sort: "n"}, {Name: ttl, Key: "pk", Sort: "sk", TTL: "exp"}} {
			if _, err := c.PutTable(ctx, tbl); err != nil {
				t.Fatalf("create table %s: %v", tbl.Name, err)
			}
		}
		for _, b := range []string{files, other} {
			if _, err := c.PutBucket(ctx, b); err != nil {
				t.Fatalf("create bucket %s: %v", b, err)
			}
		}
		fn := opsFn{c, "ops-" + rt.name}
		nodetest.Deploy(t, n, api.Function{
			Name: fn.name, Runtime: rt.runtime, Memory: 64, Timeout: "10s", Concurrency: rt.concurrency,
			Uses: &api.Uses{Tables: []string{kv, nums, ttl}, Buckets: []string{files, other}},
		}, rt.code)
		narrow := opsFn{c, "narrow-" + rt.name}
		nodetest.Deploy(t, n, api.Function{
			Name: narrow.name, Runtime: rt.runtime, Memory: 64, Timeout: "10s", Concurrency: rt.concurrency,
			Uses: &api.Uses{Tables: []string{kv}, Buckets: []string{files}},
		}, rt.code)
		// Streams objects bigger than its memory, which takes longer.
		stream := opsFn{c, "stream-" + rt.name}
		nodetest.Deploy(t, n, api.Function{
			Name: stream.name, Runtime: rt.runtime, Memory: 64, Timeout: "60s",
			Uses: &api.Uses{Buckets: []string{files}},
		}, rt.code)
		none := opsFn{c, "nouses-" + rt.name}
		nodetest.Deploy(t, n, api.Function{Name: none.name, Runtime: rt.runtime, Memory: 64, Timeout: "10s", Concurrency: rt.concurrency}, rt.code)

		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			t.Run("Table", func(t *testing.T) { testSDKTable(t, fn, c, kv) })
			t.Run("Query", func(t *testing.T) { testSDKQuery(t, fn, kv, nums) })
			t.Run("TTL", func(t *testing.T) { testSDKTTL(t, fn, ttl) })
			t.Run("Changes", func(t *testing.T) { testSDKChanges(t, fn, narrow, kv, nums) })
			t.Run("Bucket", func(t *testing.T) { testSDKBucket(t, fn, c, files, other) })
			if rt.concurrency == 0 {
				t.Run("Stream", func(t *testing.T) { testSDKStream(t, stream, fn, n, files) })
			}
			t.Run("Denied", func(t *testing.T) { testSDKDenied(t, narrow, none, c, kv, nums, files, other) })
		})
	}
	t.Run("FunctionListener", func(t *testing.T) { testFunctionListener(t, n, "ops-process", "kv-process", "files-process") })
	// On the same node: a node compiles a module once per digest.
	if _, err := c.PutTable(ctx, &api.Table{Name: "seen", Key: "pk", Sort: "sk"}); err != nil {
		t.Fatal(err)
	}
	t.Run("BucketTrigger", func(t *testing.T) {
		t.Run("wasm", func(t *testing.T) {
			t.Parallel()
			testSDKBucketTrigger(t, n, "wasm", wasmCode)
		})
		t.Run("process", func(t *testing.T) {
			t.Parallel()
			testSDKBucketTrigger(t, n, "process", nativeCode)
		})
		t.Run("backfill", func(t *testing.T) {
			t.Parallel()
			testSDKBucketBackfill(t, n, "process", nativeCode)
		})
	})
}

// testSDKTable covers put (plain, if absent, if revision), get, delete
// (plain, conditional) and update (merge, conditional).
func testSDKTable(t *testing.T, fn opsFn, c *api.Client, table string) {
	key := op{"pk": "u1", "sk": "a"}
	get := func(t *testing.T, key op) sdk.Item {
		t.Helper()
		var it sdk.Item
		fn.ok(t, op{"op": "get", "table": table, "key": key}, &it)
		return it
	}
	put := func(t *testing.T, item op, extra op) uint64 {
		t.Helper()
		o := op{"op": "put", "table": table, "item": item}
		for k, v := range extra {
			o[k] = v
		}
		var rev uint64
		fn.ok(t, o, &rev)
		if rev == 0 {
			t.Fatalf("put %v: revision 0", item)
		}
		return rev
	}
	wantV := func(t *testing.T, key op, v float64, rev uint64) {
		t.Helper()
		it := get(t, key)
		if got := decodeItem(t, it.Data)["v"]; got != v || it.Revision != rev {
			t.Fatalf("get %v = v %v at revision %d, want v %v at revision %d", key, got, it.Revision, v, rev)
		}
	}

	var r1, r2, r3 uint64
	t.Run("Put", func(t *testing.T) {
		r1 = put(t, op{"pk": "u1", "sk": "a", "v": 1, "s": "x"}, nil)
		wantV(t, key, 1, r1)
		r2 = put(t, op{"pk": "u1", "sk": "a", "v": 2}, nil)
		if r2 <= r1 {
			t.Fatalf("replacing put: revision %d, want more than %d", r2, r1)
		}
		it := get(t, key)
		if got := decodeItem(t, it.Data); !reflect.DeepEqual(got, map[string]any{"pk": "u1", "sk": "a", "v": 2.0}) {
			t.Fatalf("after a replacing put: item %v, want the new item whole (no attribute of the old)", got)
		}
		if it.Updated.IsZero() {
			t.Errorf("item has no updated time")
		}
		// The admin API sees what the function wrote.
		e, err := c.GetItem(context.Background(), table, json.RawMessage(`{"pk":"u1","sk":"a"}`))
		if err != nil || e.Revision != r2 {
			t.Fatalf("admin get = %+v, %v; want revision %d", e, err, r2)
		}
	})
	t.Run("PutIfAbsent", func(t *testing.T) {
		e := fn.fail(t, op{"op": "put", "table": table, "item": op{"pk": "u1", "sk": "a", "v": 99}, "if_absent": true})
		if !e.Condition || e.Code != "ConditionFailed" || e.NotFound || e.Denied {
			t.Fatalf("if-absent put over an item: error %+v, want ConditionFailed", e)
		}
		wantV(t, key, 2, r2)
		rb := put(t, op{"pk": "u1", "sk": "b", "v": 1}, op{"if_absent": true})
		wantV(t, op{"pk": "u1", "sk": "b"}, 1, rb)
	})
	t.Run("PutIfRevision", func(t *testing.T) {
		e := fn.fail(t, op{"op": "put", "table": table, "item": op{"pk": "u1", "sk": "a", "v": 99}, "if_revision": r1})
		if !e.Condition || e.Code != "ConditionFailed" {
			t.Fatalf("put at a stale revision: error %+v, want ConditionFailed", e)
		}
		wantV(t, key, 2, r2)
		r3 = put(t, op{"pk": "u1", "sk": "a", "v": 3}, op{"if_revision": r2})
		wantV(t, key, 3, r3)
		e = fn.fail(t, op{"op": "put", "table": table, "item": op{"pk": "u1", "sk": "none", "v": 1}, "if_revision": r3})
		if !e.Condition {
			t.Fatalf("put at a revision of a missing item: error %+v, want ConditionFailed", e)
		}
		if e := fn.fail(t, op{"op": "get", "table": table, "key": op{"pk": "u1", "sk": "none"}}); !e.NotFound {
			t.Fatalf("the failed conditional put wrote: get error %+v, want NotFound", e)
		}
	})
	t.Run("Get", func(t *testing.T) {
		e := fn.fail(t, op{"op": "get", "table": table, "key": op{"pk": "u1", "sk": "zz"}})
		if !e.NotFound || e.Code != "NotFound" || e.Status != 404 || e.Condition {
			t.Fatalf("get of a missing item: error %+v, want NotFound", e)
		}
		// Keys are any UTF-8: dots, slashes, spaces and emoji round trip.
		odd := op{"pk": "ünï/😀 key.with.dots", "sk": "a.b c"}
		rev := put(t, op{"pk": odd["pk"], "sk": odd["sk"], "v": 7}, nil)
		wantV(t, odd, 7, rev)
		e = fn.fail(t, op{"op": "get", "table": table, "key": op{"pk": "u1"}})
		if e.Status != 400 {
			t.Fatalf("get without the sort key: error %+v, want status 400", e)
		}
	})
	t.Run("BigItem", func(t *testing.T) {
		// Over the wasm SDK's 16 KB answer buffer: the answer is read in a
		// second host call. The revision and update time are the admin
		// API's to the nanosecond.
		big := strings.Repeat("é0123456789", 20_000)
		rev := put(t, op{"pk": "big", "sk": "a", "s": big}, nil)
		it := get(t, op{"pk": "big", "sk": "a"})
		if got := decodeItem(t, it.Data)["s"]; got != big || it.Revision != rev {
			t.Fatalf("big item: %d bytes at revision %d, want %d bytes at revision %d", len(fmt.Sprint(got)), it.Revision, len(big), rev)
		}
		e, err := c.GetItem(context.Background(), table, json.RawMessage(`{"pk":"big","sk":"a"}`))
		if err != nil || e.Revision != rev || !e.Updated.Equal(it.Updated) {
			t.Fatalf("admin get = revision %d updated %v (%v); the function saw revision %d updated %v", e.Revision, e.Updated, err, rev, it.Updated)
		}
		f := fn.fail(t, op{"op": "put", "table": table, "item": op{"pk": "big"}})
		if f.Status != 400 || !strings.Contains(f.Message, "sk") {
			t.Fatalf("put without the sort key: error %+v, want status 400 naming sk", f)
		}
	})
	t.Run("Update", func(t *testing.T) {
		mk := op{"pk": "u1", "sk": "m"}
		r := put(t, op{"pk": "u1", "sk": "m", "v": 1, "drop": "me", "nested": op{"a": 1, "b": 2}}, nil)
		var it sdk.Item
		fn.ok(t, op{"op": "update", "table": table, "key": mk, "patch": op{"v": 2, "drop": nil, "nested": op{"b": nil, "c": 3}, "added": "y"}}, &it)
		want := map[string]any{"pk": "u1", "sk": "m", "v": 2.0, "nested": map[string]any{"a": 1.0, "c": 3.0}, "added": "y"}
		if got := decodeItem(t, it.Data); !reflect.DeepEqual(got, want) || it.Revision <= r {
			t.Fatalf("merge update = %v at revision %d, want %v after revision %d", got, it.Revision, want, r)
		}
		if got := get(t, mk); !reflect.DeepEqual(decodeItem(t, got.Data), want) || got.Revision != it.Revision {
			t.Fatalf("get after update = %s at %d, want %v at %d", got.Data, got.Revision, want, it.Revision)
		}
		e := fn.fail(t, op{"op": "update", "table": table, "key": mk, "patch": op{"v": 99}, "if_revision": r})
		if !e.Condition || e.Code != "ConditionFailed" {
			t.Fatalf("update at a stale revision: error %+v, want ConditionFailed", e)
		}
		if got := get(t, mk); decodeItem(t, got.Data)["v"] != 2.0 {
			t.Fatalf("the failed conditional update wrote: %s", got.Data)
		}
		var it2 sdk.Item
		fn.ok(t, op{"op": "update", "table": table, "key": mk, "patch": op{"v": 3}, "if_revision": it.Revision}, &it2)
		if got := decodeItem(t, it2.Data); got["v"] != 3.0 || got["added"] != "y" || it2.Revision <= it.Revision {
			t.Fatalf("update at the current revision = %s at %d", it2.Data, it2.Revision)
		}
		e = fn.fail(t, op{"op": "update", "table": table, "key": op{"pk": "u1", "sk": "ghost"}, "patch": op{"v": 1}, "if_revision": it2.Revision})
		if !e.Condition {
			t.Fatalf("conditional update of a missing item: error %+v, want ConditionFailed", e)
		}
		// Without a condition a missing item is created from key and patch.
		var created sdk.Item
		fn.ok(t, op{"op": "update", "table": table, "key": op{"pk": "u1", "sk": "new"}, "patch": op{"v": 1}}, &created)
		if got := decodeItem(t, created.Data); !reflect.DeepEqual(got, map[string]any{"pk": "u1", "sk": "new", "v": 1.0}) {
			t.Fatalf("update of a missing item created %v", got)
		}
		e = fn.fail(t, op{"op": "update", "table": table, "key": mk, "patch": op{"sk": "moved"}})
		if e.Status != 400 {
			t.Fatalf("update changing the key: error %+v, want status 400", e)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		dk := op{"pk": "u1", "sk": "d"}
		r := put(t, op{"pk": "u1", "sk": "d", "v": 1}, nil)
		r2 := put(t, op{"pk": "u1", "sk": "d", "v": 2}, nil)
		e := fn.fail(t, op{"op": "delete", "table": table, "key": dk, "if_revision": r})
		if !e.Condition || e.Code != "ConditionFailed" {
			t.Fatalf("delete at a stale revision: error %+v, want ConditionFailed", e)
		}
		wantV(t, dk, 2, r2)
		fn.ok(t, op{"op": "delete", "table": table, "key": dk, "if_revision": r2}, nil)
		if e := fn.fail(t, op{"op": "get", "table": table, "key": dk}); !e.NotFound {
			t.Fatalf("get after a conditional delete: error %+v, want NotFound", e)
		}
		e = fn.fail(t, op{"op": "delete", "table": table, "key": dk, "if_revision": r2})
		if !e.Condition {
			t.Fatalf("conditional delete of a missing item: error %+v, want ConditionFailed", e)
		}
		fn.ok(t, op{"op": "delete", "table": table, "key": key}, nil)
		if e := fn.fail(t, op{"op": "get", "table": table, "key": key}); !e.NotFound {
			t.Fatalf("get after a delete: error %+v, want NotFound", e)
		}
		fn.ok(t, op{"op": "delete", "table": table, "key": key}, nil) // absent: not an error
	})
}

// testSDKQuery covers batch put and get, query with every condition (text
// and structured), reverse order, limits and cursors, and scan's paging.
func testSDKQuery(t *testing.T, fn opsFn, kv, nums string) {
	ns := []int{100, 1, 20, 5, 2, 10} // numerically ordered: 1 2 5 10 20 100
	var items []op
	for _, n := range ns {
		items = append(items, op{"pk": "p1", "n": n, "tag": fmt.Sprintf("t%d", n)})
	}
	items = append(items, op{"pk": "p2", "n": 3}, op{"pk": "p2", "n": 7}, op{"pk": "p10", "n": 1})
	revs := map[string]uint64{}
	t.Run("BatchPut", func(t *testing.T) {
		var res []sdk.BatchResult
		fn.ok(t, op{"op": "batch_put", "table": nums, "items": items}, &res)
		if len(res) != len(items) {
			t.Fatalf("batch put: %d results for %d items", len(res), len(items))
		}
		for i, r := range res {
			if r.Error != "" || r.Revision == 0 {
				t.Fatalf("batch put item %d: %+v", i, r)
			}
			revs[fmt.Sprint(items[i]["pk"], "/", items[i]["n"])] = r.Revision
		}
		e := fn.fail(t, op{"op": "batch_put", "table": nums, "items": []op{{"pk": "p3", "n": 1}, {"pk": "p3", "n": 1}}})
		if e.Status != 400 {
			t.Fatalf("batch put with a repeated key: error %+v, want status 400", e)
		}
		e = fn.fail(t, op{"op": "batch_put", "table": nums, "items": []op{{"pk": "p3", "n": 2}, {"pk": "p3"}}})
		if e.Status != 400 {
			t.Fatalf("batch put with an item missing its sort key: error %+v, want status 400", e)
		}
		// A rejected batch writes nothing.
		var got []*sdk.Item
		fn.ok(t, op{"op": "batch_get", "table": nums, "keys": []op{{"pk": "p3", "n": 1}, {"pk": "p3", "n": 2}}}, &got)
		if len(got) != 2 || got[0] != nil || got[1] != nil {
			t.Fatalf("a rejected batch wrote items: %v", got)
		}
	})
	t.Run("BatchGet", func(t *testing.T) {
		var got []*sdk.Item
		fn.ok(t, op{"op": "batch_get", "table": nums, "keys": []op{{"pk": "p2", "n": 7}, {"pk": "p1", "n": 999}, {"pk": "p1", "n": 5}}}, &got)
		if len(got) != 3 || got[0] == nil || got[1] != nil || got[2] == nil {
			t.Fatalf("batch get = %v, want [p2/7, nil, p1/5]", got)
		}
		if m := decodeItem(t, got[0].Data); m["pk"] != "p2" || m["n"] != 7.0 || got[0].Revision != revs["p2/7"] {
			t.Errorf("batch get [0] = %s at %d, want p2/7 at %d", got[0].Data, got[0].Revision, revs["p2/7"])
		}
		if m := decodeItem(t, got[2].Data); m["tag"] != "t5" || got[2].Revision != revs["p1/5"] {
			t.Errorf("batch get [2] = %s at %d, want p1/5 at %d", got[2].Data, got[2].Revision, revs["p1/5"])
		}
	})

	// query runs a query and returns the page's sort keys and cursor.
	query := func(t *testing.T, table string, q op) ([]any, string) {
		t.Helper()
		o := op{"op": "query", "table": table}
		for k, v := range q {
			o[k] = v
		}
		var p sdk.Page
		fn.ok(t, o, &p)
		var keys []any
		for _, it := range p.Items {
			m := decodeItem(t, it.Data)
			if m["pk"] != q["partition"] {
				t.Fatalf("query of partition %v returned %s", q["partition"], it.Data)
			}
			if it.Revision == 0 {
				t.Fatalf("query item %s has no revision", it.Data)
			}
			if v, ok := m["n"]; ok {
				keys = append(keys, v)
			} else {
				keys = append(keys, m["sk"])
			}
		}
		return keys, p.Cursor
	}
	nums64 := func(ns ...float64) []any {
		out := make([]any, len(ns))
		for i, n := range ns {
			out[i] = n
		}
		return out
	}
	t.Run("Conditions", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			q    op
			want []any
		}{
			{"all", op{}, nums64(1, 2, 5, 10, 20, 100)},
			{"eq", op{"where": "= 5"}, nums64(5)},
			{"lt", op{"where": "< 10"}, nums64(1, 2, 5)},
			{"le", op{"where": "<= 10"}, nums64(1, 2, 5, 10)},
			{"gt", op{"where": "> 10"}, nums64(20, 100)},
			{"ge", op{"where": ">= 10"}, nums64(10, 20, 100)},
			{"between", op{"where": "between 2 and 20"}, nums64(2, 5, 10, 20)},
			{"reverse", op{"reverse": true}, nums64(100, 20, 10, 5, 2, 1)},
			{"reverse gt", op{"where": "> 2", "reverse": true}, nums64(100, 20, 10, 5)},
			{"limit", op{"limit": 2}, nums64(1, 2)},
			{"reverse limit", op{"reverse": true, "limit": 2}, nums64(100, 20)},
			{"structured between", op{"condition": sdk.Condition{Op: "between", Value: 5, Value2: 100}}, nums64(5, 10, 20, 100)},
			{"structured lt", op{"condition": sdk.Condition{Op: "<", Value: 5}}, nums64(1, 2)},
			{"none match", op{"where": "> 1000"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				q := op{"partition": "p1"}
				for k, v := range tc.q {
					q[k] = v
				}
				got, _ := query(t, nums, q)
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("query %v = %v, want %v", tc.q, got, tc.want)
				}
			})
		}
		// p1 is a prefix of p10: a partition holds only its own items.
		if got, _ := query(t, nums, op{"partition": "p10"}); !reflect.DeepEqual(got, nums64(1)) {
			t.Errorf("query of p10 = %v, want [1]", got)
		}
		if got, _ := query(t, nums, op{"partition": "nobody"}); len(got) != 0 {
			t.Errorf("query of an empty partition = %v", got)
		}
	})
	t.Run("BeginsWith", func(t *testing.T) {
		var bi []op
		for _, sk := range []string{"img/2", "doc/1", "img/1", "imh", "img", "img/10"} {
			bi = append(bi, op{"pk": "q", "sk": sk})
		}
		fn.ok(t, op{"op": "batch_put", "table": kv, "items": bi}, nil)
		want := []any{"img/1", "img/10", "img/2"}
		if got, _ := query(t, kv, op{"partition": "q", "where": `begins_with "img/"`}); !reflect.DeepEqual(got, want) {
			t.Errorf(`begins_with "img/" = %v, want %v`, got, want)
		}
		if got, _ := query(t, kv, op{"partition": "q", "condition": sdk.Condition{Op: "begins_with", Value: "img/"}, "reverse": true}); !reflect.DeepEqual(got, []any{"img/2", "img/10", "img/1"}) {
			t.Errorf("structured begins_with, reverse = %v", got)
		}
		if got, _ := query(t, kv, op{"partition": "q", "where": `< "img/"`}); !reflect.DeepEqual(got, []any{"doc/1", "img"}) {
			t.Errorf(`< "img/" = %v, want [doc/1 img]`, got)
		}
	})
	t.Run("Cursor", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			q    op
			want []any
		}{
			{"forward", op{"limit": 2}, nums64(1, 2, 5, 10, 20, 100)},
			{"reverse", op{"limit": 4, "reverse": true}, nums64(100, 20, 10, 5, 2, 1)},
			{"condition", op{"limit": 2, "where": ">= 2"}, nums64(2, 5, 10, 20, 100)},
			{"reverse condition", op{"limit": 2, "where": "between 2 and 20", "reverse": true}, nums64(20, 10, 5, 2)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				limit := tc.q["limit"].(int)
				var all []any
				cursor := ""
				for pages := 0; ; pages++ {
					if pages > 10 {
						t.Fatalf("more than 10 pages, so far %v", all)
					}
					q := op{"partition": "p1", "cursor": cursor}
					for k, v := range tc.q {
						q[k] = v
					}
					got, next := query(t, nums, q)
					if len(got) > limit {
						t.Fatalf("page of %d items, limit %d", len(got), limit)
					}
					all = append(all, got...)
					if cursor = next; cursor == "" {
						break
					}
				}
				if !reflect.DeepEqual(all, tc.want) {
					t.Fatalf("pages together = %v, want %v", all, tc.want)
				}
			})
		}
		e := fn.fail(t, op{"op": "query", "table": nums, "partition": "p1", "cursor": "not-a-cursor"})
		if e.Status != 400 {
			t.Errorf("malformed cursor: error %+v, want status 400", e)
		}
		e = fn.fail(t, op{"op": "query", "table": nums, "partition": "p1", "where": "~= 3"})
		if e.Status != 400 {
			t.Errorf("bad condition: error %+v, want status 400", e)
		}
	})
	t.Run("Scan", func(t *testing.T) {
		want := map[string]bool{}
		for _, it := range items {
			want[fmt.Sprint(it["pk"], "/", it["n"])] = true
		}
		var whole sdk.Page
		fn.ok(t, op{"op": "scan", "table": nums}, &whole)
		if len(whole.Items) != len(want) || whole.Cursor != "" {
			t.Fatalf("scan with the default limit: %d items, cursor %q; want %d, none", len(whole.Items), whole.Cursor, len(want))
		}
		got := map[string]bool{}
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatalf("more than 10 pages, so far %v", got)
			}
			var p sdk.Page
			fn.ok(t, op{"op": "scan", "table": nums, "limit": 2, "cursor": cursor}, &p)
			if len(p.Items) > 2 {
				t.Fatalf("scan page of %d items, limit 2", len(p.Items))
			}
			for _, it := range p.Items {
				m := decodeItem(t, it.Data)
				k := fmt.Sprint(m["pk"], "/", m["n"])
				if got[k] {
					t.Fatalf("scan returned %s twice", k)
				}
				got[k] = true
			}
			if cursor = p.Cursor; cursor == "" {
				break
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("scanned %v, want %v", got, want)
		}
	})
}

// testSDKTTL checks that no read returns an item whose TTL attribute lies
// in the past, and that a put if absent may replace it.
func testSDKTTL(t *testing.T, fn opsFn, table string) {
	past, future := time.Now().Add(-time.Hour).Unix(), time.Now().Add(time.Hour).Unix()
	fn.ok(t, op{"op": "batch_put", "table": table, "items": []op{
		{"pk": "a", "sk": "old", "exp": past}, {"pk": "a", "sk": "new", "exp": future}, {"pk": "a", "sk": "forever"},
	}}, nil)
	if e := fn.fail(t, op{"op": "get", "table": table, "key": op{"pk": "a", "sk": "old"}}); !e.NotFound {
		t.Errorf("get of an expired item: error %+v, want NotFound", e)
	}
	var p sdk.Page
	fn.ok(t, op{"op": "query", "table": table, "partition": "a"}, &p)
	var keys []any
	for _, it := range p.Items {
		keys = append(keys, decodeItem(t, it.Data)["sk"])
	}
	if want := []any{"forever", "new"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("query = %v, want %v (no expired item)", keys, want)
	}
	fn.ok(t, op{"op": "scan", "table": table}, &p)
	if len(p.Items) != 2 {
		t.Errorf("scan returned %d items, want the 2 unexpired", len(p.Items))
	}
	var got []*sdk.Item
	fn.ok(t, op{"op": "batch_get", "table": table, "keys": []op{{"pk": "a", "sk": "old"}, {"pk": "a", "sk": "new"}}}, &got)
	if len(got) != 2 || got[0] != nil || got[1] == nil {
		t.Errorf("batch get = %v, want [nil, new]", got)
	}
	fn.ok(t, op{"op": "put", "table": table, "item": op{"pk": "a", "sk": "old", "exp": future}, "if_absent": true}, nil)
}

// testSDKBucket covers put with content type and metadata, get, head,
// list (prefix, delimiter, paging), copy (in and across buckets), delete
// and presigned GET and PUT URLs fetched over HTTP.
func testSDKBucket(t *testing.T, fn opsFn, c *api.Client, files, other string) {
	ctx := context.Background()
	body := make([]byte, 40_000) // over the wasm SDK's first answer buffer
	for i := range body {
		body[i] = byte(i * 7)
	}
	sum := sha256.Sum256(body) // not an MD5: that is for the S3 API
	etag := hex.EncodeToString(sum[:])
	var put sdk.ObjectInfo
	t.Run("Put", func(t *testing.T) {
		fn.ok(t, op{"op": "obj_put", "bucket": files, "object": "docs/a.bin", "body": body, "content_type": "application/x-test", "meta": map[string]string{"owner": "ada", "Color": "Blue"}}, &put)
		if put.Key != "docs/a.bin" || put.Size != int64(len(body)) || put.ETag != etag {
			t.Fatalf("put = %+v, want size %d, etag %s", put, len(body), etag)
		}
		// The admin API reads what the function wrote.
		resp, err := c.GetObject(ctx, files, "docs/a.bin", "")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if !bytes.Equal(got, body) || resp.Header.Get("Content-Type") != "application/x-test" || resp.Header.Get(api.HeaderMetaPrefix+"Owner") != "ada" {
			t.Fatalf("admin get: %d bytes, headers %v", len(got), resp.Header)
		}
		for _, k := range []string{"docs/b.txt", "docs/sub/c.txt", "img/x.png", "top.txt"} {
			fn.ok(t, op{"op": "obj_put", "bucket": files, "object": k, "body": []byte("content of " + k)}, nil)
		}
		// Conditional puts: a condition that does not hold is
		// ErrConditionFailed and changes nothing.
		for _, c := range []op{
			{"op": "obj_put", "bucket": files, "object": "docs/a.bin", "body": []byte("x"), "if_absent": true},
			{"op": "obj_put", "bucket": files, "object": "docs/a.bin", "body": []byte("x"), "if_match": "0123"},
		} {
			if e := fn.fail(t, c); !e.Condition || e.Code != "PreconditionFailed" {
				t.Fatalf("%v: error %+v, want a failed condition", c, e)
			}
		}
		var again sdk.ObjectInfo
		fn.ok(t, op{"op": "obj_put", "bucket": files, "object": "docs/a.bin", "body": body, "content_type": "application/x-test",
			"meta": map[string]string{"owner": "ada", "Color": "Blue"}, "if_match": put.ETag}, &again)
		fn.ok(t, op{"op": "obj_put", "bucket": files, "object": "docs/once.txt", "body": []byte("once"), "if_absent": true}, nil)
		fn.ok(t, op{"op": "obj_delete", "bucket": files, "object": "docs/once.txt"}, nil)
		var empty sdk.ObjectInfo
		fn.ok(t, op{"op": "obj_put", "bucket": other, "object": "empty", "body": []byte{}}, &empty)
		if empty.Size != 0 {
			t.Fatalf("empty object: size %d", empty.Size)
		}
	})
	t.Run("Get", func(t *testing.T) {
		var o sdk.Object
		fn.ok(t, op{"op": "obj_get", "bucket": files, "object": "docs/a.bin"}, &o)
		if !bytes.Equal(o.Body, body) {
			t.Fatalf("get: %d bytes, not the %d put", len(o.Body), len(body))
		}
		want := map[string]string{"owner": "ada", "color": "Blue"}
		if o.ContentType != "application/x-test" || o.ETag != etag || o.Size != int64(len(body)) || !reflect.DeepEqual(o.Metadata, want) || o.Modified.IsZero() {
			t.Fatalf("get info = %+v, want application/x-test, etag %s, size %d, metadata %v", o.ObjectInfo, etag, len(body), want)
		}
		e := fn.fail(t, op{"op": "obj_get", "bucket": files, "object": "docs/none"})
		if !e.NotFound || e.Code != "NotFound" {
			t.Fatalf("get of a missing object: error %+v, want NotFound", e)
		}
		var empty sdk.Object
		fn.ok(t, op{"op": "obj_get", "bucket": other, "object": "empty"}, &empty)
		if len(empty.Body) != 0 || empty.Size != 0 {
			t.Fatalf("empty object read back as %d bytes (size %d)", len(empty.Body), empty.Size)
		}
	})
	t.Run("GetRange", func(t *testing.T) {
		size := int64(len(body))
		for _, tc := range []struct {
			name           string
			offset, length int64
			want           []byte
		}{
			{"middle", 1000, 30_000, body[1000:31_000]},
			{"open-ended", 39_990, 0, body[39_990:]},
			{"past the end", 39_990, 100, body[39_990:]},
			{"first byte", 0, 1, body[:1]},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var o sdk.Object
				fn.ok(t, op{"op": "obj_get_range", "bucket": files, "object": "docs/a.bin", "offset": tc.offset, "length": tc.length}, &o)
				if !bytes.Equal(o.Body, tc.want) {
					t.Fatalf("range %d+%d: %d bytes, want the %d from offset %d", tc.offset, tc.length, len(o.Body), len(tc.want), tc.offset)
				}
				if o.Size != size || o.ETag != etag || o.ContentType != "application/x-test" || o.Metadata["owner"] != "ada" {
					t.Fatalf("range %d+%d: info = %+v, want size %d, etag %s", tc.offset, tc.length, o.ObjectInfo, size, etag)
				}
			})
		}
		t.Run("unsatisfiable", func(t *testing.T) {
			for _, o := range []op{
				{"op": "obj_get_range", "bucket": files, "object": "docs/a.bin", "offset": size, "length": 10},
				{"op": "obj_get_range", "bucket": other, "object": "empty", "offset": 0, "length": 0},
			} {
				e := fn.fail(t, o)
				if e.Code != "InvalidRange" || e.Status != http.StatusRequestedRangeNotSatisfiable || !e.Range || e.NotFound {
					t.Fatalf("range of %v from %v: error %+v, want InvalidRange, status 416", o["object"], o["offset"], e)
				}
			}
		})
		if e := fn.fail(t, op{"op": "obj_get_range", "bucket": files, "object": "docs/none", "offset": 0, "length": 10}); !e.NotFound {
			t.Fatalf("range of a missing object: error %+v, want NotFound", e)
		}
	})
	t.Run("Headers", func(t *testing.T) {
		var put sdk.ObjectInfo
		fn.ok(t, op{"op": "obj_put", "bucket": files, "object": "site/app.css", "body": []byte("body{}"), "content_type": "text/css",
			"headers": map[string]string{"cache-control": "max-age=600", "Content-Disposition": "inline"}}, &put)
		if put.Headers["Cache-Control"] != "max-age=600" || put.Headers["Content-Disposition"] != "inline" {
			t.Fatalf("put answered headers %v", put.Headers)
		}
		var h sdk.ObjectInfo
		fn.ok(t, op{"op": "obj_head", "bucket": files, "object": "site/app.css"}, &h)
		var got sdk.Object
		fn.ok(t, op{"op": "obj_get", "bucket": files, "object": "site/app.css"}, &got)
		for what, hs := range map[string]map[string]string{"head": h.Headers, "get": got.Headers} {
			if len(hs) != 2 || hs["Cache-Control"] != "max-age=600" || hs["Content-Disposition"] != "inline" {
				t.Errorf("%s: headers %v, want the two put", what, hs)
			}
		}
		resp, err := c.GetObject(ctx, files, "site/app.css", "")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Cache-Control") != "max-age=600" {
			t.Errorf("the admin API serves Cache-Control %q", resp.Header.Get("Cache-Control"))
		}
		e := fn.fail(t, op{"op": "obj_put", "bucket": files, "object": "site/x", "body": []byte("x"), "headers": map[string]string{"X-Frame-Options": "DENY"}})
		if !strings.Contains(e.Message, "Cache-Control") || !strings.Contains(e.Message, "X-Frame-Options") {
			t.Errorf("put with a header objects do not keep: error %+v, want one naming it and the ones they keep", e)
		}
		if err := c.DeleteObject(ctx, files, "site/app.css"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Head", func(t *testing.T) {
		var h sdk.ObjectInfo
		fn.ok(t, op{"op": "obj_head", "bucket": files, "object": "docs/a.bin"}, &h)
		if h.Size != int64(len(body)) || h.ETag != etag || h.ContentType != "application/x-test" || h.Metadata["owner"] != "ada" {
			t.Fatalf("head = %+v, want size %d, etag %s", h, len(body), etag)
		}
		e := fn.fail(t, op{"op": "obj_head", "bucket": files, "object": "docs/none"})
		if !e.NotFound {
			t.Fatalf("head of a missing object: error %+v, want NotFound", e)
		}
	})
	list := func(t *testing.T, o op) sdk.ObjectList {
		t.Helper()
		o["op"], o["bucket"] = "obj_list", files
		var l sdk.ObjectList
		fn.ok(t, o, &l)
		return l
	}
	keysOf := func(l sdk.ObjectList) []string {
		var ks []string
		for _, o := range l.Objects {
			ks = append(ks, o.Key)
		}
		return ks
	}
	t.Run("List", func(t *testing.T) {
		for _, tc := range []struct {
			name         string
			q            op
			keys, prefix []string
		}{
			{"prefix and delimiter", op{"prefix": "docs/", "delimiter": "/"}, []string{"docs/a.bin", "docs/b.txt"}, []string{"docs/sub/"}},
			{"delimiter", op{"delimiter": "/"}, []string{"top.txt"}, []string{"docs/", "img/"}},
			{"prefix", op{"prefix": "docs/"}, []string{"docs/a.bin", "docs/b.txt", "docs/sub/c.txt"}, nil},
			{"no match", op{"prefix": "zzz/"}, nil, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				l := list(t, tc.q)
				if got := keysOf(l); !slices.Equal(got, tc.keys) || !slices.Equal(l.CommonPrefixes, tc.prefix) || l.Cursor != "" {
					t.Fatalf("list %v = %v, prefixes %v, cursor %q; want %v, %v", tc.q, got, l.CommonPrefixes, l.Cursor, tc.keys, tc.prefix)
				}
			})
		}
		l := list(t, op{"prefix": "docs/a"})
		if len(l.Objects) != 1 || l.Objects[0].Size != int64(len(body)) || l.Objects[0].ETag != etag {
			t.Fatalf("listed object = %+v, want size %d, etag %s", l.Objects, len(body), etag)
		}
		var all []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatalf("more than 10 pages, so far %v", all)
			}
			l := list(t, op{"limit": 2, "cursor": cursor})
			if len(l.Objects) > 2 {
				t.Fatalf("page of %d objects, limit 2", len(l.Objects))
			}
			all = append(all, keysOf(l)...)
			if cursor = l.Cursor; cursor == "" {
				break
			}
		}
		if want := []string{"docs/a.bin", "docs/b.txt", "docs/sub/c.txt", "img/x.png", "top.txt"}; !slices.Equal(all, want) {
			t.Fatalf("paged listing = %v, want %v", all, want)
		}
	})
	t.Run("Copy", func(t *testing.T) {
		var cp sdk.ObjectInfo
		fn.ok(t, op{"op": "obj_copy", "bucket": files, "src_object": "docs/a.bin", "object": "copies/a.bin"}, &cp)
		if cp.Key != "copies/a.bin" || cp.ETag != etag || cp.Size != int64(len(body)) {
			t.Fatalf("copy = %+v, want etag %s", cp, etag)
		}
		var o sdk.Object
		fn.ok(t, op{"op": "obj_get", "bucket": files, "object": "copies/a.bin"}, &o)
		if !bytes.Equal(o.Body, body) || o.ContentType != "application/x-test" || o.Metadata["owner"] != "ada" {
			t.Fatalf("copy read back: %d bytes, info %+v", len(o.Body), o.ObjectInfo)
		}
		// Across buckets: the copy lands in the bucket called on.
		fn.ok(t, op{"op": "obj_copy", "bucket": other, "src_bucket": files, "src_object": "docs/b.txt", "object": "from-files.txt"}, nil)
		fn.ok(t, op{"op": "obj_get", "bucket": other, "object": "from-files.txt"}, &o)
		if string(o.Body) != "content of docs/b.txt" {
			t.Fatalf("cross-bucket copy read back %q", o.Body)
		}
		if e := fn.fail(t, op{"op": "obj_get", "bucket": files, "object": "from-files.txt"}); !e.NotFound {
			t.Fatalf("cross-bucket copy also wrote the source bucket: error %+v", e)
		}
		e := fn.fail(t, op{"op": "obj_copy", "bucket": files, "src_object": "docs/none", "object": "x"})
		if !e.NotFound {
			t.Fatalf("copy of a missing object: error %+v, want NotFound", e)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		fn.ok(t, op{"op": "obj_delete", "bucket": files, "object": "docs/b.txt"}, nil)
		if e := fn.fail(t, op{"op": "obj_get", "bucket": files, "object": "docs/b.txt"}); !e.NotFound {
			t.Fatalf("get after delete: error %+v, want NotFound", e)
		}
		if got := keysOf(list(t, op{"prefix": "docs/"})); !slices.Equal(got, []string{"docs/a.bin", "docs/sub/c.txt"}) {
			t.Fatalf("list after delete = %v", got)
		}
		fn.ok(t, op{"op": "obj_delete", "bucket": files, "object": "docs/b.txt"}, nil) // absent: not an error
	})
	t.Run("Keys", func(t *testing.T) {
		// Keys are any UTF-8, including what a URL path would clean away:
		// each must reach its own object, never the cleaned key.
		for _, key := range []string{"odd/sp ace/ünï %41+#?&=.txt", "odd/a//b", "odd/dots/../x", "odd/./y", "odd/dir/", "/odd", ".", ".."} {
			fn.ok(t, op{"op": "obj_put", "bucket": other, "object": key, "body": []byte("v:" + key)}, nil)
			var o sdk.Object
			fn.ok(t, op{"op": "obj_get", "bucket": other, "object": key}, &o)
			if string(o.Body) != "v:"+key {
				t.Errorf("get %q = %q, want %q", key, o.Body, "v:"+key)
			}
			var h sdk.ObjectInfo
			fn.ok(t, op{"op": "obj_head", "bucket": other, "object": key}, &h)
			if h.Size != int64(len("v:"+key)) {
				t.Errorf("head %q: size %d, want %d", key, h.Size, len("v:"+key))
			}
			// A presigned URL names the same object.
			var p struct {
				URL string `json:"url"`
			}
			fn.ok(t, op{"op": "presign", "bucket": other, "object": key, "method": "GET"}, &p)
			resp, err := http.Get(p.URL)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(got) != "v:"+key {
				t.Errorf("presigned GET of %q: status %d, %q", key, resp.StatusCode, got)
			}
		}
		// A presigned download that names its file.
		var p struct {
			URL string `json:"url"`
		}
		fn.ok(t, op{"op": "presign", "bucket": other, "object": "odd/a//b", "method": "GET", "download": "ünï b.txt"}, &p)
		resp, err := http.Get(p.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); resp.StatusCode != 200 || err != nil || params["filename"] != "ünï b.txt" {
			t.Errorf("presigned GET with sdk.DownloadAs: %d, Content-Disposition %q", resp.StatusCode, resp.Header.Get("Content-Disposition"))
		}
		var l sdk.ObjectList
		fn.ok(t, op{"op": "obj_list", "bucket": other, "prefix": "odd/"}, &l)
		want := []string{"odd/./y", "odd/a//b", "odd/dir/", "odd/dots/../x", "odd/sp ace/ünï %41+#?&=.txt"}
		if got := keysOf(l); !slices.Equal(got, want) {
			t.Errorf("listed %q, want %q (no cleaned keys)", got, want)
		}
		for _, key := range []string{"odd/a/b", "odd/x", "odd/y", "x", "odd"} {
			if e := fn.fail(t, op{"op": "obj_head", "bucket": other, "object": key}); !e.NotFound {
				t.Errorf("head of %q, a cleaned key: error %+v, want NotFound", key, e)
			}
		}
		fn.ok(t, op{"op": "obj_delete", "bucket": other, "object": "odd/a//b"}, nil)
		if e := fn.fail(t, op{"op": "obj_get", "bucket": other, "object": "odd/a//b"}); !e.NotFound {
			t.Errorf("get after delete of odd/a//b: error %+v, want NotFound", e)
		}
	})
	t.Run("Presign", func(t *testing.T) {
		type presigned struct {
			URL     string    `json:"url"`
			Expires time.Time `json:"expires"`
		}
		fetch := func(t *testing.T, method, u string, body []byte) (int, []byte) {
			t.Helper()
			req, err := http.NewRequest(method, u, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, u, err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, b
		}
		// A URL that expires within a second works until then.
		var short presigned
		fn.ok(t, op{"op": "presign", "bucket": files, "object": "top.txt", "method": "GET", "expires": "1s"}, &short)
		if code, got := fetch(t, http.MethodGet, short.URL, nil); code != 200 && time.Now().Before(short.Expires) {
			t.Errorf("GET short-lived URL before expiry: status %d: %s", code, got)
		} else if code == 200 && string(got) != "content of top.txt" {
			t.Errorf("GET short-lived URL: %q", got)
		}

		var g presigned
		before := time.Now()
		fn.ok(t, op{"op": "presign", "bucket": files, "object": "docs/a.bin", "method": "GET", "expires": "10m"}, &g)
		if !strings.HasPrefix(g.URL, "http://") || !strings.Contains(g.URL, "/docs/a.bin?") {
			t.Fatalf("presigned URL %q is not an absolute URL of the object", g.URL)
		}
		if d := g.Expires.Sub(before); d < 10*time.Minute-2*time.Second || d > 10*time.Minute+2*time.Second {
			t.Errorf("expires %v, %v from now; want 10m", g.Expires, d)
		}
		if code, got := fetch(t, http.MethodGet, g.URL, nil); code != 200 || !bytes.Equal(got, body) {
			t.Fatalf("GET presigned URL: status %d, %d bytes; want 200 and the object", code, len(got))
		}
		for name, bad := range map[string]string{
			"key":       strings.Replace(g.URL, "/docs/a.bin?", "/docs/sub/c.txt?", 1),
			"bucket":    strings.Replace(g.URL, "/"+files+"/", "/"+other+"/", 1),
			"expiry":    strings.Replace(g.URL, "expires=", "expires=9", 1),
			"signature": strings.Replace(g.URL, "signature=", "signature=A", 1),
			"method":    strings.Replace(g.URL, "method=GET", "method=PUT", 1),
		} {
			if bad == g.URL {
				t.Fatalf("tampering with the %s left the URL %q unchanged", name, g.URL)
			}
			if code, _ := fetch(t, http.MethodGet, bad, nil); code != 403 {
				t.Errorf("GET with a tampered %s: status %d, want 403", name, code)
			}
		}
		if code, _ := fetch(t, http.MethodPut, g.URL, []byte("overwrite")); code == 200 {
			t.Errorf("PUT through a GET URL: status %d, want a refusal", code)
		}

		var p presigned
		before = time.Now()
		fn.ok(t, op{"op": "presign", "bucket": files, "object": "up/load.bin", "method": "PUT"}, &p)
		if d := p.Expires.Sub(before); d < time.Hour-2*time.Second || d > time.Hour+2*time.Second {
			t.Errorf("default expiry %v from now, want 1h", d)
		}
		if code, got := fetch(t, http.MethodPut, p.URL, []byte("uploaded")); code != 200 {
			t.Fatalf("PUT presigned URL: status %d: %s", code, got)
		}
		var o sdk.Object
		fn.ok(t, op{"op": "obj_get", "bucket": files, "object": "up/load.bin"}, &o)
		if string(o.Body) != "uploaded" {
			t.Fatalf("object uploaded through a presigned URL reads %q", o.Body)
		}
		if code, _ := fetch(t, http.MethodGet, p.URL, nil); code != 403 {
			t.Errorf("GET through a PUT URL: status %d, want 403", code)
		}
		if e := fn.fail(t, op{"op": "presign", "bucket": files, "object": "x", "method": "DELETE"}); e.Status != 400 {
			t.Errorf("presign DELETE: error %+v, want status 400", e)
		}

		// The short-lived URL is refused once expired.
		nodetest.Eventually(t, 5*time.Second, "the expired URL to be refused", func() bool {
			code, _ := fetch(t, http.MethodGet, short.URL, nil)
			return code == 403
		})
	})
}

// testSDKDenied checks a function reaches only the tables and buckets its
// spec lists, and that the error names what is missing.
func testSDKDenied(t *testing.T, narrow, none opsFn, c *api.Client, kv, nums, files, other string) {
	ctx := context.Background()
	// What the spec lists works: the refusals below are about permissions.
	fn := narrow
	fn.ok(t, op{"op": "put", "table": kv, "item": op{"pk": "narrow", "sk": "1"}}, nil)
	fn.ok(t, op{"op": "obj_put", "bucket": files, "object": "narrow.txt", "body": []byte("ok")}, nil)

	for _, tc := range []struct {
		name string
		fn   opsFn
		o    op
		want []string // in the message
	}{
		{"table put", narrow, op{"op": "put", "table": nums, "item": op{"pk": "x", "n": 1}}, []string{nums, "uses.tables"}},
		{"table get", narrow, op{"op": "get", "table": nums, "key": op{"pk": "p1", "n": 1}}, []string{nums, "uses.tables"}},
		{"table query", narrow, op{"op": "query", "table": nums, "partition": "p1"}, []string{nums, "uses.tables"}},
		{"table scan", narrow, op{"op": "scan", "table": nums}, []string{nums, "uses.tables"}},
		{"table batch put", narrow, op{"op": "batch_put", "table": nums, "items": []op{{"pk": "x", "n": 2}}}, []string{nums, "uses.tables"}},
		{"table update", narrow, op{"op": "update", "table": nums, "key": op{"pk": "x", "n": 3}, "patch": op{"v": 1}}, []string{nums, "uses.tables"}},
		{"table delete", narrow, op{"op": "delete", "table": nums, "key": op{"pk": "p1", "n": 1}}, []string{nums, "uses.tables"}},
		{"no uses", none, op{"op": "get", "table": kv, "key": op{"pk": "narrow", "sk": "1"}}, []string{kv, "uses.tables"}},
		{"object put", narrow, op{"op": "obj_put", "bucket": other, "object": "denied.txt", "body": []byte("x")}, []string{other, "uses.buckets"}},
		{"object get", narrow, op{"op": "obj_get", "bucket": other, "object": "empty"}, []string{other, "uses.buckets"}},
		{"object list", narrow, op{"op": "obj_list", "bucket": other}, []string{other, "uses.buckets"}},
		{"object delete", narrow, op{"op": "obj_delete", "bucket": other, "object": "empty"}, []string{other, "uses.buckets"}},
		{"copy from", narrow, op{"op": "obj_copy", "bucket": files, "src_bucket": other, "src_object": "empty", "object": "stolen"}, []string{other, "uses.buckets"}},
		{"copy to", narrow, op{"op": "obj_copy", "bucket": other, "src_bucket": files, "src_object": "narrow.txt", "object": "leaked"}, []string{other, "uses.buckets"}},
		{"presign", narrow, op{"op": "presign", "bucket": other, "object": "empty", "method": "GET"}, []string{other, "uses.buckets"}},
		{"no uses bucket", none, op{"op": "obj_get", "bucket": files, "object": "narrow.txt"}, []string{files, "uses.buckets"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.fn.fail(t, tc.o)
			if !e.Denied || e.Code != "AccessDenied" || e.Status != 403 {
				t.Errorf("error %+v, want AccessDenied (403)", e)
			}
			for _, w := range tc.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message %q does not name %q", e.Message, w)
				}
			}
		})
	}
	// The refused writes wrote nothing.
	if _, err := c.GetItem(ctx, nums, json.RawMessage(`{"pk":"x","n":1}`)); !isAPICode(err, api.CodeNotFound) {
		t.Errorf("denied put: admin get err = %v, want NotFound", err)
	}
	for _, o := range []struct{ bucket, key string }{{other, "denied.txt"}, {files, "stolen"}, {other, "leaked"}} {
		if _, err := c.GetObject(ctx, o.bucket, o.key, ""); !isAPICode(err, api.CodeNotFound) {
			t.Errorf("denied write of %s/%s: admin get err = %v, want NotFound", o.bucket, o.key, err)
		}
	}
	if _, err := c.GetObject(ctx, other, "empty", ""); err != nil {
		t.Errorf("denied delete removed %s/empty: %v", other, err)
	}
}

// testSDKBucketTrigger puts objects into a bucket that triggers a real
// function on created objects under img/: each such object invokes it once
// (it writes the event to the table seen), and objects outside the prefix
// and deletions do not.
func testSDKBucketTrigger(t *testing.T, n *node.Node, runtime string, code []byte) {
	c := nodetest.Client(n)
	ctx := context.Background()
	bucket, fn := "uploads-"+runtime, "onupload-"+runtime
	if _, err := c.PutBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	nodetest.Deploy(t, n, api.Function{Name: fn, Runtime: runtime, Memory: 64, Timeout: "10s",
		Uses: &api.Uses{Tables: []string{"seen"}}}, code)
	if _, err := c.PutTriggers(ctx, fn, []api.Trigger{{Name: "img", Bucket: bucket, Events: []string{"created"}, Prefix: "img/"}}); err != nil {
		t.Fatal(err)
	}
	sts, err := c.Triggers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(sts, func(s api.TriggerStatus) bool { return s.Function == fn && s.Name == "img" }); i < 0 || sts[i].State != "active" || sts[i].Kind != api.KindBucket {
		t.Fatalf("trigger status %+v, want the bucket trigger img of %s active", sts, fn)
	}

	putObj := func(key, body string) *api.Object {
		t.Helper()
		o, err := c.PutObject(ctx, bucket, key, strings.NewReader(body), int64(len(body)), "", nil)
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		return o
	}
	// Deliveries may run concurrently, so the wait is for both images;
	// had the filters let the others through, their invocations would
	// have started before img/b.png's and show in the checks below.
	a := putObj("img/a.png", "aaaa")
	putObj("doc/skip.txt", "not an image")
	putObj("imgx/c.png", "outside the prefix too")
	if err := c.DeleteObject(ctx, bucket, "img/a.png"); err != nil {
		t.Fatal(err)
	}
	b := putObj("img/b.png", "bbbbbbbb")

	type seen struct {
		Name string `json:"name"`
		Key  string `json:"key"`
		Size int64  `json:"size"`
		ETag string `json:"etag"`
	}
	var got []seen
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		recs, err := c.Records(ctx, fn, 50)
		t.Logf("seen %+v; records (err %v):", got, err)
		for _, r := range recs {
			t.Logf("  %s %s %s cold=%v init=%.0fms dur=%.0fms %s: %s %s", r.ID, r.Source, r.Status, r.ColdStart, r.InitMS, r.DurationMS, r.Started.Format(time.StampMilli), r.Error, r.Logs)
		}
		sts, err := c.Triggers(ctx)
		t.Logf("triggers (err %v): %+v", err, sts)
	})
	nodetest.Eventually(t, 10*time.Second, "the function to see img/a.png and img/b.png", func() bool {
		p, err := c.Query(ctx, "seen", &api.QueryRequest{Partition: json.RawMessage(strconv.Quote(bucket))})
		if err != nil {
			return false
		}
		got = got[:0]
		for _, e := range p.Items {
			var s seen
			if err := json.Unmarshal(e.Item, &s); err != nil {
				t.Fatalf("seen item %s: %v", e.Item, err)
			}
			got = append(got, s)
		}
		return slices.ContainsFunc(got, func(s seen) bool { return s.Key == "img/a.png" }) &&
			slices.ContainsFunc(got, func(s seen) bool { return s.Key == "img/b.png" })
	})
	slices.SortFunc(got, func(x, y seen) int { return strings.Compare(x.Key, y.Key) })
	want := []seen{
		{Name: "ObjectCreated", Key: "img/a.png", Size: 4, ETag: a.ETag},
		{Name: "ObjectCreated", Key: "img/b.png", Size: 8, ETag: b.ETag},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the function saw %+v, want %+v", got, want)
	}
	// Records are written after the invocation returns: wait for both.
	var recs []api.Record
	nodetest.Eventually(t, 10*time.Second, "2 invocation records", func() bool {
		var err error
		recs, err = c.Records(ctx, fn, 50)
		return err == nil && len(recs) >= 2
	})
	for _, r := range recs {
		if r.Source != "bucket" || r.Status != "ok" {
			t.Errorf("invocation %s: source %s, status %s (%s); want bucket, ok", r.ID, r.Source, r.Status, r.Error)
		}
	}
	if len(recs) != 2 {
		t.Errorf("%d invocation records, want 2", len(recs))
	}
}

// isAPICode reports whether err is an API error with code.
func isAPICode(err error, code string) bool {
	var e *api.Error
	return errors.As(err, &e) && e.Code == code
}

// testFunctionListener calls the listener process functions reach the
// node on (NIMBUS_API, NIMBUS_API_SOCKET) as a function in another
// language would, with fn's credential: its table and bucket, a 20 MB
// object streamed both ways; and its refusals: no credential, the admin's,
// a route functions may not call, a malformed request.
func testFunctionListener(t *testing.T, n *node.Node, fn, table, bucket string) {
	url, sock := n.FunctionAPI()
	if !strings.HasPrefix(url, "http://127.0.0.1:") || sock == "" {
		t.Fatalf("FunctionAPI() = %q, %q; want a loopback URL and a socket", url, sock)
	}
	spec, err := n.Reg.Get(fn)
	if err != nil {
		t.Fatal(err)
	}
	cred := n.Data.Credential(spec)
	unixClient := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	do := func(hc *http.Client, method, path, tok string, body io.Reader) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, url+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	for name, hc := range map[string]*http.Client{"tcp": http.DefaultClient, "unix": unixClient} {
		item := `{"pk":"listener-` + name + `","sk":"1","v":1}`
		if resp, b := do(hc, "PUT", "/api/v1/tables/"+table+"/items", cred, strings.NewReader(`{"item":`+item+`}`)); resp.StatusCode != 200 {
			t.Fatalf("%s: put: %d %s", name, resp.StatusCode, b)
		}
		resp, b := do(hc, "POST", "/api/v1/tables/"+table+"/get", cred, strings.NewReader(`{"key":{"pk":"listener-`+name+`","sk":"1"}}`))
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"v":1`) {
			t.Fatalf("%s: get: %d %s", name, resp.StatusCode, b)
		}
	}

	// A large object streams through (the loop buffers only answers
	// without a length).
	obj := make([]byte, 20<<20)
	for i := range obj {
		obj[i] = byte(i * 7)
	}
	if resp, b := do(http.DefaultClient, "PUT", "/api/v1/buckets/"+bucket+"/objects/big", cred, bytes.NewReader(obj)); resp.StatusCode != 200 {
		t.Fatalf("object put: %d %s", resp.StatusCode, b)
	}
	resp, b := do(unixClient, "GET", "/api/v1/buckets/"+bucket+"/objects/big", cred, nil)
	if resp.StatusCode != 200 || !bytes.Equal(b, obj) {
		t.Fatalf("object get: %d, %d bytes, same %v", resp.StatusCode, len(b), bytes.Equal(b, obj))
	}
	resp, b = do(unixClient, "GET", "/api/v1/buckets/"+bucket+"/objects/big", cred, nil)
	if resp.StatusCode != 200 || len(b) != len(obj) {
		t.Fatalf("object get on a kept connection: %d, %d bytes", resp.StatusCode, len(b))
	}
	// The SDK's own tests of this table and bucket follow: leave them as
	// they were.
	if resp, b := do(unixClient, "DELETE", "/api/v1/buckets/"+bucket+"/objects/big", cred, nil); resp.StatusCode/100 != 2 {
		t.Fatalf("object delete: %d %s", resp.StatusCode, b)
	}
	for _, name := range []string{"tcp", "unix"} {
		if resp, b := do(http.DefaultClient, "POST", "/api/v1/tables/"+table+"/delete", cred, strings.NewReader(`{"key":{"pk":"listener-`+name+`","sk":"1"}}`)); resp.StatusCode/100 != 2 {
			t.Fatalf("delete: %d %s", resp.StatusCode, b)
		}
	}

	refusals := []struct {
		name, method, path, tok string
		status                  int
		says                    string
	}{
		{"no credential", "GET", "/api/v1/tables", "", 403, "NIMBUS_DATA_TOKEN"},
		{"admin token", "GET", "/api/v1/tables", n.Token(), 403, "NIMBUS_DATA_TOKEN"},
		{"a route functions may not call", "GET", "/api/v1/functions", cred, 403, "functions reach /api/v1/tables"},
		{"a table the function does not use", "POST", "/api/v1/tables/kv-wasm/get", cred, 403, "kv-wasm"},
	}
	for _, tt := range refusals {
		resp, b := do(http.DefaultClient, tt.method, tt.path, tt.tok, strings.NewReader(`{"key":{"pk":"a","n":1}}`))
		var e api.ErrorBody
		if resp.StatusCode != tt.status || json.Unmarshal(b, &e) != nil || e.Error == nil || !strings.Contains(e.Error.Message, tt.says) {
			t.Errorf("%s: %d %s; want %d, a JSON error that says %q", tt.name, resp.StatusCode, b, tt.status, tt.says)
		}
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "NOT HTTP\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("malformed request: %+v, %v; want 400", resp, err)
	}
}
