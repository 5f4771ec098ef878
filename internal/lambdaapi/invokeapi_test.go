package lambdaapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/examples"
	"github.com/nimbus-run/nimbus/internal/cli"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// builds caches native builds per test process: pkg -> *build.
var builds sync.Map

type build struct {
	once sync.Once
	code []byte
	err  error
}

// goBinary builds a main package of this module (relative to its root)
// for the process runtime, once per test process.
func goBinary(t *testing.T, pkg string) []byte {
	t.Helper()
	v, _ := builds.LoadOrStore(pkg, &build{})
	b := v.(*build)
	b.once.Do(func() {
		root, err := examples.Root()
		if err != nil {
			b.err = err
			return
		}
		dir, err := os.MkdirTemp("", "nimbus-lambdaapi-")
		if err != nil {
			b.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "bootstrap")
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = errors.New("go build " + pkg + ": " + err.Error() + "\n" + string(msg))
			return
		}
		b.code, b.err = os.ReadFile(out)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.code
}

// cliKey creates an access key the way a user does: nimbus keys create.
func cliKey(t *testing.T, n *node.Node, name string) api.Key {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), []string{"--server", n.URL(), "--token", n.Token(), "keys", "create", name, "-o", "json"}, nil, &out, &errb)
	if code != 0 {
		t.Fatalf("nimbus keys create: exit %d: %s", code, errb.String())
	}
	var k api.Key
	if err := json.Unmarshal(out.Bytes(), &k); err != nil || k.ID == "" || k.Secret == "" {
		t.Fatalf("nimbus keys create -o json: %v: %q", err, out.String())
	}
	return k
}

func lambdaClient(n *node.Node, id, secret string) *lambda.Client {
	cfg := aws.Config{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, Source: "test"}, nil
		}),
	}
	return lambda.NewFromConfig(cfg, func(o *lambda.Options) {
		o.BaseEndpoint = aws.String(n.URL())
		o.RetryMaxAttempts = 1 // see throttling as it happens
	})
}

type fixture struct {
	n   *node.Node
	sdk *lambda.Client
	key api.Key
}

// TestInvokeAPIWithSDK runs AWS's own Lambda client against a node that is
// not in dev mode, with a key made by `nimbus keys create`. One node serves
// every subtest: starting it and building the functions is the slow part.
func TestInvokeAPIWithSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and builds functions")
	}
	n := nodetest.Start(t, node.Config{QueueTimeout: 50 * time.Millisecond})
	echo := goBinary(t, "./examples/lambda-go-echo")
	nodetest.Deploy(t, n, api.Function{Name: "echo", Runtime: "process", Memory: 128, Timeout: "3s", Max: 20}, echo)
	logs := goBinary(t, "./internal/lambdaapi/testdata/lambdalog")
	nodetest.Deploy(t, n, api.Function{Name: "logs", Runtime: "process", Memory: 128, Timeout: "3s"}, logs)
	nodetest.Deploy(t, n, api.Function{Name: "slow", Runtime: "process", Memory: 128, Timeout: "500ms", Max: 1}, logs)
	nodetest.Deploy(t, n, api.Function{Name: "hello", Runtime: "wasm", Memory: 64, Timeout: "3s"}, testutil.BuildWasm(t, "./examples/hello"))
	k := cliKey(t, n, "sdk-test")
	f := &fixture{n: n, sdk: lambdaClient(n, k.ID, k.Secret), key: k}

	t.Run("invoke", func(t *testing.T) { testSDKInvoke(t, f) })
	t.Run("log tail and client context", func(t *testing.T) { testSDKLogTailAndClientContext(t, f) })
	t.Run("event and dry run", func(t *testing.T) { testSDKEventAndDryRun(t, f) })
	t.Run("errors", func(t *testing.T) { testSDKErrors(t, f) })
	t.Run("auth", func(t *testing.T) { testSDKAuth(t, f) })
}

func mustInvoke(t *testing.T, c *lambda.Client, in *lambda.InvokeInput) *lambda.InvokeOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := c.Invoke(ctx, in)
	if err != nil {
		t.Fatalf("Invoke %s: %v", aws.ToString(in.FunctionName), err)
	}
	return out
}

func testSDKInvoke(t *testing.T, f *fixture) {
	tests := []struct {
		name, function, payload string
		want                    string // payload, compared as JSON
		funcErr                 string // want FunctionError
		errType, errMsg         string // in the error payload
	}{
		{name: "aws-lambda-go echo", function: "echo", payload: `{"hello":"world","n":42}`, want: `{"hello":"world","n":42}`},
		{name: "by full ARN", function: "arn:aws:lambda:us-east-1:123456789012:function:echo", payload: `[1,2]`, want: `[1,2]`},
		{name: "by partial ARN with qualifier", function: "123456789012:function:echo:$LATEST", payload: `"s"`, want: `"s"`},
		{name: "by name:qualifier", function: "echo:$LATEST", payload: `{}`, want: `{}`},
		{name: "function error", function: "echo", payload: `{"fail":"x"}`, funcErr: "Unhandled", errType: "errorString", errMsg: "x"},
		{name: "timeout", function: "slow", payload: `{"hang_ms":2000}`, funcErr: "Unhandled", errType: "Sandbox.Timedout", errMsg: "Task timed out after 0.50 seconds"},
		{name: "wasm hello", function: "hello", payload: `{"name":"Ada"}`, want: `{"message":"Hello, Ada!"}`},
		{name: "wasm function error", function: "hello", payload: `"not an object"`, funcErr: "Unhandled", errType: "InvalidEvent", errMsg: "event must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustInvoke(t, f.sdk, &lambda.InvokeInput{FunctionName: aws.String(tt.function), Payload: []byte(tt.payload)})
			if out.StatusCode != 200 {
				t.Errorf("StatusCode = %d, want 200", out.StatusCode)
			}
			if got := aws.ToString(out.ExecutedVersion); got != "$LATEST" {
				t.Errorf("ExecutedVersion = %q, want $LATEST", got)
			}
			if got := aws.ToString(out.FunctionError); got != tt.funcErr {
				t.Fatalf("FunctionError = %q, want %q (payload %s)", got, tt.funcErr, out.Payload)
			}
			if tt.funcErr == "" {
				if !jsonEqual(out.Payload, []byte(tt.want)) {
					t.Errorf("Payload = %s, want %s", out.Payload, tt.want)
				}
				return
			}
			var fe struct {
				Type    string `json:"errorType"`
				Message string `json:"errorMessage"`
			}
			if err := json.Unmarshal(out.Payload, &fe); err != nil {
				t.Fatalf("error payload %q: %v", out.Payload, err)
			}
			if fe.Type != tt.errType || !strings.Contains(fe.Message, tt.errMsg) {
				t.Errorf("error payload = %+v, want type %q and a message containing %q", fe, tt.errType, tt.errMsg)
			}
		})
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func testSDKLogTailAndClientContext(t *testing.T, f *fixture) {
	cc := base64.StdEncoding.EncodeToString([]byte(`{"custom": {"tenant": "acme"}, "env": {}}`))
	out := mustInvoke(t, f.sdk, &lambda.InvokeInput{
		FunctionName: aws.String("logs"), Payload: []byte(`{"marker":"tail-me"}`),
		LogType: types.LogTypeTail, ClientContext: aws.String(cc),
	})
	logs, err := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
	if err != nil {
		t.Fatalf("LogResult is not base64: %v", err)
	}
	if !strings.Contains(string(logs), `lambdalog: got {"marker":"tail-me"}`) {
		t.Errorf("LogResult = %q, want the function's output", logs)
	}
	var res struct {
		Custom    map[string]string `json:"custom"`
		RequestID string            `json:"request_id"`
	}
	if err := json.Unmarshal(out.Payload, &res); err != nil {
		t.Fatal(err)
	}
	if res.Custom["tenant"] != "acme" {
		t.Errorf("client context custom = %v, want tenant=acme", res.Custom)
	}
	if res.RequestID == "" {
		t.Error("the function saw no request id")
	}

	// Without Tail, no log result.
	out = mustInvoke(t, f.sdk, &lambda.InvokeInput{FunctionName: aws.String("logs"), Payload: []byte(`{}`)})
	if out.LogResult != nil {
		t.Errorf("LogResult without Tail = %q", aws.ToString(out.LogResult))
	}
}

func testSDKEventAndDryRun(t *testing.T, f *fixture) {
	out := mustInvoke(t, f.sdk, &lambda.InvokeInput{
		FunctionName: aws.String("logs"), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"marker":"async-event"}`),
	})
	if out.StatusCode != 202 {
		t.Fatalf("Event StatusCode = %d, want 202", out.StatusCode)
	}
	c := nodetest.Client(f.n)
	testutil.Eventually(t, "the Event invocation's record", func() bool {
		recs, err := c.Records(context.Background(), "logs", 50)
		if err != nil {
			return false
		}
		for _, r := range recs {
			// Event calls run from the durable async queue: "async:lambda-api-event".
			if strings.HasSuffix(r.Source, "lambda-api-event") && r.Status == "ok" && strings.Contains(r.Logs, "async-event") {
				return true
			}
		}
		return false
	})

	out = mustInvoke(t, f.sdk, &lambda.InvokeInput{FunctionName: aws.String("echo"), InvocationType: types.InvocationTypeDryRun})
	if out.StatusCode != 204 {
		t.Errorf("DryRun StatusCode = %d, want 204", out.StatusCode)
	}
	_, err := f.sdk.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("nope"), InvocationType: types.InvocationTypeDryRun})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("DryRun of an unknown function: %v, want ResourceNotFoundException", err)
	}
	_, err = f.sdk.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("nope"), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{}`)})
	if !errors.As(err, &nf) {
		t.Errorf("Event to an unknown function: %v, want ResourceNotFoundException", err)
	}
	_, err = f.sdk.Invoke(context.Background(), &lambda.InvokeInput{
		FunctionName: aws.String("echo"), InvocationType: types.InvocationTypeEvent, Payload: []byte(`"` + strings.Repeat("x", 300<<10) + `"`),
	})
	var tl *types.RequestTooLargeException
	if !errors.As(err, &tl) {
		t.Errorf("300 KB Event: %v, want RequestTooLargeException", err)
	}
}

func testSDKErrors(t *testing.T, f *fixture) {
	ctx := context.Background()

	_, err := f.sdk.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("does-not-exist"), Payload: []byte(`{}`)})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) || !strings.Contains(nf.ErrorMessage(), "does-not-exist") {
		t.Errorf("unknown function: %v, want ResourceNotFoundException naming it", err)
	}
	_, err = f.sdk.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("echo"), Qualifier: aws.String("7"), Payload: []byte(`{}`)})
	if !errors.As(err, &nf) {
		t.Errorf("unknown version: %v, want ResourceNotFoundException", err)
	}
	_, err = f.sdk.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("echo"), Payload: []byte(`{not json`)})
	var irc *types.InvalidRequestContentException
	if !errors.As(err, &irc) {
		t.Errorf("invalid JSON payload: %v, want InvalidRequestContentException", err)
	}

	// Throttling: "slow" has max 1; hold its one slot, then call again.
	held := make(chan error, 1)
	go func() {
		_, err := f.sdk.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("slow"), Payload: []byte(`{"hang_ms":400}`)})
		held <- err
	}()
	c := nodetest.Client(f.n)
	testutil.Eventually(t, "slow to be busy", func() bool {
		fn, err := c.GetFunction(ctx, "slow")
		return err == nil && fn.Instances != nil && fn.Instances.Inflight == 1
	})
	_, err = f.sdk.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("slow"), Payload: []byte(`{}`)})
	var tmr *types.TooManyRequestsException
	if !errors.As(err, &tmr) {
		t.Errorf("over max concurrency: %v, want TooManyRequestsException", err)
	} else if tmr.Reason != types.ThrottleReasonReservedFunctionConcurrentInvocationLimitExceeded || aws.ToString(tmr.RetryAfterSeconds) == "" {
		t.Errorf("throttle: Reason %q, Retry-After %q", tmr.Reason, aws.ToString(tmr.RetryAfterSeconds))
	}
	if err := <-held; err != nil {
		t.Errorf("the call holding the slot: %v", err)
	}
}

func apiErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func testSDKAuth(t *testing.T, f *fixture) {
	ctx := context.Background()
	in := &lambda.InvokeInput{FunctionName: aws.String("echo"), Payload: []byte(`{}`)}

	_, err := lambdaClient(f.n, f.key.ID, "wrong-secret-wrong-secret-wrong-secret00").Invoke(ctx, in)
	if code := apiErrorCode(err); code != "InvalidSignatureException" {
		t.Errorf("wrong secret: %v (code %q), want InvalidSignatureException", err, code)
	}
	_, err = lambdaClient(f.n, "NMBKUNKNOWNUNKNOWN00", "x").Invoke(ctx, in)
	if code := apiErrorCode(err); code != "UnrecognizedClientException" {
		t.Errorf("unknown key: %v (code %q), want UnrecognizedClientException", err, code)
	}

	// A second key, revoked with the CLI, stops working.
	k := cliKey(t, f.n, "to-revoke")
	sdk := lambdaClient(f.n, k.ID, k.Secret)
	mustInvoke(t, sdk, in)
	var out, errb bytes.Buffer
	if code := cli.Run(ctx, []string{"--server", f.n.URL(), "--token", f.n.Token(), "keys", "rm", k.ID}, nil, &out, &errb); code != 0 {
		t.Fatalf("nimbus keys rm: exit %d: %s", code, errb.String())
	}
	_, err = sdk.Invoke(ctx, in)
	if code := apiErrorCode(err); code != "UnrecognizedClientException" {
		t.Errorf("revoked key: %v (code %q), want UnrecognizedClientException", err, code)
	}

	// Raw HTTP: unsigned, bearer token, stale signature.
	url := f.n.URL() + "/2015-03-31/functions/echo/invocations"
	post := func(mod func(*http.Request)) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("POST", url, strings.NewReader(`{"raw":true}`))
		mod(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, body := post(func(*http.Request) {})
	if resp.StatusCode != 401 || resp.Header.Get("X-Amzn-ErrorType") != "MissingAuthenticationTokenException" {
		t.Errorf("unsigned: %d %s %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body)
	}
	resp, body = post(func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+f.n.Token()) })
	if resp.StatusCode != 200 || string(body) != `{"raw":true}` {
		t.Errorf("admin bearer token: %d %s", resp.StatusCode, body)
	}
	resp, body = post(func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") })
	if resp.StatusCode != 403 || resp.Header.Get("X-Amzn-ErrorType") != "UnrecognizedClientException" {
		t.Errorf("wrong bearer token: %d %s %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body)
	}
	resp, body = post(func(r *http.Request) {
		sum := sha256.Sum256([]byte(`{"raw":true}`))
		creds := aws.Credentials{AccessKeyID: f.key.ID, SecretAccessKey: f.key.Secret}
		if err := v4.NewSigner().SignHTTP(ctx, creds, r, hex.EncodeToString(sum[:]), "lambda", "us-east-1", time.Now().Add(-20*time.Minute)); err != nil {
			t.Fatal(err)
		}
	})
	var eb struct {
		Type    string `json:"Type"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &eb)
	if resp.StatusCode != 403 || resp.Header.Get("X-Amzn-ErrorType") != "InvalidSignatureException" || !strings.Contains(eb.Message, "Signature expired") || eb.Type != "User" {
		t.Errorf("stale signature: %d %s %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body)
	}
	resp, body = post(func(r *http.Request) {
		sum := sha256.Sum256([]byte(`{"raw":true}`))
		creds := aws.Credentials{AccessKeyID: f.key.ID, SecretAccessKey: f.key.Secret}
		if err := v4.NewSigner().SignHTTP(ctx, creds, r, hex.EncodeToString(sum[:]), "sqs", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
	})
	if resp.StatusCode != 403 || !strings.Contains(string(body), "'lambda'") {
		t.Errorf("signed for another service: %d %s", resp.StatusCode, body)
	}
}

// TestDevModeAcceptsAnything: in --dev, unsigned and badly signed requests
// both run.
func TestDevModeAcceptsAnything(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	n := nodetest.Start(t, node.Config{Dev: true})
	nodetest.Deploy(t, n, api.Function{Name: "hello", Memory: 64, Timeout: "3s"}, testutil.BuildWasm(t, "./examples/hello"))
	resp, err := http.Post(n.URL()+"/2015-03-31/functions/hello/invocations", "application/json", strings.NewReader(`{"name":"Dev"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "Hello, Dev!") {
		t.Errorf("unsigned in dev mode: %d %s", resp.StatusCode, b)
	}
	out := mustInvoke(t, lambdaClient(n, "ANYTHING", "anything"), &lambda.InvokeInput{FunctionName: aws.String("hello"), Payload: []byte(`{"name":"SDK"}`)})
	if !strings.Contains(string(out.Payload), "Hello, SDK!") {
		t.Errorf("signed with an unknown key in dev mode: %s", out.Payload)
	}
}
