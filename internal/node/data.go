package node

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/async"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/data/dataapi"
	"github.com/nimbus-run/nimbus/internal/events"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/s3api"
	"github.com/nimbus-run/nimbus/internal/sigv4"
)

// startData starts the data services (tables, buckets, their triggers)
// and mounts the data API and the S3 API. It starts after the invoker
// (triggers invoke functions) and stops before it.
func (n *Node) startData(ctx context.Context) error {
	dcfg := n.cfg.Data
	dcfg.Functions, dcfg.Logger = n.Reg, n.log
	if dcfg.Replicas == 0 {
		dcfg.Replicas = n.cfg.Replicas
	}
	// A node whose NATS server is its own, and reachable by no one else,
	// writes its tables alone: it may serve reads from memory.
	dcfg.SoleWriter = n.cfg.NATSURL == "" && n.cfg.NATSListen == ""
	if dcfg.Metrics == nil {
		dcfg.Metrics = n.Metrics.Registry()
	}
	n.Data = data.New(dcfg, n.Store)
	if err := n.Data.Start(ctx); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.onStop(n.Data.Stop)
	// The events service declares table and bucket triggers (they live
	// with the function's other triggers) and hands them to us; it starts
	// after this, so its config can still be completed here.
	if n.cfg.Events.Data == nil {
		n.cfg.Events.Data = dataTriggers{n}
	}
	dataapi.Register(n.Gateway, n.Data)
	n.S3 = s3api.New(s3api.Config{Dev: n.cfg.Dev, Logger: n.log, Domains: n.cfg.S3Domains}, n.Data, n.Keys)
	return nil
}

// mainHandler is the main listener's handler: S3 requests, told apart by
// the service of their SigV4 credential scope (the design forbids guessing
// from the path, which S3 shares with user routes), by a SigV2
// signature (S3's alone), or, for a browser's POST Object form, by a host
// that names a bucket under --s3-domain, go to the S3 API; everything
// else to the gateway.
func (n *Node) mainHandler() http.Handler {
	if n.S3 == nil {
		return n.Gateway
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sigv4.Service(r) == "s3" || s3api.SignedV2(r) || n.S3.IsPostObject(r) {
			n.S3.ServeHTTP(w, r)
			return
		}
		n.Gateway.ServeHTTP(w, r)
	})
}

// DataDeadLetters hands the data triggers' failed batches to the async
// queue's DLQ, where `nimbus dlq` lists and replays them.
type DataDeadLetters struct{ Async *async.Service }

// AddDeadLetter implements data.DeadLetters.
func (d DataDeadLetters) AddDeadLetter(ctx context.Context, l data.DeadLetter) error {
	return d.Async.AddDeadLetter(ctx, async.DeadLetterInput{
		Function: l.Function, ID: l.ID, Source: l.Source, Reason: l.Reason, Error: l.Error, ErrorType: l.ErrorType,
		Attempts: l.Attempts, Payload: l.Payload, ContentType: "application/json", DedupeID: l.DedupeID,
	})
}

// StartDataTrigger starts a table or bucket trigger on this node, invoking
// through the node's invoker and dead-lettering through its async queue.
// The events service (which owns trigger declarations) is meant to call
// this for triggers of kind table and bucket; see docs/data.md.
func (n *Node) StartDataTrigger(ctx context.Context, spec data.TriggerSpec) (*data.Trigger, error) {
	var dlq data.DeadLetters
	if n.Async != nil {
		dlq = DataDeadLetters{n.Async}
	}
	return n.Data.StartTrigger(ctx, spec, n.Invoker, dlq)
}

// dataTriggers lets the events service start table and bucket triggers.
type dataTriggers struct{ n *Node }

var _ events.DataTriggers = dataTriggers{}

// StartDataTrigger implements events.DataTriggers.
func (d dataTriggers) StartDataTrigger(ctx context.Context, fn string, t api.Trigger) (events.DataTrigger, error) {
	start, err := data.ParseStart("start", t.Start)
	if err != nil {
		return nil, err
	}
	tr, err := d.n.StartDataTrigger(ctx, data.TriggerSpec{
		Function: fn, Name: t.Name, Table: t.Table, Bucket: t.Bucket,
		Events: t.Events, Prefix: t.Prefix, Batch: t.Batch, Retries: t.Retries, Start: start,
	})
	if err != nil {
		return nil, err
	}
	return tr, nil
}

// Variables a process function finds in its environment to reach the
// data API (docs/data.md).
const (
	EnvAPI       = "NIMBUS_API"
	EnvAPISocket = "NIMBUS_API_SOCKET" // the same API on a Unix socket; not always set
	EnvDataToken = "NIMBUS_DATA_TOKEN"
)

// dataEnv gives a process instance the function listener's URL and a
// credential of its own, which lets it reach exactly the tables and
// buckets its spec lists. It runs at instance start, after the data
// services and the listener exist; before that (it cannot happen:
// instances start on invocations) it adds nothing.
func (n *Node) dataEnv(spec *function.Spec) map[string]string {
	if n.Data == nil || n.fnURL == "" {
		return nil
	}
	env := map[string]string{EnvAPI: n.fnURL, EnvDataToken: n.Data.Credential(spec)}
	if n.fnSocket != "" {
		env[EnvAPISocket] = n.fnSocket
	}
	return env
}

// loopbackHost is a listener's host:port for a process on this machine:
// a listener on every interface (":8080") is reached on loopback.
func loopbackHost(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}
