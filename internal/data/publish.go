package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/jsonscan"
)

// Table writes publish with a request of their own instead of
// jetstream.PublishMsg, which decodes every acknowledgement with
// encoding/json: that was a third of the client's side of a put, about
// 6 µs of the 75 µs an in-process put costs (go run ./bench/data -only
// put -cpuprofile). The acknowledgement is JetStream's own compact JSON,
// whose members publish picks out; anything else goes to encoding/json.

// Like jetstream.PublishMsg: a publish without a deadline gets one, and
// "no responders" (a stream electing its leader) is retried twice.
const (
	publishTimeout    = 5 * time.Second
	publishRetryWait  = 250 * time.Millisecond
	publishRetryTimes = 2
)

// publish sends m to its stream and returns the sequence the stream
// stored it at.
//
// # Errors
//
// A *jetstream.APIError when the stream refused m, nats.ErrNoResponders
// when no stream listens on its subject, or the request's error.
func publish(ctx context.Context, nc *nats.Conn, m *nats.Msg) (uint64, error) {
	resp, err := request(ctx, nc, m)
	for i := 0; errors.Is(err, nats.ErrNoResponders) && i < publishRetryTimes; i++ {
		select {
		case <-ctx.Done():
			return 0, err
		case <-time.After(publishRetryWait):
		}
		resp, err = request(ctx, nc, m)
	}
	if err != nil {
		return 0, err
	}
	return parseAck(resp.Data)
}

// request sends m and waits for the answer until ctx's deadline. A
// context without one (an HTTP request's) gets publishTimeout from
// nats.go's pooled timers instead of a context of its own, which cost
// four allocations and a timer per put.
func request(ctx context.Context, nc *nats.Conn, m *nats.Msg) (*nats.Msg, error) {
	if _, ok := ctx.Deadline(); ok {
		return nc.RequestMsgWithContext(ctx, m)
	}
	return nc.RequestMsg(m, publishTimeout)
}

// parseAck reads a publish acknowledgement: {"stream":S,"seq":N,...}, or
// {"error":{...}} when the stream refused the message.
func parseAck(b []byte) (uint64, error) {
	var (
		seq    uint64
		stream bool
	)
	ok := jsonscan.PlainMembers(b, func(name, val []byte) bool {
		switch string(name) {
		case "error":
			return false
		case "stream":
			stream = len(val) > 2 && val[0] == '"'
		case "seq":
			var err error
			seq, err = strconv.ParseUint(string(val), 10, 64)
			return err == nil
		}
		return true
	})
	if ok && stream {
		return seq, nil
	}
	var ack struct {
		Error  *jetstream.APIError `json:"error"`
		Stream string              `json:"stream"`
		Seq    uint64              `json:"seq"`
	}
	if err := json.Unmarshal(b, &ack); err != nil {
		return 0, fmt.Errorf("%w: %s", jetstream.ErrInvalidJSAck, b)
	}
	if ack.Error != nil {
		return 0, ack.Error
	}
	if ack.Stream == "" {
		return 0, fmt.Errorf("%w: %s", jetstream.ErrInvalidJSAck, b)
	}
	return ack.Seq, nil
}

// wrongLastSequence says whether a publish was refused because its subject
// had another last sequence than it expected (a conditional write lost).
func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
