package data

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// An object's infos, and the events bucket triggers read from them.
//
// Every put and delete writes one info on $O.<store>.M.<name>, and bucket
// triggers read those messages as their events. The object store's own
// writes replace a name's previous info with a subject rollup, which
// removes it from the stream at once, read or not: a trigger one write of
// a name behind (an upload then its deletion, or two uploads of one key)
// never saw the first, and its ObjectCreated was lost.
//
// So an info replaces the previous ones with a rollup only when every
// trigger of the bucket has read past them (the previous info's sequence
// is at or below the bucket's floor); otherwise they stay, the name is
// noted, and compactInfos purges them once the triggers have passed.
// Readers take a name's last info either way (direct gets of the last
// message, the object store's listing of the last per subject, the name
// index applying them in order).
//
// The floor is the least acknowledgement floor of the bucket's trigger
// consumers, and the stream's last sequence when they were listed (a
// trigger created later starts after it). It only ever lags the truth,
// which keeps infos longer, never shorter, so each node keeps its own,
// read by a sweep that has infos to purge and by a write that would keep
// an old info when the floor is over floorRefresh old or was never read
// (so that a key written again a few seconds later is rolled up at once,
// not noted and purged on its own at the next sweep). A node killed with
// names noted leaves their old infos (a few hundred bytes each) until the
// name's next write rolls them up.

// maxNoted bounds the names a bucket handle keeps for compaction: beyond
// it, old infos wait for their name's next write.
const maxNoted = 100_000

// floorRefresh is how old a floor may be before a write that would keep an
// old info reads it again.
const floorRefresh = time.Second

// infoHistory is a bucket handle's floor and the names it wrote whose old
// infos wait for the triggers.
type infoHistory struct {
	mu         sync.Mutex
	floor      uint64
	read       time.Time         // when floor was read
	refreshing bool              // a write is reading it
	noted      map[string]uint64 // meta subject -> the sequence of its newest info
}

func (x *infoHistory) getFloor() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.floor
}

// claimRefresh says whether the caller should read the floor again: it is
// over floorRefresh old and no other write is reading it.
func (x *infoHistory) claimRefresh(now time.Time) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.refreshing || now.Sub(x.read) < floorRefresh {
		return false
	}
	x.refreshing = true
	return true
}

// note records that the infos of subject below seq are superseded.
func (x *infoHistory) note(subject string, seq uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.noted == nil {
		x.noted = map[string]uint64{}
	}
	if _, ok := x.noted[subject]; ok || len(x.noted) < maxNoted {
		x.noted[subject] = max(x.noted[subject], seq)
	}
}

// refreshFloor reads the bucket's floor: the stream's last sequence, then
// the acknowledgement floor of each trigger consumer.
func (h *bucketHandle) refreshFloor(ctx context.Context) error {
	floor, err := h.readFloor(ctx)
	h.hist.mu.Lock()
	defer h.hist.mu.Unlock()
	h.hist.refreshing, h.hist.read = false, time.Now()
	if err != nil {
		return err
	}
	h.hist.floor = floor
	return nil
}

func (h *bucketHandle) readFloor(ctx context.Context) (uint64, error) {
	info, err := h.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	floor := info.State.LastSeq
	cs := h.stream.ListConsumers(ctx)
	for ci := range cs.Info() {
		if strings.HasPrefix(ci.Name, triggerConsumerPrefix) {
			floor = min(floor, ci.AckFloor.Stream)
		}
	}
	return floor, cs.Err()
}

// publishInfo writes an info of key replacing the one at sequence last (0:
// none), refused if the name's last info is another (wrongLastSequence).
// The previous infos are rolled up when the triggers have read them, and
// noted for compaction otherwise.
func (h *bucketHandle) publishInfo(ctx context.Context, info *jetstream.ObjectInfo, last uint64) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	subj := h.metaSubject(info.Name)
	m := nats.NewMsg(subj)
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last, 10))
	rollup := last <= h.hist.getFloor()
	if !rollup && h.hist.claimRefresh(time.Now()) && h.refreshFloor(ctx) == nil {
		rollup = last <= h.hist.getFloor()
	}
	if rollup {
		m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	}
	m.Data = b
	ack, err := h.js.PublishMsg(ctx, m)
	if err != nil {
		return err
	}
	if !rollup {
		h.hist.note(subj, ack.Sequence)
	}
	return nil
}

// remove writes key's delete marker and purges its chunks. An absent or
// already deleted object is left as it is (no second ObjectRemoved). A
// put landing meanwhile is deleted too: the marker replaces the info it
// read, or it reads again, and check (when not nil) vets every info read,
// absent (nil) or deleted ones included, before the marker replaces it.
func (h *bucketHandle) remove(ctx context.Context, key string, check func(*jetstream.ObjectInfo) error) error {
	for {
		old, last, err := h.lastInfo(ctx, key)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(old); err != nil {
				return err
			}
		}
		if old == nil || old.Deleted {
			return nil
		}
		marker := *old
		marker.Deleted, marker.Size, marker.Chunks, marker.Digest, marker.ModTime = true, 0, 0, "", time.Time{}
		err = h.publishInfo(ctx, &marker, last)
		if wrongLastSequence(err) {
			continue
		}
		if err != nil {
			return err
		}
		if old.NUID != "" {
			h.purgeLater(ctx, "$O."+h.store+".C."+old.NUID)
		}
		return nil
	}
}

// compactInfos purges the superseded infos the triggers of h have read,
// of the names this node noted, and returns how many names it finished.
func (h *bucketHandle) compactInfos(ctx context.Context) (int, error) {
	h.hist.mu.Lock()
	empty := len(h.hist.noted) == 0
	h.hist.mu.Unlock()
	if empty {
		return 0, nil
	}
	if err := h.refreshFloor(ctx); err != nil {
		return 0, err
	}
	h.hist.mu.Lock()
	floor := h.hist.floor
	type entry struct {
		subj string
		seq  uint64
	}
	var todo []entry
	for subj, seq := range h.hist.noted {
		todo = append(todo, entry{subj, seq})
	}
	h.hist.mu.Unlock()
	done := 0
	for _, e := range todo {
		// Up to, not including, the newest info or the first one a
		// trigger has not read.
		below := min(e.seq, floor+1)
		if below <= 1 {
			continue
		}
		if err := h.stream.Purge(ctx, jetstream.WithPurgeSubject(e.subj), jetstream.WithPurgeSequence(below)); err != nil {
			return done, fmt.Errorf("bucket %s: compacting infos: %w", h.name, err)
		}
		if below == e.seq {
			h.hist.mu.Lock()
			if h.hist.noted[e.subj] == e.seq {
				delete(h.hist.noted, e.subj)
			}
			h.hist.mu.Unlock()
			done++
		}
	}
	return done, nil
}

// CompactInfos compacts the infos of every bucket open on this node (see
// compactInfos) and returns how many names it finished; the sweeper runs
// it every TTLInterval.
func (s *Service) CompactInfos(ctx context.Context) int {
	s.mu.RLock()
	hs := make([]*bucketHandle, 0, len(s.stores))
	for _, h := range s.stores {
		hs = append(hs, h)
	}
	s.mu.RUnlock()
	n := 0
	for _, h := range hs {
		c, err := h.compactInfos(ctx)
		n += c
		if err != nil && ctx.Err() == nil {
			s.log.Warn("data: compacting object infos failed", "bucket", h.name, "err", err)
		}
	}
	return n
}
