// Command async measures Nimbus's asynchronous invocation path on one node
// with file-backed JetStream: how many invocations per second are accepted
// (durably stored: each 202 waits for its own JetStream acknowledgement),
// and the latency from accept to completion at half that rate, for the Go
// SDK echo function (examples/echo-sdk, wasm).
//
//	go run ./bench/async [-c 64] [-d 10s] [-runs 3]
//
// It starts a node in this process on a temporary data directory, so the
// numbers include the HTTP gateway, JetStream on disk, the workers and the
// wasm runtime, all sharing the machine's cores.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/bench/internal/loadgen"
	"github.com/nimbus-run/nimbus/examples"
	"github.com/nimbus-run/nimbus/internal/async"
	"github.com/nimbus-run/nimbus/internal/node"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/async:", err)
		os.Exit(1)
	}
}

func run() error {
	conc := flag.Int("c", 64, "concurrent clients in the throughput phase")
	dur := flag.Duration("d", 10*time.Second, "duration of each phase")
	runs := flag.Int("runs", 3, "runs; the median is reported")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the measured phases to this file")
	flag.Parse()

	dir, err := os.MkdirTemp("", "nimbus-bench-async-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	n, err := node.Start(ctx, node.Config{DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0", Dev: true,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer n.Stop(context.WithoutCancel(ctx))
	fmt.Fprintln(os.Stderr, "building examples/echo-sdk...")
	c := api.NewClient(n.URL(), "")
	digest, err := loadgen.BuildCode(ctx, c, examples.BuildWasm, "./examples/echo-sdk", filepath.Join(dir, "echo.wasm"))
	if err != nil {
		return err
	}
	if _, err := c.PutFunction(ctx, &api.Function{Name: "echo", Runtime: "wasm", Code: digest, Memory: 64, Timeout: "5s", Max: 100}); err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc * 2, MaxConnsPerHost: *conc * 2}}
	url := n.URL() + "/async-function/echo"
	// Warm up: instances, connections, JetStream files.
	if _, _, err := throughput(hc, url, *conc, 2*time.Second); err != nil {
		return err
	}
	done, stopWatch, err := watchDone(ctx, n)
	if err != nil {
		return err
	}
	defer stopWatch()

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var rates, p50s, p99s, cpus []float64
	for i := range *runs {
		waitIdle(n)
		// CPU time of this process (client, gateway, JetStream, workers,
		// wasm) per invocation, from the first accept until the queue is
		// drained: unlike a rate, it hardly depends on what else the
		// shared machine runs.
		cpu0 := cpuTime()
		rate, count, err := throughput(hc, url, *conc, *dur)
		if err != nil {
			return err
		}
		waitIdle(n)
		cpuPer := float64((cpuTime() - cpu0).Microseconds()) / float64(max(count, 1))
		p50, p99, lost, err := latency(hc, url, rate/2, *dur, done)
		if err != nil {
			return err
		}
		fmt.Printf("run %d: accepted %.0f/s (%.0f µs CPU per invocation, accept to done); at %.0f/s accept-to-done p50 %.2f ms p99 %.2f ms (not done in time: %d)\n",
			i+1, rate, cpuPer, rate/2, p50, p99, lost)
		rates, p50s, p99s, cpus = append(rates, rate), append(p50s, p50), append(p99s, p99), append(cpus, cpuPer)
	}
	fmt.Printf("median of %d: accepted %.0f/s, %.0f µs CPU per invocation, p50 %.2f ms, p99 %.2f ms\n", *runs, median(rates), median(cpus), median(p50s), median(p99s))
	return nil
}

func post(hc *http.Client, url string) (string, error) {
	resp, err := hc.Post(url, "application/json", bytes.NewReader([]byte(`{"ping":1}`)))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return resp.Header.Get(api.HeaderInvocationID), nil
}

// throughput runs conc closed-loop clients for d and returns accepted/s
// and how many were accepted.
func throughput(hc *http.Client, url string, conc int, d time.Duration) (float64, int64, error) {
	var ok atomic.Int64
	var firstErr atomic.Value
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if _, err := post(hc, url); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				ok.Add(1)
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, 0, err
	}
	return float64(ok.Load()) / time.Since(start).Seconds(), ok.Load(), nil
}

// doneMap records when each invocation's outcome was written.
type doneMap struct {
	mu sync.Mutex
	at map[string]time.Time
}

// watchDone follows the outcomes bucket: an update that is not "queued" is
// a completion.
func watchDone(ctx context.Context, n *node.Node) (*doneMap, func(), error) {
	kv, err := n.Store.JS.KeyValue(ctx, async.ResultsBucket)
	if err != nil {
		return nil, nil, err
	}
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return nil, nil, err
	}
	d := &doneMap{at: map[string]time.Time{}}
	go func() {
		for e := range w.Updates() {
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var st struct {
				Status string `json:"status"`
			}
			if json.Unmarshal(e.Value(), &st) == nil && st.Status != api.AsyncQueued {
				now := time.Now()
				d.mu.Lock()
				d.at[e.Key()] = now
				d.mu.Unlock()
			}
		}
	}()
	return d, func() { w.Stop() }, nil
}

// latency sends at rate/s (open loop) for d and returns the accept-to-done
// percentiles in ms: from the request's start to the outcome's write.
func latency(hc *http.Client, url string, rate float64, d time.Duration, done *doneMap) (p50, p99 float64, lost int, err error) {
	type sent struct {
		id string
		at time.Time
	}
	var mu sync.Mutex
	var all []sent
	interval := time.Duration(float64(time.Second) / rate)
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	next := time.Now()
	sem := make(chan struct{}, 512)
	for time.Now().Before(stop) {
		if w := time.Until(next); w > 0 {
			time.Sleep(w)
		}
		next = next.Add(interval)
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			at := time.Now()
			id, e := post(hc, url)
			if e != nil {
				return
			}
			mu.Lock()
			all = append(all, sent{id, at})
			mu.Unlock()
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	var lat []float64
	for {
		lat, lost = lat[:0], 0
		done.mu.Lock()
		for _, s := range all {
			if t, ok := done.at[s.id]; ok {
				lat = append(lat, float64(t.Sub(s.at))/1e6)
			} else {
				lost++
			}
		}
		done.mu.Unlock()
		if lost == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	sort.Float64s(lat)
	if len(lat) == 0 {
		return 0, 0, lost, fmt.Errorf("nothing completed")
	}
	return lat[len(lat)/2], lat[len(lat)*99/100], lost, nil
}

// waitIdle waits for the queue to drain between phases.
func waitIdle(n *node.Node) {
	ctx := context.Background()
	s, err := n.Store.JS.Stream(ctx, async.Stream)
	if err != nil {
		return
	}
	for range 600 {
		info, err := s.Info(ctx)
		if err != nil || info.State.Msgs == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
