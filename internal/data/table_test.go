package data_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func startNode(t testing.TB) (*node.Node, *api.Client) {
	t.Helper()
	n := nodetest.Start(t, node.Config{Data: data.Config{TTLInterval: time.Hour}})
	return n, nodetest.Client(n)
}

func TestTableCRUD(t *testing.T) {
	n, c := startNode(t)
	ctx := context.Background()
	res, err := c.PutTable(ctx, &api.Table{Name: "orders", Key: "customer", Sort: "created"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Change != "created" {
		t.Fatalf("change = %q, want created", res.Change)
	}
	if res, err = c.PutTable(ctx, &api.Table{Name: "orders", Key: "customer", Sort: "created"}); err != nil || res.Change != "unchanged" {
		t.Fatalf("re-apply: %v %v", res, err)
	}
	if _, err = c.PutTable(ctx, &api.Table{Name: "orders", Key: "other"}); !isCode(err, api.CodeConflict) {
		t.Fatalf("changing keys: err = %v, want Conflict", err)
	}

	rev, err := c.PutItem(ctx, "orders", &api.PutItemRequest{Item: raw(`{"customer":"c1","created":"2024-01-01","total":5}`)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.GetItem(ctx, "orders", raw(`{"customer":"c1","created":"2024-01-01"}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.Revision != rev || !strings.Contains(string(e.Item), `"total":5`) {
		t.Fatalf("get = %s rev %d, want total 5 rev %d", e.Item, e.Revision, rev)
	}
	// Conditional writes.
	if _, err := c.PutItem(ctx, "orders", &api.PutItemRequest{Item: raw(`{"customer":"c1","created":"2024-01-01"}`), IfAbsent: true}); !isCode(err, api.CodeConditionFailed) {
		t.Fatalf("if_absent on existing: err = %v, want ConditionFailed", err)
	}
	if _, err := c.PutItem(ctx, "orders", &api.PutItemRequest{Item: raw(`{"customer":"c1","created":"2024-01-01"}`), IfRevision: rev + 100}); !isCode(err, api.CodeConditionFailed) {
		t.Fatalf("if_revision wrong: err = %v, want ConditionFailed", err)
	}
	rev2, err := c.PutItem(ctx, "orders", &api.PutItemRequest{Item: raw(`{"customer":"c1","created":"2024-01-01","total":6}`), IfRevision: rev})
	if err != nil || rev2 <= rev {
		t.Fatalf("if_revision right: rev %d err %v", rev2, err)
	}
	up, err := c.UpdateItem(ctx, "orders", &api.UpdateItemRequest{Key: raw(`{"customer":"c1","created":"2024-01-01"}`), Patch: raw(`{"total":7,"note":"x"}`), IfRevision: rev2})
	if err != nil || !strings.Contains(string(up.Item), `"total":7`) || !strings.Contains(string(up.Item), `"note":"x"`) {
		t.Fatalf("update: %v %v", up, err)
	}
	if err := c.DeleteItem(ctx, "orders", raw(`{"customer":"c1","created":"2024-01-01"}`), rev2); !isCode(err, api.CodeConditionFailed) {
		t.Fatalf("stale conditional delete: err = %v", err)
	}
	// A table holding items is deleted only with force.
	if err := c.DeleteTable(ctx, "orders", false); !isCode(err, api.CodeNotEmpty) {
		t.Fatalf("delete non-empty: err = %v, want NotEmpty", err)
	}
	if err := c.DeleteItem(ctx, "orders", raw(`{"customer":"c1","created":"2024-01-01"}`), up.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetItem(ctx, "orders", raw(`{"customer":"c1","created":"2024-01-01"}`)); !isCode(err, api.CodeNotFound) {
		t.Fatalf("get deleted: err = %v, want NotFound", err)
	}
	if _, err := c.PutItem(ctx, "orders", &api.PutItemRequest{Item: raw(`{"customer":"c1","created":"2024-01-01"}`), IfAbsent: true}); err != nil {
		t.Fatalf("if_absent after delete: %v", err)
	}
	if err := c.DeleteTable(ctx, "orders", true); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Data.Table("orders"); !errors.Is(err, data.ErrNoSuchTable) {
		t.Fatalf("table after delete: %v", err)
	}
}

// TestUpdateTime: an update answers the time the store recorded for its
// write, the same time a following get reads back.
func TestUpdateTime(t *testing.T) {
	_, c := startNode(t)
	ctx := context.Background()
	if _, err := c.PutTable(ctx, &api.Table{Name: "stamps", Key: "id"}); err != nil {
		t.Fatal(err)
	}
	key := raw(`{"id":"a"}`)
	for _, tc := range []struct {
		name  string
		patch string
		cond  bool // condition the update on the revision a get reads first
	}{
		{"creates", `{"n":1}`, false},
		{"merges", `{"n":2}`, false},
		{"conditional", `{"n":3}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &api.UpdateItemRequest{Key: key, Patch: raw(tc.patch)}
			if tc.cond {
				e, err := c.GetItem(ctx, "stamps", key)
				if err != nil {
					t.Fatal(err)
				}
				req.IfRevision = e.Revision
			}
			up, err := c.UpdateItem(ctx, "stamps", req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.GetItem(ctx, "stamps", key)
			if err != nil {
				t.Fatal(err)
			}
			if got.Revision != up.Revision {
				t.Fatalf("get revision = %d, want the update's %d", got.Revision, up.Revision)
			}
			if up.Updated.IsZero() || !got.Updated.Equal(up.Updated) {
				t.Fatalf("get updated = %s, want the update's %s", got.Updated.Format(time.RFC3339Nano), up.Updated.Format(time.RFC3339Nano))
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	_, c := startNode(t)
	ctx := context.Background()
	if _, err := c.PutTable(ctx, &api.Table{Name: "t", Key: "k", Sort: "s"}); err != nil {
		t.Fatal(err)
	}
	big := `{"k":"a","s":"b","pad":"` + strings.Repeat("x", data.MaxItemBytes) + `"}`
	for _, tc := range []struct {
		name string
		do   func() error
		code string
	}{
		{"bad table name", func() error { _, err := c.PutTable(ctx, &api.Table{Name: "no spaces", Key: "k"}); return err }, api.CodeInvalid},
		{"no such table", func() error { _, err := c.GetItem(ctx, "nope", raw(`{"k":"a"}`)); return err }, api.CodeNotFound},
		{"not an object", func() error { _, err := c.PutItem(ctx, "t", &api.PutItemRequest{Item: raw(`[1]`)}); return err }, api.CodeInvalid},
		{"missing key", func() error { _, err := c.PutItem(ctx, "t", &api.PutItemRequest{Item: raw(`{"s":"b"}`)}); return err }, api.CodeInvalid},
		{"object key", func() error {
			_, err := c.PutItem(ctx, "t", &api.PutItemRequest{Item: raw(`{"k":{},"s":"b"}`)})
			return err
		}, api.CodeInvalid},
		{"oversize", func() error { _, err := c.PutItem(ctx, "t", &api.PutItemRequest{Item: raw(big)}); return err }, api.CodePayloadTooLarge},
		{"long key", func() error {
			_, err := c.PutItem(ctx, "t", &api.PutItemRequest{Item: raw(`{"k":"` + strings.Repeat("k", 1025) + `","s":"b"}`)})
			return err
		}, api.CodeInvalid},
		{"malformed cursor", func() error {
			_, err := c.Query(ctx, "t", &api.QueryRequest{Partition: raw(`"a"`), Cursor: "!!"})
			return err
		}, api.CodeInvalid},
		{"bad where", func() error {
			_, err := c.Query(ctx, "t", &api.QueryRequest{Partition: raw(`"a"`), Where: "s ~ 1"})
			return err
		}, api.CodeInvalid},
		{"other attribute", func() error {
			_, err := c.Query(ctx, "t", &api.QueryRequest{Partition: raw(`"a"`), Where: "x > 1"})
			return err
		}, api.CodeInvalid},
		{"limit", func() error { _, err := c.Scan(ctx, "t", 5000, ""); return err }, api.CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !isCode(err, tc.code) {
				t.Fatalf("err = %v, want code %s", err, tc.code)
			}
		})
	}
}

func TestQuery(t *testing.T) {
	n, c := startNode(t)
	ctx := context.Background()
	if _, err := c.PutTable(ctx, &api.Table{Name: "events", Key: "pk", Sort: "sk"}); err != nil {
		t.Fatal(err)
	}
	var items []json.RawMessage
	for i := range 50 {
		items = append(items, raw(fmt.Sprintf(`{"pk":"p","sk":%d,"v":%d}`, i-10, i)))
	}
	if _, err := n.Data.BatchPut(ctx, "events", items); err != nil {
		t.Fatal(err)
	}
	// Strings sort after numbers; unicode keys encode and round trip.
	for _, s := range []string{"a", "ab", "b", "é", "日本", ""} {
		b, _ := json.Marshal(map[string]string{"pk": "p", "sk": s})
		if _, err := c.PutItem(ctx, "events", &api.PutItemRequest{Item: b}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.PutItem(ctx, "events", &api.PutItemRequest{Item: raw(`{"pk":"other","sk":1}`)}); err != nil {
		t.Fatal(err)
	}
	sks := func(p *api.Page) []string {
		var out []string
		for _, e := range p.Items {
			var m map[string]any
			json.Unmarshal(e.Item, &m)
			out = append(out, fmt.Sprint(m["sk"]))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    api.QueryRequest
		want string
	}{
		{"between", api.QueryRequest{Where: "sk between -2 and 2"}, "-2 -1 0 1 2"},
		{"lt", api.QueryRequest{Where: "< -8"}, "-10 -9"},
		{"gt reverse limit", api.QueryRequest{Where: "> 30", Reverse: true, Limit: 3}, "39 38 37"},
		{"eq", api.QueryRequest{Condition: &api.Condition{Op: "=", Value: raw(`7`)}}, "7"},
		{"begins_with", api.QueryRequest{Where: `begins_with "a"`}, "a ab"},
		{"strings", api.QueryRequest{Where: `>= ""`}, " a ab b é 日本"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.Partition = raw(`"p"`)
			p, err := c.Query(ctx, "events", &q)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(sks(p), " "); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	// Paging with a cursor visits every item once, in order.
	var got []string
	cur := ""
	for pages := 0; ; pages++ {
		p, err := c.Query(ctx, "events", &api.QueryRequest{Partition: raw(`"p"`), Limit: 7, Cursor: cur})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, sks(p)...)
		if p.Cursor == "" {
			break
		}
		cur = p.Cursor
		if pages > 20 {
			t.Fatal("too many pages")
		}
	}
	if len(got) != 56 || got[0] != "-10" || got[55] != "日本" {
		t.Fatalf("paged %d items: %v", len(got), got)
	}
	// Scan sees every partition.
	total := 0
	cur = ""
	for {
		p, err := c.Scan(ctx, "events", 20, cur)
		if err != nil {
			t.Fatal(err)
		}
		total += len(p.Items)
		if cur = p.Cursor; cur == "" {
			break
		}
	}
	if total != 57 {
		t.Fatalf("scan saw %d items, want 57", total)
	}
	// Batch get: one entry per key, null for missing.
	es, err := c.BatchGet(ctx, "events", []json.RawMessage{raw(`{"pk":"p","sk":1}`), raw(`{"pk":"p","sk":1000}`)})
	if err != nil || len(es) != 2 || es[0] == nil || es[1] != nil {
		t.Fatalf("batch get: %v %v", es, err)
	}
}

func TestTTL(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	n := nodetest.Start(t, node.Config{Data: data.Config{TTLInterval: time.Hour, Now: clock}})
	ctx := context.Background()
	if _, _, err := n.Data.PutTable(ctx, data.TableDef{Name: "sessions", Key: "id", TTL: "exp"}); err != nil {
		t.Fatal(err)
	}
	exp := now.Add(time.Minute).Unix()
	for i := range 5 {
		if _, err := n.Data.Put(ctx, "sessions", raw(fmt.Sprintf(`{"id":"s%d","exp":%d}`, i, exp)), data.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Data.Put(ctx, "sessions", raw(`{"id":"forever"}`), data.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Data.Get(ctx, "sessions", raw(`{"id":"s1"}`)); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if _, err := n.Data.Get(ctx, "sessions", raw(`{"id":"s1"}`)); !errors.Is(err, data.ErrNoSuchKey) {
		t.Fatalf("after expiry: err = %v, want no such key", err)
	}
	p, err := n.Data.Scan(ctx, "sessions", 100, "")
	if err != nil || len(p.Items) != 1 {
		t.Fatalf("scan after expiry: %d items, %v", len(p.Items), err)
	}
	if got := n.Data.SweepExpired(ctx); got != 5 {
		t.Fatalf("swept %d, want 5", got)
	}
	if got := n.Data.SweepExpired(ctx); got != 0 {
		t.Fatalf("second sweep removed %d, want 0", got)
	}
}

// TestConditionalCounter: 100 writers increment one counter with
// revision-conditional updates, retrying on conflict; none is lost.
func TestConditionalCounter(t *testing.T) {
	n, _ := startNode(t)
	ctx := context.Background()
	if _, _, err := n.Data.PutTable(ctx, data.TableDef{Name: "counters", Key: "id"}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Data.Put(ctx, "counters", raw(`{"id":"c","n":0}`), data.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conflicts sync.Map
	for w := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tries := 0; ; tries++ {
				e, err := n.Data.Get(ctx, "counters", raw(`{"id":"c"}`))
				if err != nil {
					t.Error(err)
					return
				}
				var v struct{ N int }
				json.Unmarshal(e.Item, &v)
				_, err = n.Data.Update(ctx, "counters", raw(`{"id":"c"}`), raw(fmt.Sprintf(`{"n":%d}`, v.N+1)), data.DeleteOptions{IfRevision: e.Revision})
				if errors.Is(err, data.ErrConditionFailed) {
					conflicts.Store(w, tries+1)
					continue
				}
				if err != nil {
					t.Error(err)
				}
				return
			}
		}()
	}
	wg.Wait()
	e, err := n.Data.Get(ctx, "counters", raw(`{"id":"c"}`))
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ N int }
	json.Unmarshal(e.Item, &v)
	if v.N != 100 {
		t.Fatalf("counter = %d, want 100", v.N)
	}
}

func isCode(err error, code string) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Code == code
}

var _ = http.StatusOK

// TestOneKeyIndex: puts racing a table's first binding (and the catalogue
// watch delivering the table's creation) share one key index, so every
// write feeds one index consumer, not one per lost race.
func TestOneKeyIndex(t *testing.T) {
	n, _ := startNode(t)
	ctx := context.Background()
	for round := range 5 {
		name := fmt.Sprintf("race%d", round)
		if _, _, err := n.Data.PutTable(ctx, data.TableDef{Name: name, Key: "pk"}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := n.Data.Put(ctx, name, raw(fmt.Sprintf(`{"pk":%d}`, i)), data.PutOptions{}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		stream, err := n.Store.JS.Stream(ctx, "KV_"+data.TablePrefix+name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.State.Consumers; got > 1 {
			t.Fatalf("table %s: %d consumers after its first puts, want 1 (the key index)", name, got)
		}
	}
}
