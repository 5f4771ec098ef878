package apigateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/examples"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

var (
	fixtureOnce sync.Once
	fixtureCode []byte
	fixtureErr  error
)

// fixture builds testdata/apigwfn, an aws-lambda-go function written for
// API Gateway, once per test process.
func fixture(tb testing.TB) []byte {
	tb.Helper()
	fixtureOnce.Do(func() {
		root, err := examples.Root()
		if err != nil {
			fixtureErr = err
			return
		}
		dir, err := os.MkdirTemp("", "nimbus-apigw-")
		if err != nil {
			fixtureErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "bootstrap")
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./internal/apigateway/testdata/apigwfn")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			fixtureErr = fmt.Errorf("go build apigwfn: %v\n%s", err, msg)
			return
		}
		fixtureCode, fixtureErr = os.ReadFile(out)
	})
	if fixtureErr != nil {
		tb.Fatal(fixtureErr)
	}
	return fixtureCode
}

// startNode starts a dev node with the fixture deployed as "fn" and, as a
// function authorizer, "authz".
func startNode(tb testing.TB, cfg node.Config) *node.Node {
	tb.Helper()
	return startNodeWith(tb, cfg, nil)
}

// startNodeWith is startNode with the HTTP client the management calls use
// (one that trusts the node's certificate, for TLS).
func startNodeWith(tb testing.TB, cfg node.Config, hc *http.Client) *node.Node {
	tb.Helper()
	cfg.Dev = true
	n := nodetest.Start(tb, cfg)
	c := client(n, hc)
	ctx := context.Background()
	up, err := c.PutCode(ctx, bytes.NewReader(fixture(tb)))
	if err != nil {
		tb.Fatalf("upload fixture: %v", err)
	}
	for _, fn := range []api.Function{
		{Name: "fn", Runtime: "process", Code: up.Digest, Memory: 64, Timeout: "10s", Max: 100},
		{Name: "authz", Runtime: "process", Code: up.Digest, Memory: 64, Timeout: "5s", Env: map[string]string{"MODE": "authorizer"}},
	} {
		if _, err := c.PutFunction(ctx, &fn); err != nil {
			tb.Fatalf("deploy %s: %v", fn.Name, err)
		}
	}
	return n
}

func client(n *node.Node, hc *http.Client) *api.Client {
	c := api.NewClient(n.URL(), n.Token())
	if hc != nil {
		c.HTTP = hc
	}
	return c
}

func putAPI(tb testing.TB, n *node.Node, cfg *api.APIConfig) *api.PutAPIResult {
	tb.Helper()
	return putAPIWith(tb, n, nil, cfg)
}

func putAPIWith(tb testing.TB, n *node.Node, hc *http.Client, cfg *api.APIConfig) *api.PutAPIResult {
	tb.Helper()
	res, err := client(n, hc).PutAPI(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("PUT /api/v1/api: %v", err)
	}
	return res
}

type response struct {
	status int
	header http.Header
	body   []byte
	proto  string
}

func (r response) json(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		tb.Fatalf("body is not JSON (%v): %s", err, r.body)
	}
}

// do sends one request; hdr holds name/value pairs ("Host" sets the host).
func do(tb testing.TB, client *http.Client, method, url string, body []byte, hdr ...string) response {
	tb.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b, proto: resp.Proto}
}

// seen is what the fixture reports about the event it got.
type seen struct {
	RouteKey   string            `json:"routeKey"`
	Method     string            `json:"method"`
	RawPath    string            `json:"rawPath"`
	RawQuery   string            `json:"rawQuery"`
	Params     map[string]string `json:"params"`
	Query      map[string]string `json:"query"`
	Cookies    []string          `json:"cookies"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
	Base64     bool              `json:"base64"`
	SourceIP   string            `json:"sourceIp"`
	RequestID  string            `json:"requestId"`
	JWTClaims  map[string]string `json:"jwtClaims"`
	JWTScopes  []string          `json:"jwtScopes"`
	LambdaAuth map[string]any    `json:"lambdaAuth"`
	Domain     string            `json:"domain"`
}

// errorCode returns the stable code of an error body.
func errorCode(tb testing.TB, r response) (code, message string) {
	tb.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(r.body, &eb); err != nil || eb.Error == nil {
		tb.Fatalf("status %d: body is not a JSON error: %s", r.status, r.body)
	}
	return eb.Error.Code, eb.Error.Message
}
