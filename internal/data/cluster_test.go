package data_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

// TestReplicatedData runs two nodes on a three-server JetStream cluster
// with three replicas, as `nimbus up --nats ... --replicas 3` does:
//
//   - a write on either node is read at its revision by a get and by a
//     query on the other, at once (from six writers at a time);
//   - an object put on one node is read whole on the other, at once;
//   - after the server that leads the table's stream is shut down, both
//     nodes still read every item and object, and write new ones.
func TestReplicatedData(t *testing.T) {
	servers := nodetest.NATSCluster(t, 3)
	// Each node on a server of its own, so that at least one reads through
	// a follower of every stream. They learn the other servers from the
	// cluster, and move to one when theirs goes.
	a := nodetest.Start(t, node.Config{NATSURL: servers[0].ClientURL(), Replicas: 3})
	b := nodetest.Start(t, node.Config{NATSURL: servers[1].ClientURL(), Replicas: 3})
	nodes := []*node.Node{a, b}
	ctx := context.Background()
	if _, _, err := a.Data.PutTable(ctx, data.TableDef{Name: "orders", Key: "id", Sort: "n"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Data.PutBucket(ctx, "files"); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 10*time.Second, "node b to see the table and the bucket", func() bool {
		_, terr := b.Data.Table("orders")
		_, berr := b.Data.Bucket("files")
		return terr == nil && berr == nil
	})
	info := streamInfo(t, servers[0].ClientURL(), "KV_"+data.TablePrefix+"orders")
	if info.Config.Replicas != 3 || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("the table's stream has %d replicas (%d followers), want 3", info.Config.Replicas, len(info.Cluster.Replicas))
	}

	// Six writers, each on its own partition, alternate nodes; each write
	// is read back on the other node.
	const writes = 50
	revs := make([]uint64, 6)
	var wg sync.WaitGroup
	for g := range revs {
		wg.Go(func() {
			for i := range writes {
				w, r := nodes[(g+i)%2], nodes[(g+i+1)%2]
				rev, err := w.Data.Put(ctx, "orders", raw(fmt.Sprintf(`{"id":"w%d","n":%d}`, g, i)), data.PutOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				e, err := r.Data.Get(ctx, "orders", raw(fmt.Sprintf(`{"id":"w%d","n":%d}`, g, i)))
				if err != nil {
					t.Error(err)
					return
				}
				if e.Revision != rev {
					t.Errorf("w%d: a get on the other node read revision %d after the put of %d was acknowledged", g, e.Revision, rev)
					return
				}
				p, err := r.Data.Query(ctx, "orders", data.Query{Partition: raw(fmt.Sprintf(`"w%d"`, g)), Reverse: true, Limit: 1})
				if err != nil {
					t.Error(err)
					return
				}
				if len(p.Items) != 1 || p.Items[0].Revision != rev {
					t.Errorf("w%d: a query on the other node after the put of revision %d returned %+v", g, rev, p.Items)
					return
				}
				revs[g] = rev
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// Objects of several chunks, each read whole on the other node the
	// moment its put returns. From a replica, the head said "no such key"
	// in about one read of ten, and a chunk consumer could deliver nothing.
	blob := make([]byte, 3<<20)
	rand.Read(blob)
	for i := range 20 {
		w, r := nodes[i%2], nodes[(i+1)%2]
		key := fmt.Sprintf("blob-%d.bin", i)
		if _, err := w.Data.PutObject(ctx, "files", key, bytes.NewReader(blob), int64(len(blob)), data.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		readObject(t, r, key, blob)
		l, err := r.Data.ListObjects(ctx, "files", data.ListOptions{Prefix: key})
		if err != nil || len(l.Objects) != 1 || l.Objects[0].Key != key || l.Objects[0].Size != int64(len(blob)) {
			t.Fatalf("%s listed on the other node: %+v, %v", key, l, err)
		}
	}
	// An object of one chunk is read by one get, not a consumer.
	small := []byte("one chunk")
	if _, err := nodes[0].Data.PutObject(ctx, "files", "small.txt", bytes.NewReader(small), int64(len(small)), data.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	readObject(t, nodes[1], "small.txt", small)

	// Lose the server that leads the table's stream.
	leader := info.Cluster.Leader
	for _, s := range servers {
		if s.Name() == leader {
			s.Shutdown()
		}
	}
	for _, n := range nodes {
		nodetest.Eventually(t, 30*time.Second, "reads after the leader's server is gone", func() bool {
			e, err := n.Data.Get(ctx, "orders", raw(fmt.Sprintf(`{"id":"w0","n":%d}`, writes-1)))
			return err == nil && e.Revision == revs[0]
		})
		for g, rev := range revs {
			e, err := n.Data.Get(ctx, "orders", raw(fmt.Sprintf(`{"id":"w%d","n":%d}`, g, writes-1)))
			if err != nil || e.Revision != rev {
				t.Fatalf("w%d after the failover: %v, %v; want revision %d", g, e, err, rev)
			}
		}
		readObject(t, n, "blob-0.bin", blob)
	}
	var rev uint64
	nodetest.Eventually(t, 30*time.Second, "a write after the failover", func() bool {
		var err error
		rev, err = a.Data.Put(ctx, "orders", raw(`{"id":"after","n":0}`), data.PutOptions{})
		return err == nil
	})
	if e, err := b.Data.Get(ctx, "orders", raw(`{"id":"after","n":0}`)); err != nil || e.Revision != rev {
		t.Fatalf("the write after the failover, read on node b: %v, %v; want revision %d", e, err, rev)
	}
	if after := streamInfo(t, servers[2].ClientURL()+","+servers[1].ClientURL()+","+servers[0].ClientURL(), "KV_"+data.TablePrefix+"orders").Cluster.Leader; after == leader || after == "" {
		t.Fatalf("the stream's leader is %q after %s stopped", after, leader)
	}
}

func streamInfo(t *testing.T, url, stream string) *jetstream.StreamInfo {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo()
}

// readObject reads files/key on n, within 30 s, and compares it to want.
func readObject(t *testing.T, n *node.Node, key string, want []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obj, err := n.Data.GetObject(ctx, "files", key, "")
	if err != nil {
		t.Fatalf("%s on %s: %v", key, n.URL(), err)
	}
	defer obj.Body.Close()
	got, err := io.ReadAll(obj.Body)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s read on %s: %d bytes, %v; want the %d written", key, n.URL(), len(got), err, len(want))
	}
}

// BenchmarkClusterGet times a get on a three-server cluster, from a node
// on another server than the one that wrote, for a table of one replica
// (a direct get) and of three (a read from the stream's leader):
// go test -run '^$' -bench ClusterGet -benchtime 3000x ./internal/data
//
// Nodes started with --replicas 3 on a cluster whose streams had one
// failed once in five runs while JetStream scaled the streams up
// ("workflow: announce node: context deadline exceeded"), hence a cluster
// per case.
func BenchmarkClusterGet(b *testing.B) {
	for _, replicas := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			// A cluster of its own: raising the replicas of the streams
			// the first nodes created would time the test out (below).
			servers := nodetest.NATSCluster(b, 3)
			w := nodetest.Start(b, node.Config{NATSURL: servers[0].ClientURL(), Replicas: replicas})
			r := nodetest.Start(b, node.Config{NATSURL: servers[1].ClientURL(), Replicas: replicas})
			ctx := context.Background()
			table := fmt.Sprintf("r%d", replicas)
			if _, _, err := w.Data.PutTable(ctx, data.TableDef{Name: table, Key: "id"}); err != nil {
				b.Fatal(err)
			}
			for i := range 100 {
				if _, err := w.Data.Put(ctx, table, raw(fmt.Sprintf(`{"id":"k%d","v":"%d"}`, i, i)), data.PutOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			nodetest.Eventually(b, 10*time.Second, "the reader to see the table", func() bool {
				_, err := r.Data.Get(ctx, table, raw(`{"id":"k0"}`))
				return err == nil
			})
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := r.Data.Get(ctx, table, raw(fmt.Sprintf(`{"id":"k%d"}`, i%100))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// acrossServers starts a three-server cluster with a node on two of its
// servers, a writer and a reader, and puts a 600 KB object (three chunks)
// files/img through the writer, once the reader sees it: the nodes and
// the object's bytes.
func acrossServers(tb testing.TB) (w, r *node.Node, body []byte) {
	tb.Helper()
	servers := nodetest.NATSCluster(tb, 3)
	w = nodetest.Start(tb, node.Config{NATSURL: servers[0].ClientURL()})
	r = nodetest.Start(tb, node.Config{NATSURL: servers[1].ClientURL()})
	ctx := context.Background()
	if _, _, err := w.Data.PutBucket(ctx, "files"); err != nil {
		tb.Fatal(err)
	}
	body = bytes.Repeat([]byte("0123456789"), 60<<10)
	if _, err := w.Data.PutObject(ctx, "files", "img", bytes.NewReader(body), int64(len(body)), data.PutObjectOptions{}); err != nil {
		tb.Fatal(err)
	}
	nodetest.Eventually(tb, 10*time.Second, "the reader to see the object", func() bool {
		_, err := r.Data.HeadObject(ctx, "files", "img")
		return err == nil
	})
	return w, r, body
}

// BenchmarkClusterObjectGet reads a 600 KB object (three chunks, read
// through a consumer) whole on a three-server cluster, from a node on
// another server than the one that wrote it:
// go test -run '^$' -bench ClusterObjectGet -benchtime 300x ./internal/data
func BenchmarkClusterObjectGet(b *testing.B) {
	ctx := context.Background()
	_, r, body := acrossServers(b)
	for b.Loop() {
		obj, err := r.Data.GetObject(ctx, "files", "img", "")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, obj.Body)
		obj.Body.Close()
		if err != nil || n != int64(len(body)) {
			b.Fatalf("read %d bytes, %v", n, err)
		}
	}
}

// TestReadsAcrossServers reads, from a node on another server of a
// three-server cluster than the one that wrote, 100 pages of changes and
// 100 objects of three chunks, each through a consumer made for it. The
// first pull of a consumer just made could reach the reader's server
// before that server knew of the consumer: JetStream answered "no
// responders", and 7 to 33 of 300 pages failed with that error, and 1 to 3
// of 200 reads stalled for 3 s.
func TestReadsAcrossServers(t *testing.T) {
	ctx := context.Background()
	w, r, body := acrossServers(t)
	if _, _, err := w.Data.PutTable(ctx, data.TableDef{Name: "orders", Key: "id"}); err != nil {
		t.Fatal(err)
	}
	// The reader learns of the table from the catalogue's watch (one run
	// of eight read before it had).
	nodetest.Eventually(t, 10*time.Second, "the reader to know the table", func() bool {
		_, err := r.Data.Table("orders")
		return err == nil
	})
	var first uint64
	for i := range 20 {
		rev, err := w.Data.Put(ctx, "orders", raw(fmt.Sprintf(`{"id":"k%d"}`, i)), data.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = rev
		}
	}
	for i := range 100 {
		start := time.Now()
		cs, err := r.Data.Changes(ctx, "orders", data.Start{Revision: first + 5}, 10, 0)
		if err != nil || len(cs) != 10 {
			t.Fatalf("page %d of changes: %d changes, %v", i, len(cs), err)
		}
		obj, err := r.Data.GetObject(ctx, "files", "img", "")
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		got, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("read %d: %d bytes, %v", i, len(got), err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("a page and a read took %v", took)
		}
	}
}
