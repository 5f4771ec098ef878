package cli

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nimbus-run/nimbus/api"
)

func newPublish(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "publish NAME",
		Short: "Freeze a function's $LATEST into a new immutable version",
		Long: `Publish freezes the function's current code and configuration ($LATEST) into
version 1, 2, ... A version never changes; aliases point at versions. When
nothing changed since the newest version, that version is returned.`,
		Example: `  nimbus publish hello
  nimbus invoke hello --qualifier 1 -d '{}'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := e.client().Publish(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(res)
			}
			if res.Created {
				fmt.Fprintf(e.stdout, "published %s version %s\n", args[0], res.Function.Version)
			} else {
				fmt.Fprintf(e.stdout, "%s is unchanged since version %s\n", args[0], res.Function.Version)
			}
			return nil
		},
	}
}

func newVersions(e *env) *cobra.Command {
	var del string
	cmd := &cobra.Command{
		Use:   "versions NAME",
		Short: "List a function's published versions (or delete one)",
		Example: `  nimbus versions hello
  nimbus versions hello --delete 1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := e.client()
			if del != "" {
				if err := c.DeleteVersion(cmd.Context(), args[0], del); err != nil {
					return err
				}
				if !e.json() {
					fmt.Fprintf(e.stdout, "deleted %s version %s\n", args[0], del)
					return nil
				}
				return e.printJSON(map[string]string{"deleted": del})
			}
			vs, err := c.Versions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(vs)
			}
			if len(vs) == 0 {
				fmt.Fprintf(e.stdout, "%s has no published versions: nimbus publish %s\n", args[0], args[0])
				return nil
			}
			tw := e.table()
			fmt.Fprintln(tw, "VERSION\tRUNTIME\tMEMORY\tTIMEOUT\tCODE\tPUBLISHED")
			for _, v := range vs {
				fmt.Fprintf(tw, "%s\t%s\t%d MB\t%s\t%s\t%s\n", v.Version, v.Runtime, v.Memory, v.Timeout, shortDigest(v.Code), ago(v.Created))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&del, "delete", "", "delete this version (refused while an alias uses it)")
	return cmd
}

func newAlias(e *env) *cobra.Command {
	var (
		version string
		weights []string
		remove  bool
	)
	cmd := &cobra.Command{
		Use:   "alias NAME [ALIAS] [--version N] [--weight N=W]",
		Short: "Point an alias at a version, optionally splitting traffic; list or remove aliases",
		Long: `An alias is a stable name for a version ("live", "beta"). Callers invoke
NAME:ALIAS; moving the alias moves them. --weight sends a share of calls to a
second version (a canary).`,
		Example: `  nimbus alias hello live --version 3
  nimbus alias hello live --version 3 --weight 4=0.1   # 10% of calls run version 4
  nimbus alias hello                                   # list
  nimbus alias hello live --rm`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := e.client()
			ctx := cmd.Context()
			if len(args) == 1 {
				as, err := c.Aliases(ctx, args[0])
				if err != nil {
					return err
				}
				if e.json() {
					return e.printJSON(as)
				}
				if len(as) == 0 {
					fmt.Fprintf(e.stdout, "%s has no aliases\n", args[0])
					return nil
				}
				tw := e.table()
				fmt.Fprintln(tw, "ALIAS\tVERSION\tROUTING\tUPDATED")
				for _, a := range as {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Name, a.Version, routing(a), ago(a.Updated))
				}
				return tw.Flush()
			}
			if remove {
				if err := c.DeleteAlias(ctx, args[0], args[1]); err != nil {
					return err
				}
				if !e.json() {
					fmt.Fprintf(e.stdout, "deleted alias %s of %s\n", args[1], args[0])
				}
				return nil
			}
			if version == "" {
				return usagef("--version is required to set an alias (or --rm to remove it)")
			}
			w := map[string]float64{}
			for _, kv := range weights {
				k, v, ok := strings.Cut(kv, "=")
				f, err := strconv.ParseFloat(v, 64)
				if !ok || err != nil {
					return usagef("--weight %q: want VERSION=SHARE, e.g. 4=0.1", kv)
				}
				w[k] = f
			}
			res, err := c.PutAlias(ctx, args[0], &api.Alias{Name: args[1], Version: version, Weights: w})
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(res)
			}
			fmt.Fprintf(e.stdout, "%s alias %s -> %s\n", res.Change, args[1], routing(res.Alias))
			return nil
		},
	}
	cmd.Flags().StringVar(&version, "version", "", "version the alias points at")
	cmd.Flags().StringArrayVar(&weights, "weight", nil, "VERSION=SHARE: send this share of calls to another version")
	cmd.Flags().BoolVar(&remove, "rm", false, "remove the alias")
	return cmd
}

func routing(a api.Alias) string {
	if len(a.Weights) == 0 {
		return "version " + a.Version
	}
	rest := 1.0
	var parts []string
	for v, w := range a.Weights {
		rest -= w
		parts = append(parts, fmt.Sprintf("%s: %.0f%%", v, w*100))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%s: %.0f%%, %s", a.Version, rest*100, strings.Join(parts, ", "))
}
