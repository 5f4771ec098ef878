// Package loadgen is the closed-loop HTTP load generator the benchmarks
// share: a fixed number of keep-alive connections, each sending its next
// request when the previous answer arrives, with a warm-up that is not
// measured. It reports throughput and latency percentiles; the benchmarks
// own what they measure and how they print it.
package loadgen

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Target is what to send.
type Target struct {
	URL  string
	Body []byte
	// Header is sent with every request (Content-Type defaults to
	// application/json).
	Header http.Header
	// Prepare, when set, runs on every request before it is sent (to sign
	// it, for example); its cost is part of the measured latency.
	Prepare func(*http.Request) error
	// OK says which statuses count as successes (default: 200 only).
	OK func(status int) bool
}

// Result is one measurement.
type Result struct {
	RPS    float64 `json:"rps"`
	P50us  float64 `json:"p50_us"`
	P99us  float64 `json:"p99_us"`
	Errors int64   `json:"errors"`
	// MachineCPUus is the CPU time the whole machine spent per request
	// while measuring (user and system, from /proc/stat; 0 elsewhere): the
	// load generator, the server and any process it runs. On a shared,
	// noisy machine it varies less than throughput does.
	MachineCPUus float64 `json:"machine_cpu_us,omitempty"`
}

// Measure drives t with conc connections for warmup (not measured), then d.
func Measure(t Target, conc int, warmup, d time.Duration) Result {
	tr := &http.Transport{MaxIdleConns: conc, MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ok := t.OK
	if ok == nil {
		ok = func(s int) bool { return s == http.StatusOK }
	}
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		errs      atomic.Int64
		mu        sync.Mutex
		lat       []time.Duration
		wg        sync.WaitGroup
	)
	for range conc {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1<<14)
			for !stop.Load() {
				t0 := time.Now()
				err := send(client, &t, ok)
				if !measuring.Load() {
					continue
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	time.Sleep(warmup)
	measuring.Store(true)
	start, cpu0 := time.Now(), MachineCPU()
	time.Sleep(d)
	measuring.Store(false)
	elapsed, cpu := time.Since(start), MachineCPU()-cpu0
	stop.Store(true)
	wg.Wait()
	slices.Sort(lat)
	r := Result{RPS: float64(len(lat)) / elapsed.Seconds(), P50us: Percentile(lat, 0.50), P99us: Percentile(lat, 0.99), Errors: errs.Load()}
	if len(lat) > 0 && cpu > 0 {
		r.MachineCPUus = float64(cpu.Microseconds()) / float64(len(lat))
	}
	return r
}

// MachineCPU is the busy CPU time of all CPUs since boot (user, nice,
// system, irq and softirq in /proc/stat's first line), 0 where unknown.
func MachineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} { // user nice system (idle iowait) irq softirq
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}

func send(client *http.Client, t *Target, ok func(int) bool) error {
	req, err := http.NewRequest(http.MethodPost, t.URL, bytes.NewReader(t.Body))
	if err != nil {
		return err
	}
	for k, v := range t.Header {
		req.Header[k] = v
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if t.Prepare != nil {
		if err := t.Prepare(req); err != nil {
			return err
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && !ok(resp.StatusCode) {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}

// Percentile of sorted latencies, in microseconds (0 when empty).
func Percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(p*float64(len(sorted)-1))].Nanoseconds()) / 1e3
}

// Median takes the median of each figure across runs (errors are summed).
func Median(rs []Result) Result {
	if len(rs) == 0 {
		return Result{}
	}
	pick := func(f func(Result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	var errs int64
	for _, r := range rs {
		errs += r.Errors
	}
	return Result{
		RPS:          pick(func(r Result) float64 { return r.RPS }),
		P50us:        pick(func(r Result) float64 { return r.P50us }),
		P99us:        pick(func(r Result) float64 { return r.P99us }),
		MachineCPUus: pick(func(r Result) float64 { return r.MachineCPUus }),
		Errors:       errs,
	}
}

// MeasurePaced sends one request every 1/rate seconds on one keep-alive
// connection for d (after warmup), never more than one at a time: the
// latency a caller sees at that rate, when the server is not saturated.
// Throughput is whatever the pace allows, so only the latency is of
// interest.
func MeasurePaced(t Target, rate float64, warmup, d time.Duration) Result {
	tr := &http.Transport{MaxIdleConns: 1, MaxIdleConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ok := t.OK
	if ok == nil {
		ok = func(s int) bool { return s == http.StatusOK }
	}
	interval := time.Duration(float64(time.Second) / rate)
	var lat []time.Duration
	var errs int64
	begin := time.Now()
	measureFrom := begin.Add(warmup)
	end := measureFrom.Add(d)
	next := begin
	for {
		if now := time.Now(); now.Before(next) {
			time.Sleep(next.Sub(now))
		}
		t0 := time.Now()
		if t0.After(end) {
			break
		}
		next = next.Add(interval)
		err := send(client, &t, ok)
		if t0.Before(measureFrom) {
			continue
		}
		if err != nil {
			errs++
			continue
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return Result{RPS: float64(len(lat)) / d.Seconds(), P50us: Percentile(lat, 0.50), P99us: Percentile(lat, 0.99), Errors: errs}
}
