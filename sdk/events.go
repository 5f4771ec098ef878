package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"time"
)

// Publish publishes a CloudEvent of type eventType with data (marshaled
// with encoding/json; a json.RawMessage is sent as is) and returns once the
// node has stored it. subject "" publishes to the event bus, where rules
// match it (docs/events.md); otherwise subject must be one a stream
// captures (a subject trigger's). The event's source is set by the node to
// /functions/<name>, so consumers can trust where it came from.
func Publish(ctx context.Context, subject, eventType string, data any) error {
	if eventType == "" {
		return fmt.Errorf("publish: the event needs a type")
	}
	var body []byte
	switch v := data.(type) {
	case json.RawMessage:
		body = v
	default:
		b, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("publish %s: encode data: %w", eventType, err)
		}
		body = b
	}
	// The node stores an event once per source and id: the id must not
	// repeat. math/rand/v2's generator is seeded from the host's random
	// source and is far lighter in a wasm module than crypto/rand.
	id := strconv.FormatUint(rand.Uint64(), 16) + strconv.FormatUint(rand.Uint64(), 16)
	req := &apiRequest{
		Method: "POST",
		Path:   "/api/v1/events",
		// Binary mode: the node sets Ce-Source from the credential.
		Header: map[string]string{
			"Content-Type":   "application/json",
			"Ce-Specversion": "1.0",
			"Ce-Id":          id,
			"Ce-Type":        eventType,
			"Ce-Source":      "/functions",
			"Ce-Time":        time.Now().UTC().Format(time.RFC3339Nano),
		},
		Body: body,
	}
	if subject != "" {
		req.Query = "subject=" + url.QueryEscape(subject)
	}
	if _, err := do(ctx, req); err != nil {
		return fmt.Errorf("publish %s: %w", eventType, err)
	}
	return nil
}
