package node_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// TestWasmAPIEnvelopes drives nimbus.api (JSON envelope) and nimbus.api_v2
// (text envelope) with raw bytes from a guest, below the SDK: both serve
// the same data call with the function's permissions, an answer too big
// for the guest's buffer is kept for api_result, and malformed envelopes
// are 400 answers, never traps.
func TestWasmAPIEnvelopes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm module")
	}
	n := nodetest.Start(t, node.Config{})
	c := nodetest.Client(n)
	ctx := context.Background()
	if _, err := c.PutTable(ctx, &api.Table{Name: "t", Key: "id"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutItem(ctx, "t", &api.PutItemRequest{Item: json.RawMessage(`{"id":"a","v":1}`)}); err != nil {
		t.Fatal(err)
	}
	nodetest.Deploy(t, n, api.Function{Name: "raw", Runtime: "wasm", Memory: 64, Timeout: "10s",
		Uses: &api.Uses{Tables: []string{"t"}}}, testutil.BuildWasm(t, "./internal/node/testdata/rawapi"))
	call := func(t *testing.T, abi, req string, buf int) string {
		t.Helper()
		payload, _ := json.Marshal(map[string]any{"abi": abi, "req": req, "buf": buf})
		res, err := c.Invoke(ctx, "raw", payload)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Answer string `json:"answer"`
		}
		if err := json.Unmarshal(res.Payload, &out); err != nil {
			t.Fatalf("%s: answer %s (%v)", abi, res.Payload, err)
		}
		return out.Answer
	}
	get := `{"key":{"id":"a"}}`

	t.Run("v2", func(t *testing.T) {
		for _, buf := range []int{4096, 8} { // 8: kept for api_result
			a := call(t, "api_v2", "POST /api/v1/tables/t/get\nContent-Type: application/json\n\n"+get, buf)
			head, body, ok := strings.Cut(a, "\n\n")
			if !ok || !strings.HasPrefix(head, "200\n") || !strings.Contains(head, "\nContent-Type: application/json") {
				t.Fatalf("buf %d: answer %q: want status 200 and a Content-Type header", buf, a)
			}
			var e api.Entry
			if err := json.Unmarshal([]byte(body), &e); err != nil || string(e.Item) != `{"id":"a","v":1}` || e.Revision == 0 {
				t.Fatalf("buf %d: body %q (%v)", buf, body, err)
			}
		}
	})
	t.Run("v1", func(t *testing.T) {
		req, _ := json.Marshal(map[string]any{"method": "POST", "path": "/api/v1/tables/t/get",
			"header": map[string]string{"Content-Type": "application/json"}, "body": []byte(get)})
		var a struct {
			Status int               `json:"status"`
			Header map[string]string `json:"header"`
			Body   []byte            `json:"body"`
		}
		if err := json.Unmarshal([]byte(call(t, "api", string(req), 4096)), &a); err != nil {
			t.Fatal(err)
		}
		var e api.Entry
		if a.Status != 200 || json.Unmarshal(a.Body, &e) != nil || string(e.Item) != `{"id":"a","v":1}` {
			t.Fatalf("answer %+v (body %s)", a, a.Body)
		}
	})
	t.Run("Denied", func(t *testing.T) {
		a := call(t, "api_v2", "POST /api/v1/tables/other/get\n\n"+get, 4096)
		if !strings.HasPrefix(a, "403\n") || !strings.Contains(a, "AccessDenied") {
			t.Fatalf("a table outside uses: %q, want 403 AccessDenied", a)
		}
	})
	for name, req := range map[string]string{
		"no request line":  "",
		"no method":        " /api/v1/tables/t/get\n\n",
		"relative path":    "POST api/v1/tables/t/get\n\n",
		"unended headers":  "POST /api/v1/tables/t/get\nContent-Type: application/json\n",
		"bad header line":  "POST /api/v1/tables/t/get\nno colon here\n\n",
		"header with a CR": "POST /api/v1/tables/t/get\nX-A: b\r\n\n",
	} {
		t.Run("Malformed/"+name, func(t *testing.T) {
			a := call(t, "api_v2", req, 4096)
			if !strings.HasPrefix(a, "400\n") || !strings.Contains(a, "InvalidRequest") {
				t.Fatalf("answer %q, want 400 InvalidRequest", a)
			}
		})
	}
	t.Run("Malformed/v1", func(t *testing.T) {
		if a := call(t, "api", "{not json", 4096); !strings.Contains(a, `"status":400`) {
			t.Fatalf("answer %q, want status 400", a)
		}
	})
}
