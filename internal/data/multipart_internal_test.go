package data

import (
	"errors"
	"testing"
)

// TestPartLayout: the part sizes a completion records come back as the
// ranges of the parts, contiguous, in order, and nothing past the last.
func TestPartLayout(t *testing.T) {
	for _, tc := range []struct {
		sizes  []int64
		layout string
	}{
		{[]int64{8, 8, 8, 3}, "8*3,3"},
		{[]int64{5}, "5"},
		{[]int64{5, 5}, "5*2"},
		{[]int64{7, 9, 9, 7, 0}, "7,9*2,7,0"},
	} {
		layout := partsLayout(tc.sizes)
		if layout != tc.layout {
			t.Errorf("partsLayout(%v) = %q, want %q", tc.sizes, layout, tc.layout)
		}
		var total int64
		for _, s := range tc.sizes {
			total += s
		}
		info := &ObjectInfo{Key: "k", Size: total, parts: layout}
		var start int64
		for i, size := range tc.sizes {
			rng, count, err := info.Part(i + 1)
			if err != nil || rng != (Range{Start: start, Length: size}) || count != len(tc.sizes) {
				t.Errorf("%q: part %d = %+v of %d (%v), want %d bytes at %d of %d", layout, i+1, rng, count, err, size, start, len(tc.sizes))
			}
			start += size
		}
		for _, n := range []int{0, len(tc.sizes) + 1} {
			if _, _, err := info.Part(n); !errors.Is(err, ErrInvalidPart) {
				t.Errorf("%q: part %d: %v, want ErrInvalidPart", layout, n, err)
			}
		}
	}
	// An object put whole is one part; a damaged layout is an error, not
	// a wrong range.
	whole := &ObjectInfo{Key: "k", Size: 42}
	if rng, count, err := whole.Part(1); err != nil || rng != (Range{0, 42}) || count != 1 {
		t.Errorf("part 1 of a whole object = %+v of %d (%v)", rng, count, err)
	}
	for _, bad := range []string{"x", "8*", "8*0", "-1", "8,,3"} {
		if _, _, err := (&ObjectInfo{Key: "k", parts: bad}).Part(1); err == nil || errors.Is(err, ErrInvalidPart) {
			t.Errorf("layout %q: %v, want an error that it is unreadable", bad, err)
		}
	}
}
