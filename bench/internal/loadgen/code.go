package loadgen

import (
	"context"
	"os"

	"github.com/nimbus-run/nimbus/api"
)

// BuildCode builds the Go package pkg with build (examples.BuildWasm or
// BuildNative) into the file out and uploads it to the node behind c,
// returning its digest for api.Function.Code.
func BuildCode(ctx context.Context, c *api.Client, build func(ctx context.Context, pkg, out string) error, pkg, out string) (string, error) {
	if err := build(ctx, pkg, out); err != nil {
		return "", err
	}
	f, err := os.Open(out)
	if err != nil {
		return "", err
	}
	defer f.Close()
	up, err := c.PutCode(ctx, f)
	if err != nil {
		return "", err
	}
	return up.Digest, nil
}
