package schedule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TickID names one firing of one schedule. Every node computes the same ID
// for the same tick, so the runner can claim it exactly once cluster-wide
// (a JetStream Nats-Msg-Id, or a KV create-if-absent key).
//
// The ID uses only [A-Za-z0-9_.-], valid in both places: the name with every
// other byte (and '_') escaped as _XX, a '.', then the fire time in UTC
// ("20261201T100000Z", with "_nnnnnnnnn" nanoseconds when not whole). The
// escaping is injective, so distinct names never share IDs.
func TickID(name string, fire time.Time) string {
	var b strings.Builder
	b.Grow(len(name) + 20)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "_%02X", c)
	}
	b.WriteByte('.')
	u := fire.UTC()
	b.WriteString(u.Format("20060102T150405Z"))
	if ns := u.Nanosecond(); ns != 0 {
		fmt.Fprintf(&b, "_%09d", ns)
	}
	return b.String()
}

// Bounds of Missed, so that a scheduler down for a month on a per-second
// schedule neither replays nor lists millions of ticks.
const (
	MaxCatchUp      = 100     // at most this many ticks are returned to fire
	MaxMissedListed = 10      // at most this many missed ticks are listed
	MaxMissedCount  = 100_000 // counting missed ticks stops here
)

// Missed works out, after a scheduler was stopped, which ticks in
// (lastFired, now] to fire late and which to skip. Ticks no older than
// window are fired, oldest first, at most MaxCatchUp of them (the most recent
// ones); older ticks, and in-window ticks beyond MaxCatchUp, are missed.
// missed lists the first MaxMissedListed of those, and missedCount counts
// them up to MaxMissedCount (a count equal to MaxMissedCount means "at
// least"). With a zero window only a tick at exactly now fires.
func Missed(s Schedule, lastFired, now time.Time, window time.Duration) (fire, missed []time.Time, missedCount int) {
	if !now.After(lastFired) {
		return nil, nil, 0
	}
	cutoff := now.Add(-window)
	t := lastFired
	// Ticks before the window: listed (a few) and counted (bounded).
	for missedCount < MaxMissedCount {
		next, ok := s.Next(t)
		if !ok || next.After(now) || !next.Before(cutoff) {
			break
		}
		if len(missed) < MaxMissedListed {
			missed = append(missed, next)
		}
		missedCount++
		t = next
	}
	if missedCount == MaxMissedCount {
		// Jump to the window without walking the rest of the gap.
		t = cutoff.Add(-time.Nanosecond)
		if t.Before(lastFired) {
			t = lastFired
		}
	}
	// Ticks in the window, keeping the latest MaxCatchUp in a ring.
	var ring []time.Time
	head := 0
	for {
		next, ok := s.Next(t)
		if !ok || next.After(now) {
			break
		}
		t = next
		if len(ring) < MaxCatchUp {
			ring = append(ring, next)
			continue
		}
		dropped := ring[head]
		ring[head] = next
		head = (head + 1) % MaxCatchUp
		if len(missed) < MaxMissedListed {
			missed = append(missed, dropped)
		}
		if missedCount < MaxMissedCount {
			missedCount++
		}
	}
	fire = append(ring[head:len(ring):len(ring)], ring[:head]...)
	if len(fire) == 0 {
		fire = nil
	}
	return fire, missed, missedCount
}

// Invocation is what a schedule's input template may refer to: EventBridge
// Scheduler's context attributes.
type Invocation struct {
	Name    string    // schedule name
	Fire    time.Time // scheduled (not actual) fire time
	Attempt int       // 1 for the first try; retries count up
	ARN     string    // optional; defaults to ScheduleARN(Name)
}

// ScheduleARN is the ARN-shaped identifier Nimbus gives a schedule, so that
// code written for EventBridge Scheduler that splits ARNs keeps working.
func ScheduleARN(name string) string {
	return "arn:nimbus:scheduler:::schedule/default/" + name
}

// RenderInput fills a schedule's input template for the first attempt of the
// tick at fire; see Invocation.Render.
func RenderInput(template []byte, fire time.Time, name string) ([]byte, error) {
	return Invocation{Name: name, Fire: fire, Attempt: 1}.Render(template)
}

// Render replaces EventBridge Scheduler's context attributes in template:
//
//	<aws.scheduler.scheduled-time>  fire time, RFC 3339 in UTC
//	<aws.scheduler.schedule-arn>    ARN, or ScheduleARN(Name)
//	<aws.scheduler.execution-id>    TickID(Name, Fire): the same on every node
//	                                and every retry of the tick
//	<aws.scheduler.attempt-number>  Attempt, in decimal
//
// The values are strings and meant to sit inside JSON strings, as in
// {"at": "<aws.scheduler.scheduled-time>"}; they are JSON-escaped, so a
// template that is valid JSON stays valid JSON. Other text is left as
// written, and an empty template renders as "{}".
func (inv Invocation) Render(template []byte) ([]byte, error) {
	if len(bytes.TrimSpace(template)) == 0 {
		return []byte("{}"), nil
	}
	arn := inv.ARN
	if arn == "" {
		arn = ScheduleARN(inv.Name)
	}
	attempt := inv.Attempt
	if attempt < 1 {
		attempt = 1
	}
	r := strings.NewReplacer(
		"<aws.scheduler.scheduled-time>", jsonEscape(inv.Fire.UTC().Format(time.RFC3339)),
		"<aws.scheduler.schedule-arn>", jsonEscape(arn),
		"<aws.scheduler.execution-id>", jsonEscape(TickID(inv.Name, inv.Fire)),
		"<aws.scheduler.attempt-number>", strconv.Itoa(attempt),
	)
	return []byte(r.Replace(string(template))), nil
}

func jsonEscape(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	q := bytes.TrimSpace(b.Bytes())
	return string(q[1 : len(q)-1])
}
