package data

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// How an item is stored: the message on subject $KV.<bucket>.<key> is the
// item's JSON, compacted, then, when the write replaced an item, a newline
// and the replaced item (compacted JSON holds no raw newline). A delete is
// a KV delete marker whose body is the deleted item. Every message thus
// carries the old image its change event needs, read under the same
// revision check as the write itself, so change events never depend on how
// much history the bucket still keeps.
//
// Writes go straight to the stream, with Nats-Expected-Last-Subject-Sequence
// set to the revision read: the KV API cannot attach a body to a delete
// marker, nor headers to a put.
const (
	hKVOperation = "KV-Operation"
	hExpires     = "Nimbus-Expires" // the TTL attribute, epoch seconds
	hReason      = "Nimbus-Reason"  // "ttl" for deletions by the sweeper
	opDel        = "DEL"
	opPurge      = "PURGE"
	// maxWriteRetries bounds the read-write loop of an unconditional write
	// racing others on one item.
	maxWriteRetries = 64
)

// tableHandle is an open table.
type tableHandle struct {
	def    *TableDef
	kv     jetstream.KeyValue
	stream jetstream.Stream
	nc     *nats.Conn
	pre    string // subject prefix of keys: "$KV.<bucket>."
	now    func() time.Time
	log    *slog.Logger

	// idx is the key index (keyindex.go), started on first use.
	idx lazyIndex[keyIndex, *keyIndex]
	// cache holds recent items (itemcache.go); nil unless the node is its
	// tables' sole writer.
	cache *itemCache
	// leader: the table has replicas, so reads go to the stream's leader
	// (leader.go).
	leader bool
}

// Entry is a stored item with its revision.
type Entry struct {
	Item     json.RawMessage `json:"item"`
	Revision uint64          `json:"revision"`
	Updated  time.Time       `json:"updated,omitzero"`
}

// PutOptions make a put conditional.
type PutOptions struct {
	// IfAbsent writes only when no item has the key.
	IfAbsent bool `json:"if_absent,omitempty"`
	// IfRevision writes only when the stored item has this revision.
	IfRevision uint64 `json:"if_revision,omitempty"`
}

// tableKV creates or updates the KV bucket of a table.
func (s *Service) tableKV(ctx context.Context, d *TableDef) (jetstream.KeyValue, error) {
	kv, err := s.st.KV(ctx, jetstream.KeyValueConfig{
		Bucket: TablePrefix + d.Name, Description: "items of table " + d.Name,
		History: uint8(d.History), Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas,
		// Room for an item and the item it replaced, with headers.
		MaxValueSize: 2*MaxItemBytes + 8<<10,
	})
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", d.Name, err)
	}
	return kv, nil
}

// table returns the open handle of a table, binding to its bucket once.
func (s *Service) table(ctx context.Context, name string) (*tableHandle, error) {
	s.mu.RLock()
	h, ok := s.open[name]
	def := s.tables[name]
	s.mu.RUnlock()
	if ok {
		return h, nil
	}
	if def == nil {
		if err := ValidateTableName(name); err != nil {
			return nil, err
		}
		return nil, wrapf(ErrNoSuchTable, "table %q", name)
	}
	if err := s.st.Replicate(ctx, "KV_"+TablePrefix+name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("table %s: %w", name, err)
	}
	kv, err := s.js.KeyValue(ctx, TablePrefix+name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, wrapf(ErrNoSuchTable, "table %q", name)
	}
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", name, err)
	}
	stream, err := s.js.Stream(ctx, "KV_"+TablePrefix+name)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", name, err)
	}
	h = &tableHandle{def: def, kv: kv, stream: stream, nc: s.st.NC, pre: "$KV." + TablePrefix + name + ".", now: s.cfg.Now, log: s.log,
		leader: stream.CachedInfo().Config.Replicas > 1}
	s.mu.Lock()
	defer s.mu.Unlock()
	h.cache = s.cacheFor(name)
	if other := s.open[name]; other != nil {
		return other, nil // bound concurrently: share one handle (and one index)
	}
	// The catalogue watch replaces a definition with an equal copy when it
	// delivers the write PutTable already applied: that is the same table.
	if cur := s.tables[name]; cur != nil && cur.Created.Equal(def.Created) {
		h.def = cur
		s.open[name] = h
		return h, nil
	}
	// The table went away or was recreated while being bound: this call
	// may finish on the handle, but nothing will close it, so it must not
	// start a key index (a consumer that would live on, fed every write).
	h.closeIndex()
	return h, nil
}

// parsedItem is an item checked against its table.
type parsedItem struct {
	raw     []byte // compact JSON
	pk      KeyValue
	sk      *KeyValue
	key     string
	expires int64 // 0: none
}

// parseItem validates an item: a JSON object of at most MaxItemBytes
// (compacted) holding the table's key attributes.
func (h *tableHandle) parseItem(raw []byte) (*parsedItem, error) {
	b := make([]byte, 0, len(raw))
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, raw); err != nil {
		return nil, invalid("item", "not valid JSON: %v", err)
	}
	if buf.Len() > MaxItemBytes {
		return nil, wrapf(ErrTooLarge, "item is %d bytes, the limit is %d", buf.Len(), MaxItemBytes)
	}
	b = buf.Bytes()
	// The key and TTL attributes, read without decoding the whole item.
	var vals [3]json.RawMessage
	if len(b) == 0 || b[0] != '{' || !topLevel(b, []string{h.def.Key, h.def.Sort, h.def.TTL}, vals[:]) {
		return nil, invalid("item", "must be a JSON object")
	}
	it := &parsedItem{raw: b}
	var err error
	if it.pk, it.sk, err = h.keyOf(vals[0], vals[0] != nil, vals[1], vals[1] != nil); err != nil {
		return nil, err
	}
	it.key = kvKey(it.pk, it.sk)
	if h.def.TTL != "" {
		if v := vals[2]; v != nil && string(v) != "null" {
			f, err := strconv.ParseFloat(string(v), 64)
			if len(v) == 0 || !(v[0] == '-' || ('0' <= v[0] && v[0] <= '9')) || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, invalid(h.def.TTL, "the TTL attribute must be a number of epoch seconds")
			}
			it.expires = int64(math.Ceil(f))
			if it.expires <= 0 {
				it.expires = 1 // expired long ago, but still "has a TTL"
			}
		}
	}
	return it, nil
}

// keyOf checks the key attributes of an item or a key object: the raw
// values of the partition and sort key attributes, and whether each is
// present.
func (h *tableHandle) keyOf(pkRaw json.RawMessage, hasPK bool, skRaw json.RawMessage, hasSK bool) (KeyValue, *KeyValue, error) {
	if !hasPK {
		return KeyValue{}, nil, invalid(h.def.Key, "the partition key attribute %q is missing", h.def.Key)
	}
	pk, err := parseKeyValueFast(pkRaw)
	if err == nil {
		err = checkKeyValue(pk, MaxPartitionKeyBytes)
	}
	if err != nil {
		return KeyValue{}, nil, invalid(h.def.Key, "partition key %s", err)
	}
	if h.def.Sort == "" {
		return pk, nil, nil
	}
	if !hasSK {
		return KeyValue{}, nil, invalid(h.def.Sort, "the sort key attribute %q is missing", h.def.Sort)
	}
	sk, err := parseKeyValueFast(skRaw)
	if err == nil {
		err = checkKeyValue(sk, MaxSortKeyBytes)
	}
	if err != nil {
		return KeyValue{}, nil, invalid(h.def.Sort, "sort key %s", err)
	}
	return pk, &sk, nil
}

// parseKey reads a key object: {"<key>": ..., "<sort>": ...}.
func (h *tableHandle) parseKey(raw json.RawMessage) (string, error) {
	var vals [2]json.RawMessage
	if !json.Valid(raw) || !topLevel(raw, []string{h.def.Key, h.def.Sort}, vals[:]) {
		return "", invalid("key", "must be a JSON object holding the key attributes")
	}
	pk, sk, err := h.keyOf(vals[0], vals[0] != nil, vals[1], vals[1] != nil)
	if err != nil {
		return "", err
	}
	return kvKey(pk, sk), nil
}

// stored is the last message of an item's subject.
type stored struct {
	rev     uint64 // 0: the subject has no message
	item    []byte // nil: absent (never written, deleted, or expired)
	time    time.Time
	expired bool
	dead    []byte // the item, when it has expired
}

// read returns the last message of key's subject, as the reads of writes
// need it.
func (h *tableHandle) read(ctx context.Context, key string) (stored, error) {
	return h.load(ctx, key, false)
}

// load returns the last message of key's subject: from the cache when it
// holds it (and, for timed, knows its time), else by a direct get.
func (h *tableHandle) load(ctx context.Context, key string, timed bool) (stored, error) {
	c := h.cache
	var tok readToken
	if c != nil {
		if e, ok := c.get(key, timed); ok {
			c.budget.hits.Inc()
			return h.view(e), nil
		}
		c.budget.misses.Inc()
		tok = c.beginRead()
	}
	var e cacheEntry
	var m *jetstream.RawStreamMsg
	var err error
	if h.leader {
		m, err = lastMsgFromLeader(ctx, h.nc, h.stream.CachedInfo().Config.Name, h.pre+key)
	} else {
		m, err = h.stream.GetLastMsgForSubject(ctx, h.pre+key)
	}
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return stored{}, fmt.Errorf("table %s: read: %w", h.def.Name, err)
	default:
		e = entryOf(m.Sequence, m.Header, m.Data, m.Time)
	}
	if c != nil {
		if e.item != nil {
			e.item = ownItem(m.Data)
		}
		c.fill(key, tok, e)
	}
	return h.view(e), nil
}

// entryOf reads a message of an item's subject.
func entryOf(seq uint64, hdr nats.Header, data []byte, t time.Time) cacheEntry {
	e := cacheEntry{rev: seq, time: t}
	if op := hdr.Get(hKVOperation); op == opDel || op == opPurge || hdr.Get(jetstream.MarkerReasonHeader) != "" {
		return e
	}
	e.item, _, _ = bytes.Cut(data, []byte{'\n'})
	if exp := hdr.Get(hExpires); exp != "" {
		if v, err := strconv.ParseInt(exp, 10, 64); err == nil {
			e.expires = v
		}
	}
	return e
}

// ownItem is the item of a message body (the item, then a newline and the
// item it replaced) on bytes of its own: a cached item must not keep the
// replaced one in memory.
func ownItem(body []byte) []byte {
	item, _, replaced := bytes.Cut(body, []byte{'\n'})
	if replaced {
		return bytes.Clone(item)
	}
	return item
}

// view is what a read makes of an entry now: an item, or an expired one.
func (h *tableHandle) view(e cacheEntry) stored {
	st := stored{rev: e.rev, time: e.time}
	if e.item == nil {
		return st
	}
	if e.expires != 0 && e.expires <= h.now().Unix() {
		st.expired, st.dead = true, e.item
		return st
	}
	st.item = e.item
	return st
}

var errWrongSeq = errors.New("revision changed")

// write publishes one message for key, expecting the subject's last
// sequence to be expect (0: no message).
func (h *tableHandle) write(ctx context.Context, key string, body []byte, expect uint64, del bool, expires int64, reason string) (uint64, error) {
	m := &nats.Msg{Subject: h.pre + key, Data: body,
		Header: nats.Header{jetstream.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(expect, 10)}}}
	if del {
		m.Header.Set(hKVOperation, opDel)
	}
	if expires != 0 {
		m.Header.Set(hExpires, strconv.FormatInt(expires, 10))
	}
	if reason != "" {
		m.Header.Set(hReason, reason)
	}
	c := h.cache
	var ev uint64
	if c != nil {
		h.index() // its consumer stamps the cache's entries with their time
		ev = c.beginWrite()
	}
	seq, err := publish(ctx, h.nc, m)
	if c != nil {
		// A failed write forgets the key (itemcache.go): it may have been
		// stored, or it found the stream ahead of what the cache said.
		e := cacheEntry{rev: seq, expires: expires}
		if err == nil && !del {
			e.item = ownItem(body)
		}
		c.wrote(key, ev, e, err == nil)
	}
	if err != nil {
		if wrongLastSequence(err) {
			return 0, errWrongSeq
		}
		if errors.Is(err, nats.ErrNoResponders) {
			return 0, wrapf(ErrNoSuchTable, "table %s", h.def.Name)
		}
		return 0, fmt.Errorf("table %s: write: %w", h.def.Name, err)
	}
	return seq, nil
}

func withOld(item, old []byte) []byte {
	if old == nil {
		return item
	}
	b := make([]byte, 0, len(item)+1+len(old))
	b = append(append(append(b, item...), '\n'), old...)
	return b
}

// Put stores an item, replacing any item with its key.
//
// # Errors
//
// ErrNoSuchTable, a field error for a bad item, ErrTooLarge, and
// ErrConditionFailed when opt's condition does not hold.
func (s *Service) Put(ctx context.Context, table string, item json.RawMessage, opt PutOptions) (_ uint64, err error) {
	defer s.ops.done(kindTable, table, opPut, time.Now(), &err)
	h, err := s.table(ctx, table)
	if err != nil {
		return 0, err
	}
	it, err := h.parseItem(item)
	if err != nil {
		return 0, err
	}
	return h.put(ctx, it, opt)
}

func (h *tableHandle) put(ctx context.Context, it *parsedItem, opt PutOptions) (uint64, error) {
	// An insert of a key the index has never seen skips the read: the
	// write expects the subject to be empty, which JetStream checks, so a
	// stale index costs one failed write and a read, never a lost update.
	skipRead := false
	if opt.IfRevision == 0 {
		if x := h.index(); x != nil {
			present, ok := x.has(it.key)
			skipRead = ok && !present
		}
	}
	for range maxWriteRetries {
		var cur stored
		if !skipRead {
			var err error
			if cur, err = h.read(ctx, it.key); err != nil {
				return 0, err
			}
		}
		skipRead = false
		if opt.IfAbsent && cur.item != nil {
			return 0, wrapf(ErrConditionFailed, "an item with this key exists (revision %d)", cur.rev)
		}
		if opt.IfRevision != 0 && (cur.item == nil || cur.rev != opt.IfRevision) {
			return 0, conditionError(opt.IfRevision, cur)
		}
		rev, err := h.write(ctx, it.key, withOld(it.raw, cur.item), cur.rev, false, it.expires, "")
		if errors.Is(err, errWrongSeq) {
			if opt.IfRevision != 0 {
				return 0, wrapf(ErrConditionFailed, "the item changed after revision %d", opt.IfRevision)
			}
			continue // raced another writer: read again
		}
		return rev, err
	}
	return 0, wrapf(ErrConditionFailed, "the item changed %d times while being written; try again", maxWriteRetries)
}

func conditionError(want uint64, cur stored) error {
	if cur.item == nil {
		return wrapf(ErrConditionFailed, "expected revision %d, but no item has this key", want)
	}
	return wrapf(ErrConditionFailed, "expected revision %d, the item is at revision %d", want, cur.rev)
}

// Get reads an item by key (a JSON object of its key attributes). Reads go
// to the stream's last message for the key (a direct get), so on a single
// node they see every write that has been acknowledged. With replicas in a
// cluster, a direct get may be answered by a replica that is behind.
func (s *Service) Get(ctx context.Context, table string, key json.RawMessage) (_ *Entry, err error) {
	defer s.ops.done(kindTable, table, opGet, time.Now(), &err)
	h, err := s.table(ctx, table)
	if err != nil {
		return nil, err
	}
	k, err := h.parseKey(key)
	if err != nil {
		return nil, err
	}
	return h.get(ctx, k)
}

func (h *tableHandle) get(ctx context.Context, key string) (*Entry, error) {
	cur, err := h.load(ctx, key, true)
	if err != nil {
		return nil, err
	}
	if cur.item == nil {
		return nil, wrapf(ErrNoSuchKey, "table %s: no item has this key", h.def.Name)
	}
	return &Entry{Item: cur.item, Revision: cur.rev, Updated: cur.time}, nil
}

// DeleteOptions make a delete conditional.
type DeleteOptions struct {
	IfRevision uint64 `json:"if_revision,omitempty"`
}

// Delete removes an item. Deleting an absent item is not an error, unless
// the delete is conditional.
func (s *Service) Delete(ctx context.Context, table string, key json.RawMessage, opt DeleteOptions) (err error) {
	defer s.ops.done(kindTable, table, opDelete, time.Now(), &err)
	h, err := s.table(ctx, table)
	if err != nil {
		return err
	}
	k, err := h.parseKey(key)
	if err != nil {
		return err
	}
	return h.delete(ctx, k, opt.IfRevision, "")
}

func (h *tableHandle) delete(ctx context.Context, key string, ifRev uint64, reason string) error {
	for range maxWriteRetries {
		cur, err := h.read(ctx, key)
		if err != nil {
			return err
		}
		body := cur.item
		if reason == "ttl" {
			// The sweeper removes exactly the revision that expired.
			if !cur.expired || cur.rev != ifRev {
				return wrapf(ErrConditionFailed, "revision %d is no longer the expired one", ifRev)
			}
			body = cur.dead
		} else if ifRev != 0 && (cur.item == nil || cur.rev != ifRev) {
			return conditionError(ifRev, cur)
		}
		if body == nil {
			return nil
		}
		_, err = h.write(ctx, key, body, cur.rev, true, 0, reason)
		if errors.Is(err, errWrongSeq) {
			if ifRev != 0 {
				return wrapf(ErrConditionFailed, "the item changed after revision %d", ifRev)
			}
			continue
		}
		return err
	}
	return wrapf(ErrConditionFailed, "the item changed %d times while being deleted; try again", maxWriteRetries)
}

// Update merges patch into the item with key (RFC 7396 JSON merge patch:
// objects merge recursively, null removes an attribute) and returns the
// new item. Without a condition a missing item is created from the key and
// the patch; with IfRevision it must exist at that revision. Key
// attributes cannot change.
func (s *Service) Update(ctx context.Context, table string, key, patch json.RawMessage, opt DeleteOptions) (_ *Entry, err error) {
	defer s.ops.done(kindTable, table, opUpdate, time.Now(), &err)
	h, err := s.table(ctx, table)
	if err != nil {
		return nil, err
	}
	k, err := h.parseKey(key)
	if err != nil {
		return nil, err
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(patch, &p); err != nil || p == nil {
		return nil, invalid("patch", "must be a JSON object")
	}
	var keyAttrs map[string]json.RawMessage
	_ = json.Unmarshal(key, &keyAttrs)
	for range maxWriteRetries {
		cur, err := h.read(ctx, k)
		if err != nil {
			return nil, err
		}
		if opt.IfRevision != 0 && (cur.item == nil || cur.rev != opt.IfRevision) {
			return nil, conditionError(opt.IfRevision, cur)
		}
		base := map[string]any{}
		if cur.item != nil {
			if err := json.Unmarshal(cur.item, &base); err != nil {
				return nil, fmt.Errorf("table %s: stored item unreadable: %w", h.def.Name, err)
			}
		} else {
			for _, a := range []string{h.def.Key, h.def.Sort} {
				if a != "" {
					var v any
					_ = json.Unmarshal(keyAttrs[a], &v)
					base[a] = v
				}
			}
		}
		merged, err := mergePatch(base, p)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(merged)
		if err != nil {
			return nil, invalid("patch", "%v", err)
		}
		it, err := h.parseItem(b)
		if err != nil {
			return nil, err
		}
		if it.key != k {
			return nil, invalid("patch", "an update cannot change the key attributes")
		}
		rev, err := h.write(ctx, k, withOld(it.raw, cur.item), cur.rev, false, it.expires, "")
		if errors.Is(err, errWrongSeq) {
			if opt.IfRevision != 0 {
				return nil, wrapf(ErrConditionFailed, "the item changed after revision %d", opt.IfRevision)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return &Entry{Item: it.raw, Revision: rev, Updated: h.writtenAt(ctx, k, rev)}, nil
	}
	return nil, wrapf(ErrConditionFailed, "the item changed %d times while being updated; try again", maxWriteRetries)
}

// writtenAt is the time JetStream stamped on the message at seq, the time
// a get of the item reads. The publish ack carries only the sequence, and
// the server, not the client, stamps the time, so learning it costs a read
// of that one message (by sequence: a later write to the key must not
// lend its time). The write has committed by then: if the message cannot
// be read (dropped by a concurrent write under history 1, a replica
// behind, ctx done), the node's clock stands in rather than reporting a
// committed update as failed, whose conditional retry would then fail.
func (h *tableHandle) writtenAt(ctx context.Context, key string, seq uint64) time.Time {
	// The key index's consumer may have delivered the stamp already.
	if c := h.cache; c != nil {
		if e, ok := c.get(key, true); ok && e.rev == seq && !e.time.IsZero() {
			return e.time
		}
	}
	m, err := h.stream.GetMsg(ctx, seq)
	if err != nil {
		return h.now().UTC()
	}
	return m.Time
}

// mergePatch applies an RFC 7396 merge patch to target.
func mergePatch(target map[string]any, patch map[string]json.RawMessage) (map[string]any, error) {
	for k, raw := range patch {
		if string(bytes.TrimSpace(raw)) == "null" {
			delete(target, k)
			continue
		}
		var sub map[string]json.RawMessage
		if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
			if err := json.Unmarshal(raw, &sub); err != nil {
				return nil, invalid("patch."+k, "%v", err)
			}
			inner, _ := target[k].(map[string]any)
			if inner == nil {
				inner = map[string]any{}
			}
			m, err := mergePatch(inner, sub)
			if err != nil {
				return nil, err
			}
			target[k] = m
			continue
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // keep numbers exact
		if err := dec.Decode(&v); err != nil {
			return nil, invalid("patch."+k, "%v", err)
		}
		target[k] = v
	}
	return target, nil
}

// BatchResult is the outcome of one item of a batch put.
type BatchResult struct {
	Revision uint64 `json:"revision,omitempty"`
	Error    string `json:"error,omitempty"`
	err      error
}

// Err is the item's error, if any.
func (r BatchResult) Err() error { return r.err }

// BatchPut puts up to MaxBatch items, each on its own (a batch is not a
// transaction): the results say which were written.
func (s *Service) BatchPut(ctx context.Context, table string, items []json.RawMessage) (_ []BatchResult, err error) {
	defer s.ops.done(kindTable, table, opBatchPut, time.Now(), &err)
	h, err := s.table(ctx, table)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 || len(items) > MaxBatch {
		return nil, invalid("items", "a batch holds 1 to %d items, not %d", MaxBatch, len(items))
	}
	parsed := make([]*parsedItem, len(items))
	seen := map[string]int{}
	for i, raw := range items {
		it, err := h.parseItem(raw)
		if err != nil {
			return nil, fmt.Errorf("items[%d]: %w", i, err)
		}
		if j, dup := seen[it.key]; dup {
			return nil, invalid(fmt.Sprintf("items[%d]", i), "has the same key as items[%d]", j)
		}
		seen[it.key] = i
		parsed[i] = it
	}
	out := make([]BatchResult, len(items))
	parallel(len(items), 16, func(i int) {
		rev, err := h.put(ctx, parsed[i], PutOptions{})
		out[i] = BatchResult{Revision: rev, err: err}
		if err != nil {
			out[i].Error = err.Error()
		}
	})
	return out, nil
}

// BatchGet reads up to MaxBatch items; the result has one entry per key,
// nil where no item has the key.
func (s *Service) BatchGet(ctx context.Context, table string, keys []json.RawMessage) (_ []*Entry, err error) {
	defer s.ops.done(kindTable, table, opBatchGet, time.Now(), &err)
	h, err := s.table(ctx, table)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 || len(keys) > MaxBatch {
		return nil, invalid("keys", "a batch holds 1 to %d keys, not %d", MaxBatch, len(keys))
	}
	ks := make([]string, len(keys))
	for i, raw := range keys {
		if ks[i], err = h.parseKey(raw); err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
	}
	out := make([]*Entry, len(keys))
	errs := make([]error, len(keys))
	parallel(len(keys), 16, func(i int) {
		e, err := h.get(ctx, ks[i])
		if err != nil && !errors.Is(err, ErrNoSuchKey) {
			errs[i] = err
		}
		out[i] = e
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// parallel runs f(0..n-1) on at most width goroutines and waits for them.
func parallel(n, width int, f func(i int)) {
	if n <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	width = min(width, n)
	next := make(chan int)
	var wg sync.WaitGroup
	wg.Add(width)
	for range width {
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
