// Package data owns Nimbus's data services: user tables (one JetStream KV
// bucket each, nimbus_t_<name>), user buckets (one JetStream object store
// each, nimbus_b_<name>), their change streams and the triggers that feed
// changes to functions, multipart uploads, presigned URLs, and the
// per-function permissions and credentials that guard all of it.
//
// The catalogue of tables and buckets lives in the KV bucket nimbus_data
// and is mirrored in memory by a watch (as package registry does for
// functions), so a lookup on the request path never reads JetStream.
//
// It knows nothing of HTTP: package dataapi serves it as the management and
// data API, package s3api as the S3 API, and the wasm runtime calls it
// directly. docs/data.md is the user-facing description, with the limits.
package data

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/store"
)

// Names of what the package keeps in JetStream.
const (
	// CatalogBucket holds table and bucket definitions ("t.<name>",
	// "b.<name>") and the node-shared secret ("secret").
	CatalogBucket = "nimbus_data"
	// TablePrefix and BucketPrefix name the KV bucket of a table and the
	// object store of a bucket.
	TablePrefix  = "nimbus_t_"
	BucketPrefix = "nimbus_b_"
	// UploadsBucket is the object store holding multipart upload parts;
	// UploadsKV their upload records.
	UploadsBucket = "nimbus_mpu"
	UploadsKV     = "nimbus_mpu_uploads"
	// TurnsKV says which node runs a batch of each trigger (turns.go).
	TurnsKV = "nimbus_trigger_turns"

	keyTable  = "t."
	keyBucket = "b."
	keySecret = "secret"
)

// Defaults and limits.
const (
	MaxItemBytes          = 400 << 10
	DefaultObjectMaxBytes = 5 << 30
	DefaultHistory        = 8
	MaxBatch              = 100
	DefaultLimit          = 100
	MaxLimit              = 1000
	DefaultCacheBytes     = 64 << 20
)

// Catalog resolves functions, for the permissions in their specs.
type Catalog interface {
	Resolve(name, qualifier string) (*function.Spec, error)
}

// Config configures a Service.
type Config struct {
	// Replicas of buckets and streams (default: the store's).
	Replicas int
	// MaxObjectBytes bounds one object (default 5 GiB).
	MaxObjectBytes int64
	// TTLInterval is how often expired items are looked for, the
	// superseded object infos the triggers have read purged, and idle
	// indexes dropped (default 1m).
	TTLInterval time.Duration
	// Functions resolves function specs for permission checks.
	Functions Catalog
	Logger    *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// SoleWriter says that no one else writes this node's tables: the
	// node embeds its NATS server, which listens to no one else. Reads may
	// then be served from memory (itemcache.go).
	SoleWriter bool
	// CacheBytes bounds the items a sole writer keeps in memory, all
	// tables together (default 64 MiB; negative: none).
	CacheBytes int64
	// Metrics, when set, receives the item cache's counters.
	Metrics prometheus.Registerer
	// MaxUploads bounds the uploads of more than one chunk (objects, parts,
	// completions) that run at once; more wait their turn, their bodies
	// unread (default DefaultMaxUploads).
	MaxUploads int
	// OrphanAge is how old the newest chunk of a put that no object names
	// must be before the node purges the put's chunks (orphans.go); a put
	// fails rather than leave its chunks alone for half of it (default
	// DefaultOrphanAge).
	OrphanAge time.Duration
}

// DefaultOrphanAge is OrphanAge's default.
const DefaultOrphanAge = 24 * time.Hour

// DefaultMaxUploads is MaxUploads' default. Each running upload holds
// some 10 MB (chunks read, hashed and in flight); on two cores eight
// already keep both busy.
const DefaultMaxUploads = 16

func (c *Config) defaults() {
	if c.MaxObjectBytes <= 0 {
		c.MaxObjectBytes = DefaultObjectMaxBytes
	}
	if c.TTLInterval <= 0 {
		c.TTLInterval = time.Minute
	}
	if c.MaxUploads <= 0 {
		c.MaxUploads = DefaultMaxUploads
	}
	if c.OrphanAge <= 0 {
		c.OrphanAge = DefaultOrphanAge
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = DefaultCacheBytes
	}
}

// TableDef declares a table.
type TableDef struct {
	Name string `json:"name"`
	// Key is the partition key attribute; Sort the optional sort key.
	Key  string `json:"key"`
	Sort string `json:"sort,omitempty"`
	// TTL names the attribute holding an item's expiry (epoch seconds).
	TTL string `json:"ttl,omitempty"`
	// History is how many revisions per item the bucket keeps (1 to 64,
	// default 8). It bounds how far a table trigger may fall behind on one
	// hot item without missing changes (see docs/data.md).
	History int       `json:"history,omitempty"`
	Created time.Time `json:"created,omitzero"`
}

// BucketDef declares a bucket.
type BucketDef struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created,omitzero"`
}

// Change says what an apply did.
type Change string

const (
	Created   Change = "created"
	Updated   Change = "updated"
	Unchanged Change = "unchanged"
)

// Service is the data services of one node.
type Service struct {
	cfg Config
	st  *store.Store
	js  jetstream.JetStream
	log *slog.Logger

	thisRun putsThisRun   // orphans.go
	slots   *uploadSlots  // the running uploads' (bucketHandle.put)
	purges  chan purgeJob // purges.go

	// draining ends the long polls of changes (Changes' wait) when the
	// node begins to stop (Drain), so they do not hold up its HTTP
	// servers' graceful shutdown.
	draining context.Context
	drain    context.CancelFunc

	meta    jetstream.KeyValue
	watcher jetstream.KeyWatcher
	secret  []byte

	credMu sync.RWMutex
	creds  map[string]*Principal // verified credentials (VerifyCredential)

	mu      sync.RWMutex
	tables  map[string]*TableDef
	buckets map[string]*BucketDef
	open    map[string]*tableHandle  // by table name
	stores  map[string]*bucketHandle // by bucket name
	// caches are the item caches of table names (a sole writer's only),
	// kept for the life of the Service: see itemCache.
	caches map[string]*itemCache
	budget *cacheBudget
	ops    *opMetrics

	uploads    jetstream.ObjectStore
	uploadsKV  jetstream.KeyValue
	turns      jetstream.KeyValue // trigger -> the time the batch running may run to
	uploadsStr jetstream.Stream
	// partsH reads and writes the parts of uploads; its
	// name index lists one upload's parts.
	partsH *bucketHandle

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Service over st; Start opens its buckets.
func New(cfg Config, st *store.Store) *Service {
	cfg.defaults()
	s := &Service{
		cfg: cfg, st: st, js: st.JS, log: cfg.Logger,
		tables: map[string]*TableDef{}, buckets: map[string]*BucketDef{}, creds: map[string]*Principal{},
		open: map[string]*tableHandle{}, stores: map[string]*bucketHandle{},
		caches: map[string]*itemCache{}, budget: newCacheBudget(cfg.CacheBytes, cfg.Metrics),
		slots: newUploadSlots(cfg.MaxUploads), purges: make(chan purgeJob, purgeQueue),
	}
	s.ops = newOpMetrics(s, cfg.Metrics)
	s.draining, s.drain = context.WithCancel(context.Background())
	return s
}

// Drain ends the long polls of changes in progress, with what they have
// (nothing), and makes new ones answer at once: the node is stopping.
func (s *Service) Drain() { s.drain() }

// Start opens the catalogue, loads it and keeps watching it, and starts the
// TTL sweeper.
func (s *Service) Start(ctx context.Context) error {
	var err error
	s.meta, err = s.st.KV(ctx, jetstream.KeyValueConfig{
		Bucket: CatalogBucket, Description: "table and bucket definitions",
		History: 1, Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if s.secret, err = s.loadSecret(ctx); err != nil {
		return err
	}
	if err := s.startUploads(ctx); err != nil {
		return err
	}
	s.turns, err = s.st.KV(ctx, jetstream.KeyValueConfig{
		Bucket: TurnsKV, Description: "the trigger batches running", History: 1,
		Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("data: trigger turns: %w", err)
	}
	w, err := s.meta.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("data: watch: %w", err)
	}
	s.watcher = w
	for e := range w.Updates() {
		if e == nil {
			break
		}
		s.apply(e)
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.wg.Add(3)
	go s.watch()
	go s.sweepLoop()
	go s.purgeLoop()
	if s.cfg.SoleWriter {
		s.thisRun.start()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.thisRun.stop()
			s.sweepOrphans(s.ctx, 0)
		}()
	}
	return nil
}

// closeTable forgets the open handle of a table and stops its key index;
// s.mu is held.
func (s *Service) closeTable(name string) {
	if h := s.open[name]; h != nil {
		h.closeIndex()
		delete(s.open, name)
	}
	if c := s.caches[name]; c != nil {
		c.clear()
	}
}

// closeBucket forgets the open handle of a bucket and stops its name
// index; s.mu is held.
func (s *Service) closeBucket(name string) {
	if h := s.stores[name]; h != nil {
		h.closeIndex()
		delete(s.stores, name)
	}
}

// cacheFor returns the item cache of a table name, or nil when this node
// keeps none; s.mu is held.
func (s *Service) cacheFor(name string) *itemCache {
	if !s.cfg.SoleWriter || s.cfg.CacheBytes < 0 {
		return nil
	}
	c := s.caches[name]
	if c == nil {
		c = newItemCache(s.budget)
		s.caches[name] = c
	}
	return c
}

// Stop ends the watch and the background work, waiting for them.
func (s *Service) Stop(ctx context.Context) error {
	if s.cancel == nil {
		return nil
	}
	err := s.watcher.Stop()
	s.cancel()
	s.mu.Lock()
	for name := range s.open {
		s.closeTable(name)
	}
	for name := range s.stores {
		s.closeBucket(name)
	}
	if s.partsH != nil {
		s.partsH.closeIndex()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("data: stop: %w", ctx.Err())
	}
	return err
}

// loadSecret reads the secret every node shares (presigned URLs, function
// credentials), creating it on the first start of a cluster.
func (s *Service) loadSecret(ctx context.Context) ([]byte, error) {
	for tries := 0; tries < 3; tries++ {
		e, err := s.meta.Get(ctx, keySecret)
		if err == nil && len(e.Value()) >= 32 {
			return e.Value(), nil
		}
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("data: secret: %w", err)
		}
		b := make([]byte, 32)
		rand.Read(b)
		if _, err := s.meta.Create(ctx, keySecret, b); err == nil {
			return b, nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("data: secret: %w", err)
		}
		// Another node created it first: read theirs.
	}
	return nil, errors.New("data: secret: could not create or read it")
}

func (s *Service) watch() {
	defer s.wg.Done()
	for e := range s.watcher.Updates() {
		if e != nil {
			s.apply(e)
		}
	}
}

func (s *Service) apply(e jetstream.KeyValueEntry) {
	key := e.Key()
	del := e.Operation() != jetstream.KeyValuePut
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case strings.HasPrefix(key, keyTable):
		name := key[len(keyTable):]
		if del {
			delete(s.tables, name)
			s.closeTable(name)
			s.ops.forget(kindTable, name)
			return
		}
		var d TableDef
		if err := json.Unmarshal(e.Value(), &d); err != nil {
			s.log.Error("data: unreadable table definition, ignored", "table", name, "err", err)
			return
		}
		if old := s.tables[name]; old == nil || !old.Created.Equal(d.Created) {
			// Created or recreated: bind again, and forget what a
			// write racing the deletion of an earlier table of this
			// name may have cached.
			s.closeTable(name)
		}
		s.tables[name] = &d
	case strings.HasPrefix(key, keyBucket):
		name := key[len(keyBucket):]
		if del {
			delete(s.buckets, name)
			s.closeBucket(name)
			s.ops.forget(kindBucket, name)
			return
		}
		var d BucketDef
		if err := json.Unmarshal(e.Value(), &d); err != nil {
			s.log.Error("data: unreadable bucket definition, ignored", "bucket", name, "err", err)
			return
		}
		if old := s.buckets[name]; old != nil && !old.Created.Equal(d.Created) {
			s.closeBucket(name)
		}
		s.buckets[name] = &d
	}
}

var (
	tableNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
)

// ValidateTableName checks a table name: 1 to 64 letters, digits, '-' and
// '_', starting with a letter or digit.
func ValidateTableName(name string) error {
	if !tableNameRE.MatchString(name) {
		return invalid("table", "%q is not a valid table name: use 1 to 64 letters, digits, '-' or '_', starting with a letter or digit", truncate(name, 80))
	}
	return nil
}

// ValidateBucketName checks a bucket name as S3 does for new buckets
// (function.BucketNameProblem).
func ValidateBucketName(name string) error {
	if p := function.BucketNameProblem(name); p != "" {
		return invalid("bucket", "%q is not a valid bucket name: %s", truncate(name, 80), p)
	}
	return nil
}

// StoreName is the JetStream object store of a bucket. Store (and stream)
// names have no dots, and S3's bucket names no '_', so a bucket's dots
// become underscores: "assets.example.com" is nimbus_b_assets_example_com,
// and no two buckets share a store.
func StoreName(bucket string) string {
	return BucketPrefix + strings.ReplaceAll(bucket, ".", "_")
}

// Validate checks a table definition and fills its defaults.
func (d *TableDef) Validate() error {
	if err := ValidateTableName(d.Name); err != nil {
		return err
	}
	for f, v := range map[string]string{"key": d.Key, "sort": d.Sort, "ttl": d.TTL} {
		if f == "key" && v == "" {
			return invalid("key", "a table needs a partition key attribute")
		}
		if len(v) > 255 || strings.ContainsRune(v, 0) {
			return invalid(f, "attribute names are 1 to 255 bytes without NUL")
		}
	}
	if d.Sort != "" && d.Sort == d.Key {
		return invalid("sort", "the sort key must differ from the partition key")
	}
	if d.TTL != "" && (d.TTL == d.Key || d.TTL == d.Sort) {
		return invalid("ttl", "the TTL attribute cannot be a key attribute")
	}
	if d.History == 0 {
		d.History = DefaultHistory
	}
	if d.History < 1 || d.History > 64 {
		return invalid("history", "%d is out of range: use 1 to 64", d.History)
	}
	return nil
}

// Tables lists the table definitions by name.
func (s *Service) Tables() []TableDef {
	s.mu.RLock()
	out := make([]TableDef, 0, len(s.tables))
	for _, d := range s.tables {
		out = append(out, *d)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Table returns one table's definition.
func (s *Service) Table(name string) (*TableDef, error) {
	s.mu.RLock()
	d, ok := s.tables[name]
	s.mu.RUnlock()
	if !ok {
		return nil, wrapf(ErrNoSuchTable, "table %q", truncate(name, 80))
	}
	c := *d
	return &c, nil
}

// PutTable creates a table or changes what may change of it (ttl,
// history). Its keys are fixed at creation: a different key is ErrExists.
func (s *Service) PutTable(ctx context.Context, d TableDef) (*TableDef, Change, error) {
	if err := d.Validate(); err != nil {
		return nil, "", err
	}
	key := keyTable + d.Name
	e, err := s.meta.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		d.Created = s.cfg.Now().UTC()
		if _, err := s.tableKV(ctx, &d); err != nil {
			return nil, "", err
		}
		stream := "KV_" + TablePrefix + d.Name
		left, err := s.leftovers(ctx, stream)
		if err != nil {
			return nil, "", fmt.Errorf("create table %s: %w", d.Name, err)
		}
		b, _ := json.Marshal(&d)
		if _, err := s.meta.Create(ctx, key, b); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				return nil, "", wrapf(ErrExists, "table %s was created concurrently", d.Name)
			}
			return nil, "", fmt.Errorf("create table %s: %w", d.Name, err)
		}
		if err := s.dropLeftovers(ctx, stream, left); err != nil {
			return nil, "", err
		}
		s.applyLocal(key, b)
		return &d, Created, nil
	case err != nil:
		return nil, "", fmt.Errorf("table %s: %w", d.Name, err)
	}
	var old TableDef
	if err := json.Unmarshal(e.Value(), &old); err != nil {
		return nil, "", fmt.Errorf("table %s: stored definition unreadable: %w", d.Name, err)
	}
	if old.Key != d.Key || old.Sort != d.Sort {
		return nil, "", wrapf(ErrExists, "table %s has key %q and sort key %q; keys cannot change (delete and recreate the table)", d.Name, old.Key, old.Sort)
	}
	d.Created = old.Created
	if old.TTL == d.TTL && old.History == d.History {
		return &old, Unchanged, nil
	}
	if _, err := s.tableKV(ctx, &d); err != nil {
		return nil, "", err
	}
	b, _ := json.Marshal(&d)
	if _, err := s.meta.Update(ctx, key, b, e.Revision()); err != nil {
		return nil, "", wrapf(function.ErrConflict, "table %s was changed concurrently, try again", d.Name)
	}
	s.applyLocal(key, b)
	return &d, Updated, nil
}

// leftovers returns the last sequence of what a stream just created for a
// new table or bucket already holds, 0 when it is empty. nats-server
// removes a deleted stream's directory in the background, under a name of
// its own ("."+stream); when a stream of the same name is deleted again
// before that ends, the rename fails, the files stay, and the next stream
// of that name recovers them: a table deleted and created again quickly
// held the items of the one before (TestCacheForgetsDeletedTable, one run
// in forty, with or without the item cache).
func (s *Service) leftovers(ctx context.Context, stream string) (uint64, error) {
	st, err := s.js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	if st.CachedInfo().State.Msgs == 0 {
		return 0, nil
	}
	return st.CachedInfo().State.LastSeq, nil
}

// dropLeftovers purges a new stream's messages up to last (leftovers),
// once the catalogue entry is created: no one writes to the stream before
// that, so whatever it held then belongs to a deleted table or bucket.
func (s *Service) dropLeftovers(ctx context.Context, stream string, last uint64) error {
	if last == 0 {
		return nil
	}
	st, err := s.js.Stream(ctx, stream)
	if err == nil {
		err = st.Purge(ctx, jetstream.WithPurgeSequence(last+1))
	}
	if err != nil {
		return fmt.Errorf("stream %s: dropping what a deleted namesake left: %w", stream, err)
	}
	s.log.Warn("data: dropped messages a deleted namesake left in a new stream", "stream", stream, "up_to_seq", last)
	return nil
}

// applyLocal makes a catalogue write visible here at once rather than when
// the watch delivers it, so a create followed by a put works.
func (s *Service) applyLocal(key string, value []byte) {
	s.apply(localEntry{key: key, value: value})
}

type localEntry struct {
	jetstream.KeyValueEntry
	key   string
	value []byte
}

func (e localEntry) Key() string                     { return e.key }
func (e localEntry) Value() []byte                   { return e.value }
func (e localEntry) Operation() jetstream.KeyValueOp { return e.op() }
func (e localEntry) op() jetstream.KeyValueOp {
	if e.value == nil {
		return jetstream.KeyValueDelete
	}
	return jetstream.KeyValuePut
}

// DeleteTable removes a table and its items. A table that holds items
// needs force.
func (s *Service) DeleteTable(ctx context.Context, name string, force bool) error {
	if _, err := s.Table(name); err != nil {
		return err
	}
	if !force {
		h, err := s.table(ctx, name)
		if err != nil {
			return err
		}
		n, err := h.count(ctx, 1)
		if err != nil {
			return err
		}
		if n > 0 {
			return wrapf(ErrNotEmpty, "table %s holds items: delete them first or force it (--force)", name)
		}
	}
	if err := s.meta.Delete(ctx, keyTable+name); err != nil {
		return fmt.Errorf("delete table %s: %w", name, err)
	}
	s.applyLocal(keyTable+name, nil)
	if err := s.js.DeleteKeyValue(ctx, TablePrefix+name); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("delete table %s: %w", name, err)
	}
	return nil
}
