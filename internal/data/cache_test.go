package data_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

// TestReadsAcrossNodes: nodes that share a NATS server each see the
// others' writes at once. A node that cached its reads (as a sole writer
// does) would answer the first node's stale revision.
func TestReadsAcrossNodes(t *testing.T) {
	a := nodetest.Start(t, node.Config{NATSListen: "127.0.0.1:0"})
	b := nodetest.Start(t, node.Config{NATSURL: a.NATSURL()})
	ctx := context.Background()
	if _, _, err := a.Data.PutTable(ctx, data.TableDef{Name: "shared", Key: "id"}); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 10*time.Second, "b to see the table", func() bool {
		_, err := b.Data.Table("shared")
		return err == nil
	})
	key := raw(`{"id":"k"}`)
	nodes := []*node.Node{a, b}
	for i := range 6 {
		w := nodes[i%2]
		rev, err := w.Data.Put(ctx, "shared", raw(fmt.Sprintf(`{"id":"k","n":%d}`, i)), data.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for j, n := range nodes {
			e, err := n.Data.Get(ctx, "shared", key)
			if err != nil || e.Revision != rev {
				t.Fatalf("write %d on node %d: a get on node %d: %v, revision %d, want %d", i, i%2, j, err, e.Revision, rev)
			}
		}
	}
	for j, n := range nodes {
		if hits, bytes := metric(t, n, `nimbus_table_cache_lookups_total{result="hit"}`), metric(t, n, "nimbus_table_cache_bytes"); hits != 0 || bytes != 0 {
			t.Errorf("node %d, which shares its NATS server, used its item cache: %v hits, %v bytes", j, hits, bytes)
		}
	}
}

// metric reads one sample of the node's /metrics.
func metric(t *testing.T, n *node.Node, series string) float64 {
	t.Helper()
	v, ok := scrape(t, n)[series]
	if !ok {
		t.Fatalf("no %s in /metrics", series)
	}
	return v
}

// TestCacheLinearizable runs writers and readers of a few hot keys on a
// sole writer, with the item cache at its default size and at a size that
// evicts all the time, and checks what the readers saw:
//
//   - a get sees at least the revision of every write to its key
//     acknowledged before the get began, and of every get that ended
//     before it began (no going back);
//   - a revision's item is the one written under it;
//   - all reads of a revision report the same time, the stream's.
func TestCacheLinearizable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes int64
	}{{"default", 0}, {"evicting", 1 << 10}} {
		t.Run(tc.name, func(t *testing.T) {
			n := nodetest.Start(t, node.Config{Data: data.Config{TTLInterval: time.Hour, CacheBytes: tc.bytes}})
			svc := n.Data
			ctx := context.Background()
			if _, _, err := svc.PutTable(ctx, data.TableDef{Name: "hot", Key: "id"}); err != nil {
				t.Fatal(err)
			}
			const keys, workers, ops = 4, 8, 300
			type op struct {
				key        int
				write      bool
				rev        uint64
				item       string
				updated    time.Time
				start, end time.Time
			}
			var (
				mu  sync.Mutex
				log []op
				wg  sync.WaitGroup
			)
			for w := range workers {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(w), 1))
					for i := range ops {
						o := op{key: rng.IntN(keys), start: time.Now()}
						k := raw(fmt.Sprintf(`{"id":"k%d"}`, o.key))
						var err error
						switch rng.IntN(4) {
						case 0: // put
							o.write, o.item = true, fmt.Sprintf(`{"id":"k%d","w":%d,"i":%d}`, o.key, w, i)
							o.rev, err = svc.Put(ctx, "hot", raw(o.item), data.PutOptions{})
						case 1: // update, conditional on a fresh read half the time
							var opt data.DeleteOptions
							if i%2 == 0 {
								if e, gerr := svc.Get(ctx, "hot", k); gerr == nil {
									opt.IfRevision = e.Revision
								}
							}
							var e *data.Entry
							e, err = svc.Update(ctx, "hot", k, raw(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)), opt)
							if errors.Is(err, data.ErrConditionFailed) {
								err = nil
								continue
							}
							if err == nil {
								o.write, o.rev, o.item = true, e.Revision, string(e.Item)
							}
						default:
							var e *data.Entry
							e, err = svc.Get(ctx, "hot", k)
							if errors.Is(err, data.ErrNoSuchKey) {
								err = nil
								continue
							}
							if err == nil {
								o.rev, o.item, o.updated = e.Revision, string(e.Item), e.Updated
							}
						}
						if err != nil {
							t.Error(err)
							return
						}
						o.end = time.Now()
						mu.Lock()
						log = append(log, o)
						mu.Unlock()
					}
				})
			}
			wg.Wait()

			items := map[uint64]string{}
			times := map[uint64]time.Time{}
			reads := 0
			for _, o := range log {
				if o.write {
					items[o.rev] = o.item
				}
			}
			for _, g := range log {
				if g.write {
					continue
				}
				reads++
				if want, ok := items[g.rev]; !ok || compactJSON(t, want) != compactJSON(t, g.item) {
					t.Fatalf("k%d revision %d read %s, written %s", g.key, g.rev, g.item, want)
				}
				if at, ok := times[g.rev]; ok && !at.Equal(g.updated) {
					t.Fatalf("k%d revision %d read with times %s and %s", g.key, g.rev, at, g.updated)
				}
				times[g.rev] = g.updated
				for _, o := range log {
					if o.key == g.key && o.end.Before(g.start) && o.rev > g.rev {
						what := "a write"
						if !o.write {
							what = "a get"
						}
						t.Fatalf("k%d: a get read revision %d after %s had ended with revision %d", g.key, g.rev, what, o.rev)
					}
				}
			}
			if reads < workers*ops/4 {
				t.Fatalf("only %d gets of %d operations", reads, len(log))
			}
			if hits := metric(t, n, `nimbus_table_cache_lookups_total{result="hit"}`); hits == 0 {
				t.Errorf("the item cache answered no read")
			}
			if b := metric(t, n, "nimbus_table_cache_bytes"); b <= 0 || (tc.bytes > 0 && b > float64(tc.bytes)+1024) {
				t.Errorf("the item cache holds %v bytes (budget %d)", b, tc.bytes)
			}
		})
	}
}

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return buf.String()
}

// TestCacheForgetsDeletedTable: a table deleted and created again under
// its name starts empty, though the node had its items in memory, and
// though nats-server may hand the new stream the old one's files (data's
// leftovers: ten quick rounds make that likely).
func TestCacheForgetsDeletedTable(t *testing.T) {
	n := nodetest.Start(t, node.Config{Data: data.Config{TTLInterval: time.Hour}})
	svc := n.Data
	ctx := context.Background()
	key := raw(`{"id":"a"}`)
	for round := range 10 {
		if _, _, err := svc.PutTable(ctx, data.TableDef{Name: "again", Key: "id"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Get(ctx, "again", key); !errors.Is(err, data.ErrNoSuchKey) {
			t.Fatalf("round %d: a get in the new table: %v, want no such key", round, err)
		}
		if _, err := svc.Put(ctx, "again", raw(fmt.Sprintf(`{"id":"a","round":%d}`, round)), data.PutOptions{IfAbsent: true}); err != nil {
			t.Fatalf("round %d: an insert into the new table: %v", round, err)
		}
		if e, err := svc.Get(ctx, "again", key); err != nil || !strings.Contains(string(e.Item), fmt.Sprintf(`"round":%d`, round)) {
			t.Fatalf("round %d: get = %v, %v", round, e, err)
		}
		if err := svc.DeleteTable(ctx, "again", true); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Get(ctx, "again", key); !errors.Is(err, data.ErrNoSuchTable) {
			t.Fatalf("round %d: a get after the delete: %v, want no such table", round, err)
		}
	}
}
