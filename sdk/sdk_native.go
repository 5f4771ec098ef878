//go:build !wasip1

package sdk

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func start(h Handler) {
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api == "" {
		fmt.Fprintln(os.Stderr, "sdk: AWS_LAMBDA_RUNTIME_API is not set: run this binary under the Nimbus process runtime or AWS Lambda")
		os.Exit(1)
	}
	// An instance that takes several invocations at once (a function's
	// concurrency, AWS_LAMBDA_MAX_CONCURRENCY as on Lambda Managed
	// Instances) is served by as many loops, each with its own poll: one
	// process and one Go runtime for them all, which costs the machine
	// less than as many processes.
	n := 1
	if v, err := strconv.Atoi(os.Getenv("AWS_LAMBDA_MAX_CONCURRENCY")); err == nil && v > 1 {
		n = min(v, maxLoops)
	}
	fmt.Fprintf(os.Stderr, "sdk: %v\n", serveLambda(context.Background(), "http://"+api, h, n))
	os.Exit(1)
}

// serveLambda runs n invocation loops on the Runtime API at base and
// returns the first one's error.
func serveLambda(ctx context.Context, base string, h Handler, n int) error {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}}
	errs := make(chan error, n)
	for range n {
		go func() { errs <- runLambda(ctx, client, base, h) }()
	}
	return <-errs
}

// maxLoops bounds the invocation loops of one process.
const maxLoops = 1024

const runtimePath = "/2018-06-01/runtime/invocation/"

// runLambda serves invocations from the Lambda Runtime API at base until the
// API fails or ctx ends. It always returns a non-nil error.
func runLambda(ctx context.Context, client *http.Client, base string, h Handler) error {
	for {
		inv, event, err := nextLambda(ctx, client, base)
		if err != nil {
			return err
		}
		payload, ferr := invoke(inv, h, event)
		if ferr != nil {
			err = postLambda(ctx, client, base+runtimePath+inv.id+"/error", marshalError(ferr), ferr.Type)
		} else {
			err = postLambda(ctx, client, base+runtimePath+inv.id+"/response", payload, "")
		}
		if err != nil {
			return err
		}
	}
}

func nextLambda(ctx context.Context, client *http.Client, base string) (*invocation, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+runtimePath+"next", nil)
	if err != nil {
		return nil, nil, fmt.Errorf("next: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("next: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("next: read event: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("next: status %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	inv := &invocation{
		id:      resp.Header.Get("Lambda-Runtime-Aws-Request-Id"),
		traceID: resp.Header.Get("Lambda-Runtime-Trace-Id"),
	}
	if inv.id == "" {
		return nil, nil, errors.New("next: response has no Lambda-Runtime-Aws-Request-Id")
	}
	if h := resp.Header.Get(headerNimbusHTTP); h != "" {
		if b, err := base64.StdEncoding.DecodeString(h); err == nil {
			inv.httpRaw = string(b)
		}
	}
	if ms, err := strconv.ParseInt(resp.Header.Get("Lambda-Runtime-Deadline-Ms"), 10, 64); err == nil && ms > 0 {
		inv.deadline = time.UnixMilli(ms)
	}
	return inv, body, nil
}

func postLambda(ctx context.Context, client *http.Client, url string, body []byte, errType string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post result: %w", err)
	}
	if errType != "" {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Lambda-Runtime-Function-Error-Type", errType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post result: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	// 413 (payload too large) is the runtime's answer for this invocation,
	// not a broken API: keep serving, as aws-lambda-go does.
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusRequestEntityTooLarge {
		return fmt.Errorf("post result: status %s", resp.Status)
	}
	return nil
}

func writeLog(msg string) {
	_, _ = io.WriteString(os.Stderr, msg)
}

// headerNimbusHTTP carries the HTTP request behind an invocation on /next
// (a Nimbus extension of the Runtime API; absent on AWS).
const headerNimbusHTTP = "Lambda-Runtime-Nimbus-Http"

func loadHTTP(inv *invocation) string { return inv.httpRaw }

// Where a process function finds the node's API (set by the process
// runtime; absent on AWS Lambda).
const (
	envAPI = "NIMBUS_API"
	// envAPISocket is the same API on a Unix socket (cheaper than TCP),
	// preferred when set.
	envAPISocket = "NIMBUS_API_SOCKET"
	envToken     = "NIMBUS_DATA_TOKEN"
)

// apiClient has no timeout of its own: the invocation's context bounds
// every call. It follows no redirects: the API never means one, and
// following a redirect would re-send a write to another path (an object
// under another key).
var apiClient = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// roundTrip sends req to the node's API with the instance's credential.
func roundTrip(ctx context.Context, req *apiRequest) (*apiResponse, error) {
	base, tok, err := apiEnv()
	if err != nil {
		return nil, err
	}
	if sock := os.Getenv(envAPISocket); sock != "" {
		return roundTripConn(ctx, endpoint{"unix", sock}, tok, req) // apiconn.go
	}
	if addr, ok := strings.CutPrefix(base, "http://"); ok && !strings.Contains(addr, "/") {
		return roundTripConn(ctx, endpoint{"tcp", addr}, tok, req)
	}
	return sendHTTP(ctx, apiClient, base, tok, req, bytes.NewReader(req.Body), int64(len(req.Body)))
}

// putStream sends req with body streamed as its body (chunked: its length
// unknown), on net/http, over the API's Unix socket when there is one.
// A body that fails ends the request, and the error wraps the body's.
func putStream(ctx context.Context, req *apiRequest, body io.Reader) (*apiResponse, error) {
	base, tok, err := apiEnv()
	if err != nil {
		return nil, err
	}
	client := apiClient
	if sock := os.Getenv(envAPISocket); sock != "" {
		client, base = socketClient(sock), "http://nimbus"
	}
	// A put the node refuses before reading its body (a condition that
	// does not hold) answers at once, and the body is not sent: without
	// the wait, the answer was lost to a broken pipe as the node closed
	// the connection on the body.
	req.Header["Expect"] = "100-continue"
	resp, err := sendHTTP(ctx, client, base, tok, req, body, -1)
	if err != nil {
		return nil, err
	}
	return answerOf(resp)
}

// apiEnv returns where the node's API is and the instance's credential.
func apiEnv() (base, tok string, err error) {
	base, tok = os.Getenv(envAPI), os.Getenv(envToken)
	if base == "" || tok == "" {
		return "", "", fmt.Errorf("%s and %s are not set: data and event calls need the Nimbus process runtime", envAPI, envToken)
	}
	return base, tok, nil
}

// sendHTTP sends req on client to the API at base, with body (of length
// n; -1: unknown, sent chunked) and the credential tok, and reads the
// answer.
func sendHTTP(ctx context.Context, client *http.Client, base, tok string, req *apiRequest, body io.Reader, n int64) (*apiResponse, error) {
	target := base + req.Path
	if req.Query != "" {
		target += "?" + req.Query
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, target, body)
	if err != nil {
		return nil, err
	}
	hr.ContentLength = n
	for k, v := range req.Header {
		hr.Header.Set(k, v)
	}
	hr.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read answer of %s %s: %w", req.Method, req.Path, err)
	}
	out := &apiResponse{Status: resp.StatusCode, Body: b, Header: make(map[string]string, len(resp.Header))}
	for k, v := range resp.Header {
		if len(v) > 0 {
			out.Header[k] = v[0]
		}
	}
	if req.Method == http.MethodHead {
		// A HEAD's Content-Length describes the object; Go moves it out
		// of the headers.
		out.Header["Content-Length"] = strconv.FormatInt(resp.ContentLength, 10)
	}
	return out, nil
}

var (
	sockOnce   sync.Once
	sockClient *http.Client
)

// socketClient is apiClient over the Unix socket at path (the process's
// one: NIMBUS_API_SOCKET does not change).
func socketClient(path string) *http.Client {
	sockOnce.Do(func() {
		var d net.Dialer
		sockClient = &http.Client{
			CheckRedirect: apiClient.CheckRedirect,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return d.DialContext(ctx, "unix", path)
				},
				ExpectContinueTimeout: time.Second, // as http.DefaultTransport's, which apiClient uses
			},
		}
	})
	return sockClient
}

// A process function's table gets and puts are HTTP calls like the rest.
func getItem(ctx context.Context, t *TableRef, raw []byte) (*Item, error) {
	return getItemHTTP(ctx, t, raw)
}

func putItem(ctx context.Context, t *TableRef, raw []byte, o writeOptions) (uint64, error) {
	return putItemHTTP(ctx, t, raw, o)
}
