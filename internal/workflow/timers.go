package workflow

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// timerHeap is the one place executions wait: Waits, retry backoffs,
// execution timeouts and task deadlines of every execution are entries in
// one heap, served by one goroutine. An entry is never cancelled; a stale
// one fires into an execution that no longer has the action, which ignores
// it. That keeps rescheduling (heartbeats) a plain push.
type timerHeap struct {
	fire func(t timerEntry)

	mu   sync.Mutex
	h    timerSlice
	wake chan struct{}
}

type timerEntry struct {
	at     time.Time
	key    string // execution key
	action string
	kind   sigKind // sigFire for interpreter timers, sigDeadline for task deadlines
}

type timerSlice []timerEntry

func (s timerSlice) Len() int           { return len(s) }
func (s timerSlice) Less(i, j int) bool { return s[i].at.Before(s[j].at) }
func (s timerSlice) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s *timerSlice) Push(x any)        { *s = append(*s, x.(timerEntry)) }
func (s *timerSlice) Pop() any {
	old := *s
	e := old[len(old)-1]
	*s = old[:len(old)-1]
	return e
}

func newTimerHeap(fire func(timerEntry)) *timerHeap {
	return &timerHeap{fire: fire, wake: make(chan struct{}, 1)}
}

// add schedules e; a time in the past fires at once.
func (t *timerHeap) add(e timerEntry) {
	t.mu.Lock()
	heap.Push(&t.h, e)
	first := t.h[0].at.Equal(e.at)
	t.mu.Unlock()
	if first {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// len is the number of scheduled entries (tests, metrics).
func (t *timerHeap) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.h)
}

// run fires due entries until ctx ends.
func (t *timerHeap) run(ctx context.Context) {
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	for {
		t.mu.Lock()
		now := time.Now()
		var due []timerEntry
		for len(t.h) > 0 && !t.h[0].at.After(now) {
			due = append(due, heap.Pop(&t.h).(timerEntry))
		}
		wait := time.Hour
		if len(t.h) > 0 {
			wait = t.h[0].at.Sub(now)
		}
		t.mu.Unlock()
		for _, e := range due {
			t.fire(e)
		}
		tm.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.wake:
			if !tm.Stop() {
				select {
				case <-tm.C:
				default:
				}
			}
		case <-tm.C:
		}
	}
}
