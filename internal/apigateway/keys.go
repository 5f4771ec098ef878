package apigateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway/auth"
	"github.com/nimbus-run/nimbus/internal/store"
)

// KeysBucket holds API key records by ID: hashes, never keys.
const KeysBucket = "nimbus_apikeys"

// keyStore is the API key records of the cluster, mirrored in memory by a
// watch so that checking a key never reads JetStream.
type keyStore struct {
	kv  jetstream.KeyValue
	log *slog.Logger

	mu   sync.RWMutex
	recs map[string]auth.KeyRecord

	watcher jetstream.KeyWatcher
	done    chan struct{}
}

func openKeys(ctx context.Context, st *store.Store, log *slog.Logger) (*keyStore, error) {
	kv, err := st.KV(ctx, jetstream.KeyValueConfig{
		Bucket: KeysBucket, Description: "API key records (SHA-256 hashes) by id", History: 1,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	return &keyStore{kv: kv, log: log, recs: map[string]auth.KeyRecord{}, done: make(chan struct{})}, nil
}

func (k *keyStore) start(ctx context.Context) error {
	w, err := k.kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("api keys: watch: %w", err)
	}
	k.watcher = w
	for e := range w.Updates() {
		if e == nil {
			break // the current values have been replayed
		}
		k.apply(e)
	}
	go func() {
		defer close(k.done)
		for e := range w.Updates() {
			if e != nil {
				k.apply(e)
			}
		}
	}()
	return nil
}

func (k *keyStore) stop(ctx context.Context) error {
	if k.watcher == nil {
		return nil
	}
	err := k.watcher.Stop()
	select {
	case <-k.done:
	case <-ctx.Done():
	}
	return err
}

func (k *keyStore) apply(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		k.mu.Lock()
		delete(k.recs, e.Key())
		k.mu.Unlock()
		return
	}
	var rec auth.KeyRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.ID != e.Key() {
		k.log.Error("api keys: skipping unreadable record", "id", e.Key(), "err", err)
		return
	}
	k.put(rec)
}

func (k *keyStore) put(rec auth.KeyRecord) {
	k.mu.Lock()
	k.recs[rec.ID] = rec
	k.mu.Unlock()
}

// lookup is auth.VerifyAPIKey's view of the records.
func (k *keyStore) lookup(id string) (auth.KeyRecord, bool) {
	k.mu.RLock()
	rec, ok := k.recs[id]
	k.mu.RUnlock()
	return rec, ok
}

func (k *keyStore) list() []auth.KeyRecord {
	k.mu.RLock()
	out := make([]auth.KeyRecord, 0, len(k.recs))
	for _, r := range k.recs {
		out = append(out, r)
	}
	k.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// create mints a key and stores its record. The plain key is returned and
// forgotten.
func (k *keyStore) create(ctx context.Context, name, plan string) (string, auth.KeyRecord, error) {
	plain, rec := auth.NewAPIKey()
	rec.Name, rec.Plan = name, plan
	b, _ := json.Marshal(rec)
	if _, err := k.kv.Create(ctx, rec.ID, b); err != nil {
		return "", auth.KeyRecord{}, fmt.Errorf("api keys: store: %w", err)
	}
	// Visible on this node at once, not when the watch delivers it.
	k.put(rec)
	return plain, rec, nil
}

// revoke marks a key revoked. The record stays, so listings show what was
// revoked and when a revoked key is used the log says so.
func (k *keyStore) revoke(ctx context.Context, id string) (auth.KeyRecord, error) {
	for range 3 {
		e, err := k.kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
			return auth.KeyRecord{}, fmt.Errorf("api key %q: %w", id, errNotFound)
		}
		if err != nil {
			return auth.KeyRecord{}, fmt.Errorf("api keys: %w", err)
		}
		var rec auth.KeyRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return auth.KeyRecord{}, fmt.Errorf("api key %q: unreadable record: %w", id, err)
		}
		if rec.Revoked {
			k.put(rec)
			return rec, nil
		}
		rec.Revoked = true
		b, _ := json.Marshal(rec)
		if _, err := k.kv.Update(ctx, id, b, e.Revision()); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue // changed under us: read again
			}
			return auth.KeyRecord{}, fmt.Errorf("api keys: %w", err)
		}
		k.put(rec)
		return rec, nil
	}
	return auth.KeyRecord{}, fmt.Errorf("api key %q: updated concurrently, try again: %w", id, function.ErrConflict)
}

// errNotFound is function.ErrNotFound with a message about keys rather than
// functions.
var errNotFound = fmt.Errorf("not found: %w", function.ErrNotFound)
