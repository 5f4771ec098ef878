package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/examples"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/httpbody"
	"github.com/nimbus-run/nimbus/internal/node"
)

func newUp(e *env) *cobra.Command {
	var (
		cfg      node.Config
		demo     bool
		logLevel string
		proxies  []string // --trusted-proxy
		cbAllow  []string // --callback-allow
		// --table-cache; data.Config.CacheBytes
		tableCache int64
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a Nimbus node (gateway, runtimes, embedded NATS JetStream)",
		Long: `Up runs a whole Nimbus node in this process until interrupted. State lives
in the data directory (JetStream files, compiled code cache, admin token), so
functions deployed before a restart are there after it. On SIGINT/SIGTERM the
node stops taking requests, lets in-flight invocations finish (bounded by
--drain-timeout) and exits.`,
		Example: `  nimbus up --demo                 # try it: deploys example functions, no auth
  nimbus up --data /var/lib/nimbus --listen 0.0.0.0:8080
  nimbus up --nats nats://10.0.0.5:4222   # join an external NATS (JetStream) cluster
  nimbus up --nats nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222 --replicas 3
  nimbus up --callback-allow 203.0.113.0/24,2001:db8::/32   # X-Callback-Url may reach only these`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usagef("--log-level: %v", err)
			}
			cfg.Logger = slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: level}))
			switch {
			case cfg.Replicas < 0 || cfg.Replicas > 5:
				return usagef("--replicas %d: JetStream keeps 1 to 5 copies of a stream", cfg.Replicas)
			case cfg.Replicas > 1 && cfg.NATSURL == "":
				return usagef("--replicas %d needs --nats: the embedded NATS server is a single server; point the node at a JetStream cluster of at least %d servers", cfg.Replicas, cfg.Replicas)
			}
			if cfg.Data.MaxUploads <= 0 {
				return usagef("--max-uploads %d: want at least 1", cfg.Data.MaxUploads)
			}
			if cfg.BodyIdleTimeout <= 0 {
				return usagef("--body-idle-timeout %v: want a positive duration like 1m", cfg.BodyIdleTimeout)
			}
			switch {
			case tableCache < 0:
				return usagef("--table-cache %d: want a size in bytes, or 0 to read every get from the stream", tableCache)
			case tableCache == 0:
				cfg.Data.CacheBytes = -1
			default:
				cfg.Data.CacheBytes = tableCache
			}
			for _, p := range proxies {
				pfx, err := parsePrefix(p)
				if err != nil {
					return usagef("--trusted-proxy %q: want an address or CIDR like 10.0.0.0/8", p)
				}
				cfg.TrustedProxies = append(cfg.TrustedProxies, pfx)
			}
			for _, p := range cbAllow {
				pfx, err := parsePrefix(strings.TrimSpace(p))
				if err != nil {
					return usagef("--callback-allow %q: want comma-separated addresses or CIDRs like 10.0.0.0/8,192.0.2.7", p)
				}
				cfg.Async.CallbackAllow = append(cfg.Async.CallbackAllow, pfx)
			}
			if demo && !cmd.Flags().Changed("dev") {
				cfg.Dev = true
			}
			ctx := cmd.Context()
			n, err := node.Start(ctx, cfg)
			if err != nil {
				return err
			}
			printBanner(e, n, cfg)
			if demo {
				if err := deployDemo(ctx, e, n, cfg.DataDir); err != nil {
					fmt.Fprintf(e.stderr, "demo: %v\n", err)
				}
			}
			<-ctx.Done()
			fmt.Fprintln(e.stderr, "stopping: draining in-flight invocations...")
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.DrainTimeout+5*time.Second)
			defer cancel()
			if err := n.Stop(stopCtx); err != nil {
				return fmt.Errorf("stop: %w", err)
			}
			fmt.Fprintln(e.stderr, "stopped")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.DataDir, "data", DefaultDataDir(), "state directory (env NIMBUS_DATA)")
	fl.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "HTTP listen address")
	fl.BoolVar(&cfg.Dev, "dev", false, "development mode: the management API needs no token")
	fl.StringVar(&cfg.NATSURL, "nats", "", "use an external NATS server/cluster (with JetStream) instead of the embedded one")
	fl.IntVar(&cfg.Replicas, "replicas", 0, "copies JetStream keeps of every stream and bucket (1-5), so that data survives the loss of a server; needs --nats and a cluster of at least that many servers; streams that have more keep theirs (default: the server's, 1)")
	fl.StringVar(&cfg.NATSListen, "nats-listen", "", "let other nodes reach the embedded NATS server at this address")
	fl.StringArrayVar(&cfg.S3Domains, "s3-domain", nil, "serve S3 requests in the virtual-hosted style under this domain (repeatable): BUCKET.DOMAIN/KEY, for SDKs left out of path style; BUCKET.DOMAIN must reach the node (wildcard DNS, /etc/hosts, or localhost where the resolver sends *.localhost to loopback, as systemd-resolved and curl do)")
	fl.BoolVar(&demo, "demo", false, "deploy the example functions (implies --dev unless --dev=false)")
	fl.DurationVar(&cfg.QueueTimeout, "queue-timeout", 100*time.Millisecond, "how long a call waits at max concurrency before HTTP 429")
	fl.DurationVar(&cfg.DrainTimeout, "drain-timeout", 30*time.Second, "how long shutdown waits for in-flight invocations")
	fl.Int64Var(&cfg.MaxBody, "max-body", 6<<20, "request body limit in bytes for invocations")
	fl.StringVar(&cfg.APIListen, "api-listen", "", "serve user routes (the API gateway) on this address instead of --listen")
	fl.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate (PEM) for HTTPS and HTTP/2 on both listeners")
	fl.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key (PEM) for --tls-cert")
	fl.StringArrayVar(&proxies, "trusted-proxy", nil, "believe X-Forwarded-For from this address or CIDR (repeatable)")
	fl.StringSliceVar(&cbAllow, "callback-allow", nil, "X-Callback-Url callbacks may connect only to these addresses or CIDRs (comma-separated, repeatable); default: any but cloud metadata addresses (link-local, fd00:ec2::254, 100.100.100.200)")
	fl.Int64Var(&tableCache, "table-cache", data.DefaultCacheBytes, "bytes of recent table items kept in memory to serve gets, all tables together; only a node that embeds NATS and does not expose it (no --nats, --nats-listen) keeps any; 0: none")
	fl.IntVar(&cfg.MaxHeaderBytes, "max-header-bytes", 64<<10, "request header size limit (431 beyond)")
	fl.IntVar(&cfg.Data.MaxUploads, "max-uploads", data.DefaultMaxUploads, "object and part uploads of more than one chunk (256 KB) that run at once, each holding some 10 MB; more wait their turn, their bodies unread")
	fl.DurationVar(&cfg.BodyIdleTimeout, "body-idle-timeout", httpbody.DefaultIdle, "a request whose client stops sending its body for this long fails (an upload: 408, S3's RequestTimeout), freeing what it held")
	fl.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

func printBanner(e *env, n *node.Node, cfg node.Config) {
	w := e.stdout
	fmt.Fprintf(w, "Nimbus is up at %s\n", n.URL())
	fmt.Fprintf(w, "  data:    %s\n", cfg.DataDir)
	if cfg.Dev {
		fmt.Fprintln(w, "  auth:    none (dev mode)")
	} else {
		fmt.Fprintf(w, "  auth:    admin token in %s (export NIMBUS_TOKEN=$(cat %s))\n",
			filepath.Join(cfg.DataDir, node.TokenFile), filepath.Join(cfg.DataDir, node.TokenFile))
	}
	fmt.Fprintf(w, "  metrics: %s/metrics\n", n.URL())
	if cfg.APIListen != "" {
		fmt.Fprintf(w, "  routes:  %s\n", n.APIURL())
	}
}

// demoFunctions are built from examples/ and deployed by `up --demo`.
var demoFunctions = []struct {
	name, pkg, about string
	table            string // the table it uses, keyed by "name", made for it
}{
	{"hello", "./examples/hello", "Go SDK function, long-lived instance", ""},
	{"echo", "./examples/echo-sdk", "Go SDK echo", ""},
	{"echo-wasi", "./examples/echo-wasi", "WASI command: stdin to stdout, fresh instance per call", ""},
	{"visits", "./examples/visits", "counts visits per name in the table visits (conditional writes)", "visits"},
}

func deployDemo(ctx context.Context, e *env, n *node.Node, dataDir string) error {
	c := api.NewClient(n.URL(), n.Token())
	dir := filepath.Join(dataDir, "demo")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	deploy := func(name string, code []byte, table string) error {
		up, err := c.PutCode(ctx, bytes.NewReader(code))
		if err != nil {
			return err
		}
		spec := function.Spec{Name: name, Runtime: function.RuntimeWasm, Code: up.Digest, MemoryMB: 64, Timeout: function.Duration(5 * time.Second)}
		if table != "" {
			if _, err := c.PutTable(ctx, &api.Table{Name: table, Key: "name"}); err != nil {
				return fmt.Errorf("table %s: %w", table, err)
			}
			spec.Uses = &function.Uses{Tables: []string{table}}
		}
		spec.Normalize()
		_, err = c.PutFunction(ctx, new(api.FunctionFromSpec(&spec)))
		return err
	}
	for _, f := range demoFunctions {
		fmt.Fprintf(e.stderr, "demo: building %s (%s)...\n", f.name, f.pkg)
		out := filepath.Join(dir, f.name+".wasm")
		if err := examples.BuildWasm(ctx, f.pkg, out); err != nil {
			return err
		}
		code, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		if err := deploy(f.name, code, f.table); err != nil {
			return fmt.Errorf("deploy %s: %w", f.name, err)
		}
	}
	if err := deploy("echo-wat", examples.EchoWAT, ""); err != nil {
		return fmt.Errorf("deploy echo-wat: %w", err)
	}
	w := e.stdout
	fmt.Fprintln(w, "\nDemo functions:")
	for _, f := range demoFunctions {
		fmt.Fprintf(w, "  %-10s %s\n", f.name, f.about)
	}
	fmt.Fprintf(w, "  %-10s %s\n", "echo-wat", "hand-written WebAssembly text, no language runtime")
	fmt.Fprintln(w, "\nTry:")
	fmt.Fprintf(w, "  curl -d '{\"name\":\"Ada\"}' %s/function/hello\n", n.URL())
	fmt.Fprintf(w, "  curl -d 'hi' %s/function/echo-wasi\n", n.URL())
	fmt.Fprintf(w, "  curl -d '{\"name\":\"Ada\"}' %s/function/visits   # again: the count grows\n", n.URL())
	// The CLI finds the node at NIMBUS_URL or its default address only.
	nimbus := "go run ./cmd/nimbus"
	if n.URL() != e.server {
		nimbus += " --server " + n.URL()
	}
	fmt.Fprintf(w, "  %s table scan visits\n", nimbus)
	fmt.Fprintf(w, "  %s invoke hello -d '{\"name\":\"Grace\"}'\n", nimbus)
	fmt.Fprintf(w, "  %s logs hello\n", nimbus)
	return nil
}
