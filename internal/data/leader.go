package data

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reads of replicated tables and buckets go to the stream's leader.
//
// nats.go's KV and object store create their streams with AllowDirect, and
// read an item or an object's metadata by a direct get, which any replica
// may answer: nats-server lets a follower serve them once it has applied
// 90% of the stream's log. On a three-server cluster, a head of an object
// put a moment before on another node answered "no such key" in about one
// try of ten (TestReplicatedData): the follower had not applied the
// object's chunks and metadata yet. A get must see every acknowledged
// write, so a stream with replicas serves no direct gets
// (leaderReads), and the message get API, which only the leader answers,
// serves the reads instead. A stream of one replica keeps direct gets,
// which are cheaper: the server answers them without its API queue.

// leaderReads turns direct gets off on the stream name when it has
// replicas. nats.go's CreateOrUpdate of a KV or object store turns them
// on again, so it runs after each, and before each handle is bound (a
// handle decides once, from the stream's configuration, how it reads).
func (s *Service) leaderReads(ctx context.Context, name string) error {
	st, err := s.js.Stream(ctx, name)
	if err != nil {
		return err
	}
	cfg := st.CachedInfo().Config
	if cfg.Replicas <= 1 || !cfg.AllowDirect {
		return nil
	}
	cfg.AllowDirect = false
	if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("stream %s: reads from its leader: %w", name, err)
	}
	return nil
}

// lastMsgFromLeader reads the last message of subj in stream through the
// message get API, answered by the stream's leader only.
//
// # Errors
//
// jetstream.ErrMsgNotFound when subj has no message.
func lastMsgFromLeader(ctx context.Context, nc *nats.Conn, stream, subj string) (*jetstream.RawStreamMsg, error) {
	req, _ := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{subj})
	resp, err := request(ctx, nc, &nats.Msg{Subject: "$JS.API.STREAM.MSG.GET." + stream, Data: req})
	if err != nil {
		return nil, err
	}
	var r struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Subject  string    `json:"subject"`
			Sequence uint64    `json:"seq"`
			Header   []byte    `json:"hdrs"`
			Data     []byte    `json:"data"`
			Time     time.Time `json:"time"`
		} `json:"message"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return nil, fmt.Errorf("message get: %w", err)
	}
	if r.Error != nil {
		if r.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return nil, jetstream.ErrMsgNotFound
		}
		return nil, r.Error
	}
	if r.Message == nil {
		return nil, fmt.Errorf("message get: no message in %s", resp.Data)
	}
	m := &jetstream.RawStreamMsg{Subject: r.Message.Subject, Sequence: r.Message.Sequence, Data: r.Message.Data, Time: r.Message.Time}
	if len(r.Message.Header) > 0 {
		if m.Header, err = nats.DecodeHeadersMsg(r.Message.Header); err != nil {
			return nil, fmt.Errorf("message get: %w", err)
		}
	}
	return m, nil
}
