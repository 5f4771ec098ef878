package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client talks to a Nimbus node's HTTP API.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// NewClient returns a client for the node at baseURL (e.g. http://127.0.0.1:8080).
func NewClient(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: http.DefaultClient}
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach Nimbus at %s (is `nimbus up` running? set NIMBUS_URL or --server): %w", c.BaseURL, err)
	}
	return resp, nil
}

// decodeError turns a non-2xx response into *Error.
func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var eb ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != nil {
		eb.Error.Status = resp.StatusCode
		if eb.Error.InvocationID == "" {
			eb.Error.InvocationID = resp.Header.Get(HeaderInvocationID)
		}
		return eb.Error
	}
	return &Error{Status: resp.StatusCode, Code: http.StatusText(resp.StatusCode), Message: strings.TrimSpace(string(b))}
}

func (c *Client) json(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	resp, err := c.do(ctx, method, path, body, ct)
	return answer(resp, err, out)
}

// answer reads the response of a request that failed with err unless it
// is nil: an error answer as an *Error, else its JSON body into out (when
// out is not nil).
func answer(resp *http.Response, err error, out any) error {
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: bad response: %w", resp.Request.Method, resp.Request.URL.Path, err)
	}
	return nil
}

// PutCode uploads a code artifact and returns its digest.
func (c *Client) PutCode(ctx context.Context, code io.Reader) (*CodeResult, error) {
	resp, err := c.do(ctx, http.MethodPut, "/api/v1/code", code, "application/octet-stream")
	var out CodeResult
	if err := answer(resp, err, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutFunction creates or updates a function.
func (c *Client) PutFunction(ctx context.Context, fn *Function) (*PutFunctionResult, error) {
	var out PutFunctionResult
	return &out, c.json(ctx, http.MethodPut, "/api/v1/functions/"+url.PathEscape(fn.Name), fn, &out)
}

// GetFunction returns one function.
func (c *Client) GetFunction(ctx context.Context, name string) (*Function, error) {
	var out Function
	return &out, c.json(ctx, http.MethodGet, "/api/v1/functions/"+url.PathEscape(name), nil, &out)
}

// ListFunctions returns every function.
func (c *Client) ListFunctions(ctx context.Context) ([]Function, error) {
	var out FunctionList
	return out.Functions, c.json(ctx, http.MethodGet, "/api/v1/functions", nil, &out)
}

// DeleteFunction removes a function.
func (c *Client) DeleteFunction(ctx context.Context, name string) error {
	return c.json(ctx, http.MethodDelete, "/api/v1/functions/"+url.PathEscape(name), nil, nil)
}

// InvokeResult is the outcome of Invoke.
type InvokeResult struct {
	Payload      []byte
	InvocationID string
	ColdStart    bool
	DurationMS   float64
	// Version is the version that ran.
	Version string
}

// Invoke runs a function synchronously. A function error is returned as
// *Error with Code FunctionError.
func (c *Client) Invoke(ctx context.Context, name string, payload []byte) (*InvokeResult, error) {
	resp, err := c.do(ctx, http.MethodPost, "/api/v1/functions/"+url.PathEscape(name)+"/invoke", bytes.NewReader(payload), "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return nil, decodeError(resp)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	d, _ := strconv.ParseFloat(resp.Header.Get(HeaderDurationMS), 64)
	return &InvokeResult{
		Payload: b, InvocationID: resp.Header.Get(HeaderInvocationID), Version: resp.Header.Get(HeaderVersion),
		ColdStart: resp.Header.Get(HeaderColdStart) == "true", DurationMS: d,
	}, nil
}

// Records returns the newest invocation records of a function, newest first.
func (c *Client) Records(ctx context.Context, name string, limit int) ([]Record, error) {
	var out RecordList
	path := fmt.Sprintf("/api/v1/functions/%s/invocations?limit=%d", url.PathEscape(name), limit)
	return out.Invocations, c.json(ctx, http.MethodGet, path, nil, &out)
}

// Publish freezes $LATEST into a new version.
func (c *Client) Publish(ctx context.Context, name string) (*PublishResult, error) {
	var out PublishResult
	return &out, c.json(ctx, http.MethodPost, "/api/v1/functions/"+url.PathEscape(name)+"/versions", struct{}{}, &out)
}

// Versions lists a function's published versions, oldest first.
func (c *Client) Versions(ctx context.Context, name string) ([]Function, error) {
	var out VersionList
	return out.Versions, c.json(ctx, http.MethodGet, "/api/v1/functions/"+url.PathEscape(name)+"/versions", nil, &out)
}

// DeleteVersion removes a published version.
func (c *Client) DeleteVersion(ctx context.Context, name, version string) error {
	return c.json(ctx, http.MethodDelete, "/api/v1/functions/"+url.PathEscape(name)+"/versions/"+url.PathEscape(version), nil, nil)
}

// PutAlias creates or moves an alias.
func (c *Client) PutAlias(ctx context.Context, name string, a *Alias) (*PutAliasResult, error) {
	var out PutAliasResult
	return &out, c.json(ctx, http.MethodPut, "/api/v1/functions/"+url.PathEscape(name)+"/aliases/"+url.PathEscape(a.Name), a, &out)
}

// Aliases lists a function's aliases.
func (c *Client) Aliases(ctx context.Context, name string) ([]Alias, error) {
	var out AliasList
	return out.Aliases, c.json(ctx, http.MethodGet, "/api/v1/functions/"+url.PathEscape(name)+"/aliases", nil, &out)
}

// DeleteAlias removes an alias.
func (c *Client) DeleteAlias(ctx context.Context, name, alias string) error {
	return c.json(ctx, http.MethodDelete, "/api/v1/functions/"+url.PathEscape(name)+"/aliases/"+url.PathEscape(alias), nil, nil)
}

// InvokeQualified invokes a version or alias ("" for $LATEST).
func (c *Client) InvokeQualified(ctx context.Context, name, qualifier string, payload []byte) (*InvokeResult, error) {
	if qualifier != "" {
		name += ":" + qualifier
	}
	return c.Invoke(ctx, name, payload)
}
