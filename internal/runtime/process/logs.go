package process

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nimbus-run/nimbus/internal/runtime"
)

// logCollector reads an instance's stdout and stderr (one pipe, so their
// order is kept) and attributes what it reads to invocations.
//
// Output read while invocations are in flight goes to each of them: with
// concurrency 1 that is exactly the invocation's output; with more it is
// best effort, since one process cannot tell us which request a line is for.
// Output read while none is in flight (init, or between invocations) is kept
// for the next one, so a cold start's record shows the init logs.
type logCollector struct {
	r          *os.File
	readerDone chan struct{}

	mu        sync.Mutex
	consumed  int64         // bytes read from the pipe so far
	changed   chan struct{} // closed and replaced after each read and at EOF
	eof       bool
	idle      logBuf
	sinks     map[*logBuf]struct{}
	tail      []byte // the last tailBytes of all output, for start errors
	tailBytes int
}

// logBuf keeps the last runtime.MaxLogBytes of what it is given: the end of
// a crashing invocation's output says more than its start.
type logBuf struct {
	b         []byte
	truncated bool
}

func (l *logBuf) write(p []byte) {
	l.b = append(l.b, p...)
	// Trim in batches so each byte is moved a bounded number of times.
	if len(l.b) > 2*runtime.MaxLogBytes {
		l.b = append(l.b[:0], l.b[len(l.b)-runtime.MaxLogBytes:]...)
		l.truncated = true
	}
}

func (l *logBuf) take() ([]byte, bool) {
	b, trunc := l.b, l.truncated
	if len(b) > runtime.MaxLogBytes {
		b, trunc = b[len(b)-runtime.MaxLogBytes:], true
	}
	return b, trunc
}

func newLogCollector(r *os.File) *logCollector {
	l := &logCollector{
		r:          r,
		readerDone: make(chan struct{}),
		changed:    make(chan struct{}),
		sinks:      make(map[*logBuf]struct{}),
		tailBytes:  2048,
	}
	go l.read()
	return l
}

func (l *logCollector) read() {
	defer close(l.readerDone)
	buf := make([]byte, 32<<10)
	for {
		n, err := l.r.Read(buf)
		l.mu.Lock()
		if n > 0 {
			p := buf[:n]
			l.consumed += int64(n)
			if len(l.sinks) == 0 {
				l.idle.write(p)
			}
			for s := range l.sinks {
				s.write(p)
			}
			l.tail = append(l.tail, p...)
			if len(l.tail) > 2*l.tailBytes {
				l.tail = append(l.tail[:0], l.tail[len(l.tail)-l.tailBytes:]...)
			}
		}
		if err != nil {
			l.eof = true
		}
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// begin starts collecting for one invocation.
func (l *logCollector) begin() *logBuf {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &logBuf{}
	*s, l.idle = l.idle, logBuf{}
	l.sinks[s] = struct{}{}
	return s
}

// end stops collecting for s and returns its logs. First it waits, at most
// wait, until the reader has consumed what the process had written to the
// pipe by now: output written before the response is in the pipe, but the
// reader may not have got to it yet.
func (l *logCollector) end(s *logBuf, wait time.Duration) ([]byte, bool) {
	target := l.pending()
	l.mu.Lock()
	target += l.consumed
	deadline := time.Now().Add(wait)
	for l.consumed < target && !l.eof {
		ch := l.changed
		l.mu.Unlock()
		left := time.Until(deadline)
		if left <= 0 {
			l.mu.Lock()
			break
		}
		t := time.NewTimer(left)
		select {
		case <-ch:
		case <-t.C:
		}
		t.Stop()
		l.mu.Lock()
	}
	delete(l.sinks, s)
	l.mu.Unlock()
	return s.take()
}

// pending is how many bytes wait in the pipe (FIONREAD, named TIOCINQ in x/sys), 0 if unknown.
func (l *logCollector) pending() int64 {
	rc, err := l.r.SyscallConn()
	if err != nil {
		return 0
	}
	var n int
	// Control, not Fd: Fd would switch the pipe to blocking mode, and Close
	// could then no longer interrupt the reader.
	_ = rc.Control(func(fd uintptr) {
		v, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ) // FIONREAD
		if err == nil {
			n = v
		}
	})
	return int64(n)
}

// lastOutput is the end of everything the process wrote, for errors about
// a process that failed to start.
func (l *logCollector) lastOutput() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.tail
	if len(t) > l.tailBytes {
		t = t[len(t)-l.tailBytes:]
	}
	return string(t)
}

// drain waits, at most wait, for the reader to reach EOF (every writer,
// including stray children, gone).
func (l *logCollector) drain(wait time.Duration) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-l.readerDone:
	case <-t.C:
	}
}

// close stops the reader and waits for it.
func (l *logCollector) close() {
	_ = l.r.Close()
	<-l.readerDone
}
