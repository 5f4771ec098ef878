//go:build !wasip1

package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

func start(h Handler) {
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api == "" {
		fmt.Fprintln(os.Stderr, "sdk: AWS_LAMBDA_RUNTIME_API is not set: run this binary under the Nimbus process runtime or AWS Lambda")
		os.Exit(1)
	}
	err := runLambda(context.Background(), http.DefaultClient, "http://"+api, h)
	fmt.Fprintf(os.Stderr, "sdk: %v\n", err)
	os.Exit(1)
}

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
