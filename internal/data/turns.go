package data

import (
	"context"
	"errors"
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
// before it invokes the function, and gives it back once it finds no next
// batch waiting (or its batch not next): a key in
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
// that holds it to give it back. A runner keeps the turn from one batch to
// the next while it finds the next waiting (fetch), so a busy trigger
// writes the key only to renew it, every triggerBeat; and it takes back
// the turn it gave last with one write where no one took it since. Taken
// and given back for each batch, the turn cost four round trips to the
// KV bucket a batch (a create over a deleted key is an update that fails,
// a get and an update), which more than halved the rate at which a
// trigger delivers to a function that costs nothing.
func (t *Trigger) takeTurn(ctx context.Context) (bool, error) {
	if t.turn != 0 {
		if time.Since(t.turnAt) < triggerBeat {
			return true, nil
		}
		if t.renewTurn(ctx) {
			return true, nil
		}
	}
	if t.gaveRev != 0 {
		at := time.Now()
		until, _ := at.Add(triggerAckWait).MarshalText()
		rev, err := t.s.turns.Update(ctx, t.cfg.Durable, until, t.gaveRev)
		t.gaveRev = 0
		if err == nil {
			t.turn, t.turnAt = rev, at
			return true, nil
		}
	}
	for wait := time.Now().Add(turnHold); ; {
		at := time.Now()
		until, _ := at.Add(triggerAckWait).MarshalText()
		rev, won, err := claimKey(ctx, t.s.turns, t.cfg.Durable, until, func(v []byte) bool {
			var held time.Time
			return held.UnmarshalText(v) != nil || !time.Now().Before(held)
		})
		if won {
			t.turn, t.turnAt = rev, at
		}
		if won || err != nil || time.Now().After(wait) || ctx.Err() != nil {
			return won, err
		}
		sleep(ctx, 10*time.Millisecond)
	}
}

// renewTurn moves the end of the turn held triggerAckWait ahead, and says
// whether the runner still holds it: one that was stalled past the turn's
// end may have lost it to another runner.
func (t *Trigger) renewTurn(ctx context.Context) bool {
	if t.turn == 0 {
		return false
	}
	at := time.Now()
	until, _ := at.Add(triggerAckWait).MarshalText()
	rev, err := t.s.turns.Update(ctx, t.cfg.Durable, until, t.turn)
	switch {
	case err == nil:
		t.turn, t.turnAt = rev, at
	case errors.Is(err, jetstream.ErrKeyExists):
		t.turn = 0
	}
	return t.turn != 0
}

// endTurn gives the turn held back: it writes a time already past, which
// any runner may take, and which this one takes back with one write if no
// one did meanwhile.
func (t *Trigger) endTurn() {
	if t.turn == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	past, _ := time.Now().MarshalText()
	t.gaveRev = 0
	if rev, err := t.s.turns.Update(ctx, t.cfg.Durable, past, t.turn); err == nil {
		t.gaveRev = rev
	} // else it runs out anyway
	t.turn = 0
}
