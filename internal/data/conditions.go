package data

import (
	"errors"
	"net/http"
	"strings"
	"time"
)

// CheckConditions evaluates a read's conditional headers against an
// object, in RFC 9110's order (section 13.2.2), which is also S3's:
// If-Match (else If-Unmodified-Since) failing is ErrPreconditionFailed
// (412); then If-None-Match (else If-Modified-Since) holding is
// ErrNotModified (304). A date that does not parse is ignored, as the RFC
// says. Times compare at the second, the precision of Last-Modified.
func CheckConditions(h http.Header, info *ObjectInfo) error {
	modified := info.Modified.Truncate(time.Second)
	if im := h.Get("If-Match"); im != "" {
		if !etagIn(im, info.ETag, false) {
			return wrapf(ErrPreconditionFailed, "If-Match %s: the object's ETag is %q", truncate(im, 100), info.ETag)
		}
	} else if t, err := http.ParseTime(h.Get("If-Unmodified-Since")); err == nil && modified.After(t) {
		return wrapf(ErrPreconditionFailed, "If-Unmodified-Since: the object was modified at %s", modified.UTC().Format(http.TimeFormat))
	}
	if inm := h.Get("If-None-Match"); inm != "" {
		if etagIn(inm, info.ETag, true) {
			return ErrNotModified
		}
	} else if t, err := http.ParseTime(h.Get("If-Modified-Since")); err == nil && !modified.After(t) {
		return ErrNotModified
	}
	return nil
}

// etagIn says whether list (an If-Match or If-None-Match value: "*" or
// entity tags, comma-separated) names etag. A weak tag (W/"...") matches
// only in the weak comparison If-None-Match uses.
func etagIn(list, etag string, weak bool) bool {
	for t := range strings.SplitSeq(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		if w, ok := strings.CutPrefix(t, "W/"); ok {
			if !weak {
				continue
			}
			t = w
		}
		if strings.Trim(t, `"`) == etag {
			return true
		}
	}
	return false
}

// NotModified answers a read that CheckConditions found not modified
// (err is ErrNotModified): 304, with the ETag and Last-Modified a cache
// revalidates with and no body. It says whether it answered.
func NotModified(w http.ResponseWriter, info *ObjectInfo, err error) bool {
	if info == nil || !errors.Is(err, ErrNotModified) {
		return false
	}
	w.Header().Set("ETag", `"`+info.ETag+`"`)
	w.Header().Set("Last-Modified", info.Modified.UTC().Format(http.TimeFormat))
	w.WriteHeader(http.StatusNotModified)
	return true
}

// CopySourceConditions checks S3's conditions on a copy's source
// (x-amz-copy-source-if-match, -if-none-match, -if-modified-since,
// -if-unmodified-since) as CheckConditions does a read's, except that
// every condition that does not hold is ErrPreconditionFailed: a copy has
// no 304.
func CopySourceConditions(h http.Header) func(*ObjectInfo) error {
	const prefix = "X-Amz-Copy-Source-"
	cond := http.Header{}
	for _, name := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if v := h.Get(prefix + name); v != "" {
			cond.Set(name, v)
		}
	}
	if len(cond) == 0 {
		return nil
	}
	return func(info *ObjectInfo) error {
		err := CheckConditions(cond, info)
		if errors.Is(err, ErrNotModified) {
			return wrapf(ErrPreconditionFailed, "the copy source is not modified (x-amz-copy-source-if-none-match or -if-modified-since)")
		}
		return err
	}
}
