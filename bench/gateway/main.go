// Command gateway measures what the API gateway's JWT check costs. It starts
// a node in this process, deploys the Go SDK echo function, declares routes
// to it (unprotected, JWT-protected raw, JWT-protected with the API Gateway
// 2.0 event) and drives them, interleaved with the unprotected
// /function/{name} path in the same run, so the figures are ratios on the
// same machine at the same time.
//
//	go run ./bench/gateway                     # RS256, 64 connections, medians of 3
//	go run ./bench/gateway -alg hs256 -conc 16,64 -duration 5s
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/bench/internal/loadgen"
	"github.com/nimbus-run/nimbus/examples"
	"github.com/nimbus-run/nimbus/internal/node"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway bench:", err)
		os.Exit(1)
	}
}

type target struct {
	key, name, path string
	jwt             bool
}

var targets = []target{
	{"function", "/function/echo (unprotected)", "/function/echo", false},
	{"open", "route, raw, no auth", "/open", false},
	{"jwt", "route, raw, JWT", "/jwt", true},
	{"jwt-v2", "route, apigw-v2 event, JWT", "/jwt-v2", true},
}

type result struct {
	Target string `json:"target"`
	Conc   int    `json:"concurrency"`
	loadgen.Result
	// CPUus is the process's CPU time per request (server and load
	// generator): steadier than throughput on a shared machine.
	CPUus float64 `json:"cpu_us_per_request"`
	// VsFunction is RPS relative to /function/echo: the median over runs
	// of the ratio within each run (adjacent measurements).
	VsFunction float64 `json:"throughput_vs_function"`
	// CPUVsFunction is CPUus relative to /function/echo, likewise.
	CPUVsFunction float64 `json:"cpu_vs_function"`
}

func run() error {
	var (
		duration = flag.Duration("duration", 3*time.Second, "measurement time per cell")
		warmup   = flag.Duration("warmup", 500*time.Millisecond, "warm-up time per cell")
		runs     = flag.Int("runs", 3, "runs per cell; medians are reported")
		concs    = flag.String("conc", "64", "concurrencies")
		alg      = flag.String("alg", "rs256", "JWT algorithm: rs256, es256 or hs256")
		asJSON   = flag.Bool("json", false, "print JSON")
		payload  = flag.String("payload", `{"hello":"world","n":42}`, "request body")
	)
	flag.Parse()

	ctx := context.Background()
	dir, err := os.MkdirTemp("", "nimbus-gwbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	n, err := node.Start(ctx, node.Config{
		DataDir: dir, Listen: "127.0.0.1:0", Dev: true, QueueTimeout: 5 * time.Second, Prestart: 4,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer n.Stop(ctx)
	c := api.NewClient(n.URL(), "")

	fmt.Fprintln(os.Stderr, "building and deploying the Go SDK echo function...")
	digest, err := loadgen.BuildCode(ctx, c, examples.BuildWasm, "./examples/echo-sdk", filepath.Join(dir, "echo.wasm"))
	if err != nil {
		return err
	}
	if _, err := c.PutFunction(ctx, &api.Function{Name: "echo", Runtime: "wasm", Code: digest, Memory: 64, Timeout: "10s", Max: 256}); err != nil {
		return err
	}

	authCfg, token, err := jwtSetup(*alg)
	if err != nil {
		return err
	}
	if _, err := c.PutAPI(ctx, &api.APIConfig{
		Auth: map[string]api.AuthConfig{"jwt": authCfg},
		Routes: []api.Route{
			{Route: "POST /open", Function: "echo", Format: api.FormatRaw},
			{Route: "POST /jwt", Function: "echo", Format: api.FormatRaw, Auth: "jwt"},
			{Route: "POST /jwt-v2", Function: "echo", Auth: "jwt"},
		},
	}); err != nil {
		return err
	}

	var cs []int
	for _, s := range strings.Split(*concs, ",") {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return fmt.Errorf("bad concurrency %q", s)
		}
		cs = append(cs, v)
	}
	var results []result
	for _, conc := range cs {
		samples := map[string][]result{}
		// Runs interleave targets so drift on a noisy machine hits all alike.
		for r := 0; r < *runs; r++ {
			for _, t := range targets {
				hdr := http.Header{"Content-Type": {"application/json"}}
				if t.jwt {
					hdr.Set("Authorization", "Bearer "+token)
				}
				res := measure(n.URL()+t.path, hdr, []byte(*payload), conc, *warmup, *duration)
				fmt.Fprintf(os.Stderr, "  run %d %-32s c=%-3d %8.0f req/s  p50 %6.0f µs  p99 %6.0f µs  errors %d\n", r+1, t.name, conc, res.RPS, res.P50us, res.P99us, res.Errors)
				samples[t.key] = append(samples[t.key], res)
			}
		}
		for _, t := range targets {
			m := median(samples[t.key])
			m.Target, m.Conc = t.name, conc
			var rps, cpu []float64
			for i, s := range samples[t.key] {
				b := samples["function"][i]
				if b.RPS > 0 && b.CPUus > 0 {
					rps = append(rps, s.RPS/b.RPS)
					cpu = append(cpu, s.CPUus/b.CPUus)
				}
			}
			m.VsFunction, m.CPUVsFunction = med(rps), med(cpu)
			results = append(results, m)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "target\tconc\treq/s\tvs /function\tCPU µs/req\tvs /function\tp50 µs\tp99 µs\terrors\t\n")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.1f%%\t%.0f\t%.1f%%\t%.0f\t%.0f\t%d\t\n", r.Target, r.Conc, r.RPS, r.VsFunction*100, r.CPUus, r.CPUVsFunction*100, r.P50us, r.P99us, r.Errors)
	}
	fmt.Fprintf(tw, "\n(JWT %s; medians of %d runs of %s, ratios within each run; GOMAXPROCS=%d; load generator in the same process)\t\t\t\t\t\t\t\t\t\n", strings.ToUpper(*alg), *runs, *duration, runtime.GOMAXPROCS(0))
	return tw.Flush()
}

// jwtSetup makes a key, the authorizer that trusts it and a token it
// accepts for the next hour.
func jwtSetup(alg string) (api.AuthConfig, string, error) {
	cfg := api.AuthConfig{Type: api.AuthJWT, Issuer: "https://id.example.com", Audience: []string{"bench"}}
	claims := jwt.MapClaims{"iss": cfg.Issuer, "aud": "bench", "sub": "user-1", "scope": "read write",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	b64 := base64.RawURLEncoding.EncodeToString
	var (
		method jwt.SigningMethod
		key    any
		jwk    map[string]any
	)
	switch alg {
	case "rs256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return cfg, "", err
		}
		method, key = jwt.SigningMethodRS256, k
		jwk = map[string]any{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	case "es256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return cfg, "", err
		}
		x, y := make([]byte, 32), make([]byte, 32)
		k.X.FillBytes(x)
		k.Y.FillBytes(y)
		method, key = jwt.SigningMethodES256, k
		jwk = map[string]any{"kty": "EC", "kid": "k1", "alg": "ES256", "use": "sig", "crv": "P-256", "x": b64(x), "y": b64(y)}
	case "hs256":
		secret := make([]byte, 32)
		rand.Read(secret)
		cfg.HS256Secret = b64(secret)
		method, key = jwt.SigningMethodHS256, []byte(cfg.HS256Secret)
	default:
		return cfg, "", fmt.Errorf("unknown -alg %q", alg)
	}
	if jwk != nil {
		cfg.JWKS, _ = json.Marshal(map[string]any{"keys": []any{jwk}})
	}
	tok := jwt.NewWithClaims(method, claims)
	if jwk != nil {
		tok.Header["kid"] = "k1"
	}
	s, err := tok.SignedString(key)
	return cfg, s, err
}

// measure drives url with loadgen and adds the process's CPU time per
// request. loadgen does not say how many requests the warm-up sent, so the
// CPU of the whole call is divided by the requests a steady rate would have
// sent in it.
func measure(url string, hdr http.Header, body []byte, conc int, warmup, d time.Duration) result {
	cpu0 := cpuTime()
	r := loadgen.Measure(loadgen.Target{URL: url, Body: body, Header: hdr}, conc, warmup, d)
	cpu := cpuTime() - cpu0
	res := result{Result: r}
	if n := r.RPS * (warmup + d).Seconds(); n > 0 {
		res.CPUus = float64(cpu.Microseconds()) / n
	}
	return res
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func med(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// median is loadgen.Median of the runs, with the median CPU per request.
func median(rs []result) result {
	ls := make([]loadgen.Result, len(rs))
	cpu := make([]float64, len(rs))
	for i, r := range rs {
		ls[i], cpu[i] = r.Result, r.CPUus
	}
	return result{Result: loadgen.Median(ls), CPUus: med(cpu)}
}
