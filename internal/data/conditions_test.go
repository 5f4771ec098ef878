package data

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestCheckConditions(t *testing.T) {
	mod := time.Date(2026, 11, 29, 10, 0, 0, 500e6, time.UTC) // Last-Modified drops the half second
	info := &ObjectInfo{ETag: "abc", Modified: mod}
	at := mod.Truncate(time.Second).Format(http.TimeFormat)
	earlier := mod.Add(-time.Hour).Format(http.TimeFormat)
	for _, tc := range []struct {
		headers []string // name, value, ...
		want    error
	}{
		{nil, nil},
		{[]string{"If-None-Match", `"abc"`}, ErrNotModified},
		{[]string{"If-None-Match", `W/"abc"`}, ErrNotModified}, // weak comparison
		{[]string{"If-None-Match", `"x", "abc"`}, ErrNotModified},
		{[]string{"If-None-Match", `*`}, ErrNotModified},
		{[]string{"If-None-Match", `"x"`}, nil},
		{[]string{"If-Match", `"abc"`}, nil},
		{[]string{"If-Match", `W/"abc"`}, ErrPreconditionFailed}, // strong comparison
		{[]string{"If-Match", `"x", "abc"`}, nil},
		{[]string{"If-Match", `*`}, nil},
		{[]string{"If-Match", `"x"`}, ErrPreconditionFailed},
		{[]string{"If-Modified-Since", at}, ErrNotModified},
		{[]string{"If-Modified-Since", earlier}, nil},
		{[]string{"If-Modified-Since", "yesterday"}, nil}, // unparsable: ignored
		{[]string{"If-Unmodified-Since", at}, nil},
		{[]string{"If-Unmodified-Since", earlier}, ErrPreconditionFailed},
		{[]string{"If-Match", `"abc"`, "If-Unmodified-Since", earlier}, nil},
		{[]string{"If-None-Match", `"x"`, "If-Modified-Since", at}, nil},
		{[]string{"If-Match", `"x"`, "If-None-Match", `"abc"`}, ErrPreconditionFailed}, // 412 before 304
	} {
		h := http.Header{}
		for i := 0; i < len(tc.headers); i += 2 {
			h.Set(tc.headers[i], tc.headers[i+1])
		}
		if err := CheckConditions(h, info); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%q: %v, want %v", tc.headers, err, tc.want)
		}
	}
}
