package api_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
)

// FuzzParseStart: every input is one start or an error naming it, and a
// revision or a time reads back as itself.
func FuzzParseStart(f *testing.F) {
	for _, s := range []string{"", "new", "oldest", "1", "0", "-1", "18446744073709551615", "18446744073709551616",
		"2026-11-29T18:00:00Z", "2026-11-29T18:00:00.123456789+02:00", "2026-11-29", "yesterday", " 1", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		oldest, rev, at, err := api.ParseStart(s)
		if err != nil {
			if oldest || rev != 0 || !at.IsZero() {
				t.Fatalf("%q: an error and a start", s)
			}
			return
		}
		n := 0
		for _, set := range []bool{oldest, rev != 0, !at.IsZero()} {
			if set {
				n++
			}
		}
		switch {
		case s == "" || s == "new":
			if n != 0 {
				t.Fatalf("%q: a start other than new", s)
			}
		case n != 1:
			t.Fatalf("%q: %d starts at once (oldest %v, revision %d, time %v)", s, n, oldest, rev, at)
		case rev != 0:
			if got, _ := strconv.ParseUint(s, 10, 64); got != rev {
				t.Fatalf("%q: revision %d", s, rev)
			}
		case !at.IsZero():
			if back, err := time.Parse(time.RFC3339Nano, at.Format(time.RFC3339Nano)); err != nil || !back.Equal(at) {
				t.Fatalf("%q: time %v does not read back (%v)", s, at, err)
			}
		}
	})
}
