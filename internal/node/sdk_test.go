package node_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// sdkData is the fixture exercising the SDK's function-side calls.
const sdkData = "./internal/node/testdata/sdkdata"

// buildNative builds a main package of this module for this machine.
func buildNative(t *testing.T, pkg string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSDKFunctionSide runs the same SDK source as a wasm and as a process
// function on a real node: the HTTP request, tables, a bucket, a denied
// table, and publishing an event that a rule delivers.
func TestSDKFunctionSide(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm module and a native binary")
	}
	n := nodetest.Start(t, node.Config{})
	c := nodetest.Client(n)
	ctx := context.Background()
	for _, tbl := range []*api.Table{{Name: "items", Key: "pk", Sort: "sk"}, {Name: "secret", Key: "pk", Sort: "sk"}} {
		if _, err := c.PutTable(ctx, tbl); err != nil {
			t.Fatalf("create table %s: %v", tbl.Name, err)
		}
	}
	if _, err := c.PutBucket(ctx, "files"); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	uses := &api.Uses{Tables: []string{"items"}, Buckets: []string{"files"}}
	wasmCode := testutil.BuildWasm(t, sdkData)
	nativeCode := buildNative(t, sdkData)
	nodetest.Deploy(t, n, api.Function{Name: "sdkw", Runtime: "wasm", Memory: 64, Timeout: "10s", Uses: uses}, wasmCode)
	nodetest.Deploy(t, n, api.Function{Name: "sdkn", Runtime: "process", Memory: 64, Timeout: "10s", Uses: uses}, nativeCode)
	nodetest.Deploy(t, n, api.Function{Name: "sink", Runtime: "wasm", Memory: 64, Timeout: "10s", Uses: uses}, wasmCode)
	if _, err := c.PutRule(ctx, "orders", &api.Rule{Pattern: api.JSON(`{"type":["order.created"]}`), Targets: []api.RuleTarget{{Function: "sink"}}}); err != nil {
		t.Fatalf("put rule: %v", err)
	}

	call := func(t *testing.T, fn, path, body string, hdr map[string]string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, n.URL()+"/function/"+fn+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s%s: status %d: %s", fn, path, resp.StatusCode, b)
		}
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s%s: %v: %s", fn, path, err, b)
		}
		return out
	}

	for _, fn := range []string{"sdkw", "sdkn"} {
		t.Run(fn, func(t *testing.T) {
			t.Run("HTTPRequest", func(t *testing.T) {
				got := call(t, fn, "/a/b?x=1", `{"op":"http"}`, map[string]string{"X-Test": "yes"})
				if got["Method"] != "POST" || got["Path"] != "/a/b" || got["Query"] != "x=1" {
					t.Errorf("got %v, want POST /a/b x=1", got)
				}
				h, _ := got["Header"].(map[string]any)
				if v, _ := h["X-Test"].([]any); len(v) != 1 || v[0] != "yes" {
					t.Errorf("header X-Test = %v, want [yes] (headers %v)", h["X-Test"], h)
				}
			})
			t.Run("NoHTTP", func(t *testing.T) {
				res, err := c.Invoke(ctx, fn, []byte(`{"op":"http"}`))
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.TrimSpace(string(res.Payload)); got != "null" {
					t.Errorf("HTTPRequest of a non-HTTP invocation = %s, want null", got)
				}
			})
			t.Run("Table", func(t *testing.T) {
				got := call(t, fn, "", `{"op":"table"}`, nil)
				if got["get"] != "val-a2" || got["cond_failed"] != true || got["missing_is_nf"] != true {
					t.Errorf("got %v", got)
				}
				first, _ := got["first"].([]any)
				second, _ := got["second"].([]any)
				if len(first) != 1 || len(second) != 1 || !strings.Contains(toJSON(first), `"a1"`) || !strings.Contains(toJSON(second), `"a2"`) {
					t.Errorf("pages = %v then %v, want a1 then a2", first, second)
				}
			})
			t.Run("Bucket", func(t *testing.T) {
				got := call(t, fn, "", `{"op":"bucket"}`, nil)
				if got["body"] != "hello, bucket" || got["type"] != "text/plain" || got["owner"] != "me" || got["head_size"] != float64(13) || got["listed"] != float64(1) || got["big_ok"] != true {
					t.Errorf("got %v", got)
				}
			})
			t.Run("Denied", func(t *testing.T) {
				got := call(t, fn, "", `{"op":"denied"}`, nil)
				msg, _ := got["error"].(string)
				if got["denied"] != true || !strings.Contains(msg, "secret") || !strings.Contains(msg, "uses.tables") {
					t.Errorf("got %v, want AccessDenied naming table secret", got)
				}
			})
			t.Run("Publish", func(t *testing.T) {
				call(t, fn, "", `{"op":"publish"}`, nil)
				nodetest.Eventually(t, 10*time.Second, "the rule's target to record the event", func() bool {
					p, err := c.Query(ctx, "items", &api.QueryRequest{Partition: json.RawMessage(`"evt"`)})
					if err != nil {
						return false
					}
					for _, e := range p.Items {
						if strings.Contains(string(e.Item), `"source":"/functions/`+fn+`"`) && strings.Contains(string(e.Item), `"order.created"`) {
							return true
						}
					}
					return false
				})
			})
		})
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
