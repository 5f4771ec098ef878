package node

import (
	"context"
	"fmt"

	"github.com/nimbus-run/nimbus/internal/workflow"
)

// startWorkflows starts the workflow engine and mounts the Step Functions
// API (X-Amz-Target: AWSStepFunctions.*) on the gateway. It starts after
// the invoker and the async queue and stops before them, once the HTTP
// servers have drained; executions it was driving resume at the next start.
func (n *Node) startWorkflows(ctx context.Context) error {
	cfg := workflow.Config{
		Store: n.Store, Invoker: n.Invoker, DataDir: n.cfg.DataDir,
		Token: n.token, Dev: n.cfg.Dev, Logger: n.log,
	}
	if n.Keys != nil {
		cfg.Credentials = n.Keys // SigV4 with the node's access keys
	}
	if n.Events != nil {
		cfg.Events = n.Events // nimbus:events:publish
	}
	wf, err := workflow.New(cfg)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if err := wf.Start(ctx); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.onStop(wf.Stop)
	n.Workflows = wf
	n.Gateway.RegisterTarget(workflow.TargetPrefix, wf.Handler())
	return nil
}
