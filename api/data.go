package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-run/nimbus/internal/iox"
	"github.com/nimbus-run/nimbus/internal/urlpath"
)

// Error codes of the data services.
const (
	// CodeConditionFailed: a conditional write found another revision.
	CodeConditionFailed = "ConditionFailed"
	// CodeNotEmpty: deleting a table or bucket that holds data without force.
	CodeNotEmpty = "NotEmpty"
	// CodeInvalidRange: a Range outside the object (416).
	CodeInvalidRange = "InvalidRange"
	// CodeAccessDenied: a function used a table or bucket its spec does
	// not list, or a presigned URL is tampered with or expired (403).
	CodeAccessDenied = "AccessDenied"
	// CodePreconditionFailed: an object read's If-Match or
	// If-Unmodified-Since, or a put's If-None-Match: * or If-Match, does
	// not hold (412).
	CodePreconditionFailed = "PreconditionFailed"
	// CodeRequestTimeout: an upload's client sent nothing for the node's
	// upload idle timeout (408).
	CodeRequestTimeout = "RequestTimeout"
)

// HeaderMetaPrefix starts the headers carrying an object's user metadata.
const HeaderMetaPrefix = "X-Nimbus-Meta-"

// HeaderReprDigest carries the SHA-256 of a whole object on GET and HEAD
// (RFC 9530): "sha-256=:<base64>:".
const HeaderReprDigest = "Repr-Digest"

// FormatReprDigest formats a SHA-256 for HeaderReprDigest.
func FormatReprDigest(sum []byte) string {
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum) + ":"
}

// ReprDigest returns the SHA-256 a response's HeaderReprDigest names, or
// nil.
func ReprDigest(h http.Header) []byte {
	for _, v := range h.Values(HeaderReprDigest) {
		for d := range strings.SplitSeq(v, ",") {
			alg, val, ok := strings.Cut(strings.TrimSpace(d), "=")
			if !ok || !strings.EqualFold(alg, "sha-256") || len(val) < 2 || val[0] != ':' || val[len(val)-1] != ':' {
				continue
			}
			if sum, err := base64.StdEncoding.DecodeString(val[1 : len(val)-1]); err == nil && len(sum) == 32 {
				return sum
			}
		}
	}
	return nil
}

// Uses lists the tables and buckets a function may use through the SDK.
type Uses struct {
	Tables  []string `json:"tables,omitempty" yaml:"tables"`
	Buckets []string `json:"buckets,omitempty" yaml:"buckets"`
}

// Table is a table definition.
type Table struct {
	Name string `json:"name"`
	// Key is the partition key attribute; Sort the optional sort key.
	Key  string `json:"key"`
	Sort string `json:"sort,omitempty"`
	// TTL names the attribute holding items' expiry (epoch seconds).
	TTL string `json:"ttl,omitempty"`
	// History is the revisions kept per item (1 to 64, default 8).
	History int       `json:"history,omitempty"`
	Created time.Time `json:"created,omitzero"`
	// StoredBytes, in a table's description, is what JetStream holds for
	// it: its items and the revisions kept of them.
	StoredBytes uint64 `json:"stored_bytes,omitempty"`
}

// TableList is the body of GET /api/v1/tables.
type TableList struct {
	Tables []Table `json:"tables"`
}

// PutTableResult is the body of PUT /api/v1/tables/{name}.
type PutTableResult struct {
	Table  Table  `json:"table"`
	Change string `json:"change"`
}

// Bucket is a bucket definition.
type Bucket struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created,omitzero"`
	// StoredBytes is what JetStream holds for the bucket: its objects'
	// bytes and infos, and the older infos kept for its triggers.
	StoredBytes uint64 `json:"stored_bytes"`
}

// BucketList is the body of GET /api/v1/buckets.
type BucketList struct {
	Buckets []Bucket `json:"buckets"`
}

// PutBucketResult is the body of PUT /api/v1/buckets/{name}.
type PutBucketResult struct {
	Bucket Bucket `json:"bucket"`
	Change string `json:"change"`
}

// Entry is a stored item with its revision.
type Entry struct {
	Item     json.RawMessage `json:"item"`
	Revision uint64          `json:"revision"`
	Updated  time.Time       `json:"updated,omitzero"`
}

// PutItemRequest is the body of PUT /api/v1/tables/{table}/items.
type PutItemRequest struct {
	Item json.RawMessage `json:"item"`
	// IfAbsent writes only when no item has the key; IfRevision only when
	// the stored item has that revision.
	IfAbsent   bool   `json:"if_absent,omitempty"`
	IfRevision uint64 `json:"if_revision,omitempty"`
}

// PutItemResult is the body of a successful put.
type PutItemResult struct {
	Revision uint64 `json:"revision"`
}

// KeyRequest is the body of POST .../get and .../delete: the key attributes.
type KeyRequest struct {
	Key        json.RawMessage `json:"key"`
	IfRevision uint64          `json:"if_revision,omitempty"`
}

// UpdateItemRequest is the body of POST /api/v1/tables/{table}/update: a
// JSON merge patch (RFC 7396) applied to the item with Key.
type UpdateItemRequest struct {
	Key        json.RawMessage `json:"key"`
	Patch      json.RawMessage `json:"patch"`
	IfRevision uint64          `json:"if_revision,omitempty"`
}

// Condition is a sort key condition in structured form.
type Condition struct {
	Op     string          `json:"op"`
	Value  json.RawMessage `json:"value"`
	Value2 json.RawMessage `json:"value2,omitempty"`
}

// QueryRequest is the body of POST /api/v1/tables/{table}/query.
type QueryRequest struct {
	Partition json.RawMessage `json:"partition"`
	// Where is a condition in text form (`>= "2024"`, `between 1 and 5`,
	// `begins_with "img/"`); Condition the same structured.
	Where     string     `json:"where,omitempty"`
	Condition *Condition `json:"condition,omitempty"`
	Reverse   bool       `json:"reverse,omitempty"`
	Limit     int        `json:"limit,omitempty"`
	Cursor    string     `json:"cursor,omitempty"`
}

// ScanRequest is the body of POST /api/v1/tables/{table}/scan.
type ScanRequest struct {
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

// Page is a page of a query or scan.
type Page struct {
	Items  []Entry `json:"items"`
	Cursor string  `json:"cursor,omitempty"`
}

// BatchGetRequest and BatchGetResult are POST .../batch-get; Items has one
// entry per key, null where no item has it.
type BatchGetRequest struct {
	Keys []json.RawMessage `json:"keys"`
}

// BatchGetResult is the body of a batch get.
type BatchGetResult struct {
	Items []*Entry `json:"items"`
}

// BatchPutRequest and BatchPutResult are POST .../batch-put. Items are
// written one by one: Results says which were.
type BatchPutRequest struct {
	Items []json.RawMessage `json:"items"`
}

// BatchPutResult is the body of a batch put.
type BatchPutResult struct {
	Results []BatchItemResult `json:"results"`
}

// BatchItemResult is one item's outcome.
type BatchItemResult struct {
	Revision uint64 `json:"revision,omitempty"`
	Error    string `json:"error,omitempty"`
}

// TableChange is one change of a table, as table triggers get it in their
// batch's Records and GET /api/v1/tables/{table}/changes reads it
// (docs/data.md): EventName is INSERT, MODIFY or REMOVE.
type TableChange struct {
	EventID     string                     `json:"eventID"`
	EventName   string                     `json:"eventName"`
	EventSource string                     `json:"eventSource"`
	Table       string                     `json:"table"`
	Keys        map[string]json.RawMessage `json:"keys"`
	OldImage    json.RawMessage            `json:"old_image,omitempty"`
	NewImage    json.RawMessage            `json:"new_image,omitempty"`
	Revision    uint64                     `json:"revision"`
	Time        time.Time                  `json:"time"`
	// Reason is "ttl" for an item removed because its TTL passed.
	Reason string `json:"reason,omitempty"`
	// Redelivered marks a trigger's batch delivered before.
	Redelivered bool `json:"redelivered,omitempty"`
}

// ChangePage is the body of GET /api/v1/tables/{table}/changes: changes
// in revision order. Next is the from of the page after (the last
// change's revision + 1); 0 when the page is empty: nothing has happened
// since, ask again with the same from.
type ChangePage struct {
	Changes []TableChange `json:"changes"`
	Next    uint64        `json:"next,omitempty"`
}

// Object describes a stored object.
type Object struct {
	Bucket      string            `json:"bucket"`
	Key         string            `json:"key"`
	Size        int64             `json:"size"`
	ETag        string            `json:"etag"`
	ContentType string            `json:"content_type,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	// Headers are the ObjectHeaders the object keeps and is served with.
	Headers  map[string]string `json:"headers,omitempty"`
	Modified time.Time         `json:"modified"`
}

// ObjectList is the body of GET /api/v1/buckets/{bucket}/objects.
type ObjectList struct {
	Objects        []Object `json:"objects"`
	CommonPrefixes []string `json:"common_prefixes,omitempty"`
	Cursor         string   `json:"cursor,omitempty"`
}

// PresignRequest is the body of POST /api/v1/buckets/{bucket}/presign.
type PresignRequest struct {
	Key    string `json:"key"`
	Method string `json:"method"`
	// Expires is a duration ("15m"; default 1h, at most 7 days).
	Expires string `json:"expires,omitempty"`
	// Download, for a GET, is a file name: the URL's answers say
	// Content-Disposition: attachment with it, so a browser saves the
	// object under that name. It is signed with the rest of the URL.
	Download string `json:"download,omitempty"`
}

// PresignResult holds the URL: the node's URL plus Path.
type PresignResult struct {
	Path    string    `json:"path"`
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

// CopyObjectRequest is the body of POST /api/v1/buckets/{bucket}/copy.
type CopyObjectRequest struct {
	SourceBucket string `json:"source_bucket"`
	SourceKey    string `json:"source_key"`
	Key          string `json:"key"`
}

// Upload is a multipart upload in progress (POST
// /api/v1/buckets/{bucket}/uploads): an object sent in parts, each put on
// its own (and again, if its put failed), that becomes the object when
// the upload is completed.
type Upload struct {
	ID          string            `json:"id"`
	Bucket      string            `json:"bucket"`
	Key         string            `json:"key"`
	ContentType string            `json:"content_type,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	// Headers are ObjectHeaders the object will keep.
	Headers map[string]string `json:"headers,omitempty"`
	Created time.Time         `json:"created,omitzero"`
	// Parts are the parts uploaded so far, by number; only in the answer
	// of GET /api/v1/buckets/{bucket}/uploads/{id}.
	Parts []Part `json:"parts,omitempty"`
}

// Part is an uploaded part of an Upload.
type Part struct {
	Number   int       `json:"number"`
	ETag     string    `json:"etag"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified,omitzero"`
}

// UploadList is the body of GET /api/v1/buckets/{bucket}/uploads.
type UploadList struct {
	Uploads []Upload `json:"uploads"`
}

// CompleteUploadRequest is the body of POST
// /api/v1/buckets/{bucket}/uploads/{id}/complete: the parts that make the
// object, in ascending order of number, each with the ETag its put
// answered. Every part but the last must be at least MinPartBytes.
// IfNoneMatch and IfMatch make the object's write conditional, as a put's.
type CompleteUploadRequest struct {
	Parts       []Part `json:"parts"`
	IfNoneMatch string `json:"if_none_match,omitempty"`
	IfMatch     string `json:"if_match,omitempty"`
}

// MinPartBytes is the least size of every part of an upload but the last
// (S3's 5 MiB).
const MinPartBytes = 5 << 20

func tablePath(table, rest string) string {
	return "/api/v1/tables/" + url.PathEscape(table) + rest
}

func objectPath(bucket, key string) string {
	return "/api/v1/buckets/" + url.PathEscape(bucket) + "/objects/" + urlpath.Key(key)
}

// ListTables returns every table.
func (c *Client) ListTables(ctx context.Context) ([]Table, error) {
	var out TableList
	return out.Tables, c.json(ctx, http.MethodGet, "/api/v1/tables", nil, &out)
}

// PutTable creates a table or applies changes to it.
func (c *Client) PutTable(ctx context.Context, t *Table) (*PutTableResult, error) {
	var out PutTableResult
	return &out, c.json(ctx, http.MethodPut, tablePath(t.Name, ""), t, &out)
}

// GetTable returns one table.
func (c *Client) GetTable(ctx context.Context, name string) (*Table, error) {
	var out Table
	return &out, c.json(ctx, http.MethodGet, tablePath(name, ""), nil, &out)
}

// DeleteTable removes a table; one holding items needs force.
func (c *Client) DeleteTable(ctx context.Context, name string, force bool) error {
	return c.json(ctx, http.MethodDelete, tablePath(name, "?force="+strconv.FormatBool(force)), nil, nil)
}

// PutItem stores an item.
func (c *Client) PutItem(ctx context.Context, table string, req *PutItemRequest) (uint64, error) {
	var out PutItemResult
	return out.Revision, c.json(ctx, http.MethodPut, tablePath(table, "/items"), req, &out)
}

// GetItem reads an item by its key attributes.
func (c *Client) GetItem(ctx context.Context, table string, key json.RawMessage) (*Entry, error) {
	var out Entry
	return &out, c.json(ctx, http.MethodPost, tablePath(table, "/get"), KeyRequest{Key: key}, &out)
}

// DeleteItem removes an item (conditionally when ifRevision is not 0).
func (c *Client) DeleteItem(ctx context.Context, table string, key json.RawMessage, ifRevision uint64) error {
	return c.json(ctx, http.MethodPost, tablePath(table, "/delete"), KeyRequest{Key: key, IfRevision: ifRevision}, nil)
}

// UpdateItem merges a patch into an item.
func (c *Client) UpdateItem(ctx context.Context, table string, req *UpdateItemRequest) (*Entry, error) {
	var out Entry
	return &out, c.json(ctx, http.MethodPost, tablePath(table, "/update"), req, &out)
}

// Query reads a page of one partition.
func (c *Client) Query(ctx context.Context, table string, q *QueryRequest) (*Page, error) {
	var out Page
	return &out, c.json(ctx, http.MethodPost, tablePath(table, "/query"), q, &out)
}

// Scan reads a page of the whole table.
func (c *Client) Scan(ctx context.Context, table string, limit int, cursor string) (*Page, error) {
	var out Page
	return &out, c.json(ctx, http.MethodPost, tablePath(table, "/scan"), ScanRequest{Limit: limit, Cursor: cursor}, &out)
}

// BatchGet reads several items.
func (c *Client) BatchGet(ctx context.Context, table string, keys []json.RawMessage) ([]*Entry, error) {
	var out BatchGetResult
	return out.Items, c.json(ctx, http.MethodPost, tablePath(table, "/batch-get"), BatchGetRequest{Keys: keys}, &out)
}

// BatchPut writes several items, each on its own.
func (c *Client) BatchPut(ctx context.Context, table string, items []json.RawMessage) ([]BatchItemResult, error) {
	var out BatchPutResult
	return out.Results, c.json(ctx, http.MethodPost, tablePath(table, "/batch-put"), BatchPutRequest{Items: items}, &out)
}

// TableChanges reads up to limit changes of a table (0: 100, at most
// 1000) from from: "oldest" (or ""), a revision, or an RFC 3339 time.
func (c *Client) TableChanges(ctx context.Context, table, from string, limit int) (*ChangePage, error) {
	return c.TableChangesWait(ctx, table, from, limit, 0)
}

// TableChangesWait is TableChanges, but a page that would be empty waits
// up to wait (at most 50 s) for the first change to come: a long poll.
func (c *Client) TableChangesWait(ctx context.Context, table, from string, limit int, wait time.Duration) (*ChangePage, error) {
	q := url.Values{}
	if from != "" {
		q.Set("from", from)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var out ChangePage
	return &out, c.json(ctx, http.MethodGet, tablePath(table, "/changes?"+q.Encode()), nil, &out)
}

// ListBuckets returns every bucket.
func (c *Client) ListBuckets(ctx context.Context) ([]Bucket, error) {
	var out BucketList
	return out.Buckets, c.json(ctx, http.MethodGet, "/api/v1/buckets", nil, &out)
}

// PutBucket creates a bucket.
func (c *Client) PutBucket(ctx context.Context, name string) (*PutBucketResult, error) {
	var out PutBucketResult
	return &out, c.json(ctx, http.MethodPut, "/api/v1/buckets/"+url.PathEscape(name), Bucket{Name: name}, &out)
}

// DeleteBucket removes a bucket; one holding objects needs force.
func (c *Client) DeleteBucket(ctx context.Context, name string, force bool) error {
	return c.json(ctx, http.MethodDelete, "/api/v1/buckets/"+url.PathEscape(name)+"?force="+strconv.FormatBool(force), nil, nil)
}

// ListObjects lists a page of objects.
func (c *Client) ListObjects(ctx context.Context, bucket, prefix, delimiter, cursor string, limit int) (*ObjectList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"prefix": prefix, "delimiter": delimiter, "cursor": cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out ObjectList
	return &out, c.json(ctx, http.MethodGet, "/api/v1/buckets/"+url.PathEscape(bucket)+"/objects?"+q.Encode(), nil, &out)
}

// PutObject uploads an object from body (streamed); size is its length,
// or -1 when unknown.
func (c *Client) PutObject(ctx context.Context, bucket, key string, body io.Reader, size int64, contentType string, meta map[string]string) (*Object, error) {
	return c.PutObjectWith(ctx, bucket, key, body, size, &PutObjectOptions{ContentType: contentType, Metadata: meta})
}

// ObjectHeaders are the HTTP headers an object keeps, as S3 keeps them:
// given when it is put (or its multipart upload created), returned with
// every get and head. A website's assets need them: Cache-Control for
// caches, Content-Encoding for precompressed files, Content-Disposition
// for downloads.
var ObjectHeaders = []string{"Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Expires"}

// PutObjectOptions describe an object to put.
type PutObjectOptions struct {
	ContentType string
	// Metadata is user metadata.
	Metadata map[string]string
	// Headers are ObjectHeaders the object keeps and is served with.
	Headers map[string]string
	// IfNoneMatch "*" stores the object only where the key holds none,
	// IfMatch (an ETag) only over that object; a condition that does not
	// hold is an *Error with code CodePreconditionFailed.
	IfNoneMatch, IfMatch string
}

// PutObjectIf is PutObject made conditional: ifNoneMatch "*" stores the
// object only where the key holds none, ifMatch (an ETag) only over that
// object; a condition that does not hold is an *Error with code
// CodePreconditionFailed.
func (c *Client) PutObjectIf(ctx context.Context, bucket, key string, body io.Reader, size int64, contentType string, meta map[string]string, ifNoneMatch, ifMatch string) (*Object, error) {
	return c.PutObjectWith(ctx, bucket, key, body, size, &PutObjectOptions{ContentType: contentType, Metadata: meta, IfNoneMatch: ifNoneMatch, IfMatch: ifMatch})
}

// PutObjectWith uploads an object from body (streamed) as opt describes;
// size is its length, or -1 when unknown.
func (c *Client) PutObjectWith(ctx context.Context, bucket, key string, body io.Reader, size int64, opt *PutObjectOptions) (*Object, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.BaseURL+objectPath(bucket, key), body)
	if err != nil {
		return nil, err
	}
	if opt.IfNoneMatch != "" {
		req.Header.Set("If-None-Match", opt.IfNoneMatch)
	}
	if opt.IfMatch != "" {
		req.Header.Set("If-Match", `"`+strings.Trim(opt.IfMatch, `"`)+`"`)
	}
	for k, v := range opt.Headers {
		req.Header.Set(k, v)
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	contentType := opt.ContentType
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range opt.Metadata {
		req.Header.Set(HeaderMetaPrefix+k, v)
	}
	resp, err := c.send(req)
	var out Object
	if err := answer(resp, err, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetObject opens an object (rangeHeader "" for all of it); the caller
// closes the response body. The response headers carry the object's info.
func (c *Client) GetObject(ctx context.Context, bucket, key, rangeHeader string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+objectPath(bucket, key), nil)
	if err != nil {
		return nil, err
	}
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
	}
	// The bytes as stored: without this, Go's transport asks for gzip
	// and inflates an object stored with Content-Encoding: gzip, whose
	// length and digest then no longer match.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

// CopyBody copies a downloaded object's body to w, as `nimbus obj get`
// does: one goroutine reads the body into four 256 KiB blocks while the
// caller's goroutine writes them, a block at a time. Measured with `go run
// ./bench/data -only object`, which downloads through it, to a file:
//
//   - io.Copy writes 32 KiB at a time (a file's ReadFrom too, from a
//     network body); a 100 MB object written so took 41-49 ms to fsync on
//     ext4, against 28-31 ms written in 256 KiB blocks, as for the same bytes
//     copied by the kernel;
//   - reading while writing took the download from 49-51% of a file copy's
//     speed to 54-55% (medians of two sets of six alternating runs).
//
// When w fails, the reading goroutine may still be in a Read of body until
// the caller closes it.
func CopyBody(w io.Writer, body io.Reader) (int64, error) {
	const blocks, blockSize = 4, 256 << 10
	type block struct {
		b   []byte
		err error // after b: io.EOF at the end
	}
	free := make(chan []byte, blocks)
	full := make(chan block, blocks) // never blocks: there are only blocks buffers
	done := make(chan struct{})
	defer close(done)
	go func() {
		// Buffers are made as they are needed: a small body takes one.
		for made := 0; ; {
			var b []byte
			if made < blocks && len(free) == 0 {
				b, made = make([]byte, blockSize), made+1
			} else {
				select {
				case b = <-free:
				case <-done:
					return
				}
			}
			n, err := iox.Fill(body, b) // a body cut short is an error, not the end
			full <- block{b[:n], err}
			if err != nil {
				return
			}
		}
	}()
	var total int64
	for {
		blk := <-full
		if len(blk.b) > 0 {
			n, err := w.Write(blk.b)
			total += int64(n)
			if err != nil {
				return total, err
			}
		}
		switch {
		case blk.err == io.EOF:
			return total, nil
		case blk.err != nil:
			return total, blk.err
		}
		free <- blk.b[:cap(blk.b)]
	}
}

// HeadObject describes an object without reading it: size, ETag, content
// type, modification time, user metadata and stored headers.
func (c *Client) HeadObject(ctx context.Context, bucket, key string) (*Object, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.BaseURL+objectPath(bucket, key), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		// A HEAD answer has no body to say more.
		code := map[int]string{http.StatusNotFound: CodeNotFound, http.StatusUnauthorized: CodeUnauthorized,
			http.StatusForbidden: CodeAccessDenied}[resp.StatusCode]
		if code == "" {
			code = http.StatusText(resp.StatusCode)
		}
		msg := fmt.Sprintf("%s/%s: %s", bucket, key, http.StatusText(resp.StatusCode))
		if resp.StatusCode == http.StatusNotFound {
			msg = fmt.Sprintf("no object %s in bucket %s (or no such bucket)", key, bucket)
		}
		return nil, &Error{Status: resp.StatusCode, Code: code, Message: msg}
	}
	h := resp.Header
	o := &Object{Bucket: bucket, Key: key, Size: resp.ContentLength, ETag: strings.Trim(h.Get("ETag"), `"`), ContentType: h.Get("Content-Type")}
	o.Modified, _ = http.ParseTime(h.Get("Last-Modified"))
	for k, vs := range h {
		if name, ok := strings.CutPrefix(k, HeaderMetaPrefix); ok {
			if o.Metadata == nil {
				o.Metadata = map[string]string{}
			}
			o.Metadata[strings.ToLower(name)] = vs[0]
		} else if slices.Contains(ObjectHeaders, k) {
			if o.Headers == nil {
				o.Headers = map[string]string{}
			}
			o.Headers[k] = vs[0]
		}
	}
	return o, nil
}

// DeleteObject removes an object.
func (c *Client) DeleteObject(ctx context.Context, bucket, key string) error {
	return c.json(ctx, http.MethodDelete, objectPath(bucket, key), nil, nil)
}

// DeleteObjectIf removes an object only if it has the ETag ifMatch (or,
// with "*", only if it exists): otherwise an *Error with code
// CodePreconditionFailed, or CodeNotFound when the key holds no object.
func (c *Client) DeleteObjectIf(ctx context.Context, bucket, key, ifMatch string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.BaseURL+objectPath(bucket, key), nil)
	if err != nil {
		return err
	}
	if ifMatch != "*" {
		ifMatch = `"` + strings.Trim(ifMatch, `"`) + `"`
	}
	req.Header.Set("If-Match", ifMatch)
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeError(resp)
	}
	return nil
}

// CopyObject copies an object within or across buckets.
func (c *Client) CopyObject(ctx context.Context, bucket string, req *CopyObjectRequest) (*Object, error) {
	var out Object
	return &out, c.json(ctx, http.MethodPost, "/api/v1/buckets/"+url.PathEscape(bucket)+"/copy", req, &out)
}

// Presign mints a presigned URL for GET or PUT of one object.
func (c *Client) Presign(ctx context.Context, bucket string, req *PresignRequest) (*PresignResult, error) {
	var out PresignResult
	if err := c.json(ctx, http.MethodPost, "/api/v1/buckets/"+url.PathEscape(bucket)+"/presign", req, &out); err != nil {
		return nil, err
	}
	if out.URL == "" {
		out.URL = c.BaseURL + out.Path
	}
	return &out, nil
}

func uploadsPath(bucket, rest string) string {
	return "/api/v1/buckets/" + url.PathEscape(bucket) + "/uploads" + rest
}

// CreateUpload starts a multipart upload of key; u's ContentType,
// Metadata and Headers are the object's.
func (c *Client) CreateUpload(ctx context.Context, bucket string, u *Upload) (*Upload, error) {
	var out Upload
	return &out, c.json(ctx, http.MethodPost, uploadsPath(bucket, ""), u, &out)
}

// UploadPart puts part number n (1 to 10,000) of an upload from body
// (streamed; size -1 when unknown), replacing an earlier put of it.
func (c *Client) UploadPart(ctx context.Context, bucket, id string, n int, body io.Reader, size int64) (*Part, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.BaseURL+uploadsPath(bucket, "/"+url.PathEscape(id)+"/parts/"+strconv.Itoa(n)), body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	resp, err := c.send(req)
	var out Part
	if err := answer(resp, err, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CompleteUpload makes the object of the parts req names, and ends the
// upload.
func (c *Client) CompleteUpload(ctx context.Context, bucket, id string, req *CompleteUploadRequest) (*Object, error) {
	var out Object
	return &out, c.json(ctx, http.MethodPost, uploadsPath(bucket, "/"+url.PathEscape(id)+"/complete"), req, &out)
}

// AbortUpload ends an upload and removes its parts.
func (c *Client) AbortUpload(ctx context.Context, bucket, id string) error {
	return c.json(ctx, http.MethodDelete, uploadsPath(bucket, "/"+url.PathEscape(id)), nil, nil)
}

// GetUpload reads an upload in progress with its parts.
func (c *Client) GetUpload(ctx context.Context, bucket, id string) (*Upload, error) {
	var out Upload
	return &out, c.json(ctx, http.MethodGet, uploadsPath(bucket, "/"+url.PathEscape(id)), nil, &out)
}

// ListUploads lists the uploads in progress into bucket.
func (c *Client) ListUploads(ctx context.Context, bucket string) ([]Upload, error) {
	var out UploadList
	return out.Uploads, c.json(ctx, http.MethodGet, uploadsPath(bucket, ""), nil, &out)
}

func (c *Client) send(req *http.Request) (*http.Response, error) {
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach Nimbus at %s (is `nimbus up` running? set NIMBUS_URL or --server): %w", c.BaseURL, err)
	}
	return resp, nil
}
