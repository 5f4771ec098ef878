// Package store is Nimbus's access to NATS JetStream: the KV buckets, object
// stores and streams the platform keeps its state in, with typed errors. It
// knows bucket names and wire encodings, not domain rules (those live in
// registry, invoke and the other engine packages).
package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names of the platform's buckets and streams.
const (
	FunctionsBucket = "nimbus_functions"
	CodeBucket      = "nimbus_code"
	RecordsStream   = "NIMBUS_RECORDS"
	RecordsSubject  = "nimbus.records."
)

// Typed errors callers branch on.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrRevision = errors.New("revision mismatch")
)

// Config sizes what the store creates.
type Config struct {
	// Replicas for every bucket and stream (1 on a single node; 3 in a cluster).
	Replicas int
	// RecordsMaxAge and RecordsMaxBytes bound the invocation records stream.
	RecordsMaxAge   time.Duration
	RecordsMaxBytes int64
	// MaxCodeBytes bounds one code artifact.
	MaxCodeBytes int64
}

func (c *Config) defaults() {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.RecordsMaxAge == 0 {
		c.RecordsMaxAge = 7 * 24 * time.Hour
	}
	if c.RecordsMaxBytes == 0 {
		c.RecordsMaxBytes = 1 << 30
	}
	if c.MaxCodeBytes == 0 {
		c.MaxCodeBytes = 256 << 20
	}
}

// Store holds the JetStream handles of one node.
type Store struct {
	cfg       Config
	NC        *nats.Conn
	JS        jetstream.JetStream
	Functions jetstream.KeyValue
	Code      jetstream.ObjectStore
	Records   jetstream.Stream
}

// Open creates (or binds to) the platform's buckets and streams. It is
// idempotent, so every node of a cluster runs it at start.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	cfg.defaults()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, fmt.Errorf("store: jetstream: %w", err)
	}
	s := &Store{cfg: cfg, NC: nc, JS: js}
	// A cluster that has just started may have elected its leader before
	// every server reported in: until they have, placing replicas fails
	// with "no suitable peers for placement". Wait for them (once placed,
	// the streams a node creates after these are placed too).
	deadline := time.Now().Add(clusterWait)
	for {
		err = s.open(ctx)
		if err == nil {
			return s, nil
		}
		if !noPeers(err) || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// clusterWait bounds how long Open waits for a forming cluster's servers.
const clusterWait = 30 * time.Second

// noPeers says whether err is JetStream's refusal to place a stream's
// replicas for want of servers (JSClusterNoPeersErrF).
func noPeers(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsClusterNoPeers
}

// jsClusterNoPeers is nats-server's JSClusterNoPeersErrF, which nats.go
// has no name for.
const jsClusterNoPeers = 10005

// open creates or binds the platform's buckets and streams.
func (s *Store) open(ctx context.Context) (err error) {
	cfg := s.cfg
	s.Functions, err = s.KV(ctx, jetstream.KeyValueConfig{
		Bucket: FunctionsBucket, Description: "function specs by name", History: 5,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return err
	}
	s.Code, err = s.ObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: CodeBucket, Description: "code artifacts by sha256",
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return err
	}
	s.Records, err = s.Stream(ctx, jetstream.StreamConfig{
		Name: RecordsStream, Description: "one record per invocation",
		Subjects: []string{RecordsSubject + ">"}, Storage: jetstream.FileStorage,
		Replicas: cfg.Replicas, MaxAge: cfg.RecordsMaxAge, MaxBytes: cfg.RecordsMaxBytes,
		Discard: jetstream.DiscardOld, Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("store: records stream: %w", err)
	}
	return nil
}

// KV returns a bucket, creating it with cfg when it does not exist. With
// replicas its reads go to the stream's leader (Replicate).
func (s *Store) KV(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	var err error
	if cfg.Replicas, err = s.replicas(ctx, "KV_"+cfg.Bucket, cfg.Replicas); err != nil {
		return nil, fmt.Errorf("store: bucket %s: %w", cfg.Bucket, err)
	}
	kv, err := s.JS.CreateOrUpdateKeyValue(ctx, cfg)
	if err == nil && cfg.Replicas > 1 {
		if err = s.Replicate(ctx, "KV_"+cfg.Bucket); err == nil {
			kv, err = s.JS.KeyValue(ctx, cfg.Bucket) // bound again: a handle decides how it reads once
		}
	}
	if err == nil {
		err = answering(ctx, func() error { _, err := kv.Get(ctx, probeKey); return err })
	}
	if err != nil {
		return nil, fmt.Errorf("store: bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// ObjectStore returns an object bucket, creating it with cfg when it does
// not exist. With replicas its reads go to the stream's leader
// (Replicate).
func (s *Store) ObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	var err error
	if cfg.Replicas, err = s.replicas(ctx, "OBJ_"+cfg.Bucket, cfg.Replicas); err != nil {
		return nil, fmt.Errorf("store: object bucket %s: %w", cfg.Bucket, err)
	}
	obs, err := s.JS.CreateOrUpdateObjectStore(ctx, cfg)
	if err == nil && cfg.Replicas > 1 {
		if err = s.Replicate(ctx, "OBJ_"+cfg.Bucket); err == nil {
			obs, err = s.JS.ObjectStore(ctx, cfg.Bucket)
		}
	}
	if err == nil {
		err = answering(ctx, func() error { _, err := obs.GetInfo(ctx, probeKey); return err })
	}
	if err != nil {
		return nil, fmt.Errorf("store: object bucket %s: %w", cfg.Bucket, err)
	}
	return obs, nil
}

// A bucket just created on a cluster may not answer reads for a moment:
// its direct gets find no responders until the servers holding its stream
// subscribe (the first read of the shared secret met it once, in
// TestRaiseReplicas). So KV and ObjectStore return a bucket once a read of
// probeKey (which no one writes) is answered, trying every 50 ms on "no
// responders" alone, for up to answerWait.
const (
	probeKey   = "_nimbus_probe"
	answerWait = 10 * time.Second
)

func answering(ctx context.Context, read func() error) error {
	deadline := time.Now().Add(answerWait)
	for {
		err := read()
		if !errors.Is(err, nats.ErrNoResponders) {
			return nil // answered: found, not found, or another error the bucket's users meet and report
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("reads find no responders after %v: %w", answerWait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Replicate raises the stream name to the store's number of replicas
// and, when it has more than one, turns its direct gets off, so that reads
// go to the stream's leader. It never lowers the count (see replicas).
//
// Replicas: a table's or bucket's stream is created once and then only
// bound, so a node restarted with a higher --replicas would otherwise
// leave the streams created before at their old count (TestRaiseReplicas),
// while it updates the platform's own streams at start. Raising the count
// copies the stream to the new servers in the background; its leader
// serves reads and writes meanwhile.
//
// Direct gets: nats.go's KV and object store create their streams with
// AllowDirect and read a key, or an object's metadata, by a direct get,
// which any replica may answer: nats-server lets a follower serve them
// once it has applied 90% of the stream's log. On a three-server cluster
// a head of an object put a moment before on another node said "no such
// key" in about one read of ten (internal/data's TestReplicatedData).
// Without direct gets they use the message get API, which only the leader
// answers. A stream of one replica keeps direct gets, which are cheaper.
//
// CreateOrUpdate turns direct gets on again, so this runs after each, and
// before a handle is bound: a handle decides once, from the stream's
// configuration, how it reads.
func (s *Store) Replicate(ctx context.Context, name string) error {
	st, err := s.JS.Stream(ctx, name)
	if err != nil {
		return err
	}
	cfg := st.CachedInfo().Config
	want := max(s.cfg.Replicas, cfg.Replicas, 1)
	if cfg.Replicas == want && (want == 1 || !cfg.AllowDirect) {
		return nil
	}
	cfg.Replicas = want
	if want > 1 {
		cfg.AllowDirect = false
	}
	if _, err := s.JS.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("stream %s: %d replicas, reads from the leader: %w", name, want, err)
	}
	return nil
}

// Stream returns a stream, creating it with cfg or updating it to cfg,
// with at least the replicas it has (see replicas).
func (s *Store) Stream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	var err error
	if cfg.Replicas, err = s.replicas(ctx, cfg.Name, cfg.Replicas); err != nil {
		return nil, fmt.Errorf("store: stream %s: %w", cfg.Name, err)
	}
	return s.JS.CreateOrUpdateStream(ctx, cfg)
}

// replicas is the count of copies to create or update the stream name
// with: want (the store's when 0), or the stream's own when it has more.
//
// Every node creates or updates the streams it uses at start, with its
// own --replicas. A node started with fewer than the cluster's (a
// forgotten flag, an old unit file) would otherwise lower every stream it
// touched, and with it the cluster's tolerance of a lost server, without a
// word (TestRaiseReplicas). Lowering the count is left to an operator's
// explicit act (nats stream edit --replicas).
func (s *Store) replicas(ctx context.Context, name string, want int) (int, error) {
	if want == 0 {
		want = s.cfg.Replicas
	}
	st, err := s.JS.Stream(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return want, nil
	case errors.Is(err, nats.ErrNoResponders): // as nats.go says it
		return 0, jetstream.ErrJetStreamNotEnabled
	case err != nil:
		return 0, err
	}
	return max(want, st.CachedInfo().Config.Replicas), nil
}

// Replicas is the number of copies of each bucket and stream the store
// creates, for the streams other packages create beside it.
func (s *Store) Replicas() int { return s.cfg.Replicas }

// Digest returns the content address of code.
func Digest(code []byte) string {
	sum := sha256.Sum256(code)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func objectName(digest string) string { return strings.TrimPrefix(digest, "sha256:") }

// PutCode stores an artifact under its SHA-256 digest. Storing the same bytes
// twice stores them once. It returns the digest and whether it was new.
func (s *Store) PutCode(ctx context.Context, code []byte) (digest string, created bool, err error) {
	if int64(len(code)) > s.cfg.MaxCodeBytes {
		return "", false, fmt.Errorf("store: code is %d bytes, the limit is %d", len(code), s.cfg.MaxCodeBytes)
	}
	digest = Digest(code)
	if _, err := s.Code.GetInfo(ctx, objectName(digest)); err == nil {
		return digest, false, nil
	} else if !errors.Is(err, jetstream.ErrObjectNotFound) {
		return "", false, fmt.Errorf("store: code %s: %w", digest, err)
	}
	if _, err := s.Code.Put(ctx, jetstream.ObjectMeta{Name: objectName(digest)}, bytes.NewReader(code)); err != nil {
		return "", false, fmt.Errorf("store: put code %s: %w", digest, err)
	}
	return digest, true, nil
}

// GetCode reads an artifact and checks it against its digest.
func (s *Store) GetCode(ctx context.Context, digest string) ([]byte, error) {
	r, err := s.Code.Get(ctx, objectName(digest))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("store: code %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: code %s: %w", digest, err)
	}
	defer r.Close()
	code, err := io.ReadAll(io.LimitReader(r, s.cfg.MaxCodeBytes+1))
	if err != nil {
		return nil, fmt.Errorf("store: read code %s: %w", digest, err)
	}
	if Digest(code) != digest {
		return nil, fmt.Errorf("store: code %s is corrupt (digest mismatch)", digest)
	}
	return code, nil
}

// DeleteCode removes an artifact.
func (s *Store) DeleteCode(ctx context.Context, digest string) error {
	err := s.Code.Delete(ctx, objectName(digest))
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("store: delete code %s: %w", digest, err)
	}
	return nil
}

// RecordSubject is the subject a function's invocation records go to.
func RecordSubject(function string) string { return RecordsSubject + function }

// LastRecords returns up to limit of the newest records on subject of the
// records stream, newest first. A message holds one record or a batch of
// them, newline-delimited.
//
// JetStream cannot iterate backwards, so this scans forward from a window
// before the stream's end and widens the window until it has enough: cheap
// for the common case (recent records of an active function) and bounded by
// the stream's size in the worst case.
func (s *Store) LastRecords(ctx context.Context, subject string, limit int) ([]json.RawMessage, error) {
	info, err := s.Records.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: records: %w", err)
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	if info.State.Msgs == 0 || limit <= 0 {
		return nil, nil
	}
	window := uint64(limit) * 64
	for {
		start := first
		if last > window && last-window+1 > first {
			start = last - window + 1
		}
		out, err := s.scan(ctx, subject, start, last)
		if err != nil {
			return nil, err
		}
		if len(out) >= limit || start == first {
			if len(out) > limit {
				out = out[len(out)-limit:]
			}
			for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
				out[i], out[j] = out[j], out[i]
			}
			return out, nil
		}
		window *= 8
	}
}

func (s *Store) scan(ctx context.Context, subject string, start, last uint64) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := ReadAll(ctx, s.Records, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
	}, 512, func(m jetstream.Msg, md *jetstream.MsgMetadata) bool {
		if md.Sequence.Stream > last {
			return false
		}
		for line := range bytes.SplitSeq(m.Data(), []byte{'\n'}) {
			if len(line) > 0 {
				out = append(out, json.RawMessage(line))
			}
		}
		return md.Sequence.Stream != last
	})
	if err != nil {
		return nil, fmt.Errorf("store: records scan: %w", err)
	}
	return out, nil
}
