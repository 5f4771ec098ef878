package testutil

import (
	"testing"
	"time"
)

// Eventually polls cond every 10ms until it holds, failing the test after 10s.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	EventuallyWithin(tb, 10*time.Second, what, cond)
}

// EventuallyWithin polls cond every 10ms until it holds, failing the test
// after timeout.
func EventuallyWithin(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
