package node

import (
	"context"
	"fmt"
	"os"

	"github.com/nimbus-run/nimbus/internal/async"
	"github.com/nimbus-run/nimbus/internal/events"
)

// startEvents starts the async invocation queue, then the triggers and
// rules that feed it, and mounts their HTTP routes on the gateway. Their
// stops are registered here, so that they run after the HTTP servers'
// (no new work) and before the recorder's.
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

	ecfg := n.cfg.Events
	ecfg.Logger, ecfg.Metrics = n.log, n.Metrics.Registry()
	if ecfg.Replicas == 0 {
		ecfg.Replicas = n.cfg.Replicas
	}
	if ecfg.LookupEnv == nil {
		// Webhook secrets may come from the node's environment.
		ecfg.LookupEnv = os.LookupEnv
	}
	n.Events = events.New(ecfg, n.Store, n.Reg, n.Invoker, n.Async)
	if err := n.Events.Start(ctx); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.onStop(n.Events.Stop)
	n.Events.Mount(functionPublishMux{n.Gateway, n}) // functions may publish: sdkapi.go
	return nil
}
