package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nimbus-run/nimbus/internal/cli"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

func runKeys(t *testing.T, n *node.Node, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	if n != nil {
		args = append([]string{"--server", n.URL(), "--token", n.Token()}, args...)
	}
	code = cli.Run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestKeysCommands(t *testing.T) {
	n := nodetest.Start(t, node.Config{}) // with auth: the management API needs the token

	code, out, errOut := runKeys(t, n, "keys", "create", "laptop")
	if code != 0 || !strings.Contains(out, "AWS_ACCESS_KEY_ID=NMBK") || !strings.Contains(out, "AWS_SECRET_ACCESS_KEY=") || !strings.Contains(out, "shown only now") {
		t.Fatalf("keys create: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runKeys(t, n, "keys", "create", "ci", "-o", "json")
	var k struct{ ID, Kind, Name, Secret string }
	if err := json.Unmarshal([]byte(out), &k); code != 0 || err != nil || k.Kind != "aws" || k.Name != "ci" || len(k.Secret) != 40 {
		t.Fatalf("keys create -o json: exit %d, %v: %s", code, err, out)
	}

	code, out, _ = runKeys(t, n, "keys", "ls")
	if code != 0 || !strings.Contains(out, k.ID) || !strings.Contains(out, "laptop") || strings.Contains(out, k.Secret) {
		t.Errorf("keys ls: exit %d, want both keys and no secret:\n%s", code, out)
	}
	code, out, _ = runKeys(t, n, "keys", "ls", "-o", "json")
	if code != 0 || strings.Contains(out, k.Secret) || strings.Contains(out, `"secret"`) || strings.Count(out, `"id"`) != 2 {
		t.Errorf("keys ls -o json: exit %d:\n%s", code, out)
	}

	if code, out, _ = runKeys(t, n, "keys", "rm", k.ID); code != 0 || !strings.Contains(out, "revoked "+k.ID) {
		t.Errorf("keys rm: exit %d: %s", code, out)
	}
	if _, out, _ = runKeys(t, n, "keys", "ls"); strings.Contains(out, k.ID) {
		t.Errorf("revoked key still listed:\n%s", out)
	}

	// Bad input exits 2.
	for _, args := range [][]string{
		{"keys", "rm", k.ID},                       // already revoked: 404
		{"keys", "rm", "NMBKNOSUCHKEY0000000"},     // unknown
		{"keys", "create", "bad name"},             // 400 from the node
		{"keys", "create", "x", "--kind", "gcp"},   // unknown kind
		{"keys", "create", "x", "--plan", "basic"}, // plan on an aws key
		{"keys", "create"},                         // missing NAME
		{"keys"},                                   // no subcommand
		{"keys", "create", "a", "b"},               // too many args
		{"keys", "ls", "--no-such-flag"},           // bad flag
	} {
		if code, _, errOut := runKeys(t, n, args...); code != cli.ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, cli.ExitUsage, errOut)
		}
	}

	// Without the token the management API refuses (exit 2: a 401).
	var out2, errb bytes.Buffer
	if code := cli.Run(context.Background(), []string{"--server", n.URL(), "--token", "wrong", "keys", "ls"}, nil, &out2, &errb); code != cli.ExitUsage {
		t.Errorf("keys ls with a wrong token: exit %d: %s", code, errb.String())
	}
}

func TestKeysHelpHasExamples(t *testing.T) {
	for _, args := range [][]string{{"keys", "--help"}, {"keys", "create", "--help"}, {"keys", "ls", "--help"}, {"keys", "rm", "--help"}} {
		code, out, _ := runKeys(t, nil, args...)
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "nimbus keys") {
			t.Errorf("%v: exit %d, want a help text with examples:\n%s", args, code, out)
		}
	}
}
