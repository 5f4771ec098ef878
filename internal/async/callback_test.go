package async_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/examples"
	"github.com/nimbus-run/nimbus/internal/async"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

// logRecords keeps the node's Warn and Error records for the test to read.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecords) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

// find returns the attributes of the records with message msg.
func (l *logRecords) find(msg string) []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]string
	for _, r := range l.recs {
		if r.Message != msg {
			continue
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
		out = append(out, attrs)
	}
	return out
}

// waitQueueEmpty waits until the queue holds no message: the last one was
// acknowledged, which finish does only after the callback was made (or
// given up on).
func waitQueueEmpty(t *testing.T, n *node.Node) {
	t.Helper()
	nodetest.Eventually(t, 20*time.Second, "the async queue to be empty", func() bool {
		st, err := n.Store.JS.Stream(context.Background(), async.Stream)
		if err != nil {
			return false
		}
		info, err := st.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
}

// TestCallbackAllow: with an allow list that leaves out 127.0.0.1 a
// callback to a server there is refused, once, at connect time, while the
// invocation itself succeeds; with one that covers it, it is delivered.
func TestCallbackAllow(t *testing.T) {
	tests := []struct {
		name      string
		allow     []netip.Prefix
		delivered bool
	}{
		{"excluded", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, false},
		{"covered", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("127.0.0.0/8")}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logRecords{}
			n := nodetest.Start(t, node.Config{
				Async:  async.Config{AckWait: 2 * time.Second, CallbackAllow: tc.allow},
				Logger: slog.New(logs),
			})
			nodetest.Deploy(t, n, api.Function{Name: "echo", Memory: 16}, examples.EchoWAT)
			c := nodetest.Client(n)

			var hits atomic.Int32
			cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
			defer cb.Close()
			cbURL := cb.URL + "/hooks/secret-path?token=secret-query"

			id, err := c.InvokeAsync(context.Background(), "echo", []byte(`{"n":1}`), cbURL)
			if err != nil {
				t.Fatalf("InvokeAsync: %v", err)
			}
			inv := waitStatus(t, c, id, api.AsyncSucceeded)
			if string(inv.Result) != `{"n":1}` {
				t.Errorf("result = %s; want the echoed event", inv.Result)
			}
			waitQueueEmpty(t, n)

			refused := logs.find("async: callback refused")
			if tc.delivered {
				if got := hits.Load(); got != 1 {
					t.Errorf("callback server got %d requests; want 1", got)
				}
				if len(refused) != 0 {
					t.Errorf("refusals logged: %v; want none", refused)
				}
				return
			}
			if got := hits.Load(); got != 0 {
				t.Errorf("callback server got %d requests; want none", got)
			}
			if len(refused) != 1 {
				t.Fatalf("refusals logged: %v; want exactly one (no retries)", refused)
			}
			r := refused[0]
			if r["id"] != id || !strings.Contains(r["reason"], "127.0.0.1") || !strings.Contains(r["reason"], "allow list") {
				t.Errorf("refusal logged as %v; want the id %s and a reason naming 127.0.0.1 and the allow list", r, id)
			}
			if !strings.HasPrefix(r["url"], cb.URL) || strings.Contains(r["url"], "secret") {
				t.Errorf("refusal logged url %q; want %s without path or query", r["url"], cb.URL)
			}
			if got := logs.find("async: callback not delivered after 3 tries"); len(got) != 0 {
				t.Errorf("a refused callback was also retried: %v", got)
			}
		})
	}
}
