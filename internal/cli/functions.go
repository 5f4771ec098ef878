package cli

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/manifest"
)

func newDeploy(e *env) *cobra.Command {
	var (
		file string
		f    manifest.Function
		env  []string
	)
	cmd := &cobra.Command{
		Use:   "deploy [NAME] [flags]",
		Short: "Create or update functions, from flags or from a nimbus.yaml",
		Long: `Deploy uploads code (content-addressed: unchanged code is not stored twice),
compiles it on the node, and creates or updates the function. With -f it
applies a whole manifest: every function in the file is created or updated,
and what changed is printed.`,
		Example: `  nimbus deploy hello --runtime wasm --code hello.wasm --memory 64 --timeout 2s --max 50
  nimbus deploy api --runtime process --code ./build/bootstrap --env TABLE=users
  nimbus deploy -f nimbus.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file != "" {
				if len(args) > 0 {
					return usagef("give either a NAME with flags or -f FILE, not both")
				}
				return deployManifest(cmd, e, file)
			}
			if len(args) == 0 {
				return usagef("name the function (nimbus deploy NAME --code FILE) or give -f nimbus.yaml")
			}
			if f.Code == "" {
				return usagef("--code is required: a .wasm file, an executable, a zip or a directory")
			}
			vars, err := parseEnv(env)
			if err != nil {
				return err
			}
			f.Env = vars
			m := &manifest.Manifest{Functions: map[string]*manifest.Function{args[0]: &f}}
			if err := m.Validate(); err != nil {
				return usageError{err}
			}
			return deployAll(cmd, e, m)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&file, "file", "f", "", "apply a manifest (nimbus.yaml)")
	fl.StringVar(&f.Runtime, "runtime", "", "wasm or process (default: wasm for .wasm code, else process)")
	fl.StringVar(&f.Code, "code", "", "code: a .wasm file, an executable, a zip or a directory")
	fl.StringVar(&f.Handler, "handler", "", "command line for interpreted process functions (e.g. \"python3 handler.py\")")
	fl.IntVar(&f.Memory, "memory", 0, "memory limit in MB (default 128)")
	fl.Var(durationFlag{&f.Timeout}, "timeout", "timeout per invocation (default 3s)")
	fl.IntVar(&f.Min, "min", 0, "instances kept warm at all times (provisioned concurrency)")
	fl.IntVar(&f.Max, "max", 0, "maximum concurrent invocations (default 100)")
	fl.Var(durationFlag{&f.IdleTimeout}, "idle-timeout", "reclaim instances idle this long (default 5m)")
	fl.IntVar(&f.Concurrency, "concurrency", 0, "invocations one process instance serves at once (process runtime)")
	fl.StringArrayVar(&env, "env", nil, "environment variable KEY=VALUE (repeatable)")
	return cmd
}

type durationFlag struct{ d *function.Duration }

func (f durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return f.d.String()
}
func (f durationFlag) Set(s string) error { return f.d.UnmarshalText([]byte(s)) }
func (f durationFlag) Type() string       { return "duration" }

func parseEnv(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--env %q: want KEY=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}

func deployManifest(cmd *cobra.Command, e *env, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return usagef("read manifest: %v", err)
	}
	m, err := manifest.Parse(data, filepath.Dir(file))
	if err != nil {
		return usageError{fmt.Errorf("%s: %w", file, err)}
	}
	// Tables and buckets first: functions name them in uses (data.go).
	if err := deployData(cmd.Context(), e, m); err != nil {
		return err
	}
	if err := deployAll(cmd, e, m); err != nil {
		return err
	}
	// Triggers and rules after the functions they invoke (events.go). Only
	// a manifest replaces them: a deploy by flags leaves them as they are.
	if err := deployEvents(cmd.Context(), e, m); err != nil {
		return err
	}
	// Workflows after the functions their tasks call (workflows.go).
	return deployWorkflows(cmd.Context(), e, m)
}

// deployAll uploads code and puts every function of m, reporting each.
func deployAll(cmd *cobra.Command, e *env, m *manifest.Manifest) error {
	ctx := cmd.Context()
	c := e.client()
	// Read every code file first, so a missing file fails before anything changes.
	codes := map[string][]byte{}
	for _, name := range m.Names() {
		path := m.CodePath(name)
		b, err := readCode(path)
		if err != nil {
			return usagef("functions.%s.code: %v", name, err)
		}
		codes[name] = b
	}
	apiCfg, err := manifestAPI(m) // routes & co. (apikeys.go), read up front too
	if err != nil {
		return err
	}
	var results []api.PutFunctionResult
	for _, name := range m.Names() {
		if !e.json() {
			fmt.Fprintf(e.stderr, "deploying %s (%s of code)...\n", name, humanBytes(len(codes[name])))
		}
		up, err := c.PutCode(ctx, bytes.NewReader(codes[name]))
		if err != nil {
			return fmt.Errorf("%s: upload code: %w", name, err)
		}
		spec := m.Functions[name].Spec(name, up.Digest)
		res, err := c.PutFunction(ctx, new(api.FunctionFromSpec(&spec)))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, *res)
		if !e.json() {
			fmt.Fprintf(e.stdout, "%-9s %s (%s, %d MB, timeout %s, max %d)\n", res.Change, name, res.Function.Runtime, res.Function.Memory, res.Function.Timeout, res.Function.Max)
		}
	}
	// Routes last: they refer to the functions just deployed.
	if err := deployAPI(ctx, e, apiCfg); err != nil {
		return err
	}
	if e.json() {
		return e.printJSON(results)
	}
	return nil
}

// readCode reads a code file, or zips a directory (process functions).
func readCode(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return os.ReadFile(path)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(path, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil // symlinks and devices are not part of code
		}
		hdr, err := zip.FileInfoHeader(info)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		hdr.Method = zip.Deflate
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func humanBytes(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func newInvoke(e *env) *cobra.Command {
	var data, qualifier string
	var async asyncFlags
	cmd := &cobra.Command{
		Use:   "invoke NAME [-d DATA | -d @FILE | -d -]",
		Short: "Invoke a function and print its result",
		Example: `  nimbus invoke hello -d '{"name":"Ada"}'
  nimbus invoke hello --qualifier live -d '{"name":"Ada"}'
  nimbus invoke resize -d @event.json
  echo '{}' | nimbus invoke hello -d -
  nimbus invoke resize --async -d @event.json     # 202: prints the invocation id
  nimbus invoke resize --async --wait -d '{}'     # and waits for the outcome`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			payload, err := readData(e, data)
			if err != nil {
				return err
			}
			if async.async {
				return invokeAsync(cmd, e, args[0], qualifier, payload, async)
			}
			res, err := e.client().InvokeQualified(cmd.Context(), args[0], qualifier, payload)
			if err != nil {
				return err
			}
			if e.json() {
				var result any = string(res.Payload)
				var v any
				if json.Unmarshal(res.Payload, &v) == nil {
					result = v
				}
				return e.printJSON(map[string]any{"invocation_id": res.InvocationID, "version": res.Version, "cold_start": res.ColdStart, "duration_ms": res.DurationMS, "result": result})
			}
			e.stdout.Write(res.Payload)
			if len(res.Payload) > 0 && res.Payload[len(res.Payload)-1] != '\n' {
				fmt.Fprintln(e.stdout)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&data, "data", "d", "", "event payload: JSON text, @FILE, or - for stdin")
	cmd.Flags().StringVarP(&qualifier, "qualifier", "q", "", "version or alias to invoke (default $LATEST)")
	async.flags(cmd)
	return cmd
}

func readData(e *env, data string) ([]byte, error) {
	switch {
	case data == "-":
		return io.ReadAll(e.stdin)
	case strings.HasPrefix(data, "@"):
		b, err := os.ReadFile(data[1:])
		if err != nil {
			return nil, usagef("-d %s: %v", data, err)
		}
		return b, nil
	}
	return []byte(data), nil
}

func newList(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List functions",
		Example: "  nimbus ls\n  nimbus ls -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fns, err := e.client().ListFunctions(cmd.Context())
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(fns)
			}
			if len(fns) == 0 {
				fmt.Fprintln(e.stdout, "No functions yet. Deploy one: nimbus deploy NAME --code FILE")
				return nil
			}
			tw := e.table()
			fmt.Fprintln(tw, "NAME\tRUNTIME\tMEMORY\tTIMEOUT\tMIN\tMAX\tCODE\tUPDATED")
			for _, f := range fns {
				fmt.Fprintf(tw, "%s\t%s\t%d MB\t%s\t%d\t%d\t%s\t%s\n", f.Name, f.Runtime, f.Memory, f.Timeout, f.Min, f.Max, shortDigest(f.Code), ago(f.Updated))
			}
			return tw.Flush()
		},
	}
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Format("2006-01-02")
}

func newGet(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "get NAME",
		Short:   "Show one function and its instances",
		Example: "  nimbus get hello\n  nimbus get hello -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := e.client().GetFunction(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(f)
			}
			tw := e.table()
			row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
			row("Name", f.Name)
			row("Runtime", f.Runtime)
			row("Code", f.Code)
			if f.Handler != "" {
				row("Handler", f.Handler)
			}
			row("Memory", fmt.Sprintf("%d MB", f.Memory))
			row("Timeout", f.Timeout)
			row("Min / Max", fmt.Sprintf("%d / %d", f.Min, f.Max))
			row("Idle timeout", f.IdleTimeout)
			if len(f.Env) > 0 {
				keys := make([]string, 0, len(f.Env))
				for k := range f.Env {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				row("Env", strings.Join(keys, ", "))
			}
			if f.Instances != nil {
				row("Instances", fmt.Sprintf("%d (%d idle, %d busy invocations, %d starting)", f.Instances.Instances, f.Instances.Idle, f.Instances.Inflight, f.Instances.Starting))
			}
			row("Created", f.Created.Local().Format(time.RFC3339))
			row("Updated", f.Updated.Local().Format(time.RFC3339))
			return tw.Flush()
		},
	}
}

func newRemove(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"delete"},
		Short:   "Delete functions",
		Example: "  nimbus rm hello\n  nimbus rm hello echo",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, name := range args {
				if err := e.client().DeleteFunction(cmd.Context(), name); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if !e.json() {
					fmt.Fprintf(e.stdout, "deleted %s\n", name)
				}
			}
			if e.json() {
				return e.printJSON(map[string]any{"deleted": args})
			}
			return nil
		},
	}
}

func newLogs(e *env) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Show recent invocation records with their logs, newest first",
		Example: `  nimbus logs hello
  nimbus logs hello -n 100 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > 1000 {
				return usagef("-n must be from 1 to 1000")
			}
			recs, err := e.client().Records(cmd.Context(), args[0], limit)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(recs)
			}
			if len(recs) == 0 {
				fmt.Fprintf(e.stdout, "No invocations of %s recorded yet.\n", args[0])
				return nil
			}
			for _, r := range recs {
				cold := ""
				if r.ColdStart {
					cold = fmt.Sprintf(" cold start (init %.2f ms)", r.InitMS)
				}
				fmt.Fprintf(e.stdout, "%s  %s  %-9s %s  %.2f ms (billed %d ms, queued %.2f ms)  mem %.1f/%d MB%s\n",
					r.Started.Local().Format("2006-01-02 15:04:05.000"), r.ID, r.Status, r.Source, r.DurationMS, r.BilledMS, r.QueueMS, r.MaxMemoryMB, r.MemoryMB, cold)
				if r.Error != "" {
					fmt.Fprintf(e.stdout, "    error: %s\n", r.Error)
				}
				for _, line := range strings.Split(strings.TrimRight(r.Logs, "\n"), "\n") {
					if line != "" {
						fmt.Fprintf(e.stdout, "    | %s\n", line)
					}
				}
				if r.LogsTrunc {
					fmt.Fprintln(e.stdout, "    | (logs truncated)")
				}
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&limit, "limit", "n", 20, "how many records")
	return cmd
}
