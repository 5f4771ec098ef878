package node_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

// TestStalledUploadsFail: a request whose client stops sending its body
// fails once the body idle timeout passes: an upload with 408 through the
// Nimbus API and S3's 400 RequestTimeout, purging what it had stored, and
// any other body read (a Lambda invocation's, here) with its API's error.
// Before, each waited for the rest of the body for as long as the
// connection lived, holding its goroutine and what it had buffered (up
// to the 6 MB of an invocation, chunk buffers for a put): a few thousand
// such connections held the node's memory.
func TestStalledUploadsFail(t *testing.T) {
	ctx := context.Background()
	n := nodetest.Start(t, node.Config{Dev: true, BodyIdleTimeout: 300 * time.Millisecond})
	if _, _, err := n.Data.PutBucket(ctx, "stalls"); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(n.URL(), "http://")
	scope := "AWS4-HMAC-SHA256 Credential=AKID/" + time.Now().UTC().Format("20060102") + "/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + strings.Repeat("0", 64)
	for _, tc := range []struct {
		name, path, header string
		status             int
		code               string
	}{
		{"Nimbus API", "/api/v1/buckets/stalls/objects/k1", "", http.StatusRequestTimeout, `"code": "RequestTimeout"`},
		{"S3", "/stalls/k2", "Authorization: " + scope + "\r\nX-Amz-Content-Sha256: UNSIGNED-PAYLOAD\r\n", http.StatusBadRequest, "<Code>RequestTimeout</Code>"},
		{"Lambda Invoke", "/2015-03-31/functions/anything/invocations", "", http.StatusBadRequest, "stopped sending"},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// Announce 5 MB, send a chunk and a half, then nothing.
		sent := data.ChunkSize * 3 / 2
		method := "PUT"
		if strings.HasPrefix(tc.path, "/2015") {
			method = "POST"
		}
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n%s\r\n", method, tc.path, addr, 5<<20, tc.header)
		if _, err := io.Copy(conn, io.LimitReader(strings.NewReader(strings.Repeat("x", sent)), int64(sent))); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: no answer to a stalled upload: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.code) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, resp.StatusCode, body, tc.status, tc.code)
		}
		if waited := time.Since(start); waited > 5*time.Second {
			t.Errorf("%s: answered after %v", tc.name, waited)
		}
	}
	l, err := n.Data.ListObjects(ctx, "stalls", data.ListOptions{})
	if err != nil || len(l.Objects) != 0 {
		t.Fatalf("objects after the stalled uploads: %+v, %v", l, err)
	}
	st, err := n.Store.JS.Stream(ctx, "OBJ_"+data.StoreName("stalls"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("$O."+data.StoreName("stalls")+".C.>"))
	if err != nil || len(info.State.Subjects) != 0 {
		t.Fatalf("chunks left by the stalled uploads: %v, %v", info.State.Subjects, err)
	}
}

// TestRefusedUploadsAreRead: a client that sends its whole body before it
// reads the answer (as browsers do with a presigned URL) gets the refusal
// of an upload refused before its body was read. The node answered at
// once and closed the connection on the unread body, and such a client
// met a reset as it wrote, never reading the 412 or 403.
func TestRefusedUploadsAreRead(t *testing.T) {
	ctx := context.Background()
	n := nodetest.Start(t, node.Config{Dev: true})
	if _, _, err := n.Data.PutBucket(ctx, "refusals"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Data.PutObject(ctx, "refusals", "k", strings.NewReader("kept"), 4, data.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	presigned, _, err := n.Data.Presign(http.MethodPut, "refusals", "k", time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(n.URL(), "http://")
	body := strings.Repeat("x", 20<<20)
	for _, tc := range []struct {
		name, target, header string
		status               int
	}{
		{"a put over an object, If-None-Match: *", "/api/v1/buckets/refusals/objects/k", "If-None-Match: *\r\n", http.StatusPreconditionFailed},
		{"a presigned put, tampered with", strings.Replace(presigned, "refusals/k", "refusals/other", 1), "", http.StatusForbidden},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		target := strings.TrimPrefix(tc.target, n.URL())
		if _, err := fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n%s\r\n%s", target, addr, len(body), tc.header, body); err != nil {
			t.Fatalf("%s: the client could not send its body: %v", tc.name, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: no answer: %v", tc.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
	if got, err := n.Data.GetObject(ctx, "refusals", "k", ""); err != nil {
		t.Fatal(err)
	} else if b, _ := io.ReadAll(got.Body); string(b) != "kept" {
		t.Fatalf("the object holds %q", b)
	}
}
