package cli

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/manifest"
)

// This file holds the API gateway's commands: `nimbus routes` and
// `nimbus apikeys`, and the deploy step that applies a manifest's routes.

func newRoutes(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "routes",
		Short: "List the API gateway's routes",
		Long: `Routes lists the user routes in force, as declared (deploy them with the
routes, auth, cors and usage_plans keys of a nimbus.yaml and nimbus deploy -f).
Matching does not depend on the order: static segments beat {params}, which
beat {greedy+} tails, an exact method beats ANY, host-bound routes beat
hostless ones (see docs/gateway.md).`,
		Example: "  nimbus routes\n  nimbus routes -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rl, err := e.client().Routes(cmd.Context())
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(rl)
			}
			if len(rl.Routes) == 0 {
				fmt.Fprintln(e.stdout, "No routes yet. Declare them under routes: in nimbus.yaml and run nimbus deploy -f nimbus.yaml")
				return nil
			}
			tw := e.table()
			fmt.Fprintln(tw, "ROUTE\tHOST\tFUNCTION\tFORMAT\tAUTH\tRATE\tCORS\tTIMEOUT")
			for _, r := range rl.Routes {
				host, auth, rate, cors := r.Host, r.Auth, "-", "-"
				if host == "" {
					host = "*"
				}
				if r.Auth != api.AuthNone {
					auth = r.Auth + " (" + r.AuthType + ")"
				}
				if r.Rate != nil {
					rate = fmt.Sprintf("%g/s burst %d", r.Rate.RPS, r.Rate.Burst)
				}
				if r.CORS {
					cors = "yes"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Route, host, r.Function, r.Format, auth, rate, cors, r.Timeout)
			}
			return tw.Flush()
		},
	}
}

func newAPIKeys(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "apikeys",
		Hidden: true, // nimbus keys --kind api is the documented form
		Short:  "Manage API keys for routes with api_key auth (same as nimbus keys --kind api)",
		Long: `API keys let clients call routes whose auth is an api_key authorizer, in the
X-Api-Key header (or as a bearer token). A key is shown once, when created:
the node keeps only its SHA-256 hash. Bind a key to a usage plan (declared
under usage_plans in nimbus.yaml) to give it a rate limit and a daily quota.`,
		Example: `  nimbus apikeys create --name mobile-app --plan basic
  nimbus apikeys ls
  nimbus apikeys rm 3f9c0d2a41b7e655`,
	}
	var name, plan string
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create an API key and print it (once)",
		Example: "  nimbus apikeys create --name mobile-app --plan basic",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return createAPIKey(cmd, e, name, plan)
		},
	}
	create.Flags().StringVar(&name, "name", "", "a name to recognize the key by")
	create.Flags().StringVar(&plan, "plan", "", "usage plan that limits the key")
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List API keys (never the keys themselves)",
		Example: "  nimbus apikeys ls -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, err := e.client().APIKeys(cmd.Context())
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(keys)
			}
			if len(keys) == 0 {
				fmt.Fprintln(e.stdout, "No API keys yet. Create one: nimbus apikeys create --name NAME")
				return nil
			}
			tw := e.table()
			fmt.Fprintln(tw, "ID\tNAME\tPLAN\tSTATUS\tCREATED")
			for _, k := range keys {
				status := "active"
				if k.Revoked {
					status = "revoked"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, dash(k.Name), dash(k.Plan), status, ago(k.Created))
			}
			return tw.Flush()
		},
	}
	rm := &cobra.Command{
		Use:     "rm ID...",
		Aliases: []string{"revoke"},
		Short:   "Revoke API keys: requests with them get 401 from then on",
		Example: "  nimbus apikeys rm 3f9c0d2a41b7e655",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, id := range args {
				if err := e.client().RevokeAPIKey(cmd.Context(), id); err != nil {
					return fmt.Errorf("%s: %w", id, err)
				}
				if !e.json() {
					fmt.Fprintf(e.stdout, "revoked %s\n", id)
				}
			}
			if e.json() {
				return e.printJSON(map[string]any{"revoked": args})
			}
			return nil
		},
	}
	cmd.AddCommand(create, ls, rm)
	return cmd
}

// createAPIKey creates a route API key (nimbus keys create --kind api).
func createAPIKey(cmd *cobra.Command, e *env, name, plan string) error {
	res, err := e.client().CreateAPIKey(cmd.Context(), &api.CreateAPIKeyRequest{Name: name, Plan: plan})
	if err != nil {
		return err
	}
	if e.json() {
		return e.printJSON(res)
	}
	fmt.Fprintln(e.stdout, res.Key)
	fmt.Fprintf(e.stderr, "Created API key %s. Store it now: it cannot be shown again.\n", res.APIKey.ID)
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// manifestAPI builds the API config m declares, reading JWKS files and
// secret environment variables; nil when m declares none (the node's is
// then left as it is). Deploy calls it before changing anything, so a
// missing file fails the deploy up front.
func manifestAPI(m *manifest.Manifest) (*api.APIConfig, error) {
	if !m.HasAPI() {
		return nil, nil
	}
	cfg, err := m.APIConfig(os.ReadFile, os.Getenv)
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

// deployAPI applies cfg (from manifestAPI) after the functions are deployed,
// so that routes can refer to them.
func deployAPI(ctx context.Context, e *env, cfg *api.APIConfig) error {
	if cfg == nil {
		return nil
	}
	res, err := e.client().PutAPI(ctx, cfg)
	if err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	if !e.json() {
		var parts []string
		for _, n := range []struct {
			n    int
			what string
		}{{len(res.Config.Routes), "routes"}, {len(res.Config.Auth), "authorizers"}, {len(res.Config.UsagePlans), "usage plans"}} {
			parts = append(parts, fmt.Sprintf("%d %s", n.n, n.what))
		}
		fmt.Fprintf(e.stdout, "%-9s api (%s)\n", res.Change, strings.Join(parts, ", "))
	}
	return nil
}

// parsePrefix reads --trusted-proxy: a CIDR, or one address.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
