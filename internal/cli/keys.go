package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nimbus-run/nimbus/api"
)

func newKeys(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage access keys for AWS SDKs and the AWS CLI (SigV4)",
		Long: `Access keys let AWS SDKs and the AWS CLI call a node's AWS-compatible APIs
(the Lambda Invoke API) with Signature Version 4, as they would call AWS.
A key is an access key id and a secret access key; the secret is printed once,
when the key is created. Keys are shared by every node of a cluster.

The node must store secrets in a form it can read back (SigV4 signs with the
secret itself), so whoever can read the node's NATS JetStream can read them:
treat that access like the admin token.`,
		Example: `  nimbus keys create ci-deployer
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
	var kind string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an access key and print its secret (shown only this once)",
		Example: `  nimbus keys create ci-deployer
  nimbus keys create laptop -o json > key.json
  export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
  aws lambda invoke --endpoint-url http://127.0.0.1:8080 --function-name hello \
    --payload '{"name":"Ada"}' --cli-binary-format raw-in-base64-out out.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch kind {
			case api.KeyKindAWS:
			case "api":
				return usagef("--kind api: API gateway API keys are managed with nimbus apikeys")
			default:
				return usagef("--kind %q: only %q access keys exist (API gateway keys: nimbus apikeys)", kind, api.KeyKindAWS)
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
	cmd.Flags().StringVar(&kind, "kind", api.KeyKindAWS, "kind of key: aws (API gateway API keys are made with nimbus apikeys)")
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
			if e.json() {
				return e.printJSON(ks)
			}
			if len(ks) == 0 {
				fmt.Fprintln(e.stdout, "no access keys: create one with nimbus keys create NAME")
				return nil
			}
			tw := e.table()
			fmt.Fprintln(tw, "ID\tKIND\tNAME\tCREATED")
			for _, k := range ks {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Kind, k.Name, ago(k.Created))
			}
			return tw.Flush()
		},
	}
}

func newKeysRemove(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "rm ID",
		Aliases: []string{"revoke"},
		Short:   "Revoke an access key: requests signed with it are refused from now on",
		Example: `  nimbus keys rm NMBKQ2X7J4L5M6N7P8R9`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := e.client().RevokeKey(cmd.Context(), args[0]); err != nil {
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
