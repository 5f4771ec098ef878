// Package storetest gives tests a store on a real embedded JetStream, for
// packages below the node (which nodetest starts whole).
package storetest

import (
	"context"
	"testing"

	"github.com/nimbus-run/nimbus/internal/natsd"
	"github.com/nimbus-run/nimbus/internal/store"
)

// Open starts an embedded JetStream on a temp directory and opens a store
// on it; both stop at cleanup.
func Open(tb testing.TB) *store.Store {
	tb.Helper()
	return Shared(tb)()
}

// Shared starts an embedded JetStream on a temp directory and returns a
// way to open stores on it, each on a connection of its own, as the nodes
// of a cluster share one JetStream; all stop at cleanup.
func Shared(tb testing.TB) func() *store.Store {
	tb.Helper()
	ctx := context.Background()
	srv, err := natsd.Start(ctx, natsd.Config{StoreDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Stop(context.Background()) })
	return func() *store.Store {
		tb.Helper()
		nc, err := srv.Connect()
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(nc.Close)
		st, err := store.Open(ctx, nc, store.Config{})
		if err != nil {
			tb.Fatal(err)
		}
		return st
	}
}
