package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/btree"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// objIndex is one node's in-memory, ordered set of a bucket's object
// names, so that a listing page seeks to its prefix or cursor and reads
// the info of the objects it returns, instead of reading the info of every
// object in the bucket on every page: the object store keeps an object's
// info under a subject that holds its name in base64, in no useful order,
// and has no ordered listing.
//
// Its feed (see feed for consistency) is an ordered consumer on the
// bucket's info subjects: the last info of every name, then every new one.
// An info marked deleted removes its name.
//
// Memory is the names (about their length plus a string header and the
// B-tree's share each): a million objects with 40-byte keys take some 70
// MB on each node that lists the bucket, until it has not been listed for
// indexIdle. docs/data.md says so.
//
// The names are in a B-tree (github.com/google/btree), as a table's keys
// are: a put into a sorted slice of a million names would move 8 MB.
type objIndex struct {
	feed
	names *btree.BTreeG[string]
}

// indexIdle is how long an index lives unused: a bucket's without a
// listing, a table's without a read or write through it. Then
// dropIdleIndexes stops it and frees its memory, and the next use builds
// it again (a bucket's reads every object's info once, a table's every
// key's last message).
var indexIdle = 10 * time.Minute

// dropIdleIndexes stops the indexes of the buckets and tables this node
// has not used for indexIdle.
func (s *Service) dropIdleIndexes() {
	now := time.Now()
	s.mu.RLock()
	buckets := make([]*bucketHandle, 0, len(s.stores)+1)
	for _, h := range s.stores {
		buckets = append(buckets, h)
	}
	if s.partsH != nil {
		buckets = append(buckets, s.partsH)
	}
	tables := make([]*tableHandle, 0, len(s.open))
	for _, h := range s.open {
		tables = append(tables, h)
	}
	s.mu.RUnlock()
	for _, h := range buckets {
		h.idx.dropIf(func(x *objIndex) bool { return x.idleFor(now, indexIdle) })
	}
	for _, h := range tables {
		h.idx.dropIf(func(x *keyIndex) bool { return x.idleFor(now, indexIdle) })
	}
}

// startObjIndex builds the index of h and keeps it current until stop.
func startObjIndex(h *bucketHandle) (*objIndex, error) {
	infos := "$O." + h.store + ".M.>"
	x := &objIndex{feed: feed{what: "bucket " + h.name, partOf: infos}, names: btree.NewOrderedG[string](32)}
	err := x.start(h.stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{infos}},
		func(m jetstream.Msg, md *jetstream.MsgMetadata) {
			var oi struct {
				Name    string `json:"name"`
				Deleted bool   `json:"deleted"`
			}
			err := json.Unmarshal(m.Data(), &oi)
			x.mu.Lock()
			defer x.mu.Unlock()
			defer x.advance(md.Sequence.Stream)
			switch {
			case err != nil || oi.Name == "":
			case oi.Deleted:
				x.names.Delete(oi.Name)
			default:
				x.names.ReplaceOrInsert(oi.Name)
			}
		})
	if err != nil {
		return nil, err
	}
	return x, nil
}

// listCursorPastPrefix follows a common prefix in a listing's Next: the
// listing goes on after every key under the prefix.
const listCursorPastPrefix = "\U0010FFFF"

// page returns a listing page: up to opt.Limit keys and common prefixes
// in key order, after opt.After, under opt.Prefix, with the keys that hold
// opt.Delimiter after the prefix rolled up into their common prefix; more
// says whether anything follows, next is what to continue after.
func (x *objIndex) page(opt ListOptions) (keys, prefixes []string, more bool, next string) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	from := max(opt.Prefix, opt.After)
	for {
		restart := ""
		x.names.AscendGreaterOrEqual(from, func(k string) bool {
			if !strings.HasPrefix(k, opt.Prefix) {
				return false
			}
			if k <= opt.After {
				return true
			}
			if len(keys)+len(prefixes) == opt.Limit {
				more = true
				return false
			}
			if opt.Delimiter != "" {
				if i := strings.Index(k[len(opt.Prefix):], opt.Delimiter); i >= 0 {
					cp := k[:len(opt.Prefix)+i+len(opt.Delimiter)]
					if cp+listCursorPastPrefix > opt.After {
						prefixes = append(prefixes, cp)
						next = cp + listCursorPastPrefix
					}
					// Go on at the first name past every one under cp
					// (cp ends in a byte of valid UTF-8, below 0xff).
					restart = cp[:len(cp)-1] + string([]byte{cp[len(cp)-1] + 1})
					return false
				}
			}
			keys = append(keys, k)
			next = k
			return true
		})
		if restart == "" {
			break
		}
		from = restart
	}
	if !more {
		next = ""
	}
	return keys, prefixes, more, next
}

// infos reads the infos of keys, in their order, in one multi-subject
// direct get (JetStream's "multi_last": the last message of each subject,
// at most 1024 subjects, resolved through the stream's per-subject index):
// a page of 1000 costs one round trip, not 1000. Keys deleted since the
// index listed them are left out. Like the object store's own GetInfo,
// it is served by any replica of the stream.
func (h *bucketHandle) infos(ctx context.Context, keys []string) ([]ObjectInfo, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	if !h.stream.CachedInfo().Config.AllowDirect {
		return h.infosFromLeader(ctx, keys)
	}
	req := struct {
		Subjects []string `json:"multi_last"`
		Batch    int      `json:"batch"`
	}{make([]string, len(keys)), len(keys)}
	for i, k := range keys {
		req.Subjects[i] = h.metaSubject(k)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, infosTimeout)
	defer cancel()
	nc := h.js.Conn()
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(directGet+h.stream.CachedInfo().Config.Name, inbox, body); err != nil {
		return nil, err
	}
	at := make(map[string]int, len(keys))
	for i, k := range keys {
		at[k] = i
	}
	found := make([]*ObjectInfo, len(keys))
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("read %d object infos: %w", len(keys), err)
		}
		if status := m.Header.Get("Status"); status != "" {
			if status != "204" && status != "404" { // 204: the end; 404: none found
				return nil, fmt.Errorf("read %d object infos: %s %s", len(keys), status, m.Header.Get("Description"))
			}
			break
		}
		var oi jetstream.ObjectInfo
		if err := json.Unmarshal(m.Data, &oi); err != nil || oi.Deleted {
			continue
		}
		if i, ok := at[oi.Name]; ok {
			oi.ModTime, _ = time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
			found[i] = infoOf(h.name, &oi)
		}
	}
	return present(found), nil
}

// present returns the infos found, in their order, leaving out the keys
// that held no object.
func present(found []*ObjectInfo) []ObjectInfo {
	out := make([]ObjectInfo, 0, len(found))
	for _, o := range found {
		if o != nil {
			out = append(out, *o)
		}
	}
	return out
}

// infosFromLeader reads the infos of keys, in their order, one request
// each (16 at a time), from the leader of a replicated bucket's stream,
// which serves no direct gets (leader.go).
func (h *bucketHandle) infosFromLeader(ctx context.Context, keys []string) ([]ObjectInfo, error) {
	out := make([]*ObjectInfo, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, k := range keys {
		g.Go(func() error {
			oi, err := h.obs.GetInfo(gctx, k)
			if errors.Is(err, jetstream.ErrObjectNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			out[i] = infoOf(h.name, oi)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return present(out), nil
}

// directGet is the subject prefix of a stream's direct gets (the store's
// JetStream has the default API prefix), and infosTimeout bounds one.
const (
	directGet    = "$JS.API.DIRECT.GET."
	infosTimeout = 10 * time.Second
)

// indexed returns the bucket's name index, synced with the stream (see
// feed), or nil when it is not usable (callers then list through the
// object store).
func (h *bucketHandle) indexed(ctx context.Context) *objIndex {
	x := h.idx.get(func() (*objIndex, error) {
		x, err := startObjIndex(h)
		if err != nil && h.log != nil {
			h.log.Warn("data: name index not started; listings read every object's info", "bucket", h.name, "err", err)
		}
		return x, err
	})
	if x == nil {
		return nil
	}
	x.touch()
	if x.synced(ctx, h.stream) {
		return x
	}
	return nil
}

// closeIndex stops the name index, if one runs.
func (h *bucketHandle) closeIndex() { h.idx.close() }
