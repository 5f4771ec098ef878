// Command data benchmarks the data services on a real node (embedded
// JetStream on a temp directory): table get and put latency and throughput
// at 16 concurrent clients, in process (what the wasm host functions call)
// and through the HTTP API (what process functions and the CLI use), from
// api.Client and from a lean client that sends prepared bodies; the
// same through the Go SDK from inside real functions, wasm and process (each
// of the concurrent invocations times its own calls); a 100-item query of a
// 10,000-item partition; and object put/get throughput of a 100 MB object
// against a plain file copy on the same disk.
//
//	go run ./bench/data [-n 20000] [-mb 100] [-c 16] [-only table,sdk,query,object] [-cpuprofile FILE]
//
// -only also takes put, get and http: parts of the table benchmark; and
// sdk-wasm, sdk-process and sdk-process-c16: one function of the SDK's.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/bench/internal/loadgen"
	"github.com/nimbus-run/nimbus/examples"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/node"
)

func main() {
	n := flag.Int("n", 20000, "operations per table benchmark")
	mb := flag.Int("mb", 100, "object size in MB")
	clients := flag.Int("c", 16, "concurrent clients")
	only := flag.String("only", "table,sdk,query,object", "which benchmarks to run")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	parts = map[string]bool{}
	for p := range strings.SplitSeq(*only, ",") {
		parts[strings.TrimSpace(p)] = true
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*n, *mb, *clients); err != nil {
		fmt.Fprintln(os.Stderr, err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// parts selects the benchmarks (-only).
var parts map[string]bool

func run(ops, mb, clients int) error {
	dir, err := os.MkdirTemp("", "nimbus-bench-data")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	nd, err := node.Start(ctx, node.Config{DataDir: filepath.Join(dir, "node"), Listen: "127.0.0.1:0", Dev: true,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer nd.Stop(ctx)
	svc := nd.Data
	c := api.NewClient(nd.URL(), "")
	// Keep a connection per client: the default keeps 2 idle per host.
	c.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	if _, _, err := svc.PutTable(ctx, data.TableDef{Name: "bench", Key: "pk", Sort: "sk"}); err != nil {
		return err
	}
	item := func(i int) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"pk":"p%d","sk":%d,"name":"item %d","tags":["a","b"],"n":%d}`, i%1000, i, i, i))
	}
	key := func(i int) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"pk":"p%d","sk":%d}`, i%1000, i)) }

	report := func(name string, f func(i int) error) error {
		cpu0 := cpuTime()
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		lat, elapsed, err := load(ops, clients, f)
		runtime.ReadMemStats(&ms1)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		// CPU per operation (client and server, as they share the process)
		// is steadier than throughput on a shared machine.
		cpu := cpuTime() - cpu0
		fmt.Printf("%-36s p50 %7.3f ms  p99 %7.3f ms  %8.0f ops/s  %5.0f µs CPU/op  %4d allocs/op\n", name, ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]),
			float64(ops)/elapsed.Seconds(), float64(cpu.Microseconds())/float64(ops), (ms1.Mallocs-ms0.Mallocs)/uint64(ops))
		return nil
	}
	if parts["table"] || parts["put"] || parts["get"] || parts["http"] {
		fmt.Printf("table, %d ops, %d clients\n", ops, clients)
	}
	if parts["table"] || parts["put"] || parts["get"] {
		if err := report("put (in process)", func(i int) error { _, err := svc.Put(ctx, "bench", item(i), data.PutOptions{}); return err }); err != nil {
			return err
		}
	}
	if parts["table"] || parts["put"] {
		// Replacing an item reads it first (its old image goes with the
		// change), so it costs more than an insert.
		if err := report("put, replace (in process)", func(i int) error { _, err := svc.Put(ctx, "bench", item(i), data.PutOptions{}); return err }); err != nil {
			return err
		}
	}
	if parts["table"] || parts["get"] {
		if err := report("get (in process)", func(i int) error { _, err := svc.Get(ctx, "bench", key(i)); return err }); err != nil {
			return err
		}
	}
	if parts["table"] || parts["http"] {
		if err := report("put (HTTP API)", func(i int) error {
			_, err := c.PutItem(ctx, "bench", &api.PutItemRequest{Item: item(i + ops)})
			return err
		}); err != nil {
			return err
		}
		if err := report("get (HTTP API)", func(i int) error { _, err := c.GetItem(ctx, "bench", key(i+ops)); return err }); err != nil {
			return err
		}
		// The same requests from a lean client, as a load generator (wrk,
		// hey) sends them: bodies built by hand, answers checked for their
		// status and discarded. The difference from the rows above is
		// api.Client's own cost (encoding/json both ways); this is what
		// the server sustains.
		lean := func(method, path string, body []byte) error {
			req, err := http.NewRequestWithContext(ctx, method, nd.URL()+path, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := c.HTTP.Do(req)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
			}
			return err
		}
		if err := report("put (HTTP API, lean client)", func(i int) error {
			return lean(http.MethodPut, "/api/v1/tables/bench/items", fmt.Appendf(nil, `{"item":%s}`, item(i+2*ops)))
		}); err != nil {
			return err
		}
		if err := report("get (HTTP API, lean client)", func(i int) error {
			return lean(http.MethodPost, "/api/v1/tables/bench/get", fmt.Appendf(nil, `{"key":%s}`, key(i+2*ops)))
		}); err != nil {
			return err
		}

		// And from a raw HTTP/1.1 client, as wrk is: what the node
		// sustains when the load generator, which shares the two CPUs,
		// costs little.
		raw := &rawHTTP{addr: strings.TrimPrefix(nd.URL(), "http://"), idle: make(chan *rawConn, clients)}
		if err := report("put (HTTP API, raw client)", func(i int) error {
			return raw.do(http.MethodPut, "/api/v1/tables/bench/items", fmt.Appendf(nil, `{"item":%s}`, item(i+3*ops)))
		}); err != nil {
			return err
		}
		if err := report("get (HTTP API, raw client)", func(i int) error {
			return raw.do(http.MethodPost, "/api/v1/tables/bench/get", fmt.Appendf(nil, `{"key":%s}`, key(i+3*ops)))
		}); err != nil {
			return err
		}
	}
	if parts["sdk"] || parts["sdk-wasm"] || parts["sdk-process"] || parts["sdk-process-c16"] {
		if err := sdkBench(ctx, c, dir, ops, clients); err != nil {
			return err
		}
	}
	if parts["query"] {

		// A 10,000-item partition.
		var batch []json.RawMessage
		for i := range 10000 {
			batch = append(batch, json.RawMessage(fmt.Sprintf(`{"pk":"big","sk":%d,"v":"x"}`, i)))
			if len(batch) == data.MaxBatch {
				if _, err := svc.BatchPut(ctx, "bench", batch); err != nil {
					return err
				}
				batch = batch[:0]
			}
		}
		var qlat []time.Duration
		for i := range 30 {
			start := time.Now()
			p, err := svc.Query(ctx, "bench", data.Query{Partition: json.RawMessage(`"big"`), Where: fmt.Sprintf(">= %d", i*300), Limit: 100})
			if err != nil {
				return err
			}
			qlat = append(qlat, time.Since(start))
			if len(p.Items) != 100 {
				return fmt.Errorf("query returned %d items", len(p.Items))
			}
		}
		sort.Slice(qlat, func(i, j int) bool { return qlat[i] < qlat[j] })
		fmt.Printf("%-36s p50 %7.3f ms  p99 %7.3f ms\n", "query 100 of 10,000", ms(qlat[len(qlat)/2]), ms(qlat[len(qlat)-1]))
	}
	if !parts["object"] {
		return nil
	}

	// After the table benchmarks the node is still digesting their
	// writes (change streams, key indexes) for a while: the objects are
	// measured once it is idle, as with -only object.
	settle()
	return objectBench(ctx, c, svc, dir, int64(mb)<<20)
}

// settle waits, for at most a minute, until the process uses less than a
// tenth of a CPU over half a second.
func settle() {
	const window = 500 * time.Millisecond
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		c0 := cpuTime()
		time.Sleep(window)
		if cpuTime()-c0 < window/10 {
			return
		}
	}
}

// objectRounds is how many times the object benchmark runs: one 100 MB
// transfer is over in a fraction of a second, and the disk is shared.
const objectRounds = 3

// objectBench compares putting and getting an object through the HTTP API
// with a plain file copy on the same disk, in objectRounds rounds, and
// reports the medians. Each timed step starts from a synced page cache: the
// write-back of one step's bytes (the 100 MB source, a copy) otherwise
// lands on the next step and halves its rate on a fast disk.
func objectBench(ctx context.Context, c *api.Client, svc *data.Service, dir string, size int64) error {
	src := filepath.Join(dir, "src.bin")
	f, err := os.Create(src)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if _, _, err := svc.PutBucket(ctx, "bench"); err != nil {
		return err
	}
	mbs := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }
	timed := func(step func() error) (float64, error) {
		syscall.Sync()
		start := time.Now()
		if err := step(); err != nil {
			return 0, err
		}
		return mbs(time.Since(start)), nil
	}
	var copies, puts, gets []float64
	for round := range objectRounds {
		dst := filepath.Join(dir, "copy.bin")
		cp, err := timed(func() error { return copyFile(src, dst) })
		if err != nil {
			return err
		}
		os.Remove(dst)
		key := fmt.Sprintf("big-%d.bin", round)
		put, err := timed(func() error {
			in, err := os.Open(src)
			if err != nil {
				return err
			}
			defer in.Close()
			_, err = c.PutObject(ctx, "bench", key, in, size, "", nil)
			return err
		})
		if err != nil {
			return err
		}
		out := filepath.Join(dir, "out.bin")
		get, err := timed(func() error { return download(ctx, c, key, out, size) })
		if err != nil {
			return err
		}
		os.Remove(out)
		if err := c.DeleteObject(ctx, "bench", key); err != nil {
			return err
		}
		// The node purges the deleted object's chunks in the background:
		// not while the next round's copy is timed.
		settle()
		copies, puts, gets = append(copies, cp), append(puts, put), append(gets, get)
	}
	cp, put, get := median(copies), median(puts), median(gets)
	fmt.Printf("object %d MB, median of %d: file copy %.0f MB/s; put %.0f MB/s (%.0f%%); get %.0f MB/s (%.0f%%)\n",
		size>>20, objectRounds, cp, put, 100*put/cp, get, 100*get/cp)
	return nil
}

// download writes an object to a file as `nimbus obj get` does
// (api.CopyBody), and syncs it, as the file copy does.
func download(ctx context.Context, c *api.Client, key, path string, size int64) error {
	resp, err := c.GetObject(ctx, "bench", key, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	n, err := api.CopyBody(out, resp.Body)
	if err != nil || n != size {
		return fmt.Errorf("download: %d bytes, %v", n, err)
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// load runs f(0..ops-1) on clients goroutines and returns sorted latencies.
func load(ops, clients int, f func(i int) error) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, ops)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= ops {
					return
				}
				t := time.Now()
				if err := f(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, ok := firstErr.Load().(error); ok {
		return nil, 0, err
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat, elapsed, nil
}

// sdkBench deploys bench/data/sdkfn as a wasm and as a process function
// that may use the table, and has clients concurrent invocations each do
// ops/clients puts, then gets, timing every call inside the function.
func sdkBench(ctx context.Context, c *api.Client, dir string, ops, clients int) error {
	per := max(ops/clients, 1)
	variants := []struct {
		rt          string
		concurrency int // invocations per instance
	}{{"wasm", 1}, {"process", 1}, {"process", clients}}
	digests := map[string]string{} // runtime → uploaded code
	for i, v := range variants {
		rt := v.rt
		name, label := "sdk-"+rt, rt+" function"
		if v.concurrency > 1 {
			name += "-c" + strconv.Itoa(v.concurrency)
			label = fmt.Sprintf("%s, concurrency %d", rt, v.concurrency)
		}
		if !parts["sdk"] && !parts[name] {
			continue
		}
		if digests[rt] == "" {
			build := examples.BuildWasm
			if rt == "process" {
				build = examples.BuildNative
			}
			digest, err := loadgen.BuildCode(ctx, c, build, "./bench/data/sdkfn", filepath.Join(dir, "sdkfn-"+rt))
			if err != nil {
				return err
			}
			digests[rt] = digest
		}
		if _, err := c.PutFunction(ctx, &api.Function{Name: name, Runtime: rt, Code: digests[rt], Memory: 128, Timeout: "120s",
			Max: clients, Concurrency: v.concurrency, Uses: &api.Uses{Tables: []string{"bench"}}}); err != nil {
			return err
		}
		base := (i + 2) * 10 * ops // a key range of its own
		invoke := func(op string, n int) ([]time.Duration, time.Duration, error) {
			var (
				mu   sync.Mutex
				lat  []time.Duration
				errs []error
				wg   sync.WaitGroup
			)
			start := time.Now()
			for k := range clients {
				wg.Go(func() {
					ev, _ := json.Marshal(map[string]any{"op": op, "table": "bench", "from": base + k*n, "n": n})
					res, err := c.Invoke(ctx, name, ev)
					var out struct {
						Lat []int64 `json:"lat_us"`
					}
					if err == nil {
						err = json.Unmarshal(res.Payload, &out)
					}
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						errs = append(errs, err)
					}
					for _, us := range out.Lat {
						lat = append(lat, time.Duration(us)*time.Microsecond)
					}
				})
			}
			wg.Wait()
			if len(errs) > 0 {
				return nil, 0, fmt.Errorf("%s %s: %w", name, op, errs[0])
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			return lat, time.Since(start), nil
		}
		if _, _, err := invoke("put", 1); err != nil { // start the instances
			return err
		}
		for _, op := range []string{"put", "get"} {
			cpu0, machine0 := cpuTime(), loadgen.MachineCPU()
			lat, elapsed, err := invoke(op, per)
			if err != nil {
				return err
			}
			// The functions' own CPU counts here (process functions are
			// other processes): the machine's per operation, and the
			// node's (this process) share of it.
			perOp := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(len(lat)) }
			fmt.Printf("%-36s p50 %7.3f ms  p99 %7.3f ms  %8.0f ops/s  %5.0f µs CPU/op, node %3.0f\n", fmt.Sprintf("%s (SDK, %s)", op, label),
				ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), float64(len(lat))/elapsed.Seconds(),
				perOp(loadgen.MachineCPU()-machine0), perOp(cpuTime()-cpu0))
		}
	}
	return nil
}

// rawHTTP is a load generator's HTTP/1.1 client, as wrk is: kept
// connections, each request written whole in one write, answers read for
// their status and length and discarded.
type rawHTTP struct {
	addr string
	idle chan *rawConn
}

type rawConn struct {
	conn net.Conn
	br   *bufio.Reader
	buf  []byte
}

func (h *rawHTTP) do(method, path string, body []byte) error {
	var c *rawConn
	select {
	case c = <-h.idle:
	default:
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			return err
		}
		c = &rawConn{conn: conn, br: bufio.NewReader(conn)}
	}
	if err := c.exchange(h.addr, method, path, body); err != nil {
		c.conn.Close()
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	select {
	case h.idle <- c:
	default:
		c.conn.Close()
	}
	return nil
}

// exchange sends one request and reads its answer, which must be a 200
// with a Content-Length.
func (c *rawConn) exchange(host, method, path string, body []byte) error {
	b := append(append(append(c.buf[:0], method...), ' '), path...)
	b = append(append(append(b, " HTTP/1.1\r\nHost: "...), host...), "\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = append(append(strconv.AppendInt(b, int64(len(body)), 10), "\r\n\r\n"...), body...)
	c.buf = b
	if _, err := c.conn.Write(b); err != nil {
		return err
	}
	status, err := c.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("%s", bytes.TrimSpace(status))
	}
	length := -1
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if name, val, ok := bytes.Cut(line, []byte{':'}); ok && strings.EqualFold(string(name), "Content-Length") {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(val)))
		}
	}
	if length < 0 {
		return errors.New("an answer without Content-Length")
	}
	_, err = c.br.Discard(length)
	return err
}
