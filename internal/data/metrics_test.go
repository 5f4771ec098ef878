package data_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/node"
)

// TestOperationMetrics: table and bucket operations made through the HTTP
// API show on /metrics by table or bucket, operation and result, with
// their durations and the bytes objects move; a copy counts once; names
// that do not exist share the name ""; a deleted table's series go.
func TestOperationMetrics(t *testing.T) {
	n, c := startNode(t)
	ctx := context.Background()
	if _, err := c.PutTable(ctx, &api.Table{Name: "orders", Key: "id"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.PutItem(ctx, "orders", &api.PutItemRequest{Item: raw(`{"id":"a"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.PutItem(ctx, "orders", &api.PutItemRequest{Item: raw(`{"id":"a"}`), IfAbsent: true}); !isCode(err, api.CodeConditionFailed) {
		t.Fatalf("conditional put: %v", err)
	}
	if _, err := c.GetItem(ctx, "orders", raw(`{"id":"a"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetItem(ctx, "orders", raw(`{"id":"gone"}`)); err == nil {
		t.Fatal("get of an absent item succeeded")
	}
	if _, err := c.PutItem(ctx, "orders", &api.PutItemRequest{Item: raw(`{"no_id":1}`)}); err == nil {
		t.Fatal("put without its key succeeded")
	}
	for _, name := range []string{"nosuch", "another-made-up-name"} {
		if _, err := c.GetItem(ctx, name, raw(`{"id":"a"}`)); err == nil {
			t.Fatalf("get from table %s succeeded", name)
		}
	}

	if _, err := c.PutBucket(ctx, "files"); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("x", 300_000) // two chunks
	if _, err := c.PutObject(ctx, "files", "a.bin", strings.NewReader(body), int64(len(body)), "", nil); err != nil {
		t.Fatal(err)
	}
	resp, err := c.GetObject(ctx, "files", "a.bin", "")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if _, err := c.CopyObject(ctx, "files", &api.CopyObjectRequest{SourceBucket: "files", SourceKey: "a.bin", Key: "b.bin"}); err != nil {
		t.Fatal(err)
	}

	m := scrape(t, n)
	for series, want := range map[string]float64{
		`nimbus_table_operations_total{op="put",result="ok",table="orders"}`:               2,
		`nimbus_table_operations_total{op="put",result="condition_failed",table="orders"}`: 1,
		`nimbus_table_operations_total{op="put",result="invalid",table="orders"}`:          1,
		`nimbus_table_operations_total{op="get",result="ok",table="orders"}`:               1,
		`nimbus_table_operations_total{op="get",result="not_found",table="orders"}`:        1,
		`nimbus_table_operations_total{op="get",result="not_found",table=""}`:              2,
		`nimbus_table_operation_duration_seconds_count{op="put",table="orders"}`:           4,
		`nimbus_bucket_operations_total{bucket="files",op="put",result="ok"}`:              1,
		`nimbus_bucket_operations_total{bucket="files",op="get",result="ok"}`:              1,
		`nimbus_bucket_operations_total{bucket="files",op="copy",result="ok"}`:             1,
		`nimbus_bucket_bytes_total{bucket="files",direction="in"}`:                         300_000,
		`nimbus_bucket_bytes_total{bucket="files",direction="out"}`:                        300_000,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if sum := m[`nimbus_table_operation_duration_seconds_sum{op="put",table="orders"}`]; sum <= 0 {
		t.Errorf("put durations sum to %v", sum)
	}

	if err := c.DeleteTable(ctx, "orders", true); err != nil {
		t.Fatal(err)
	}
	for series := range scrape(t, n) {
		if strings.Contains(series, `table="orders"`) {
			t.Errorf("after deleting the table: %s", series)
		}
	}
}

// scrape reads the node's /metrics into series -> value.
func scrape(t *testing.T, n *node.Node) map[string]float64 {
	t.Helper()
	resp, err := http.Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(line[i+1:]), 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
