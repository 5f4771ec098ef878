package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nimbus-run/nimbus/api"
)

func newKeys(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage keys: AWS access keys (SigV4) and API keys for routes",
		Long: `Two kinds of keys, both shown once when created and shared by every node:

  aws  Access keys let AWS SDKs and the AWS CLI call a node's AWS-compatible
       APIs (Lambda Invoke, S3, Step Functions) with Signature Version 4. The
       node must store the secret in a form it can read back (SigV4 signs with
       the secret itself), so whoever can read the node's NATS JetStream can
       read them: treat that access like the admin token.
  api  API keys let clients call routes whose auth is api_key (X-Api-Key
       header). The node keeps only a SHA-256 hash. Bind one to a usage plan
       (usage_plans in nimbus.yaml) for a rate limit and a daily quota.`,
		Example: `  nimbus keys create ci-deployer
  nimbus keys create mobile-app --kind api --plan basic
  nimbus keys ls
  nimbus keys rm NMBKQ2X7J4L5M6N7P8R9`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("name a subcommand: create, ls or rm (nimbus keys --help)")
		},
	}
	cmd.AddCommand(newKeysCreate(e), newKeysList(e), newKeysRemove(e))
	return cmd
}

func newKeysCreate(e *env) *cobra.Command {
	var kind, plan string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an access key and print its secret (shown only this once)",
		Example: `  nimbus keys create ci-deployer
  nimbus keys create laptop -o json > key.json
  nimbus keys create mobile-app --kind api --plan basic
  export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
  aws lambda invoke --endpoint-url http://127.0.0.1:8080 --function-name hello \
    --payload '{"name":"Ada"}' --cli-binary-format raw-in-base64-out out.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch kind {
			case api.KeyKindAWS:
				if plan != "" {
					return usagef("--plan applies to --kind api keys only")
				}
			case "api":
				return createAPIKey(cmd, e, args[0], plan)
			default:
				return usagef("--kind %q: use aws (access keys) or api (route API keys)", kind)
			}
			k, err := e.client().CreateKey(cmd.Context(), args[0], kind)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(k)
			}
			w := e.stdout
			fmt.Fprintf(w, "Created access key %q. The secret is shown only now: keep it safe.\n\n", k.Name)
			fmt.Fprintf(w, "  AWS_ACCESS_KEY_ID=%s\n", k.ID)
			fmt.Fprintf(w, "  AWS_SECRET_ACCESS_KEY=%s\n\n", k.Secret)
			fmt.Fprintln(w, "Use it with the AWS CLI or an AWS SDK pointed at this node:")
			fmt.Fprintf(w, "  export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_REGION=us-east-1\n", k.ID, shellQuote(k.Secret))
			fmt.Fprintf(w, "  aws lambda invoke --endpoint-url %s --function-name NAME --payload '{}' --cli-binary-format raw-in-base64-out out.json\n", e.server)
			return nil
		},
	}
	cmd.Flags().StringVar(&kind, "kind", api.KeyKindAWS, "kind of key: aws (SigV4 access key) or api (route API key)")
	cmd.Flags().StringVar(&plan, "plan", "", "usage plan that limits an api key")
	return cmd
}

func newKeysList(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List access keys (never their secrets)",
		Example: `  nimbus keys ls
  nimbus keys ls -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ks, err := e.client().ListKeys(cmd.Context())
			if err != nil {
				return err
			}
			aks, err := e.client().APIKeys(cmd.Context())
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(map[string]any{"access_keys": ks, "api_keys": aks})
			}
			if len(ks)+len(aks) == 0 {
				fmt.Fprintln(e.stdout, "no keys: create one with nimbus keys create NAME [--kind api]")
				return nil
			}
			tw := e.table()
			fmt.Fprintln(tw, "ID\tKIND\tNAME\tPLAN\tSTATUS\tCREATED")
			for _, k := range ks {
				fmt.Fprintf(tw, "%s\t%s\t%s\t-\tactive\t%s\n", k.ID, k.Kind, k.Name, ago(k.Created))
			}
			for _, k := range aks {
				status := "active"
				if k.Revoked {
					status = "revoked"
				}
				fmt.Fprintf(tw, "%s\tapi\t%s\t%s\t%s\t%s\n", k.ID, dash(k.Name), dash(k.Plan), status, ago(k.Created))
			}
			return tw.Flush()
		},
	}
}

func newKeysRemove(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "rm ID",
		Aliases: []string{"revoke"},
		Short:   "Revoke a key (either kind): requests with it are refused from now on",
		Example: `  nimbus keys rm NMBKQ2X7J4L5M6N7P8R9`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := e.client().RevokeKey(cmd.Context(), args[0])
			var ae *api.Error
			if errors.As(err, &ae) && ae.Status == 404 {
				// Not an access key: an API key, then.
				err = e.client().RevokeAPIKey(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(map[string]string{"revoked": args[0]})
			}
			fmt.Fprintf(e.stdout, "revoked %s\n", args[0])
			return nil
		},
	}
}

// shellQuote quotes s for a POSIX shell when it needs it (secrets may hold
// '/' and '+', which are safe, but stay careful).
func shellQuote(s string) string {
	if strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+=-_.") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
