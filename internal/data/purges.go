package data

import (
	"context"
	"time"
)

// Purging the chunks of replaced and deleted objects. A put that replaces
// an object, and a delete, publish the info (or the delete marker) that
// leaves the old chunks unreachable, and queue their purge: JetStream
// purges a subject a message at a time, loading and checking each, which
// a delete and an overwriting put waited for: deleting a 64 MB object took
// 14-15 ms, now 0.13-0.17; putting one over another, on an idle node, 65-69
// ms, now 49-53 (BenchmarkLargeObjectWrites). One goroutine works the
// queue; a full queue purges in the caller. The chunks of a purge lost to
// a crash are named by no info, and the sweeps collect them (orphans.go).

// purgeQueue bounds the purges waiting: a subject each.
const purgeQueue = 4096

type purgeJob struct {
	h       *bucketHandle
	subject string
}

// purgeLater queues the purge of subject, or purges it now when the queue
// is full (or h has none).
func (h *bucketHandle) purgeLater(ctx context.Context, subject string) {
	if h.stream == nil {
		return
	}
	if h.purges != nil {
		select {
		case h.purges <- purgeJob{h, subject}:
			return
		default:
		}
	}
	h.purge(context.WithoutCancel(ctx), subject)
}

// purgeLoop works the purge queue until the Service stops, and then what
// is queued, for a few seconds at most. A purge is not cut short by the
// stop: its subject would be left half purged.
func (s *Service) purgeLoop() {
	defer s.wg.Done()
	purge := func(ctx context.Context, j purgeJob) {
		ctx, cancel := context.WithTimeout(ctx, ackWait)
		defer cancel()
		j.h.purge(ctx, j.subject)
	}
	for {
		select {
		case j := <-s.purges:
			purge(context.WithoutCancel(s.ctx), j)
		case <-s.ctx.Done():
			ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 5*time.Second)
			defer cancel()
			for ctx.Err() == nil {
				select {
				case j := <-s.purges:
					purge(ctx, j)
				default:
					return
				}
			}
			return
		}
	}
}
