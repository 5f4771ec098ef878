package s3api

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

// FuzzPostPolicy: any policy document a form may carry (in dev mode, where
// no signature guards it) is judged without a panic, and one that passes
// leaves sane size bounds.
func FuzzPostPolicy(f *testing.F) {
	f.Add(`{"expiration":"2099-01-01T00:00:00Z","conditions":[{"bucket":"b"},["starts-with","$key","a/"],["content-length-range",1,1024]]}`, "a/x", "image/png")
	f.Add(`{"expiration":"2099-01-01T00:00:00.000Z","conditions":[["eq","$Content-Type","image/png"],{"key":"k"}]}`, "k", "image/png")
	f.Add(`{"expiration":"2000-01-01T00:00:00Z","conditions":[]}`, "k", "")
	f.Add(`{"conditions":[["content-length-range",-1,"x"]]}`, "k", "")
	f.Add(`[]`, "", "")
	a := New(Config{Dev: true, Now: func() time.Time { return time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC) }}, nil, nil)
	f.Fuzz(func(t *testing.T, policy, key, contentType string) {
		fields := map[string]string{"policy": base64.StdEncoding.EncodeToString([]byte(policy)), "key": key, "bucket": "b"}
		if contentType != "" {
			fields["content-type"] = contentType
		}
		lo, hi, err := a.checkPostPolicy(fields, key)
		if err != nil {
			var e *s3Error
			if !errors.As(err, &e) || e.status < 400 || e.status >= 500 {
				t.Fatalf("error %v is not an S3 4xx", err)
			}
			return
		}
		if lo < 0 || hi != -1 && hi < lo {
			t.Fatalf("bounds %d..%d", lo, hi)
		}
	})
}
