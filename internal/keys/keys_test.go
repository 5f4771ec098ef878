package keys_test

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/keys"
	"github.com/nimbus-run/nimbus/internal/store"
	"github.com/nimbus-run/nimbus/internal/store/storetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// startStore runs an embedded JetStream on a temp dir and returns a store
// plus a way to open a second connection (a second "node").
func startStore(t *testing.T) (*store.Store, func() *store.Store) {
	open := storetest.Shared(t)
	return open(), open
}

func startKeyring(t *testing.T, st *store.Store) *keys.Keyring {
	t.Helper()
	k := keys.New(st, nil)
	if err := k.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := k.Stop(context.Background()); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			t.Errorf("Stop: %v", err)
		}
	})
	return k
}

func TestKeyringLifecycle(t *testing.T) {
	st, open := startStore(t)
	ctx := context.Background()
	a := startKeyring(t, st)

	key, err := a.Create(ctx, "ci-deployer", "")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^NMBK[A-Z2-7]{16}$`).MatchString(key.ID) {
		t.Errorf("id %q does not look like an access key id", key.ID)
	}
	if len(key.Secret) != 40 || key.Kind != keys.KindAWS || key.Name != "ci-deployer" || key.Created.IsZero() {
		t.Errorf("created key = %+v", key)
	}
	if got, ok := a.Lookup(key.ID); !ok || got != key.Secret {
		t.Errorf("Lookup on the creating node = %q, %v; want the secret at once", got, ok)
	}

	// A second node sees the key through the bucket, and its revocation.
	b := startKeyring(t, open())
	if got, ok := b.Lookup(key.ID); !ok || got != key.Secret {
		t.Errorf("Lookup on another node = %q, %v", got, ok)
	}
	list := b.List()
	if len(list) != 1 || list[0].ID != key.ID || list[0].Secret != "" {
		t.Errorf("List = %+v; want the key without its secret", list)
	}

	if err := a.Revoke(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Lookup(key.ID); ok {
		t.Error("revoked key still found on the revoking node")
	}
	testutil.Eventually(t, "revocation to reach the other node", func() bool {
		_, ok := b.Lookup(key.ID)
		return !ok
	})
	if err := a.Revoke(ctx, key.ID); !errors.Is(err, keys.ErrNotFound) || !errors.Is(err, function.ErrNotFound) {
		t.Errorf("second Revoke = %v; want ErrNotFound (also function.ErrNotFound)", err)
	}

	// Restart: keys persist in the bucket.
	k2, err := a.Create(ctx, "other", keys.KindAWS)
	if err != nil {
		t.Fatal(err)
	}
	c := startKeyring(t, open())
	if _, ok := c.Lookup(k2.ID); !ok {
		t.Error("key not loaded by a keyring started later")
	}
}

func TestCreateRejects(t *testing.T) {
	st, _ := startStore(t)
	k := startKeyring(t, st)
	for _, tt := range []struct{ name, keyName, kind, field string }{
		{"empty name", "", "", "name"},
		{"space in name", "a b", "", "name"},
		{"api keys not yet", "x", keys.KindAPI, "kind"},
		{"unknown kind", "x", "gcp", "kind"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := k.Create(context.Background(), tt.keyName, tt.kind)
			var fe *function.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Create = %v; want a field error on %s", err, tt.field)
			}
		})
	}
	if _, ok := k.Lookup(""); ok {
		t.Error("Lookup(\"\") found a key")
	}
	if err := k.Revoke(context.Background(), "../x"); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("Revoke(bad id) = %v", err)
	}
}

// TestConcurrentUse hammers Create, Lookup, List and Revoke together (run
// with -race).
func TestConcurrentUse(t *testing.T) {
	st, _ := startStore(t)
	k := startKeyring(t, st)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				key, err := k.Create(ctx, "hammer", "")
				if err != nil {
					t.Error(err)
					return
				}
				if s, ok := k.Lookup(key.ID); !ok || s != key.Secret {
					t.Errorf("Lookup(%s) after Create failed", key.ID)
				}
				_ = k.List()
				if err := k.Revoke(ctx, key.ID); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	testutil.Eventually(t, "all keys revoked", func() bool { return len(k.List()) == 0 })
}
