// Command workflow is Nimbus's workflow benchmark. It starts a node in this
// process and measures, through the workflow engine (no HTTP in the way):
//
//   - express: state transitions per second of a 100-state Pass chain run as
//     Express executions (StartSyncExecution: in memory, no history);
//   - standard: the same chain as Standard executions, durable: each
//     execution's history and outcome are written to JetStream before it
//     counts as done;
//   - map: the wall time of a Standard execution whose Map runs 10,000 items
//     with MaxConcurrency 100, each item a Task calling the Go SDK echo
//     function (examples/echo-sdk, wasm).
//
// Every figure is the median of -runs runs.
//
//	go run ./bench/workflow
//	go run ./bench/workflow -runs 5 -duration 5s -conc 64
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/bench/internal/loadgen"
	"github.com/nimbus-run/nimbus/examples"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/workflow"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "workflow bench:", err)
		os.Exit(1)
	}
}

func passChain(n int) string {
	var b strings.Builder
	b.WriteString(`{"StartAt":"S0","States":{`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		if i == n-1 {
			fmt.Fprintf(&b, `"S%d":{"Type":"Pass","End":true}`, i)
		} else {
			fmt.Fprintf(&b, `"S%d":{"Type":"Pass","Next":"S%d"}`, i, i+1)
		}
	}
	b.WriteString(`}}`)
	return b.String()
}

const chainInput = `{"order":{"id":"o-1","items":[1,2,3],"total":12.5}}`

func run() error {
	var (
		duration = flag.Duration("duration", 3*time.Second, "measurement time of the express and standard runs")
		runs     = flag.Int("runs", 3, "runs per figure; medians are reported")
		conc     = flag.Int("conc", 64, "executions in flight at once")
		items    = flag.Int("items", 10000, "Map items")
		only     = flag.String("only", "express,standard,map", "what to measure")
	)
	flag.Parse()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "nimbus-wfbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	n, err := node.Start(ctx, node.Config{DataDir: dir, Listen: "127.0.0.1:0", Dev: true,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	defer n.Stop(context.WithoutCancel(ctx)) //nolint:errcheck // exiting
	wf := n.Workflows
	fmt.Printf("machine: %d CPUs (GOMAXPROCS %d), %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())

	chain := passChain(100)
	if _, err := wf.CreateStateMachine(ctx, "chain-express", chain, workflow.TypeExpress, ""); err != nil {
		return err
	}
	if _, err := wf.CreateStateMachine(ctx, "chain-standard", chain, workflow.TypeStandard, ""); err != nil {
		return err
	}
	if strings.Contains(*only, "express") {
		med, all, err := median(*runs, func() (float64, error) {
			return throughput(*duration, *conc, func(i int64) error {
				e, err := wf.StartSyncExecution(ctx, workflow.MachineARN("chain-express"), "", chainInput)
				if err == nil && e.Status != workflow.StatusSucceeded {
					err = fmt.Errorf("execution %s: %s %s", e.Status, e.Error, e.Cause)
				}
				return err
			})
		})
		if err != nil {
			return err
		}
		fmt.Printf("express  100-state Pass chain: %10.0f transitions/s (median of %v, %d in flight)\n", med*100, scale(all, 100), *conc)
	}
	if strings.Contains(*only, "standard") {
		var seq atomic.Int64
		med, all, err := median(*runs, func() (float64, error) {
			return throughput(*duration, *conc, func(int64) error {
				name := fmt.Sprintf("e%d", seq.Add(1))
				e, err := wf.StartExecution(ctx, workflow.MachineARN("chain-standard"), name, chainInput)
				if err != nil {
					return err
				}
				// A chain of Pass states ends in its first step: by the time
				// StartExecution returns, its history and final status are
				// stored. Check, to be sure the figure counts durable work.
				if e, err = wf.Wait(ctx, e.ARN); err != nil || e.Status != workflow.StatusSucceeded {
					return fmt.Errorf("execution: %v %v", e, err)
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
		fmt.Printf("standard 100-state Pass chain: %10.0f transitions/s (median of %v, %d in flight, JetStream writes)\n", med*100, scale(all, 100), *conc)
	}
	if strings.Contains(*only, "map") {
		if err := deployEcho(ctx, n, dir); err != nil {
			return err
		}
		def := `{"StartAt":"Each","States":{"Each":{"Type":"Map","MaxConcurrency":100,"ItemsPath":"$.items",
		  "ItemProcessor":{"StartAt":"Echo","States":{"Echo":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:000000000000:function:echo","End":true}}},
		  "ResultSelector":{"count.$":"States.ArrayLength($)"},"End":true}}}`
		if _, err := wf.CreateStateMachine(ctx, "map", def, workflow.TypeStandard, ""); err != nil {
			return err
		}
		var in bytes.Buffer
		in.WriteString(`{"items":[`)
		for i := range *items {
			if i > 0 {
				in.WriteByte(',')
			}
			fmt.Fprintf(&in, `{"i":%d}`, i)
		}
		in.WriteString(`]}`)
		var walls []float64
		for r := range *runs {
			start := time.Now()
			e, err := wf.StartExecution(ctx, workflow.MachineARN("map"), fmt.Sprintf("map-%d", r), in.String())
			if err != nil {
				return err
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			e, err = wf.Wait(wctx, e.ARN)
			cancel()
			if err != nil {
				return err
			}
			if e.Status != workflow.StatusSucceeded || e.Output == nil || *e.Output != fmt.Sprintf(`{"count":%d}`, *items) {
				return fmt.Errorf("map execution: %s %s %s %v", e.Status, e.Error, e.Cause, e.Output)
			}
			walls = append(walls, time.Since(start).Seconds())
		}
		sorted := append([]float64(nil), walls...)
		sort.Float64s(sorted)
		fmt.Printf("standard Map of %d items, MaxConcurrency 100, Go SDK echo: %.2f s wall (median of %v)\n", *items, sorted[len(sorted)/2], round(walls))
	}
	return nil
}

// throughput runs f from conc goroutines for d and returns calls per second.
func throughput(d time.Duration, conc int, f func(i int64) error) (float64, error) {
	var done atomic.Int64
	var firstErr error
	var once sync.Once
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := f(done.Load()); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				done.Add(1)
			}
		}()
	}
	time.Sleep(d)
	close(stop)
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}

func median(runs int, f func() (float64, error)) (float64, []float64, error) {
	var all []float64
	for range runs {
		v, err := f()
		if err != nil {
			return 0, nil, err
		}
		all = append(all, v)
	}
	s := append([]float64(nil), all...)
	sort.Float64s(s)
	return s[len(s)/2], all, nil
}

func scale(v []float64, k float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(int64(x * k))
	}
	return out
}

func round(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(int64(x*100)) / 100
	}
	return out
}

// deployEcho builds examples/echo-sdk for wasm and deploys it as "echo".
func deployEcho(ctx context.Context, n *node.Node, dir string) error {
	c := api.NewClient(n.URL(), n.Token())
	digest, err := loadgen.BuildCode(ctx, c, examples.BuildWasm, "./examples/echo-sdk", filepath.Join(dir, "echo.wasm"))
	if err != nil {
		return err
	}
	if _, err := c.PutFunction(ctx, &api.Function{Name: "echo", Runtime: "wasm", Code: digest, Memory: 64, Timeout: "30s", Max: 100}); err != nil {
		return errors.Join(errors.New("deploy echo"), err)
	}
	return nil
}
