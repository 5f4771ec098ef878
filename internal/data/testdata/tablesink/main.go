// Command tablesink is the table trigger tests' function: a native
// (process runtime) function that records every change it is given as an
// item of the table "seen", through the data API at $NIMBUS_API with the
// credential in $NIMBUS_DATA_TOKEN. It succeeds only once the items are
// stored, so a batch it acknowledges is recorded; duplicates show up as
// extra items (the sort key holds the invocation id).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/nimbus-run/nimbus/sdk"
)

type record struct {
	Keys        map[string]json.RawMessage `json:"keys"`
	Revision    uint64                     `json:"revision"`
	Redelivered bool                       `json:"redelivered"`
}

func main() {
	base, token := os.Getenv("NIMBUS_API"), os.Getenv("NIMBUS_DATA_TOKEN")
	sdk.Start(func(ctx context.Context, event json.RawMessage) (any, error) {
		var body struct{ Records []record }
		if err := json.Unmarshal(event, &body); err != nil {
			return nil, err
		}
		if base == "" || token == "" {
			return nil, fmt.Errorf("NIMBUS_API or NIMBUS_DATA_TOKEN is not set")
		}
		id := sdk.InvocationID(ctx)
		at := time.Now().UnixNano()
		var items []json.RawMessage
		for i, r := range body.Records {
			var k string
			json.Unmarshal(r.Keys["k"], &k)
			b, _ := json.Marshal(map[string]any{
				"pk": k, "sk": fmt.Sprintf("%020d/%s", r.Revision, id),
				"rev": r.Revision, "inv": id, "at": at, "pos": i, "redelivered": r.Redelivered,
			})
			items = append(items, b)
		}
		if len(items) == 0 {
			return "empty", nil
		}
		req, _ := json.Marshal(map[string]any{"items": items})
		hr, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/tables/seen/batch-put", bytes.NewReader(req))
		hr.Header.Set("Authorization", "Bearer "+token)
		hr.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("batch-put: %s: %s", resp.Status, out)
		}
		var res struct{ Results []struct{ Error string } }
		json.Unmarshal(out, &res)
		for _, r := range res.Results {
			if r.Error != "" {
				return nil, fmt.Errorf("batch-put: %s", r.Error)
			}
		}
		return len(items), nil
	})
}
