// Command memhog allocates {"mb":N} megabytes and keeps them, or grows
// without end when N is 0, until the memory limit stops it.
package main

import (
	"context"
	"encoding/json"

	"github.com/nimbus-run/nimbus/sdk"
)

var kept [][]byte

func main() {
	sdk.Start(func(ctx context.Context, event json.RawMessage) (any, error) {
		var req struct{ MB int }
		_ = json.Unmarshal(event, &req)
		for i := 0; req.MB == 0 || i < req.MB; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j) // touch it, so nothing is optimized away
			}
			kept = append(kept, b)
		}
		return map[string]int{"mb": len(kept)}, nil
	})
}
