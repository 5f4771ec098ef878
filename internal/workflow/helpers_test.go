package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// confnBehaviors are the conformance functions, deployed under their names
// from one module (testdata/confn) that switches on BEHAVIOR.
var confnBehaviors = []string{"identity", "echo_hello", "raise_exception", "raise_custom_exception", "return_bytes_str", "large_output", "sleep_ms"}

// deployConfn deploys every conformance function on n.
func deployConfn(t testing.TB, n *node.Node) {
	t.Helper()
	code := testutil.BuildWasm(t, "./internal/workflow/testdata/confn")
	for _, b := range confnBehaviors {
		nodetest.Deploy(t, n, api.Function{Name: b, Runtime: "wasm", Memory: 64, Timeout: "30s", Max: 200,
			Env: map[string]string{"BEHAVIOR": b}}, code)
	}
}

// sfnClient is the AWS SDK's Step Functions client pointed at n.
func sfnClient(n *node.Node) *sfn.Client { return sfnClientWith(n, "AKIDNIMBUSTEST", "secret") }

// sfnClientWith signs with the given access key.
func sfnClientWith(n *node.Node, id, secret string) *sfn.Client {
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""),
	}
	return sfn.NewFromConfig(cfg, func(o *sfn.Options) {
		o.BaseEndpoint = aws.String(n.URL())
		// StartSyncExecution prefixes the host with "sync-", which a
		// loopback address cannot take.
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("NoHostPrefix",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					return next.HandleInitialize(smithyhttp.DisableEndpointHostPrefix(ctx, true), in)
				}), middleware.Before)
		})
	})
}

const testRole = "arn:aws:iam::000000000000:role/nimbus"

func createMachine(t testing.TB, c *sfn.Client, name, def string, typ types.StateMachineType) string {
	t.Helper()
	out, err := c.CreateStateMachine(context.Background(), &sfn.CreateStateMachineInput{
		Name: aws.String(name), Definition: aws.String(def), RoleArn: aws.String(testRole), Type: typ,
	})
	if err != nil {
		t.Fatalf("CreateStateMachine %s: %v", name, err)
	}
	return *out.StateMachineArn
}

// waitDone polls DescribeExecution until the execution has ended.
func waitDone(ctx context.Context, c *sfn.Client, arn string) (*sfn.DescribeExecutionOutput, error) {
	delay := 10 * time.Millisecond
	for {
		out, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err != nil {
			return nil, err
		}
		if out.Status != types.ExecutionStatusRunning {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("execution %s still running: %w", arn, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}

func awsErrorCode(err error) string {
	var ae interface{ ErrorCode() string }
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func errorsAs[T any](err error, target *T) bool { return errors.As(err, target) }
