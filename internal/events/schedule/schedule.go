// Package schedule owns schedule expressions: parsing them, computing the
// next fire time, naming each tick so a cluster can fire it once, working out
// what a stopped scheduler missed, and rendering a schedule's input.
//
// It does not own timers, persistence or delivery: the scheduler runner in
// the events package sleeps until Next, claims TickID in JetStream (message
// ID or KV create-if-absent) and invokes the target. Nothing here does I/O.
//
// # Expressions
//
//	cron(0 12 * * ? *)          AWS form: minute hour day-of-month month day-of-week year
//	0 */5 * * * *               cron with seconds (6 fields) or without (5 fields)
//	@daily, @hourly, @weekly, @monthly, @yearly, @annually, @midnight
//	@every 90s                  a Go duration, at least one second
//	rate(5 minutes)             AWS form: minute(s), hour(s), day(s)
//	at(2026-12-01T10:00:00Z)    one-off; without an offset the time is local
//
// Any of them may start with "CRON_TZ=Zone " or "TZ=Zone " (an IANA zone
// name). Times without a zone are read in that zone, else in the location
// given to ParseInLocation, else UTC. UTC rather than the machine's zone is
// the default so that every node of a cluster computes the same ticks.
//
// # Anchoring
//
// rate() and @every are anchored on the Unix epoch: rate(5 minutes) fires at
// :00, :05, :10 ... UTC and rate(1 day) at 00:00 UTC, whatever the time a
// node starts. AWS anchors a rate on the rule's creation time instead; epoch
// anchoring is chosen because it needs no stored state for all nodes to agree
// on the ticks, which TickID relies on.
//
// # Daylight saving time
//
// For cron() and the 5/6-field forms in a zone with daylight saving time, a
// wall-clock time that does not exist (spring forward) does not fire that
// day, and one that occurs twice (fall back) fires once, at its first
// occurrence: each wall-clock time fires at most once. A schedule such as
// */5 * * * * therefore pauses for the repeated hour; use rate() for a steady
// interval. The tests pin these behaviours.
package schedule

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	// Zone names in expressions must resolve on machines without a system
	// zone database (minimal containers), or schedules would parse on one
	// node and fail on another.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
)

// Schedule computes fire times.
type Schedule interface {
	// Next returns the first fire time strictly after after, and false when
	// the schedule will not fire again.
	Next(after time.Time) (time.Time, bool)
}

// Parse parses a schedule expression; times without a zone are UTC unless
// the expression names one.
//
// # Errors
//
// The error names the expression and what is wrong with it.
func Parse(expr string) (Schedule, error) {
	return ParseInLocation(expr, time.UTC)
}

// ParseInLocation is Parse with loc as the zone of times that name none
// (AWS's ScheduleExpressionTimezone). A CRON_TZ=/TZ= prefix overrides loc.
func ParseInLocation(expr string, loc *time.Location) (Schedule, error) {
	if loc == nil {
		loc = time.UTC
	}
	s, err := parse(strings.TrimSpace(expr), loc)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", expr, err)
	}
	return s, nil
}

func parse(expr string, loc *time.Location) (Schedule, error) {
	if expr == "" {
		return nil, errors.New("empty expression")
	}
	if rest, ok := cutTZ(expr); ok {
		zone, body, _ := strings.Cut(rest, " ")
		l, err := time.LoadLocation(zone)
		if err != nil || zone == "" || strings.EqualFold(zone, "local") {
			return nil, fmt.Errorf("unknown time zone %q", zone)
		}
		loc, expr = l, strings.TrimSpace(body)
		if expr == "" {
			return nil, errors.New("nothing after the time zone")
		}
	}
	switch {
	case strings.HasPrefix(expr, "rate(") || strings.HasPrefix(expr, "rate "):
		return parseRate(expr)
	case strings.HasPrefix(expr, "at("):
		return parseAt(expr, loc)
	case strings.HasPrefix(expr, "cron("):
		return parseAWSCron(expr, loc)
	case strings.HasPrefix(expr, "@every"):
		d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(expr, "@every")))
		if err != nil {
			return nil, fmt.Errorf("@every: %w", err)
		}
		if d < time.Second {
			return nil, fmt.Errorf("@every %s: the interval must be at least 1s", d)
		}
		return &every{d: d, src: expr}, nil
	}
	return parseCron(expr, loc)
}

func cutTZ(expr string) (string, bool) {
	if rest, ok := strings.CutPrefix(expr, "CRON_TZ="); ok {
		return rest, true
	}
	return strings.CutPrefix(expr, "TZ=")
}

// cronSpec wraps robfig/cron's schedule for the 5/6-field forms and
// descriptors.
type cronSpec struct {
	s   *cron.SpecSchedule
	src string
}

func parseCron(expr string, loc *time.Location) (Schedule, error) {
	p := cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	s, err := p.Parse(expr)
	if err != nil {
		if n := len(strings.Fields(expr)); !strings.HasPrefix(expr, "@") && (n < 5 || n > 6) {
			return nil, fmt.Errorf("expected 5 or 6 cron fields (or rate(), at(), cron(), @every, @daily...), got %d", n)
		}
		return nil, err
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("unsupported expression")
	}
	// The zone is resolved here (UTC by default), never from the process's
	// local zone as robfig/cron would.
	spec.Location = loc
	return &cronSpec{s: spec, src: expr}, nil
}

func (c *cronSpec) Next(after time.Time) (time.Time, bool) {
	// robfig/cron fires a wall-clock time twice when a fall-back transition
	// repeats it; skip the second occurrence. The bound covers a
	// per-second schedule across a repeated hour, with room to spare.
	for range 10_000 {
		t := c.s.Next(after)
		if t.IsZero() {
			// robfig/cron gives up after five years without a match (Feb 30).
			return time.Time{}, false
		}
		if !repeatedWallClock(t.In(c.s.Location)) {
			return t, true
		}
		after = t
	}
	return time.Time{}, false
}

// repeatedWallClock reports whether t is the second occurrence of its wall
// clock time, in the hour (or so) a fall-back transition repeats.
func repeatedWallClock(t time.Time) bool {
	_, off := t.Zone()
	_, before := t.Add(-3 * time.Hour).Zone()
	if before <= off {
		return false
	}
	e := t.Add(-time.Duration(before-off) * time.Second)
	return sameWallClock(e, t)
}

func sameWallClock(a, b time.Time) bool {
	return a.Hour() == b.Hour() && a.Minute() == b.Minute() && a.Second() == b.Second() && a.Day() == b.Day()
}

func (c *cronSpec) String() string { return c.src }

// rate is rate() and @every: a fixed interval anchored on the Unix epoch.
type every struct {
	d   time.Duration
	src string
}

// maxRate keeps interval arithmetic far from int64 nanosecond overflow.
const maxRate = 100 * 365 * 24 * time.Hour

func parseRate(expr string) (Schedule, error) {
	body, ok := strings.CutPrefix(expr, "rate(")
	if ok {
		body, ok = strings.CutSuffix(body, ")")
	}
	parts := strings.Fields(body)
	if !ok || len(parts) != 2 {
		return nil, errors.New(`want rate(value unit), e.g. rate(5 minutes), rate(1 hour)`)
	}
	m := [3]string{expr, parts[0], parts[1]}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("rate value %s must be a positive integer", m[1])
	}
	var unit time.Duration
	singular := strings.TrimSuffix(m[2], "s")
	switch singular {
	case "minute":
		unit = time.Minute
	case "hour":
		unit = time.Hour
	case "day":
		unit = 24 * time.Hour
	default:
		return nil, fmt.Errorf("unknown rate unit %q (want minute(s), hour(s) or day(s))", m[2])
	}
	// AWS rejects rate(1 minutes) and rate(5 minute); so do we, so that an
	// expression that works here works there.
	if n == 1 && m[2] != singular {
		return nil, fmt.Errorf("rate(1 %s): use the singular unit %q with the value 1", m[2], singular)
	}
	if n != 1 && m[2] == singular {
		return nil, fmt.Errorf("rate(%d %s): use the plural unit %q with a value other than 1", n, m[2], singular+"s")
	}
	if n > int64(maxRate/unit) {
		return nil, fmt.Errorf("rate(%d %s) is longer than 100 years", n, m[2])
	}
	return &every{d: time.Duration(n) * unit, src: expr}, nil
}

func (e *every) Next(after time.Time) (time.Time, bool) {
	// floor((after - epoch) / d) + 1 intervals after the epoch.
	sec, nsec := after.Unix(), int64(after.Nanosecond())
	dsec, dnsec := int64(e.d/time.Second), int64(e.d%time.Second)
	if dnsec == 0 {
		k := floorDiv(sec, dsec) + 1
		return time.Unix(k*dsec, 0).UTC(), true
	}
	// Sub-second intervals are not parseable; durations like 1.5s are, and
	// are rare enough for nanosecond arithmetic (no overflow before 2262).
	ns := sec*1e9 + nsec
	d := int64(e.d)
	k := floorDiv(ns, d) + 1
	return time.Unix(0, k*d).UTC(), true
}

func (e *every) String() string { return e.src }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// at is a one-off schedule.
type at struct {
	t   time.Time
	src string
}

func parseAt(expr string, loc *time.Location) (Schedule, error) {
	body, ok := strings.CutSuffix(strings.TrimPrefix(expr, "at("), ")")
	if !ok {
		return nil, errors.New("want at(yyyy-mm-ddThh:mm:ss[Z|±hh:mm])")
	}
	body = strings.TrimSpace(body)
	if t, err := time.Parse(time.RFC3339Nano, body); err == nil {
		return &at{t: t, src: expr}, nil
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", body, loc)
	if err != nil {
		return nil, fmt.Errorf("at(%s): want yyyy-mm-ddThh:mm:ss with an optional Z or ±hh:mm offset", body)
	}
	return &at{t: t, src: expr}, nil
}

func (a *at) Next(after time.Time) (time.Time, bool) {
	if a.t.After(after) {
		return a.t, true
	}
	return time.Time{}, false
}

func (a *at) String() string { return a.src }
