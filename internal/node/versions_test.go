package node_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

func TestVersionsAndAliases(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	c := nodetest.Client(n)
	ctx := context.Background()
	code := testutil.BuildWasm(t, "./internal/node/testdata/tag")
	deploy := func(tag string) {
		nodetest.Deploy(t, n, api.Function{Name: "tag", Memory: 64, Env: map[string]string{"TAG": tag}}, code)
	}
	call := func(qualifier string) (string, string) {
		t.Helper()
		res, err := c.InvokeQualified(ctx, "tag", qualifier, []byte(`{}`))
		if err != nil {
			t.Fatalf("invoke tag:%s: %v", qualifier, err)
		}
		return strings.Trim(string(res.Payload), `"`), res.Version
	}

	deploy("a")
	p1, err := c.Publish(ctx, "tag")
	if err != nil || !p1.Created || p1.Function.Version != "1" {
		t.Fatalf("publish 1 = %+v, %v", p1, err)
	}
	deploy("b")
	p2, _ := c.Publish(ctx, "tag")
	if p2.Function.Version != "2" {
		t.Fatalf("publish 2 = %+v", p2)
	}
	if again, _ := c.Publish(ctx, "tag"); again.Created || again.Function.Version != "2" {
		t.Errorf("publishing an unchanged $LATEST = %+v, want version 2 returned", again)
	}
	deploy("c")
	for q, want := range map[string]string{"1": "a", "2": "b", "": "c", "$LATEST": "c"} {
		got, ver := call(q)
		if got != want {
			t.Errorf("tag:%s = %q, want %q", q, got, want)
		}
		if q == "1" && ver != "1" {
			t.Errorf("executed version = %q, want 1", ver)
		}
	}
	if _, err := c.InvokeQualified(ctx, "tag", "9", nil); !isStatus(err, 404) {
		t.Errorf("unknown version: %v", err)
	}
	if _, err := c.InvokeQualified(ctx, "tag", "nope", nil); !isStatus(err, 404) {
		t.Errorf("unknown alias: %v", err)
	}

	// An alias, reached through the HTTP route too.
	if _, err := c.PutAlias(ctx, "tag", &api.Alias{Name: "live", Version: "1"}); err != nil {
		t.Fatal(err)
	}
	resp, body := post(t, n.URL()+"/function/tag:live", `{}`)
	if resp.StatusCode != 200 || string(body) != `"a"` || resp.Header.Get(api.HeaderVersion) != "1" {
		t.Errorf("/function/tag:live = %d %s version %q", resp.StatusCode, body, resp.Header.Get(api.HeaderVersion))
	}
	nodetest.Eventually(t, 5*time.Second, "record of version 1", func() bool {
		recs, _ := c.Records(ctx, "tag", 50)
		for _, r := range recs {
			if r.Version == "1" {
				return true
			}
		}
		return false
	})

	// Weighted alias: 30% to version 2.
	if _, err := c.PutAlias(ctx, "tag", &api.Alias{Name: "live", Version: "1", Weights: map[string]float64{"2": 0.3}}); err != nil {
		t.Fatal(err)
	}
	const calls = 400
	b := 0
	for range calls {
		if got, _ := call("live"); got == "b" {
			b++
		}
	}
	if share := float64(b) / calls; share < 0.22 || share > 0.38 {
		t.Errorf("share of version 2 = %.2f, want 0.30 ± 0.08", share)
	}

	// Bad aliases are refused, naming the field.
	for _, a := range []api.Alias{
		{Name: "x", Version: "7"},
		{Name: "x", Version: "$LATEST"},
		{Name: "123", Version: "1"},
		{Name: "x", Version: "1", Weights: map[string]float64{"2": 1.5}},
		{Name: "x", Version: "1", Weights: map[string]float64{"1": 0.5}},
	} {
		if _, err := c.PutAlias(ctx, "tag", &a); !isStatus(err, 400) {
			t.Errorf("alias %+v: err = %v, want 400", a, err)
		}
	}

	// A version an alias uses cannot be deleted.
	if err := c.DeleteVersion(ctx, "tag", "2"); !isStatus(err, 409) {
		t.Errorf("delete version used by alias: %v, want 409", err)
	}
	if err := c.DeleteAlias(ctx, "tag", "live"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteVersion(ctx, "tag", "2"); err != nil {
		t.Errorf("delete unused version: %v", err)
	}
	if vs, _ := c.Versions(ctx, "tag"); len(vs) != 1 || vs[0].Version != "1" {
		t.Errorf("versions after delete = %+v", vs)
	}

	// Deleting the function removes its versions and aliases.
	c.PutAlias(ctx, "tag", &api.Alias{Name: "stay", Version: "1"})
	if err := c.DeleteFunction(ctx, "tag"); err != nil {
		t.Fatal(err)
	}
	deploy("d")
	if vs, _ := c.Versions(ctx, "tag"); len(vs) != 0 {
		t.Errorf("versions of a recreated function = %+v", vs)
	}
	if as, _ := c.Aliases(ctx, "tag"); len(as) != 0 {
		t.Errorf("aliases of a recreated function = %+v", as)
	}
}

func isStatus(err error, status int) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Status == status
}
