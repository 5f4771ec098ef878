package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/store"
)

// Chunks no object names. A put publishes its chunks, then the info that
// names them (by their subject's NUID); a put that fails purges what it
// published, but one whose node is killed (kill -9, a crash, power loss)
// leaves its chunks behind, named by no info: invisible, never read, and
// never removed, a multipart completion's as much as a put's; so does a
// purge that failed (bucketHandle.purge). Two sweeps remove them:
//
//   - A sole writer (Config.SoleWriter: the node embeds its NATS server and
//     nobody else writes) knows that every put in progress is its own, so
//     once started it purges, in every bucket, the chunks that no info
//     names and that no put of this run published (putsThisRun records
//     those while the sweep runs).
//
//   - Every node, sole writer or not, sweeps every Config.OrphanAge/2 (at
//     the pace of its other upkeep, sweepLoop, so a minute after start) the
//     chunks that no info names and whose newest chunk is older than
//     OrphanAge (default a day), by the time the stream stored it. Another
//     node's put in progress looks the same but for its age: a put never
//     leaves its chunks alone that long, as it fails once it has waited
//     OrphanAge/2 since it published its last chunk (put), and a body
//     that sends nothing fails far sooner (httpbody).

// putsThisRun records the NUIDs of the puts begun while the sweep runs.
type putsThisRun struct {
	mu  sync.Mutex
	ids map[string]bool // nil: not recording
}

func (p *putsThisRun) start() {
	p.mu.Lock()
	p.ids = map[string]bool{}
	p.mu.Unlock()
}

func (p *putsThisRun) stop() {
	p.mu.Lock()
	p.ids = nil
	p.mu.Unlock()
}

// note records a put's NUID before its first chunk is published.
func (p *putsThisRun) note(id string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.ids != nil {
		p.ids[id] = true
	}
	p.mu.Unlock()
}

func (p *putsThisRun) has(id string) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ids[id]
}

// sweepOrphans purges, in every bucket, the chunks that no object info
// names and no put of this run published and, with age > 0, whose newest
// chunk is older than age; it returns how many objects' worth (chunk
// subjects) it purged. Without an age only a sole writer may run it, and
// only while this run's puts are recorded from before the first of them
// (Start): a put begun before the record would look like an orphan.
func (s *Service) sweepOrphans(ctx context.Context, age time.Duration) int {
	n := 0
	for _, d := range s.Buckets() {
		h, err := s.bucket(ctx, d.Name)
		if err != nil {
			continue
		}
		c, err := h.sweepOrphans(ctx, age, s.cfg.Now())
		n += c
		if err != nil && ctx.Err() == nil {
			s.log.Warn("data: sweeping chunks of unfinished puts failed", "bucket", d.Name, "err", err)
		}
	}
	s.ops.orphans.Add(float64(n))
	if n > 0 {
		if age > 0 {
			s.log.Info("data: purged the chunks of puts that did not finish", "objects", n, "age", age)
		} else {
			s.log.Info("data: purged the chunks of puts a previous run did not finish", "objects", n)
		}
	}
	return n
}

func (h *bucketHandle) sweepOrphans(ctx context.Context, age time.Duration, now time.Time) (int, error) {
	prefix := "$O." + h.store + ".C."
	info, err := h.stream.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return 0, err
	}
	if len(info.State.Subjects) == 0 {
		return 0, nil
	}
	// Every info must have been read, or a live object's chunks would
	// look unnamed: the sweep stops if fewer were read than the stream
	// held before (more may come, from this run's puts).
	infos, err := h.stream.Info(ctx, jetstream.WithSubjectFilter("$O."+h.store+".M.>"))
	if err != nil {
		return 0, err
	}
	var held uint64
	for _, c := range infos.State.Subjects {
		held += c
	}
	named, read, err := h.namedChunks(ctx)
	if err != nil {
		return 0, err
	}
	if read < held {
		return 0, fmt.Errorf("read %d of the %d object infos; nothing purged", read, held)
	}
	n := 0
	for subj := range info.State.Subjects {
		// A put of this run may have published its info since the infos
		// were read: it is recorded from before its first chunk.
		if id := strings.TrimPrefix(subj, prefix); named[id] || h.thisRun.has(id) {
			continue
		}
		if age > 0 {
			// A put in progress, here or elsewhere, published a chunk
			// lately; its info may have come since the infos were read.
			last, err := h.stream.GetLastMsgForSubject(ctx, subj)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return n, err
			}
			if now.Sub(last.Time) < age {
				continue
			}
		}
		if err := h.stream.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// namedChunks returns the NUIDs of the chunks that the bucket's infos
// name, every info the stream holds (a name's older infos too, which
// bucket triggers may not have read yet).
func (h *bucketHandle) namedChunks(ctx context.Context) (named map[string]bool, read uint64, err error) {
	named = map[string]bool{}
	err = store.ReadAll(ctx, h.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"$O." + h.store + ".M.>"},
	}, 1024, func(m jetstream.Msg, _ *jetstream.MsgMetadata) bool {
		read++
		var oi struct {
			NUID string `json:"nuid"`
		}
		if json.Unmarshal(m.Data(), &oi) == nil && oi.NUID != "" {
			named[oi.NUID] = true
		}
		return true
	})
	return named, read, err
}
