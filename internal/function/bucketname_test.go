package function_test

import (
	"strings"
	"testing"

	"github.com/nimbus-run/nimbus/internal/function"
)

// TestBucketNameProblem: S3's rules for new bucket names, dots included.
func TestBucketNameProblem(t *testing.T) {
	for _, ok := range []string{"abc", "assets.example.com", "a-b.c-d", "123", "x" + strings.Repeat("y", 61) + "z"} {
		if p := function.BucketNameProblem(ok); p != "" {
			t.Errorf("%q: %s, want valid", ok, p)
		}
	}
	for _, bad := range []string{"ab", "Abc", "a_b", "-abc", "abc.", ".abc", "a..b", "192.168.1.1", "xn--abc", "sthree-x", "amzn-s3-demo-x",
		"abc-s3alias", "abc--ol-s3", "abc.mrap", "abc--x-s3", "abc--table-s3", "a b", strings.Repeat("x", 64)} {
		if function.BucketNameProblem(bad) == "" {
			t.Errorf("%q is valid, want a problem", bad)
		}
	}
}
