// Command visits counts the visits of each name in the table "visits"
// (partition key "name"): {"name":"Ada"} -> {"name":"Ada","visits":3}.
// It shows a function's state kept in a Nimbus table, and a counter kept
// exact under concurrent calls with revision-conditional writes. Its spec
// must grant the table:
//
//	nimbus table create visits --key name
//	GOOS=wasip1 GOARCH=wasm go build -o visits.wasm ./examples/visits
//	nimbus deploy -f nimbus.yaml   # functions: {visits: {code: ./visits.wasm, uses: {tables: [visits]}}}
package main

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/nimbus-run/nimbus/sdk"
)

type count struct {
	Name   string `json:"name"`
	Visits int    `json:"visits"`
}

var visits = sdk.Table("visits")

func visit(ctx context.Context, event json.RawMessage) (any, error) {
	var req struct {
		Name string `json:"name"`
	}
	if len(event) > 0 {
		if err := json.Unmarshal(event, &req); err != nil {
			return nil, &sdk.Error{Type: "InvalidEvent", Message: "event must be a JSON object like {\"name\":\"Ada\"}: " + err.Error()}
		}
	}
	if req.Name == "" {
		req.Name = "World"
	}
	// Read, add one, write back only over the revision read: a call that
	// lost the race to another reads again.
	for {
		c := count{Name: req.Name}
		opt := sdk.IfAbsent()
		it, err := visits.Get(ctx, map[string]string{"name": req.Name})
		switch {
		case err == nil:
			if err := it.Decode(&c); err != nil {
				return nil, err
			}
			opt = sdk.IfRevision(it.Revision)
		case !errors.Is(err, sdk.ErrNotFound):
			return nil, err
		}
		c.Visits++
		_, err = visits.Put(ctx, c, opt)
		if errors.Is(err, sdk.ErrConditionFailed) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

func main() { sdk.Start(visit) }
