package node

import (
	"fmt"

	"context"

	"github.com/nimbus-run/nimbus/internal/async"
)

// startEvents starts the async invocation queue and the triggers, and
// mounts their HTTP routes on the gateway. Their stops are registered here,
// so they run before the recorder's and after the HTTP servers'.
func (n *Node) startEvents(ctx context.Context) error {
	acfg := n.cfg.Async
	acfg.Logger, acfg.Metrics = n.log, n.Metrics.Registry()
	if acfg.Replicas == 0 {
		acfg.Replicas = n.cfg.Replicas
	}
	n.Async = async.New(acfg, n.Store, n.Reg, n.Invoker)
	if err := n.Async.Start(ctx); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.onStop(n.Async.Stop)
	n.Async.Mount(n.Gateway)
	return nil
}
