package data

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A trigger's turn: one batch of a trigger runs at a time in the whole
// cluster, so that a key's changes reach the function in order.
//
// MaxAckPending = Batch and the consumer check of inTurn held one batch in
// flight only while JetStream counted the batch as pending. It does not
// once the batch's changes leave the stream: an item written more than
// its table's history allows while a batch holding one of its changes is
// at work on one node has that change dropped from the consumer's pending
// set (and the acknowledgement floor moved past it), and another node then
// took the item's later changes and delivered them first
// (TestTriggerOrderWithShortHistory). So a runner takes the trigger's turn
// before it invokes the function, and gives it back after: a key in
// TurnsKV, written only where absent or run out, holding the time to
// which the batch may run (triggerAckWait ahead, renewed with the batch's
// heartbeat). A runner that dies with the turn holds it until then, as
// JetStream holds its batch for the ack wait.
//
// Clocks: the time is the runner's; a node whose clock runs behind
// another's may wait longer for a turn run out, one whose clock runs
// ahead may take it early, as if the runner had died.

// turnHold is how long a batch waits for the trigger's turn before it is
// handed back: the runner holding the turn gives it back at once when its
// own batch is not the next, and a batch handed back for a turn held a
// moment met the next such moment when it came again, without end (two
// runs of three of TestTriggerOrderWithShortHistory delivered nothing for
// 30 s).
const turnHold = time.Second

// takeTurn takes the trigger's turn, waiting up to turnHold for the runner
// that holds it to give it back.
func (t *Trigger) takeTurn(ctx context.Context) (bool, error) {
	for wait := time.Now().Add(turnHold); ; {
		until, _ := time.Now().Add(triggerAckWait).MarshalText()
		rev, won, err := claimKey(ctx, t.s.turns, t.cfg.Durable, until, func(v []byte) bool {
			var held time.Time
			return held.UnmarshalText(v) != nil || !time.Now().Before(held)
		})
		if won {
			t.turn = rev
		}
		if won || err != nil || time.Now().After(wait) || ctx.Err() != nil {
			return won, err
		}
		sleep(ctx, 10*time.Millisecond)
	}
}

// renewTurn moves the end of the turn held triggerAckWait ahead.
func (t *Trigger) renewTurn(ctx context.Context) {
	if t.turn == 0 {
		return
	}
	until, _ := time.Now().Add(triggerAckWait).MarshalText()
	if rev, err := t.s.turns.Update(ctx, t.cfg.Durable, until, t.turn); err == nil {
		t.turn = rev
	}
}

// endTurn gives the turn held back.
func (t *Trigger) endTurn() {
	if t.turn == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t.s.turns.Delete(ctx, t.cfg.Durable, jetstream.LastRevision(t.turn)) //nolint:errcheck // it runs out anyway
	t.turn = 0
}
