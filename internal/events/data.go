package events

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nimbus-run/nimbus/api"
)

// DataTriggers starts table and bucket triggers. Their streams, record
// shapes and durable positions belong to the data services, so this
// package only declares and reconciles them and hands each one over; the
// node sets Config.Data. Without it such triggers report an error.
type DataTriggers interface {
	StartDataTrigger(ctx context.Context, fn string, t api.Trigger) (DataTrigger, error)
}

// DataTrigger is a running table or bucket trigger (*data.Trigger).
type DataTrigger interface {
	// Stop ends the trigger and waits for its batch in flight; the
	// durable position stays, so a restart resumes where it stopped.
	Stop()
	// Remove stops the trigger and deletes its durable position, for a
	// trigger that is gone from the function's spec.
	Remove(ctx context.Context) error
	Delivered() uint64
	LastError() string
}

type dataRunner struct {
	fn  string
	t   api.Trigger
	dt  DataTrigger
	log *slog.Logger
}

func (s *Service) startData(fn string, t api.Trigger) (runner, error) {
	if s.cfg.Data == nil {
		return nil, fmt.Errorf("%s triggers need the data services, which this node does not run", t.Kind())
	}
	// Creating the durable consumer is a few JetStream calls; a stuck
	// server must not hold reconcile (and its lock) forever.
	ctx, cancel := context.WithTimeout(s.ctx, 15*time.Second)
	defer cancel()
	dt, err := s.cfg.Data.StartDataTrigger(ctx, fn, t)
	if err != nil {
		return nil, err
	}
	return &dataRunner{fn: fn, t: t, dt: dt, log: s.log}, nil
}

func (r *dataRunner) spec() api.Trigger { return r.t }
func (r *dataRunner) stop()             { r.dt.Stop() }

// remove deletes the durable position: on a bucket it would keep old
// object infos for a trigger that no longer reads them.
func (r *dataRunner) remove(ctx context.Context) {
	if err := r.dt.Remove(ctx); err != nil {
		r.log.Warn("events: trigger stopped, its position not deleted", "function", r.fn, "trigger", r.t.Name, "err", err)
	}
}

func (r *dataRunner) status(context.Context) api.TriggerStatus {
	st := api.TriggerStatus{Function: r.fn, Name: r.t.Name, Kind: r.t.Kind(), Trigger: r.t, State: "active"}
	if e := r.dt.LastError(); e != "" {
		st.State = "active (last batch failed: " + e + ")"
	}
	return st
}
