// Package keys owns the access keys that authenticate callers of Nimbus's
// AWS-compatible APIs: records in the JetStream KV bucket nimbus_keys, and an
// in-memory view kept current by a watch (as package registry does for
// functions), so verifying a request never reads JetStream.
//
// A record has a kind. Kind "aws" is an AWS-style access key pair (access
// key id + secret access key) used with SigV4, the only kind today. The kind
// keeps the records open to other kinds of credentials sharing the bucket
// (kind "api" is reserved for API gateway API keys, which live elsewhere for
// now and are managed with `nimbus apikeys`).
//
// # Security
//
// SigV4 is an HMAC: the verifier needs the secret itself, not a hash of it.
// So secrets of "aws" keys are stored retrievably, in plain text, in the KV
// bucket. Anyone who can read the nimbus_keys bucket (anyone with access to
// the NATS server, or to the JetStream files in the data directory) can read
// every secret; treat that access as equivalent to the admin token. The
// management API never returns a secret after the call that created it.
//
// This package does not know HTTP or SigV4; internal/sigv4 verifies, the
// surfaces map errors to responses.
package keys

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/store"
)

// Bucket is the KV bucket keys live in.
const Bucket = "nimbus_keys"

// Kinds of keys.
const (
	// KindAWS is an access key id and secret for AWS Signature Version 4.
	KindAWS = "aws"
	// KindAPI is reserved for API gateway API keys (hashed; they are kept
	// by internal/gateway/auth today, not here).
	KindAPI = "api"
)

// IDPrefix starts every access key id Nimbus issues, the way AWS's start
// with "AKIA", so a leaked id is recognisable.
const IDPrefix = "NMBK"

// ErrNotFound is returned for an id that names no key (or a revoked one).
// It matches function.ErrNotFound under errors.Is, so the gateway maps it
// like any other missing resource.
var ErrNotFound error = notFoundError{}

type notFoundError struct{}

func (notFoundError) Error() string        { return "access key not found" }
func (notFoundError) Is(target error) bool { return target == function.ErrNotFound }

// Key is one stored key.
type Key struct {
	// ID is the access key id (the KV key).
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Name says what the key is for; it need not be unique.
	Name string `json:"name"`
	// Secret is the secret access key of an "aws" key. It is stored (see
	// the package doc) but List never returns it.
	Secret  string    `json:"secret,omitempty"`
	Created time.Time `json:"created"`
}

// Keyring is the set of keys of one node, shared through the KV bucket with
// every node of the cluster.
type Keyring struct {
	st  *store.Store
	log *slog.Logger

	kv      jetstream.KeyValue
	watcher jetstream.KeyWatcher
	done    chan struct{}

	mu   sync.RWMutex
	keys map[string]*Key
	// revoked remembers deleted ids: the watch may deliver a key's creation
	// after this node has already revoked it, and a revoked key must not
	// come back even for a moment. Ids are random and never reused.
	revoked map[string]struct{}
}

// New returns a keyring over st. Start opens the bucket and loads it.
func New(st *store.Store, log *slog.Logger) *Keyring {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Keyring{st: st, log: log, keys: map[string]*Key{}, revoked: map[string]struct{}{}, done: make(chan struct{})}
}

// Start creates (or binds to) the bucket, loads every key and keeps
// watching, so a key created or revoked on any node takes effect here.
func (k *Keyring) Start(ctx context.Context) error {
	kv, err := k.st.KV(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "access keys (AWS SigV4 secrets are stored retrievably)",
		History: 1, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	k.kv = kv
	w, err := kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("keys: watch: %w", err)
	}
	k.watcher = w
	// The watcher replays current values, then sends a nil marker.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		k.apply(e)
	}
	go k.watch()
	return nil
}

func (k *Keyring) watch() {
	defer close(k.done)
	for e := range k.watcher.Updates() {
		if e != nil {
			k.apply(e)
		}
	}
}

func (k *Keyring) apply(e jetstream.KeyValueEntry) {
	id := e.Key()
	if e.Operation() != jetstream.KeyValuePut {
		k.forget(id)
		return
	}
	key := new(Key)
	if err := json.Unmarshal(e.Value(), key); err != nil || key.ID != id {
		k.log.Error("keys: skipping unreadable key record", "id", id, "err", err)
		return
	}
	k.mu.Lock()
	if _, gone := k.revoked[id]; !gone {
		k.keys[id] = key
	}
	k.mu.Unlock()
}

func (k *Keyring) forget(id string) {
	k.mu.Lock()
	delete(k.keys, id)
	k.revoked[id] = struct{}{}
	k.mu.Unlock()
}

// Stop ends the watch.
func (k *Keyring) Stop(ctx context.Context) error {
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

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

// Create makes a key of kind (KindAWS when empty) named name and returns it
// with its secret, which is not shown again.
//
// # Errors
//
// A *function.FieldError (wrapping function.ErrInvalid) for a bad name or an
// unsupported kind; store errors otherwise.
func (k *Keyring) Create(ctx context.Context, name, kind string) (*Key, error) {
	if kind == "" {
		kind = KindAWS
	}
	if !nameRE.MatchString(name) {
		return nil, function.Invalid("name", "%q is not a valid key name: use 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", truncate(name, 80))
	}
	switch kind {
	case KindAWS:
	case KindAPI:
		return nil, function.Invalid("kind", "kind %q is reserved for API gateway API keys, which internal/gateway/auth keeps today (nimbus apikeys); use kind %q", KindAPI, KindAWS)
	default:
		return nil, function.Invalid("kind", "unknown kind %q: use %q", truncate(kind, 40), KindAWS)
	}
	// 80 random bits in the id make a collision unlikely; Create (not Put)
	// makes one harmless.
	for range 3 {
		key := &Key{ID: newID(), Kind: kind, Name: name, Secret: newSecret(), Created: time.Now().UTC().Truncate(time.Second)}
		b, err := json.Marshal(key)
		if err != nil {
			return nil, fmt.Errorf("keys: encode: %w", err)
		}
		if _, err := k.kv.Create(ctx, key.ID, b); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			return nil, fmt.Errorf("keys: create %s: %w", key.ID, err)
		}
		// Visible on this node at once, not when the watch delivers it: a
		// client that creates a key and signs with it right away must work.
		k.mu.Lock()
		k.keys[key.ID] = key
		k.mu.Unlock()
		out := *key
		return &out, nil
	}
	return nil, fmt.Errorf("keys: could not pick an unused id: %w", function.ErrConflict)
}

// List returns every key, oldest first, without secrets.
func (k *Keyring) List() []Key {
	k.mu.RLock()
	out := make([]Key, 0, len(k.keys))
	for _, key := range k.keys {
		c := *key
		c.Secret = ""
		out = append(out, c)
	}
	k.mu.RUnlock()
	slices.SortFunc(out, func(a, b Key) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Revoke deletes a key; requests signed with it fail from then on, on
// every node once the watch delivers the deletion (at once on this one).
//
// # Errors
//
// ErrNotFound when no key has the id.
func (k *Keyring) Revoke(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("%q: %w", truncate(id, 40), ErrNotFound)
	}
	if _, err := k.kv.Get(ctx, id); err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("%s: %w", id, ErrNotFound)
		}
		return fmt.Errorf("keys: revoke %s: %w", id, err)
	}
	if err := k.kv.Delete(ctx, id); err != nil {
		return fmt.Errorf("keys: revoke %s: %w", id, err)
	}
	k.forget(id)
	return nil
}

// Lookup returns the secret of an "aws" access key id, from memory. It has
// the shape of sigv4.Lookup.
func (k *Keyring) Lookup(id string) (secret string, ok bool) {
	k.mu.RLock()
	key, ok := k.keys[id]
	k.mu.RUnlock()
	if !ok || key.Kind != KindAWS || key.Secret == "" {
		return "", false
	}
	return key.Secret, true
}

// newID returns IDPrefix and 16 base32 characters (80 random bits): 20
// characters in all, upper-case letters and digits, like an AWS access key
// id.
func newID() string {
	var b [10]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails
	return IDPrefix + base32.StdEncoding.EncodeToString(b[:])
}

// newSecret returns 40 characters of base64 (240 random bits), the length
// and alphabet of an AWS secret access key.
func newSecret() string {
	var b [30]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails
	return base64.StdEncoding.EncodeToString(b[:])
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
