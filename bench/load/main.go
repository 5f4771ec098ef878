// Command load is Nimbus's load benchmark. It starts a node in this process,
// deploys echo functions, and drives warm invocations through
// POST /function/{name} at several concurrencies, next to a bare net/http
// echo handler measured in the same run, so the figures are ratios on the
// same machine at the same time. With -idle N it instead deploys N idle
// functions and reports the node's resident memory.
//
//	go run ./bench/load                  # full table, medians of 3 runs
//	go run ./bench/load -runs 5 -duration 5s -conc 1,16,64
//	go run ./bench/load -idle 1000
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/bench/internal/loadgen"
	"github.com/nimbus-run/nimbus/examples"
	"github.com/nimbus-run/nimbus/internal/node"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

type target struct {
	name, url string
}

type result struct {
	Target string `json:"target"`
	Conc   int    `json:"concurrency"`
	loadgen.Result
	VsBare     float64 `json:"throughput_vs_bare"`
	AddedP50us float64 `json:"added_p50_us"`
	Paced      float64 `json:"paced_rps,omitempty"`
}

func run() error {
	var (
		duration = flag.Duration("duration", 3*time.Second, "measurement time per cell")
		warmup   = flag.Duration("warmup", 500*time.Millisecond, "warm-up time per cell")
		runs     = flag.Int("runs", 3, "runs per cell; medians are reported")
		concs    = flag.String("conc", "1,16,64", "concurrencies")
		only     = flag.String("targets", "bare,sdk,wasi,wat", "targets to measure")
		idle     = flag.Int("idle", 0, "deploy this many idle functions and report resident memory instead")
		asJSON   = flag.Bool("json", false, "print JSON")
		payload  = flag.String("payload", `{"hello":"world","n":42}`, "request body")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the measurements to this file")
		paced    = flag.Float64("paced", 50, "also measure each target at this fixed request rate on one connection (0: skip)")
	)
	flag.Parse()

	ctx := context.Background()
	dir, err := os.MkdirTemp("", "nimbus-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	n, err := node.Start(ctx, node.Config{
		DataDir: dir, Listen: "127.0.0.1:0", Dev: true, QueueTimeout: 5 * time.Second,
		Prestart: 4, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer n.Stop(ctx)
	c := api.NewClient(n.URL(), "")

	if *idle > 0 {
		return idleCost(ctx, c, dir, *idle)
	}

	fmt.Fprintln(os.Stderr, "building and deploying echo functions...")
	codes := map[string][]byte{"wat": examples.EchoWAT}
	for name, pkg := range map[string]string{"sdk": "./examples/echo-sdk", "wasi": "./examples/echo-wasi"} {
		out := filepath.Join(dir, name+".wasm")
		if err := examples.BuildWasm(ctx, pkg, out); err != nil {
			return err
		}
		if codes[name], err = os.ReadFile(out); err != nil {
			return err
		}
	}
	for name, code := range codes {
		if err := deploy(ctx, c, "echo-"+name, code); err != nil {
			return err
		}
	}

	bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go bare.Serve(ln)
	defer bare.Close()

	all := map[string]target{
		"bare": {"bare net/http", "http://" + ln.Addr().String() + "/"},
		"sdk":  {"Go SDK echo (wasm)", n.URL() + "/function/echo-sdk"},
		"wasi": {"WASI command echo (Go)", n.URL() + "/function/echo-wasi"},
		"wat":  {"WAT echo (wasm, no runtime)", n.URL() + "/function/echo-wat"},
	}
	var targets []string
	for _, t := range strings.Split(*only, ",") {
		if _, ok := all[t]; !ok {
			return fmt.Errorf("unknown target %q", t)
		}
		targets = append(targets, t)
	}
	var cs []int
	for _, s := range strings.Split(*concs, ",") {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return fmt.Errorf("bad concurrency %q", s)
		}
		cs = append(cs, v)
	}

	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var results []result
	for _, conc := range cs {
		// Runs interleave targets so drift on a noisy machine hits all alike.
		samples := map[string][]loadgen.Result{}
		for r := 0; r < *runs; r++ {
			for _, t := range targets {
				res := loadgen.Measure(loadgen.Target{URL: all[t].url, Body: []byte(*payload)}, conc, *warmup, *duration)
				fmt.Fprintf(os.Stderr, "  run %d %-28s c=%-3d %8.0f req/s  p50 %7.0f µs  p99 %7.0f µs  errors %d\n", r+1, all[t].name, conc, res.RPS, res.P50us, res.P99us, res.Errors)
				samples[t] = append(samples[t], res)
			}
		}
		med := map[string]loadgen.Result{}
		for _, t := range targets {
			med[t] = loadgen.Median(samples[t])
		}
		for _, t := range targets {
			m := result{Target: all[t].name, Conc: conc, Result: med[t]}
			if b, ok := med["bare"]; ok && b.RPS > 0 {
				m.VsBare = m.RPS / b.RPS
				m.AddedP50us = m.P50us - b.P50us
			}
			results = append(results, m)
		}
	}
	// Closed-loop load at concurrency 1 measures how fast a target can go;
	// a paced load measures the latency a caller sees when it is not
	// saturated, which is what pre-started WASI instances are for.
	if *paced > 0 {
		for _, t := range targets {
			var rs []loadgen.Result
			for r := 0; r < *runs; r++ {
				lr := loadgen.MeasurePaced(loadgen.Target{URL: all[t].url, Body: []byte(*payload)}, *paced, *warmup, *duration)
				fmt.Fprintf(os.Stderr, "  run %d %-28s paced %.0f/s  p50 %7.0f µs  p99 %7.0f µs  errors %d\n", r+1, all[t].name, *paced, lr.P50us, lr.P99us, lr.Errors)
				rs = append(rs, lr)
			}
			results = append(results, result{Target: all[t].name, Conc: 1, Result: loadgen.Median(rs), Paced: *paced})
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "target\tconc\treq/s\tvs bare\tp50 µs\tadded p50 µs\tp99 µs\terrors\t\n")
	for _, r := range results {
		if r.Paced > 0 {
			fmt.Fprintf(tw, "%s\tpaced %.0f/s\t-\t-\t%.0f\t-\t%.0f\t%d\t\n", r.Target, r.Paced, r.P50us, r.P99us, r.Errors)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f%%\t%.0f\t%.0f\t%.0f\t%d\t\n", r.Target, r.Conc, r.RPS, r.VsBare*100, r.P50us, r.AddedP50us, r.P99us, r.Errors)
	}
	fmt.Fprintf(tw, "\n(medians of %d runs of %s; GOMAXPROCS=%d; load generator in the same process)\t\t\t\t\t\t\t\t\n", *runs, *duration, runtime.GOMAXPROCS(0))
	return tw.Flush()
}

func deploy(ctx context.Context, c *api.Client, name string, code []byte) error {
	up, err := c.PutCode(ctx, bytes.NewReader(code))
	if err != nil {
		return err
	}
	_, err = c.PutFunction(ctx, &api.Function{Name: name, Runtime: "wasm", Code: up.Digest, Memory: 64, Timeout: "10s", Max: 256})
	return err
}

// idleCost deploys n functions that share one code artifact (as a fleet of
// functions built from one SDK would not, but the per-function overhead is
// what this measures) and reports resident memory.
func idleCost(ctx context.Context, c *api.Client, dir string, n int) error {
	out := filepath.Join(dir, "echo.wasm")
	if err := examples.BuildWasm(ctx, "./examples/echo-sdk", out); err != nil {
		return err
	}
	code, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	before := rss()
	t0 := time.Now()
	for i := range n {
		if err := deploy(ctx, c, fmt.Sprintf("idle-%04d", i), code); err != nil {
			return err
		}
		if (i+1)%100 == 0 {
			fmt.Fprintf(os.Stderr, "  deployed %d/%d\n", i+1, n)
		}
	}
	took := time.Since(t0)
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(time.Second)
	after := rss()
	fmt.Printf("idle functions: %d (deployed in %s)\nresident memory: %.1f MB before, %.1f MB with %d idle functions (%.1f KB each)\n",
		n, took.Round(time.Millisecond), before/1024, after/1024, n, (after-before)/float64(n))
	return nil
}

// rss is VmRSS in KB.
func rss() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return f
		}
	}
	return 0
}
