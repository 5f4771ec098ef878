package wasm

import (
	"fmt"
	"strings"
)

// tailSize is how much of the end of a stream is always kept: a crash's
// message and stack are at the end, so a long log keeps its head and its tail.
const tailSize = 4 << 10

// logBuffer captures a bounded log stream: at most limit bytes, made of the
// head of the stream, a marker, and its last tailSize bytes. It is not safe
// for concurrent use; each has one writer (the guest's goroutine) and is read
// after a happens-before edge (a channel receive or the guest's exit).
type logBuffer struct {
	limit int
	head  []byte
	tail  []byte // the bytes after head; only its last tailSize bytes are kept
	total int64
}

func newLogBuffer(limit int) *logBuffer { return &logBuffer{limit: limit} }

// headLimit leaves room for the tail and the truncation marker.
func (b *logBuffer) headLimit() int { return max(b.limit-tailSize-64, 0) }

func (b *logBuffer) Write(p []byte) (int, error) {
	n := len(p)
	b.total += int64(n)
	if room := b.headLimit() - len(b.head); room > 0 {
		take := min(room, len(p))
		b.head = append(b.head, p[:take]...)
		p = p[take:]
	}
	if len(p) > 0 {
		b.tail = append(b.tail, p...)
		// Compact lazily so that appends stay amortized O(1).
		if len(b.tail) > 4*tailSize {
			b.tail = append(b.tail[:0], b.tail[len(b.tail)-tailSize:]...)
		}
	}
	return n, nil
}

// Truncated reports whether bytes were dropped.
func (b *logBuffer) Truncated() bool { return b.total > int64(len(b.head)+min(len(b.tail), tailSize)) }

// Bytes returns the captured log: the whole stream if it fit, else its head,
// a marker saying how much was dropped, and its tail.
func (b *logBuffer) Bytes() []byte {
	tail := b.tail
	if len(tail) > tailSize {
		tail = tail[len(tail)-tailSize:]
	}
	if !b.Truncated() {
		return append(append([]byte(nil), b.head...), tail...)
	}
	dropped := b.total - int64(len(b.head)) - int64(len(tail))
	out := make([]byte, 0, len(b.head)+len(tail)+64)
	out = append(out, b.head...)
	out = fmt.Appendf(out, "\n[... %d bytes of logs dropped ...]\n", dropped)
	return append(out, tail...)
}

// Len is the number of bytes written so far.
func (b *logBuffer) Len() int64 { return b.total }

// errorSummary picks a message for a failed run from the end of its output.
// For a Go runtime's "panic:" or "fatal error:" report, the message is that
// line and the trace is the stack that follows; otherwise the message is the
// last lines, at most 1 KB.
func errorSummary(out []byte) (msg string, trace []string) {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return "", nil
	}
	const maxMessage, maxTrace = 1 << 10, 64
	for _, marker := range []string{"panic: ", "fatal error: "} {
		i := strings.LastIndex(s, "\n"+marker) + 1
		if i == 0 && !strings.HasPrefix(s, marker) {
			continue
		}
		msg, rest, _ := strings.Cut(s[i:], "\n")
		for _, line := range strings.Split(rest, "\n") {
			if line = strings.TrimRight(line, " \t\r"); line != "" && len(trace) < maxTrace {
				trace = append(trace, line)
			}
		}
		return truncateString(msg, maxMessage), trace
	}
	if len(s) > maxMessage {
		s = "..." + s[len(s)-maxMessage:]
	}
	return s, nil
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// boundedBuffer collects a command's stdout up to limit bytes.
type boundedBuffer struct {
	limit    int
	buf      []byte
	overflow bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - len(b.buf); len(p) > room {
		b.overflow = true
		b.buf = append(b.buf, p[:max(room, 0)]...)
		return len(p), nil // keep the guest running; the result is rejected later
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}
