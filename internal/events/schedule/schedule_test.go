package schedule

import (
	"strings"
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestNext(t *testing.T) {
	tests := []struct {
		name  string
		expr  string
		after string
		want  []string // successive fire times (RFC 3339); empty: none
	}{
		// 5- and 6-field cron, UTC by default.
		{"five fields", "30 9 * * *", "2026-05-01T09:30:00Z", []string{"2026-05-02T09:30:00Z", "2026-05-03T09:30:00Z"}},
		{"six fields with seconds", "*/20 * * * * *", "2026-05-01T00:00:05Z", []string{"2026-05-01T00:00:20Z", "2026-05-01T00:00:40Z", "2026-05-01T00:01:00Z"}},
		{"weekdays", "0 8 * * MON-FRI", "2026-05-01T09:00:00Z", []string{"2026-05-04T08:00:00Z"}}, // Friday -> Monday
		{"descriptor daily", "@daily", "2026-05-01T12:00:00Z", []string{"2026-05-02T00:00:00Z"}},
		{"descriptor hourly", "@hourly", "2026-05-01T12:00:00Z", []string{"2026-05-01T13:00:00Z"}},
		{"never (Feb 30)", "0 0 30 2 *", "2026-01-01T00:00:00Z", nil},
		{"CRON_TZ", "CRON_TZ=Asia/Tokyo 0 9 * * *", "2026-05-01T00:00:00Z", []string{"2026-05-02T00:00:00Z"}},
		{"TZ", "TZ=America/New_York 0 9 * * *", "2026-05-01T00:00:00Z", []string{"2026-05-01T13:00:00Z"}},

		// rate() and @every: epoch-aligned.
		{"rate minutes", "rate(5 minutes)", "2026-05-01T10:03:17Z", []string{"2026-05-01T10:05:00Z", "2026-05-01T10:10:00Z"}},
		{"rate on a tick is strictly after", "rate(5 minutes)", "2026-05-01T10:05:00Z", []string{"2026-05-01T10:10:00Z"}},
		{"rate 1 minute", "rate(1 minute)", "2026-05-01T10:03:17.5Z", []string{"2026-05-01T10:04:00Z"}},
		{"rate 1 hour", "rate(1 hour)", "2026-05-01T10:03:17Z", []string{"2026-05-01T11:00:00Z"}},
		{"rate 7 hours from epoch", "rate(7 hours)", "2026-05-01T00:00:00Z", []string{"2026-05-01T04:00:00Z"}},
		{"rate 1 day", "rate(1 day)", "2026-05-01T10:00:00Z", []string{"2026-05-02T00:00:00Z"}},
		{"rate before epoch", "rate(1 hour)", "1969-12-31T22:30:00Z", []string{"1969-12-31T23:00:00Z"}},
		{"every", "@every 90s", "2026-05-01T00:00:00Z", []string{"2026-05-01T00:01:30Z", "2026-05-01T00:03:00Z"}},
		{"every fractional", "@every 1.5s", "1970-01-01T00:00:01Z", []string{"1970-01-01T00:00:01.5Z"}},

		// at().
		{"at utc", "at(2026-12-01T10:00:00Z)", "2026-05-01T00:00:00Z", []string{"2026-12-01T10:00:00Z"}},
		{"at offset", "at(2026-12-01T10:00:00+02:00)", "2026-05-01T00:00:00Z", []string{"2026-12-01T08:00:00Z"}},
		{"at no zone is UTC", "at(2026-12-01T10:00:00)", "2026-05-01T00:00:00Z", []string{"2026-12-01T10:00:00Z"}},
		{"at with TZ", "TZ=Europe/Paris at(2026-12-01T10:00:00)", "2026-05-01T00:00:00Z", []string{"2026-12-01T09:00:00Z"}},
		{"at past", "at(2026-12-01T10:00:00Z)", "2026-12-01T10:00:00Z", nil},

		// AWS cron().
		{"aws noon daily", "cron(0 12 * * ? *)", "2026-05-01T12:00:00Z", []string{"2026-05-02T12:00:00Z"}},
		{"aws weekdays 18h", "cron(0 18 ? * MON-FRI *)", "2026-05-01T18:00:00Z", []string{"2026-05-04T18:00:00Z"}},
		{"aws first of month", "cron(0 8 1 * ? *)", "2026-05-01T09:00:00Z", []string{"2026-06-01T08:00:00Z"}},
		{"aws every 15 min", "cron(0/15 * * * ? *)", "2026-05-01T10:07:00Z", []string{"2026-05-01T10:15:00Z", "2026-05-01T10:30:00Z"}},
		{"aws every 10 min weekdays", "cron(0/10 * ? * MON-FRI *)", "2026-05-02T00:00:00Z", []string{"2026-05-04T00:00:00Z"}},
		{"aws business hours", "cron(0/5 8-17 ? * MON-FRI *)", "2026-05-01T17:55:00Z", []string{"2026-05-04T08:00:00Z"}},
		{"aws first monday", "cron(0 9 ? * 2#1 *)", "2026-05-01T00:00:00Z", []string{"2026-05-04T09:00:00Z", "2026-06-01T09:00:00Z"}},
		{"aws numeric sunday is 1", "cron(0 0 ? * 1 *)", "2026-05-01T00:00:00Z", []string{"2026-05-03T00:00:00Z"}},
		{"aws last day", "cron(0 0 L * ? *)", "2026-02-01T00:00:00Z", []string{"2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"}},
		{"aws last day leap", "cron(0 0 L 2 ? *)", "2027-03-01T00:00:00Z", []string{"2028-02-29T00:00:00Z"}},
		{"aws last weekday", "cron(0 0 LW * ? *)", "2026-05-01T00:00:00Z", []string{"2026-05-29T00:00:00Z"}},         // May 31 2026 is a Sunday
		{"aws nearest weekday sat", "cron(0 0 16W * ? *)", "2026-05-01T00:00:00Z", []string{"2026-05-15T00:00:00Z"}}, // 16th is a Saturday
		{"aws nearest weekday 1st sat", "cron(0 0 1W * ? *)", "2026-07-31T00:00:00Z", []string{"2026-08-03T00:00:00Z"}},
		{"aws last friday", "cron(0 0 ? * 6L *)", "2026-05-01T00:00:00Z", []string{"2026-05-29T00:00:00Z"}},
		{"aws last friday named", "cron(0 0 ? * FRIL *)", "2026-05-01T00:00:00Z", []string{"2026-05-29T00:00:00Z"}},
		{"aws L in dow is saturday", "cron(0 0 ? * L *)", "2026-05-01T00:00:00Z", []string{"2026-05-02T00:00:00Z"}},
		{"aws year", "cron(0 0 1 1 ? 2030)", "2026-05-01T00:00:00Z", []string{"2030-01-01T00:00:00Z"}},
		{"aws year exhausted", "cron(0 0 1 1 ? 2025)", "2026-05-01T00:00:00Z", nil},
		{"aws list and names", "cron(15,45 6 ? JAN,JUL SUN *)", "2026-01-01T00:00:00Z", []string{"2026-01-04T06:15:00Z", "2026-01-04T06:45:00Z"}},
		{"aws in zone", "CRON_TZ=Europe/Paris cron(0 9 * * ? *)", "2026-05-01T00:00:00Z", []string{"2026-05-01T07:00:00Z"}},

		// DST in Europe/Paris: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00.
		{"dst gap skipped (robfig)", "CRON_TZ=Europe/Paris 30 2 * * *", "2026-03-28T12:00:00Z", []string{"2026-03-30T00:30:00Z"}},
		{"dst gap skipped (aws)", "CRON_TZ=Europe/Paris cron(30 2 * * ? *)", "2026-03-28T12:00:00Z", []string{"2026-03-30T00:30:00Z"}},
		{"dst repeat once (robfig)", "CRON_TZ=Europe/Paris 30 2 * * *", "2026-10-24T12:00:00Z", []string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"dst repeat once (aws)", "CRON_TZ=Europe/Paris cron(30 2 * * ? *)", "2026-10-24T12:00:00Z", []string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"dst repeat from inside second pass (aws)", "CRON_TZ=Europe/Paris cron(30 2 * * ? *)", "2026-10-25T01:00:00Z", []string{"2026-10-26T01:30:00Z"}},
		{"dst hourly across repeat (aws)", "CRON_TZ=Europe/Paris cron(0 * * * ? *)", "2026-10-24T23:30:00Z", []string{"2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"}},
		{"dst hourly across repeat (robfig)", "CRON_TZ=Europe/Paris 0 * * * *", "2026-10-24T23:30:00Z", []string{"2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"}},
		{"dst rate unaffected", "CRON_TZ=Europe/Paris rate(1 hour)", "2026-10-24T23:30:00Z", []string{"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.expr)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.expr, err)
			}
			after := mustTime(t, tc.after)
			for i, w := range tc.want {
				got, ok := s.Next(after)
				if !ok {
					t.Fatalf("Next #%d = none, want %s", i, w)
				}
				if want := mustTime(t, w); !got.Equal(want) {
					t.Fatalf("Next #%d after %s = %s, want %s", i, after.UTC(), got.UTC(), want)
				}
				after = got
			}
			if tc.want == nil {
				if got, ok := s.Next(after); ok {
					t.Fatalf("Next = %s, want none", got)
				}
			}
		})
	}
}

func TestParseInLocation(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ expr, after, want string }{
		{"at(2026-12-01T10:00:00)", "2026-01-01T00:00:00Z", "2026-12-01T09:00:00Z"},
		{"cron(0 10 * * ? *)", "2026-07-01T00:00:00Z", "2026-07-01T08:00:00Z"},
		{"0 10 * * *", "2026-07-01T00:00:00Z", "2026-07-01T08:00:00Z"},
		{"TZ=UTC 0 10 * * *", "2026-07-01T00:00:00Z", "2026-07-01T10:00:00Z"}, // the prefix wins
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			s, err := ParseInLocation(tc.expr, paris)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := s.Next(mustTime(t, tc.after))
			if want := mustTime(t, tc.want); !ok || !got.Equal(want) {
				t.Errorf("Next = %s, %v; want %s", got.UTC(), ok, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"", "empty expression"},
		{"rate(0 minutes)", "must be a positive integer"},
		{"rate(-1 minutes)", "must be a positive integer"},
		{"rate(1 minutes)", `use the singular unit "minute"`},
		{"rate(5 minute)", `use the plural unit "minutes"`},
		{"rate(5 weeks)", `unknown rate unit "weeks"`},
		{"rate(5)", "want rate(value unit)"},
		{"rate(5 minutes", "want rate(value unit)"},
		{"rate(99999999999 days)", "longer than 100 years"},
		{"at(2026-13-01T10:00:00)", "want yyyy-mm-ddThh:mm:ss"},
		{"at(tomorrow)", "want yyyy-mm-ddThh:mm:ss"},
		{"at(2026-12-01T10:00:00Z", "want at("},
		{"@every 10ms", "at least 1s"},
		{"@every soon", "@every"},
		{"CRON_TZ=Mars/Olympus 0 * * * *", `unknown time zone "Mars/Olympus"`},
		{"TZ=Europe/Paris", "nothing after the time zone"},
		{"* * *", "expected 5 or 6 cron fields"},
		{"61 * * * *", "61"},
		{"cron(0 12 * * * *)", "use '?' in either day-of-month or day-of-week"},
		{"cron(0 12 ? * ? *)", "cannot both be '?'"},
		{"cron(0 12 * * ?)", "cron() takes 6 fields"},
		{"cron(60 12 * * ? *)", "minutes: 60 is outside 0-59"},
		{"cron(0 24 * * ? *)", "hours: 24 is outside 0-23"},
		{"cron(0 0 32 * ? *)", "day-of-month: 32 is outside 1-31"},
		{"cron(0 0 ? 13 * *)", "month: 13 is outside 1-12"},
		{"cron(0 0 ? * 8 *)", "day-of-week: 8 is outside 1-7"},
		{"cron(0 0 ? * 2#6 *)", "# takes an occurrence 1-5"},
		{"cron(0 0 ? * 2#1,3 *)", "cannot be combined with a list"},
		{"cron(0 0 L-2 * ? *)", "offsets from L are not supported"},
		{"cron(0 0 32W * ? *)", "W takes a day 1-31"},
		{"cron(0 0 1 * ? 1969)", "year: 1969 is outside 1970-2199"},
		{"cron(0 0 1 * ? 2030-2020)", "runs backwards"},
		{"cron(0/0 0 1 * ? *)", "bad step"},
		{"cron(x 0 1 * ? *)", `minutes: "x" is not a number`},
		{"cron(0 L 1 * ? *)", `hours: "L" is not allowed here`},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			_, err := Parse(tc.expr)
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want %q", tc.expr, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) error = %q, want it to contain %q", tc.expr, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.expr) {
				t.Errorf("error %q does not name the expression", err)
			}
		})
	}
}

func TestTickID(t *testing.T) {
	fire := mustTime(t, "2026-12-01T11:00:00+01:00")
	tests := []struct {
		name string
		fire time.Time
		want string
	}{
		{"nightly-report", fire, "nightly-report.20261201T100000Z"},
		{"a.b c_d", fire, "a_2Eb_20c_5Fd.20261201T100000Z"},
		{"é", fire, "_C3_A9.20261201T100000Z"},
		{"x", fire.Add(1500 * time.Millisecond), "x.20261201T100001Z_500000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := TickID(tc.name, tc.fire)
			if got != tc.want {
				t.Errorf("TickID = %q, want %q", got, tc.want)
			}
			for _, c := range got {
				if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
					t.Errorf("TickID %q has %q, not valid in a KV key", got, c)
				}
			}
		})
	}
	// The same instant in another zone names the same tick.
	if TickID("n", fire) != TickID("n", fire.UTC()) {
		t.Error("TickID depends on the time's location")
	}
	// Injective escaping: "_2E" and "." differ.
	if TickID("_2E", fire) == TickID(".", fire) {
		t.Error("TickID escaping is not injective")
	}
}

func TestMissed(t *testing.T) {
	every5, err := Parse("rate(5 minutes)")
	if err != nil {
		t.Fatal(err)
	}
	perSecond, err := Parse("* * * * * *")
	if err != nil {
		t.Fatal(err)
	}
	once, err := Parse("at(2026-05-01T10:02:00Z)")
	if err != nil {
		t.Fatal(err)
	}
	base := mustTime(t, "2026-05-01T10:00:00Z")
	tests := []struct {
		name        string
		s           Schedule
		last, now   time.Time
		window      time.Duration
		fire        int
		missedList  int
		missedCount int
		firstFire   string
	}{
		{"nothing due", every5, base, base.Add(4 * time.Minute), time.Hour, 0, 0, 0, ""},
		{"all in window", every5, base, base.Add(30 * time.Minute), time.Hour, 6, 0, 0, "2026-05-01T10:05:00Z"},
		{"some too old", every5, base, base.Add(30 * time.Minute), 12 * time.Minute, 3, 3, 3, "2026-05-01T10:20:00Z"},
		{"tick exactly at window edge fires", every5, base, base.Add(30 * time.Minute), 10 * time.Minute, 3, 3, 3, "2026-05-01T10:20:00Z"},
		{"zero window fires tick at now only", every5, base, base.Add(30 * time.Minute), 0, 1, 5, 5, "2026-05-01T10:30:00Z"},
		{"now before last", every5, base, base.Add(-time.Hour), time.Hour, 0, 0, 0, ""},
		{"catch-up capped to the latest", perSecond, base, base.Add(10 * time.Minute), time.Hour, MaxCatchUp, MaxMissedListed, 600 - MaxCatchUp, "2026-05-01T10:08:21Z"},
		{"count capped", perSecond, base, base.Add(48 * time.Hour), time.Minute, 61, MaxMissedListed, MaxMissedCount, "2026-05-03T09:59:00Z"},
		{"one-off missed", once, base, base.Add(time.Hour), time.Minute, 0, 1, 1, ""},
		{"one-off in window", once, base, base.Add(3 * time.Minute), time.Hour, 1, 0, 0, "2026-05-01T10:02:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fire, missed, n := Missed(tc.s, tc.last, tc.now, tc.window)
			if len(fire) != tc.fire || len(missed) != tc.missedList || n != tc.missedCount {
				t.Fatalf("Missed = %d fire, %d missed listed, count %d; want %d, %d, %d", len(fire), len(missed), n, tc.fire, tc.missedList, tc.missedCount)
			}
			if tc.firstFire != "" && !fire[0].Equal(mustTime(t, tc.firstFire)) {
				t.Errorf("first fire = %s, want %s", fire[0].UTC(), tc.firstFire)
			}
			for i := 1; i < len(fire); i++ {
				if !fire[i].After(fire[i-1]) {
					t.Fatalf("fire not in order at %d: %s then %s", i, fire[i-1], fire[i])
				}
			}
			for _, f := range fire {
				if tc.now.Sub(f) > tc.window || !f.After(tc.last) || f.After(tc.now) {
					t.Errorf("fire %s outside (last, now] or the window", f)
				}
			}
		})
	}
}

func TestRenderInput(t *testing.T) {
	fire := mustTime(t, "2026-12-01T11:00:00+01:00")
	tmpl := []byte(`{"at":"<aws.scheduler.scheduled-time>","arn":"<aws.scheduler.schedule-arn>","id":"<aws.scheduler.execution-id>","try":"<aws.scheduler.attempt-number>","keep":"<other>"}`)
	got, err := RenderInput(tmpl, fire, `nightly"x`)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"at":"2026-12-01T10:00:00Z","arn":"arn:nimbus:scheduler:::schedule/default/nightly\"x","id":"nightly_22x.20261201T100000Z","try":"1","keep":"<other>"}`
	if string(got) != want {
		t.Errorf("RenderInput =\n %s\nwant\n %s", got, want)
	}
	got, err = Invocation{Name: "n", Fire: fire, Attempt: 3, ARN: "arn:custom"}.Render([]byte(`{"a":"<aws.scheduler.attempt-number>/<aws.scheduler.schedule-arn>"}`))
	if err != nil || string(got) != `{"a":"3/arn:custom"}` {
		t.Errorf("Render = %s, %v", got, err)
	}
	if got, err := RenderInput(nil, fire, "n"); err != nil || string(got) != "{}" {
		t.Errorf("RenderInput(empty) = %s, %v; want {}", got, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"rate(5 minutes)", "cron(0 12 * * ? *)", "cron(0 0 ? * 6L 2026-2030/2)", "cron(0 0 15W * ? *)", "CRON_TZ=Europe/Paris 0 30 2 * * *", "@every 1m", "at(2026-12-01T10:00:00)", "@daily", "0 0 30 2 *"} {
		f.Add(s)
	}
	after := time.Date(2026, 10, 24, 23, 59, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := Parse(expr)
		if err != nil {
			return
		}
		// Successive fires strictly increase and stop cleanly.
		prev := after
		for range 5 {
			next, ok := s.Next(prev)
			if !ok {
				return
			}
			if !next.After(prev) {
				t.Fatalf("%q: Next(%s) = %s, not after", expr, prev, next)
			}
			prev = next
		}
	})
}
