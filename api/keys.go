package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Key kinds.
const (
	// KeyKindAWS is an access key id and secret for AWS Signature Version 4
	// (AWS SDKs, the AWS CLI).
	KeyKindAWS = "aws"
)

// Key is an access key as the management API shows it. Secret is set only
// in the answer to CreateKey: it is never shown again.
type Key struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Name    string    `json:"name"`
	Secret  string    `json:"secret,omitempty"`
	Created time.Time `json:"created"`
}

// CreateKeyRequest is the body of POST /api/v1/keys.
type CreateKeyRequest struct {
	Name string `json:"name"`
	// Kind defaults to KeyKindAWS.
	Kind string `json:"kind,omitempty"`
}

// KeyList is the body of GET /api/v1/keys.
type KeyList struct {
	Keys []Key `json:"keys"`
}

// CreateKey creates an access key and returns it with its secret.
func (c *Client) CreateKey(ctx context.Context, name, kind string) (*Key, error) {
	var out Key
	return &out, c.json(ctx, http.MethodPost, "/api/v1/keys", CreateKeyRequest{Name: name, Kind: kind}, &out)
}

// ListKeys returns every key, oldest first, without secrets.
func (c *Client) ListKeys(ctx context.Context) ([]Key, error) {
	var out KeyList
	return out.Keys, c.json(ctx, http.MethodGet, "/api/v1/keys", nil, &out)
}

// RevokeKey deletes a key; requests signed with it are refused from then on.
func (c *Client) RevokeKey(ctx context.Context, id string) error {
	return c.json(ctx, http.MethodDelete, "/api/v1/keys/"+url.PathEscape(id), nil, nil)
}
