// Command lambda benchmarks the Lambda Invoke API with an unmodified
// aws-lambda-go function (examples/lambda-go-echo) on the process runtime.
//
// Warm: it drives POST /2015-03-31/functions/echo/invocations at several
// concurrencies next to a bare net/http echo handler measured in the same
// run, and reports medians of several runs: throughput as a share of bare,
// and p50/p99 latency. The same function is also driven through Nimbus's own
// route (/function/echo), so the Invoke API's own cost shows apart from the
// runtime's, and behind a relay that does nothing but pass events and
// responses (relay.go), on net/http and on internal/httploop: the most
// this protocol allows on this machine.
//
// Cold: it deploys the same code as a function whose instances are reclaimed
// after 1 ms idle, waits until none is left, invokes, and repeats; it reports
// the p50 of the whole cold request (process start to response, seen by the
// client) and of the init time the records report.
//
//	go run ./bench/lambda                   # defaults: 3 runs of 3s, conc 1,16,64, 30 cold starts
//	go run ./bench/lambda -auth sigv4       # every request SigV4-signed and verified
//	go run ./bench/lambda -runs 5 -duration 5s -cold 100 -json
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/bench/internal/loadgen"
	"github.com/nimbus-run/nimbus/examples"
	"github.com/nimbus-run/nimbus/internal/node"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "lambda bench:", err)
		os.Exit(1)
	}
}

type warmResult struct {
	Target string  `json:"target"`
	Conc   int     `json:"concurrency"`
	VsBare float64 `json:"throughput_vs_bare"`
	loadgen.Result
}

type coldResult struct {
	Samples     int     `json:"samples"`
	ColdSeen    int     `json:"cold_records"`
	P50ms       float64 `json:"request_p50_ms"`
	P90ms       float64 `json:"request_p90_ms"`
	InitP50ms   float64 `json:"init_p50_ms"`
	TargetP50ms float64 `json:"target_p50_ms"`
}

func run() error {
	var (
		duration = flag.Duration("duration", 3*time.Second, "measurement time per cell")
		warmup   = flag.Duration("warmup", 500*time.Millisecond, "warm-up time per cell")
		runs     = flag.Int("runs", 3, "runs per cell; medians are reported")
		concs    = flag.String("conc", "1,16,64", "concurrencies")
		colds    = flag.Int("cold", 30, "cold starts to measure (0: skip)")
		auth     = flag.String("auth", "none", "none (node in dev mode) or sigv4 (every request signed with an access key)")
		payload  = flag.String("payload", `{"hello":"world","n":42}`, "request body")
		asJSON   = flag.Bool("json", false, "print JSON")
		mc       = flag.Int("mc", 16, "per-process concurrency of the multi-concurrency variant")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the process (node and load generator) during the first measurement of a target other than bare (pick it with -only) to this file")
		memprof  = flag.String("memprofile", "", "write an allocation profile of the node's process (after the warm runs) to this file")
		only     = flag.String("only", "", "measure only the targets whose name holds this (bare net/http always runs)")
	)
	flag.Parse()
	if *auth != "none" && *auth != "sigv4" {
		return fmt.Errorf("-auth must be none or sigv4")
	}
	var cs []int
	for s := range strings.SplitSeq(*concs, ",") {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return fmt.Errorf("bad concurrency %q", s)
		}
		cs = append(cs, v)
	}

	ctx := context.Background()
	dir, err := os.MkdirTemp("", "nimbus-lambda-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	n, err := node.Start(ctx, node.Config{
		DataDir: dir, Listen: "127.0.0.1:0", Dev: *auth == "none", QueueTimeout: 5 * time.Second,
		ReapInterval: 5 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer n.Stop(ctx)
	c := api.NewClient(n.URL(), n.Token())

	fmt.Fprintln(os.Stderr, "building and deploying examples/lambda-go-echo...")
	bin := filepath.Join(dir, "bootstrap")
	if err := examples.BuildNative(ctx, "./examples/lambda-go-echo", bin); err != nil {
		return err
	}
	code, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	if err := deploy(ctx, c, api.Function{Name: "echo", Runtime: "process", Memory: 128, Timeout: "10s", Max: 256}, code); err != nil {
		return err
	}
	// The same code in Lambda's multi-concurrency mode: one process serves
	// up to *mc invocations at once (AWS_LAMBDA_MAX_CONCURRENCY).
	if err := deploy(ctx, c, api.Function{Name: "echo-mc", Runtime: "process", Memory: 128, Timeout: "10s", Max: 256, Concurrency: *mc}, code); err != nil {
		return err
	}
	if err := deploy(ctx, c, api.Function{Name: "echo-cold", Runtime: "process", Memory: 128, Timeout: "10s", Max: 1, IdleTimeout: "1ms"}, code); err != nil {
		return err
	}

	var prepare func(*http.Request) error
	if *auth == "sigv4" {
		key, err := c.CreateKey(ctx, "bench", "")
		if err != nil {
			return err
		}
		prepare = signer(key, []byte(*payload))
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

	// The ceiling: the same binary behind a relay that does nothing but
	// pass events and responses (relay.go), as many processes as the
	// multi-concurrency variant runs at the highest concurrency.
	maxConc := slices.Max(cs)
	procs := (maxConc + *mc - 1) / *mc
	rl, err := startRelay(bin, procs, *mc, false)
	if err != nil {
		return err
	}
	defer rl.close()
	raw, err := startRelay(bin, procs, *mc, true)
	if err != nil {
		return err
	}
	defer raw.close()

	type target struct {
		name string
		t    loadgen.Target
	}
	targets := []target{
		{"bare net/http", loadgen.Target{URL: "http://" + ln.Addr().String() + "/", Body: []byte(*payload)}},
		{"Invoke API, aws-lambda-go echo", loadgen.Target{URL: n.URL() + "/2015-03-31/functions/echo/invocations", Body: []byte(*payload), Prepare: prepare}},
		{fmt.Sprintf("Invoke API, same, concurrency %d", *mc), loadgen.Target{URL: n.URL() + "/2015-03-31/functions/echo-mc/invocations", Body: []byte(*payload), Prepare: prepare}},
		// The same function through Nimbus's own route: the difference is
		// the Invoke API's cost (authentication, parsing, AWS shapes).
		{"/function/echo (same function)", loadgen.Target{URL: n.URL() + "/function/echo", Body: []byte(*payload)}},
		{fmt.Sprintf("bare relay, same code, concurrency %d", *mc), loadgen.Target{URL: rl.invoke, Body: []byte(*payload)}},
		{"bare relay, httploop", loadgen.Target{URL: raw.invoke, Body: []byte(*payload)}},
	}
	targets = slices.DeleteFunc(targets, func(t target) bool {
		return t.name != "bare net/http" && !strings.Contains(t.name, *only)
	})
	var prof *os.File
	if *cpuprof != "" {
		if prof, err = os.Create(*cpuprof); err != nil {
			return err
		}
		defer prof.Close()
	}
	var warm []warmResult
	for _, conc := range cs {
		samples := make([][]loadgen.Result, len(targets))
		for r := range *runs {
			// Runs interleave targets so drift on a noisy machine hits both.
			for i, t := range targets {
				profile := prof != nil && i > 0
				if profile {
					if err := pprof.StartCPUProfile(prof); err != nil {
						return err
					}
				}
				res := loadgen.Measure(t.t, conc, *warmup, *duration)
				if profile {
					pprof.StopCPUProfile()
					prof = nil
				}
				fmt.Fprintf(os.Stderr, "  run %d %-32s c=%-3d %8.0f req/s  p50 %7.0f µs  p99 %7.0f µs  cpu %4.0f µs  errors %d\n", r+1, t.name, conc, res.RPS, res.P50us, res.P99us, res.MachineCPUus, res.Errors)
				samples[i] = append(samples[i], res)
			}
		}
		bareMed := loadgen.Median(samples[0])
		for i, t := range targets {
			m := warmResult{Target: t.name, Conc: conc, Result: loadgen.Median(samples[i])}
			if bareMed.RPS > 0 {
				m.VsBare = m.RPS / bareMed.RPS
			}
			warm = append(warm, m)
		}
	}

	if *memprof != "" {
		f, err := os.Create(*memprof)
		if err != nil {
			return err
		}
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
		if err != nil {
			return err
		}
	}
	var cold *coldResult
	if *colds > 0 {
		fmt.Fprintf(os.Stderr, "measuring %d cold starts...\n", *colds)
		if cold, err = measureCold(ctx, c, n.URL()+"/2015-03-31/functions/echo-cold/invocations", []byte(*payload), prepare, *colds); err != nil {
			return err
		}
	}

	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"warm": warm, "cold": cold, "auth": *auth, "gomaxprocs": runtime.GOMAXPROCS(0)})
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "target\tconc\treq/s\tvs bare\tp50 µs\tp99 µs\tCPU µs/req\terrors\t\n")
	for _, r := range warm {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f%%\t%.0f\t%.0f\t%.0f\t%d\t\n", r.Target, r.Conc, r.RPS, r.VsBare*100, r.P50us, r.P99us, r.MachineCPUus, r.Errors)
	}
	fmt.Fprintf(tw, "\n(auth %s; medians of %d runs of %s; GOMAXPROCS=%d; load generator in the same process;\t\t\t\t\t\t\t\t\n CPU µs/req: the whole machine's, function processes included)\t\t\t\t\t\t\t\t\n", *auth, *runs, *duration, runtime.GOMAXPROCS(0))
	if err := tw.Flush(); err != nil {
		return err
	}
	if cold != nil {
		fmt.Printf("\ncold start (process runtime, aws-lambda-go), %d samples (%d records say cold):\n", cold.Samples, cold.ColdSeen)
		fmt.Printf("  request p50 %.1f ms, p90 %.1f ms (client-observed, process start to response; target < %.0f ms p50)\n", cold.P50ms, cold.P90ms, cold.TargetP50ms)
		fmt.Printf("  init p50 %.1f ms (records' init_ms: exec to the runtime's first /next)\n", cold.InitP50ms)
	}
	return nil
}

// measureCold invokes a function whose instances are reclaimed after 1 ms
// idle, each time after its last instance is gone.
func measureCold(ctx context.Context, c *api.Client, url string, body []byte, prepare func(*http.Request) error, samples int) (*coldResult, error) {
	client := &http.Client{}
	var lat []time.Duration
	for i := range samples {
		if err := waitNoInstances(ctx, c, "echo-cold"); err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		if prepare != nil {
			if err := prepare(req); err != nil {
				return nil, err
			}
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "" {
			return nil, fmt.Errorf("cold invocation %d: status %d", i, resp.StatusCode)
		}
		lat = append(lat, d)
	}
	slices.Sort(lat)
	out := &coldResult{Samples: samples, TargetP50ms: 15, P50ms: loadgen.Percentile(lat, 0.5) / 1e3, P90ms: loadgen.Percentile(lat, 0.9) / 1e3}

	// The records say which invocations were cold and how long init took.
	var inits []float64
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		recs, err := c.Records(ctx, "echo-cold", samples)
		if err != nil {
			return nil, err
		}
		inits = inits[:0]
		for _, r := range recs {
			if r.ColdStart {
				inits = append(inits, r.InitMS)
			}
		}
		if len(inits) >= samples {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	out.ColdSeen = len(inits)
	if len(inits) > 0 {
		slices.Sort(inits)
		out.InitP50ms = inits[len(inits)/2]
	}
	return out, nil
}

func waitNoInstances(ctx context.Context, c *api.Client, name string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := c.GetFunction(ctx, name)
		if err != nil {
			return err
		}
		if f.Instances == nil || f.Instances.Instances == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still has %d instances after 10s", name, f.Instances.Instances)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// signer signs each request with SigV4 for the lambda service.
func signer(key *api.Key, body []byte) func(*http.Request) error {
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	creds := aws.Credentials{AccessKeyID: key.ID, SecretAccessKey: key.Secret}
	s := v4.NewSigner()
	return func(r *http.Request) error {
		return s.SignHTTP(r.Context(), creds, r, hash, "lambda", "us-east-1", time.Now())
	}
}

func deploy(ctx context.Context, c *api.Client, fn api.Function, code []byte) error {
	up, err := c.PutCode(ctx, bytes.NewReader(code))
	if err != nil {
		return err
	}
	fn.Code = up.Digest
	_, err = c.PutFunction(ctx, &fn)
	return err
}
