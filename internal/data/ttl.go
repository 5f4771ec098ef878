package data

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/store"
)

// The TTL sweeper removes items whose TTL attribute lies in the past.
// Reads already hide them (the expiry travels in a header of each write),
// so the sweeper only reclaims space and emits the REMOVE events, marked
// with the reason "ttl" as DynamoDB marks its TTL deletions.
//
// Every node sweeps every table with a TTL attribute; a deletion is
// conditional on the revision that expired, so two nodes never delete (nor
// emit an event for) the same expiry twice. A sweep reads the headers of
// every item's last message: its cost grows with the table.

// sweepLoop runs the node's upkeep every TTLInterval: expired items,
// superseded infos, idle indexes, and, every OrphanAge/2 at most, the
// chunks of dead puts (orphans.go), the first time on the first tick.
func (s *Service) sweepLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.TTLInterval)
	defer t.Stop()
	var orphansAt time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			if s.claim(s.ctx, choreTTL, s.cfg.TTLInterval) {
				s.ops.chores.WithLabelValues(choreTTL).Inc()
				s.SweepExpired(s.ctx)
			}
			s.CompactInfos(s.ctx)
			s.dropIdleIndexes()
			if !now.Before(orphansAt) {
				if s.claim(s.ctx, choreOrphans, s.cfg.OrphanAge/2) {
					s.ops.chores.WithLabelValues(choreOrphans).Inc()
					s.sweepOrphans(s.ctx, s.cfg.OrphanAge)
				}
				orphansAt = now.Add(s.cfg.OrphanAge / 2)
			}
		}
	}
}

// SweepExpired runs one sweep over every table with a TTL attribute and
// returns how many items it removed.
func (s *Service) SweepExpired(ctx context.Context) int {
	n := 0
	for _, d := range s.Tables() {
		if d.TTL == "" {
			continue
		}
		h, err := s.table(ctx, d.Name)
		if err != nil {
			continue
		}
		c, err := h.sweep(ctx)
		n += c
		if err != nil && ctx.Err() == nil {
			s.log.Warn("data: TTL sweep failed", "table", d.Name, "err", err)
		}
	}
	return n
}

type expiredItem struct {
	key string
	rev uint64
}

func (h *tableHandle) sweep(ctx context.Context) (int, error) {
	now := h.now().Unix()
	var expired []expiredItem
	err := store.ReadAll(ctx, h.stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy, HeadersOnly: true,
		FilterSubjects: []string{h.pre + ">"},
	}, 1024, func(m jetstream.Msg, md *jetstream.MsgMetadata) bool {
		hdr := m.Headers()
		if e := hdr.Get(hExpires); e != "" && hdr.Get(hKVOperation) == "" {
			if t, err := strconv.ParseInt(e, 10, 64); err == nil && t <= now {
				expired = append(expired, expiredItem{key: strings.TrimPrefix(m.Subject(), h.pre), rev: md.Sequence.Stream})
			}
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range expired {
		if err := h.delete(ctx, e.key, e.rev, "ttl"); err == nil {
			n++
		} else if !errors.Is(err, ErrConditionFailed) {
			return n, err
		}
	}
	return n, nil
}
