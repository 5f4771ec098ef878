package data

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/store"
)

// Start is where a reading of a change stream begins: a trigger's, when
// its durable position is created (api.Trigger.Start), or a replay's
// (Service.Changes). The zero Start is "new": only what comes after.
type Start struct {
	// Oldest: the oldest change the stream keeps.
	Oldest bool
	// Revision: the change at that revision (stream sequence) or the
	// first after it.
	Revision uint64
	// Time: the first change at or after it.
	Time time.Time
}

// ParseStart reads a start position (api.ParseStart); field names it in
// errors.
func ParseStart(field, s string) (Start, error) {
	oldest, rev, at, err := api.ParseStart(s)
	if err != nil {
		return Start{}, invalid(field, "%v", err)
	}
	return Start{Oldest: oldest, Revision: rev, Time: at}, nil
}

// policy is where a consumer starts reading from st.
func (st Start) policy() (jetstream.DeliverPolicy, uint64, *time.Time) {
	return store.DeliverFrom(st.Oldest, st.Revision, st.Time)
}
