// Package cli implements the nimbus command line. Commands other than `up`
// talk to a node only through the HTTP API (package api); `up` runs one.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/node"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1 // the operation failed (function error, node unreachable)
	ExitUsage = 2 // the input was wrong (bad flags, manifest, spec, name)
	// ExitConditionFailed: a conditional write's condition did not hold
	// (--if-absent, --if-revision, --if-match) and nothing changed, so that a script
	// can tell "someone got there first" from a typing error.
	ExitConditionFailed = 3
)

// usageError marks errors caused by what the user typed.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// env is what commands share.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	server, token  string
	output         string
}

func (e *env) json() bool { return e.output == "json" }

func (e *env) client() *api.Client {
	return api.NewClient(e.server, e.token)
}

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (e *env) table() *tabwriter.Writer { return tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0) }

// DefaultDataDir is where `nimbus up` keeps state unless told otherwise.
func DefaultDataDir() string {
	if d := os.Getenv("NIMBUS_DATA"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".nimbus"
	}
	return filepath.Join(home, ".nimbus")
}

// Run runs the CLI with args and returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "Error:", err)
	var ue usageError
	var ae *api.Error
	switch {
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &ae) && (ae.Code == api.CodeConditionFailed || ae.Code == api.CodePreconditionFailed):
		return ExitConditionFailed
	case errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusTooManyRequests:
		return ExitUsage
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "unknown flag"),
		strings.Contains(err.Error(), "flag needs an argument"), strings.Contains(err.Error(), "invalid argument"),
		strings.Contains(err.Error(), "accepts "), strings.Contains(err.Error(), "requires at least"):
		return ExitUsage
	}
	return ExitError
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "nimbus",
		Short: "Nimbus: a self-hosted serverless platform in one binary",
		Long: `Nimbus runs functions (WebAssembly or Lambda-compatible processes) behind an
HTTP gateway, on an embedded NATS JetStream. Start a node with "nimbus up";
the other commands talk to a running node (NIMBUS_URL, NIMBUS_TOKEN).

Exit codes: 0 done; 1 the operation failed (a function error, the node
unreachable); 2 the input was wrong (flags, manifest, names, a key or
function that does not exist); 3 a conditional write's condition did not
hold (--if-absent, --if-revision), nothing changed.`,
		Example: `  nimbus up --demo
  nimbus deploy hello --runtime wasm --code hello.wasm --memory 64 --timeout 2s
  nimbus invoke hello -d '{"name":"Ada"}'`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if e.output != "text" && e.output != "json" {
				return usagef("--output must be text or json, not %q", e.output)
			}
			if e.token == "" {
				// Convenience for the local node: read the token it wrote.
				if b, err := os.ReadFile(filepath.Join(DefaultDataDir(), node.TokenFile)); err == nil {
					e.token = strings.TrimSpace(string(b))
				}
			}
			return nil
		},
	}
	server := os.Getenv("NIMBUS_URL")
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	root.PersistentFlags().StringVar(&e.server, "server", server, "URL of the Nimbus node (env NIMBUS_URL)")
	root.PersistentFlags().StringVar(&e.token, "token", os.Getenv("NIMBUS_TOKEN"), "management API token (env NIMBUS_TOKEN; default: the local node's admin.token)")
	root.PersistentFlags().StringVarP(&e.output, "output", "o", "text", "output format: text or json")
	root.AddCommand(newUp(e), newDeploy(e), newInvoke(e), newList(e), newGet(e), newRemove(e), newLogs(e),
		newRoutes(e), newAPIKeys(e),
		newPublish(e), newVersions(e), newAlias(e), newKeys(e))
	root.AddCommand(eventCommands(e)...)
	root.AddCommand(newWorkflows(e))
	root.AddCommand(newTable(e), newObj(e)) // data.go
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	return root
}

// pause waits for d, or until ctx ends; it reports whether ctx is still
// live.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
