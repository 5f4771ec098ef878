package schedule

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// awsCron is an EventBridge cron(minutes hours day-of-month month
// day-of-week year) expression. robfig/cron cannot express its year field,
// its 1-7 (Sunday = 1) weekdays or the L, W and # wildcards, so it has its
// own evaluator.
type awsCron struct {
	minutes uint64 // bit i: minute i
	hours   uint32
	months  uint16 // bit m: month m (1-12)
	years   [4]uint64
	loc     *time.Location
	src     string

	// Exactly one of the two day fields is in use; the other was '?'.
	useDOM bool
	dom    uint32 // bit d: day d (1-31)
	domL   bool   // L: last day of the month
	domLW  bool   // LW: last weekday (Mon-Fri) of the month
	domW   int    // nW: weekday nearest day n, 0 when unused

	dow    uint8        // bit w: time.Weekday w (0 = Sunday)
	dowL   time.Weekday // nL: last such weekday of the month, -1 when unused
	dowNth int          // n#k: k-th such weekday, 0 when unused
	dowDay time.Weekday // weekday of n#k
}

const (
	minYear = 1970
	maxYear = 2199
)

func parseAWSCron(expr string, loc *time.Location) (Schedule, error) {
	body, ok := strings.CutSuffix(strings.TrimPrefix(expr, "cron("), ")")
	if !ok {
		return nil, errors.New("want cron(minutes hours day-of-month month day-of-week year)")
	}
	f := strings.Fields(body)
	if len(f) != 6 {
		return nil, fmt.Errorf("cron() takes 6 fields (minutes hours day-of-month month day-of-week year), got %d", len(f))
	}
	c := &awsCron{loc: loc, src: expr, dowL: -1}
	var err error
	var m, h, mo uint64
	if m, err = parseField(f[0], "minutes", 0, 59, ""); err != nil {
		return nil, err
	}
	if h, err = parseField(f[1], "hours", 0, 23, ""); err != nil {
		return nil, err
	}
	if mo, err = parseField(f[3], "month", 1, 12, monthNames); err != nil {
		return nil, err
	}
	c.minutes, c.hours, c.months = m, uint32(h), uint16(mo)
	if err := c.parseYears(f[5]); err != nil {
		return nil, err
	}
	domQ, dowQ := f[2] == "?", f[4] == "?"
	switch {
	case domQ && dowQ:
		return nil, errors.New("day-of-month and day-of-week cannot both be '?'")
	case !domQ && !dowQ:
		return nil, errors.New("use '?' in either day-of-month or day-of-week: one of them must be left unspecified")
	case dowQ:
		c.useDOM = true
		if err := c.parseDOM(f[2]); err != nil {
			return nil, err
		}
	default:
		if err := c.parseDOW(f[4]); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// names resolves three-letter names to their 1-based position in list.
type names string

const (
	monthNames names = "JANFEBMARAPRMAYJUNJULAUGSEPOCTNOVDEC"
	dayNames   names = "SUNMONTUEWEDTHUFRISAT" // AWS: Sunday is 1
)

func (n names) lookup(s string) (int, bool) {
	if n == "" || len(s) != 3 {
		return 0, false
	}
	i := strings.Index(string(n), strings.ToUpper(s))
	if i < 0 || i%3 != 0 {
		return 0, false
	}
	return i/3 + 1, true
}

// parseField parses a list of *, n, n-m, n/s, n-m/s, */s into a bitset.
func parseField(s, name string, lo, hi int, names names) (uint64, error) {
	var set uint64
	for _, item := range strings.Split(s, ",") {
		first, last, step, err := parseItem(item, name, lo, hi, names)
		if err != nil {
			return 0, err
		}
		for v := first; v <= last; v += step {
			set |= 1 << uint(v)
		}
	}
	return set, nil
}

func parseItem(item, name string, lo, hi int, names names) (first, last, step int, err error) {
	rng, stepStr, hasStep := strings.Cut(item, "/")
	step = 1
	if hasStep {
		step, err = strconv.Atoi(stepStr)
		if err != nil || step <= 0 {
			return 0, 0, 0, fmt.Errorf("%s: bad step %q in %q", name, stepStr, item)
		}
	}
	switch {
	case rng == "*":
		first, last = lo, hi
	case strings.Contains(rng, "-"):
		a, b, _ := strings.Cut(rng, "-")
		if first, err = value(a, name, lo, hi, names); err != nil {
			return
		}
		if last, err = value(b, name, lo, hi, names); err != nil {
			return
		}
		if first > last {
			return 0, 0, 0, fmt.Errorf("%s: range %q runs backwards", name, rng)
		}
	default:
		if first, err = value(rng, name, lo, hi, names); err != nil {
			return
		}
		last = first
		if hasStep {
			// n/s: from n every s to the end of the range, as in AWS.
			last = hi
		}
	}
	return first, last, step, nil
}

func value(s, name string, lo, hi int, names names) (int, error) {
	if v, ok := names.lookup(s); ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		if s == "L" || s == "W" || s == "#" || strings.ContainsAny(s, "LW#?") {
			return 0, fmt.Errorf("%s: %q is not allowed here", name, s)
		}
		return 0, fmt.Errorf("%s: %q is not a number", name, s)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%s: %d is outside %d-%d", name, v, lo, hi)
	}
	return v, nil
}

func (c *awsCron) parseYears(s string) error {
	for _, item := range strings.Split(s, ",") {
		first, last, step, err := parseItem(item, "year", minYear, maxYear, "")
		if err != nil {
			return err
		}
		for y := first; y <= last; y += step {
			i := y - minYear
			c.years[i/64] |= 1 << uint(i%64)
		}
	}
	return nil
}

func (c *awsCron) hasYear(y int) bool {
	if y < minYear || y > maxYear {
		return false
	}
	i := y - minYear
	return c.years[i/64]&(1<<uint(i%64)) != 0
}

func (c *awsCron) parseDOM(s string) error {
	switch {
	case s == "L":
		c.domL = true
		return nil
	case s == "LW":
		c.domLW = true
		return nil
	case strings.HasSuffix(s, "W"):
		n, err := strconv.Atoi(strings.TrimSuffix(s, "W"))
		if err != nil || n < 1 || n > 31 {
			return fmt.Errorf("day-of-month: %q: W takes a day 1-31, as in 15W", s)
		}
		c.domW = n
		return nil
	case strings.HasPrefix(s, "L-"):
		return fmt.Errorf("day-of-month: %q: offsets from L are not supported", s)
	}
	if strings.ContainsAny(s, "LW") && strings.Contains(s, ",") {
		return fmt.Errorf("day-of-month: %q: L and W cannot be combined with a list", s)
	}
	set, err := parseField(s, "day-of-month", 1, 31, "")
	c.dom = uint32(set)
	return err
}

func (c *awsCron) parseDOW(s string) error {
	if strings.ContainsAny(s, "L#") && strings.Contains(s, ",") {
		return fmt.Errorf("day-of-week: %q: L and # cannot be combined with a list", s)
	}
	switch {
	case s == "L":
		// Last day of the week: Saturday, as in Quartz which AWS follows.
		c.dow = 1 << time.Saturday
		return nil
	case strings.HasSuffix(s, "L"):
		d, err := value(strings.TrimSuffix(s, "L"), "day-of-week", 1, 7, dayNames)
		if err != nil {
			return err
		}
		c.dowL = time.Weekday(d - 1)
		return nil
	case strings.Contains(s, "#"):
		a, b, _ := strings.Cut(s, "#")
		d, err := value(a, "day-of-week", 1, 7, dayNames)
		if err != nil {
			return err
		}
		k, err := strconv.Atoi(b)
		if err != nil || k < 1 || k > 5 {
			return fmt.Errorf("day-of-week: %q: # takes an occurrence 1-5, as in 2#1 (first Monday)", s)
		}
		c.dowDay, c.dowNth = time.Weekday(d-1), k
		return nil
	}
	set, err := parseField(s, "day-of-week", 1, 7, dayNames)
	// AWS numbers Sunday 1; time.Weekday numbers it 0.
	c.dow = uint8(set >> 1)
	return err
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func (c *awsCron) dayMatches(y int, m time.Month, d int) bool {
	last := daysIn(y, m)
	if c.useDOM {
		switch {
		case c.domL:
			return d == last
		case c.domLW:
			return d == nearestWeekday(y, m, last, last)
		case c.domW > 0:
			return c.domW <= last && d == nearestWeekday(y, m, c.domW, last)
		}
		return c.dom&(1<<uint(d)) != 0
	}
	wd := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Weekday()
	switch {
	case c.dowL >= 0:
		return wd == c.dowL && d+7 > last
	case c.dowNth > 0:
		return wd == c.dowDay && (d-1)/7+1 == c.dowNth
	}
	return c.dow&(1<<uint(wd)) != 0
}

// nearestWeekday is Quartz's W: the Monday-Friday day nearest to day n,
// without leaving the month.
func nearestWeekday(y int, m time.Month, n, last int) int {
	switch time.Date(y, m, n, 0, 0, 0, 0, time.UTC).Weekday() {
	case time.Saturday:
		if n == 1 {
			return 3 // Monday the 3rd
		}
		return n - 1
	case time.Sunday:
		if n == last {
			return n - 2
		}
		return n + 1
	}
	return n
}

// Next walks the calendar in the schedule's zone, skipping whole years and
// months that cannot match, so even a sparse schedule costs at most a few
// thousand day checks.
func (c *awsCron) Next(after time.Time) (time.Time, bool) {
	t := after.In(c.loc)
	y0, m0, d0 := t.Date()
	h0, min0 := t.Hour(), t.Minute()
	for y := max(y0, minYear); y <= maxYear; y++ {
		if !c.hasYear(y) {
			continue
		}
		for m := time.January; m <= time.December; m++ {
			if c.months&(1<<uint(m)) == 0 || (y == y0 && m < m0) {
				continue
			}
			for d := 1; d <= daysIn(y, m); d++ {
				sameDay := y == y0 && m == m0 && d == d0
				if (y == y0 && m == m0 && d < d0) || !c.dayMatches(y, m, d) {
					continue
				}
				if ft, ok := c.firstOnDay(y, m, d, sameDay, h0, min0, after); ok {
					return ft, true
				}
			}
		}
	}
	return time.Time{}, false
}

func (c *awsCron) firstOnDay(y int, m time.Month, d int, sameDay bool, h0, min0 int, after time.Time) (time.Time, bool) {
	for hs := c.hours; hs != 0; hs &= hs - 1 {
		h := bits.TrailingZeros32(hs)
		if sameDay && h < h0 {
			continue
		}
		for ms := c.minutes; ms != 0; ms &= ms - 1 {
			mi := bits.TrailingZeros64(ms)
			if sameDay && h == h0 && mi < min0 {
				continue
			}
			ft := time.Date(y, m, d, h, mi, 0, 0, c.loc)
			if ft.Hour() != h || ft.Minute() != mi {
				continue // skipped by a spring-forward transition
			}
			ft = firstOccurrence(ft)
			if ft.After(after) {
				return ft, true
			}
		}
	}
	return time.Time{}, false
}

func (c *awsCron) String() string { return c.src }

// firstOccurrence maps the second occurrence of a wall-clock time repeated
// by a fall-back transition to the first: time.Date may pick either, and a
// schedule fires at the first.
func firstOccurrence(t time.Time) time.Time {
	_, off := t.Zone()
	if _, before := t.Add(-3 * time.Hour).Zone(); before > off {
		if e := t.Add(-time.Duration(before-off) * time.Second); sameWallClock(e, t) {
			return e
		}
	}
	return t
}
