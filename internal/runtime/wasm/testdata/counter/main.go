// Command counter counts the invocations its instance served, proving reuse;
// {"log":N} also writes N bytes of logs to stderr and one sdk.Log entry.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/nimbus-run/nimbus/sdk"
)

var count int

func main() {
	fmt.Fprintln(os.Stderr, "counter: init")
	sdk.Start(func(ctx context.Context, event json.RawMessage) (any, error) {
		var req struct{ Log int }
		_ = json.Unmarshal(event, &req)
		count++
		if req.Log > 0 {
			line := strings.Repeat("x", 99) + "\n"
			for n := 0; n < req.Log; n += len(line) {
				os.Stderr.WriteString(line)
			}
			sdk.Logf(ctx, "counter: logged for %s", sdk.InvocationID(ctx))
		}
		deadline, _ := ctx.Deadline()
		return map[string]any{
			"count":       count,
			"id":          sdk.InvocationID(ctx),
			"trace":       sdk.TraceID(ctx),
			"deadline_ms": deadline.UnixMilli(),
		}, nil
	})
}
