// Command sdkdata is a test function exercising the SDK's function-side
// calls (HTTPRequest, tables, buckets, Publish); the same source is built
// for wasm and as a native process. The event names the operation.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nimbus-run/nimbus/sdk"
)

type event struct {
	Op string `json:"op"`
	// A CloudEvent delivered by a rule (the sink role).
	SpecVersion string `json:"specversion"`
	ID          string `json:"id"`
	Type        string `json:"type"`
	Source      string `json:"source"`
}

func main() {
	sdk.Start(handle)
}

func handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var ev event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, err
	}
	if ev.SpecVersion != "" {
		// A rule delivered an event: record where it came from.
		_, err := sdk.Table("items").Put(ctx, map[string]any{"pk": "evt", "sk": ev.ID, "type": ev.Type, "source": ev.Source})
		return nil, err
	}
	switch ev.Op {
	case "http":
		return sdk.HTTPRequest(ctx), nil
	case "table":
		return tables(ctx)
	case "bucket":
		return bucket(ctx)
	case "denied":
		_, err := sdk.Table("secret").Get(ctx, map[string]string{"pk": "x", "sk": "y"})
		return map[string]any{"error": fmt.Sprint(err), "denied": errors.Is(err, sdk.ErrAccessDenied)}, nil
	case "publish":
		return nil, sdk.Publish(ctx, "", "order.created", map[string]int{"n": 1})
	}
	return nil, &sdk.Error{Type: "BadOp", Message: "unknown op " + ev.Op}
}

func tables(ctx context.Context) (any, error) {
	t := sdk.Table("items")
	for _, sk := range []string{"a1", "a2", "b1"} {
		if _, err := t.Put(ctx, map[string]string{"pk": "p", "sk": sk, "v": "val-" + sk}); err != nil {
			return nil, err
		}
	}
	_, condErr := t.Put(ctx, map[string]string{"pk": "p", "sk": "a1"}, sdk.IfAbsent())
	it, err := t.Get(ctx, map[string]string{"pk": "p", "sk": "a2"})
	if err != nil {
		return nil, err
	}
	var got map[string]string
	if err := it.Decode(&got); err != nil {
		return nil, err
	}
	page, err := t.Query(ctx, sdk.Query{Partition: "p", Where: `begins_with "a"`, Limit: 1})
	if err != nil {
		return nil, err
	}
	next, err := t.Query(ctx, sdk.Query{Partition: "p", Where: `begins_with "a"`, Limit: 1, Cursor: page.Cursor})
	if err != nil {
		return nil, err
	}
	_, missErr := t.Get(ctx, map[string]string{"pk": "p", "sk": "zz"})
	return map[string]any{
		"get":           got["v"],
		"first":         page.Items,
		"second":        next.Items,
		"cond_failed":   errors.Is(condErr, sdk.ErrConditionFailed),
		"missing_is_nf": errors.Is(missErr, sdk.ErrNotFound),
	}, nil
}

func bucket(ctx context.Context) (any, error) {
	b := sdk.Bucket("files")
	if _, err := b.Put(ctx, "dir/hello.txt", []byte("hello, bucket"), sdk.ContentType("text/plain"), sdk.Metadata("owner", "me")); err != nil {
		return nil, err
	}
	obj, err := b.Get(ctx, "dir/hello.txt")
	if err != nil {
		return nil, err
	}
	head, err := b.Head(ctx, "dir/hello.txt")
	if err != nil {
		return nil, err
	}
	l, err := b.List(ctx, sdk.ListOptions{Prefix: "dir/"})
	if err != nil {
		return nil, err
	}
	// Bigger than the SDK's first answer buffer: read in two host calls.
	big := make([]byte, 100_000)
	for i := range big {
		big[i] = byte(i)
	}
	if _, err := b.Put(ctx, "big.bin", big); err != nil {
		return nil, err
	}
	back, err := b.Get(ctx, "big.bin")
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"body": string(obj.Body), "type": obj.ContentType, "owner": obj.Metadata["owner"],
		"head_size": head.Size, "listed": len(l.Objects), "big_ok": string(back.Body) == string(big),
	}, nil
}
