package data

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Chores the nodes of a cluster share. The TTL sweep reads every item of
// every table with a TTL attribute, the sweep of dead puts every object
// info of every bucket; every node of a cluster ran each, so a cluster of
// three read everything three times per round, for nothing: the second
// and third found what the first had removed. A node now runs a chore's
// round only once it has claimed it: it writes the time to the chore's key
// in the catalogue, conditional on the revision it read, which one node
// wins. The key says when the round was claimed; the next round is anyone's
// from 90% of the interval after (so the node that ran the last round,
// whose ticker fires first, tends to keep the chore, and another takes it
// over one interval after that node stops).
//
// Clocks: a node whose clock runs ahead sees every claim as old and takes
// each round; one whose clock runs behind sees claims as new and leaves
// the chore to the others. Either way a round runs, about once per
// interval. A node that cannot read or write the key (the catalogue
// unreachable) runs the round anyway: running it twice costs reads,
// never running it leaves expired items and dead chunks for good.
const keyChore = "chore."

// Chores, as the catalogue's keys and the metric's label name them.
const (
	choreTTL     = "ttl_sweep"
	choreOrphans = "orphan_sweep"
)

// claim says whether this node runs chore's round now, claiming it if so;
// every is the chore's interval. A sole writer has no one to share with.
func (s *Service) claim(ctx context.Context, chore string, every time.Duration) bool {
	if s.cfg.SoleWriter {
		return true
	}
	now, _ := s.cfg.Now().UTC().MarshalText()
	_, ok, err := claimKey(ctx, s.meta, keyChore+chore, now, func(v []byte) bool {
		var last time.Time
		return last.UnmarshalText(v) != nil || s.cfg.Now().Sub(last) >= every-every/10
	})
	return ok || err != nil
}

// claimKey writes value to key in kv where the key is absent, or where
// stale says the value there has run out, conditionally on the revision
// read, so that of writers racing one wins; won says whether this one
// did, and rev is the revision it wrote.
func claimKey(ctx context.Context, kv jetstream.KeyValue, key string, value []byte, stale func([]byte) bool) (rev uint64, won bool, err error) {
	rev, err = kv.Create(ctx, key, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		var e jetstream.KeyValueEntry
		e, err = kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0, false, nil // deleted meanwhile: the next try takes it
		}
		if err != nil {
			return 0, false, err
		}
		if !stale(e.Value()) {
			return 0, false, nil
		}
		if rev, err = kv.Update(ctx, key, value, e.Revision()); errors.Is(err, jetstream.ErrKeyExists) {
			return 0, false, nil // another writer was first
		}
	}
	if err != nil {
		return 0, false, err
	}
	return rev, true, nil
}
