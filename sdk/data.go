package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-run/nimbus/internal/jsonscan"
	"github.com/nimbus-run/nimbus/internal/urlpath"
)

// TableRef is a table the function uses (listed under uses.tables in its
// spec). Items are JSON objects holding the table's key attributes; keys
// are JSON objects of just those ({"id": "u1"}, or with the sort key).
// Any value encoding/json can marshal to such an object will do.
type TableRef struct {
	name string
	// base is the table's API path, and items and get the paths of the
	// two most frequent calls: built once, as every allocation counts in
	// a wasm guest.
	base, items, get string
}

// Table returns the table name. It does no I/O: a missing table or
// permission shows on the first call (ErrNotFound, ErrAccessDenied).
func Table(name string) *TableRef {
	base := "/api/v1/tables/" + url.PathEscape(name) + "/"
	return &TableRef{name: name, base: base, items: base + "items", get: base + "get"}
}

// Name is the table's name.
func (t *TableRef) Name() string { return t.name }

// Item is a stored item and its revision (for IfRevision).
type Item struct {
	Data     json.RawMessage `json:"item"`
	Revision uint64          `json:"revision"`
	Updated  time.Time       `json:"updated,omitzero"`
}

// Decode unmarshals the item into v.
func (it *Item) Decode(v any) error { return json.Unmarshal(it.Data, v) }

// WriteOption makes a write conditional.
type WriteOption func(*writeOptions)

type writeOptions struct {
	IfAbsent   bool   `json:"if_absent,omitempty"`
	IfRevision uint64 `json:"if_revision,omitempty"`
}

// IfAbsent makes a Put write only when no item has the key; otherwise it
// fails with ErrConditionFailed.
func IfAbsent() WriteOption { return func(o *writeOptions) { o.IfAbsent = true } }

// IfRevision makes a Put, Update or Delete apply only when the stored item
// has revision rev; otherwise it fails with ErrConditionFailed.
func IfRevision(rev uint64) WriteOption { return func(o *writeOptions) { o.IfRevision = rev } }

func writeOpts(opts []WriteOption) writeOptions {
	var o writeOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

func (t *TableRef) path(op string) string { return t.base + op }

// Put stores item (replacing the item with its key) and returns its new
// revision.
func (t *TableRef) Put(ctx context.Context, item any, opts ...WriteOption) (uint64, error) {
	o := writeOpts(opts)
	raw, err := json.Marshal(item)
	if err != nil {
		return 0, fmt.Errorf("table %s: put: %w", t.name, err)
	}
	rev, err := putItem(ctx, t, raw, o)
	if err != nil {
		return 0, fmt.Errorf("table %s: put: %w", t.name, err)
	}
	return rev, nil
}

// putItemHTTP is putItem through the node's HTTP API.
func putItemHTTP(ctx context.Context, t *TableRef, raw []byte, o writeOptions) (uint64, error) {
	// The body is built by hand around the marshalled item: marshalling a
	// wrapper would validate and copy the item a second time, which in a
	// wasm guest costs as much as the first.
	body := make([]byte, 0, len(raw)+48)
	body = append(append(append(body, `{"item":`...), raw...), ',')
	if o.IfAbsent {
		body = append(body, `"if_absent":true,`...)
	}
	if o.IfRevision != 0 {
		body = strconv.AppendUint(append(body, `"if_revision":`...), o.IfRevision, 10)
		body = append(body, ',')
	}
	body[len(body)-1] = '}'
	resp, err := doBody(ctx, "PUT", t.items, body)
	if err != nil {
		return 0, err
	}
	var it Item
	if err := decodeItem(resp.Body, &it); err != nil {
		return 0, err
	}
	return it.Revision, nil
}

// Get returns the item with key, or an error wrapping ErrNotFound.
func (t *TableRef) Get(ctx context.Context, key any) (*Item, error) {
	raw, err := json.Marshal(key)
	if err != nil {
		return nil, fmt.Errorf("table %s: get: %w", t.name, err)
	}
	it, err := getItem(ctx, t, raw)
	if err != nil {
		return nil, fmt.Errorf("table %s: get: %w", t.name, err)
	}
	return it, nil
}

// getItemHTTP is getItem through the node's HTTP API.
func getItemHTTP(ctx context.Context, t *TableRef, raw []byte) (*Item, error) {
	body := make([]byte, 0, len(raw)+8)
	body = append(append(append(body, `{"key":`...), raw...), '}')
	resp, err := doBody(ctx, "POST", t.get, body)
	if err != nil {
		return nil, err
	}
	var it Item
	if err := decodeItem(resp.Body, &it); err != nil {
		return nil, err
	}
	return &it, nil
}

// decodeItem decodes the node's answer with an item, a revision, or both,
// picking out the members instead of decoding the whole answer: the item
// stays raw (Item.Decode decodes it), and encoding/json's validation of it
// was most of a wasm guest's cost of a Get. The node's answers are JSON it
// encoded, so they are not validated again; anything unexpected, such as
// an escaped member name or a document cut short, goes to encoding/json.
func decodeItem(body []byte, it *Item) error {
	ok := jsonscan.PlainMembers(body, func(name, val []byte) bool {
		var err error
		switch string(name) {
		case "item":
			it.Data = val
		case "revision":
			it.Revision, err = strconv.ParseUint(string(val), 10, 64)
		case "updated":
			if len(val) < 2 || val[0] != '"' {
				return false
			}
			it.Updated, err = time.Parse(time.RFC3339Nano, string(val[1:len(val)-1]))
		}
		return err == nil
	})
	if ok {
		return nil
	}
	*it = Item{}
	return json.Unmarshal(body, it)
}

// Delete removes the item with key; deleting a missing item is not an
// error unless IfRevision is given.
func (t *TableRef) Delete(ctx context.Context, key any, opts ...WriteOption) error {
	o := writeOpts(opts)
	if o.IfAbsent {
		return fmt.Errorf("table %s: delete: IfAbsent applies to Put only", t.name)
	}
	body := map[string]any{"key": key}
	if o.IfRevision != 0 {
		body["if_revision"] = o.IfRevision
	}
	if err := doJSON(ctx, "POST", t.path("delete"), body, nil); err != nil {
		return fmt.Errorf("table %s: delete: %w", t.name, err)
	}
	return nil
}

// Update applies patch, a JSON merge patch (RFC 7396: null removes an
// attribute), to the item with key and returns the result.
func (t *TableRef) Update(ctx context.Context, key, patch any, opts ...WriteOption) (*Item, error) {
	o := writeOpts(opts)
	if o.IfAbsent {
		return nil, fmt.Errorf("table %s: update: IfAbsent applies to Put only", t.name)
	}
	body := map[string]any{"key": key, "patch": patch}
	if o.IfRevision != 0 {
		body["if_revision"] = o.IfRevision
	}
	var it Item
	if err := doJSON(ctx, "POST", t.path("update"), body, &it); err != nil {
		return nil, fmt.Errorf("table %s: update: %w", t.name, err)
	}
	return &it, nil
}

// Query selects the items of one partition, in sort key order.
type Query struct {
	// Partition is the partition key's value.
	Partition any
	// Where is a sort key condition in text form: `>= "2024"`,
	// `between 1 and 5`, `begins_with "img/"`. Condition is the same,
	// structured; give at most one.
	Where     string
	Condition *Condition
	// Reverse returns the items in descending sort key order.
	Reverse bool
	// Limit bounds the page (default 100, at most 1000).
	Limit int
	// Cursor continues from a previous page's Cursor.
	Cursor string
}

// Condition is a sort key condition: Op is one of = < <= > >= between
// begins_with; Value2 is the upper bound of between.
type Condition struct {
	Op     string `json:"op"`
	Value  any    `json:"value"`
	Value2 any    `json:"value2,omitempty"`
}

// Page is a page of a query or scan; Cursor is empty on the last page.
type Page struct {
	Items  []Item `json:"items"`
	Cursor string `json:"cursor,omitempty"`
}

// Query runs q.
func (t *TableRef) Query(ctx context.Context, q Query) (*Page, error) {
	body := struct {
		Partition any        `json:"partition"`
		Where     string     `json:"where,omitempty"`
		Condition *Condition `json:"condition,omitempty"`
		Reverse   bool       `json:"reverse,omitempty"`
		Limit     int        `json:"limit,omitempty"`
		Cursor    string     `json:"cursor,omitempty"`
	}{q.Partition, q.Where, q.Condition, q.Reverse, q.Limit, q.Cursor}
	var p Page
	if err := doJSON(ctx, "POST", t.path("query"), body, &p); err != nil {
		return nil, fmt.Errorf("table %s: query: %w", t.name, err)
	}
	return &p, nil
}

// Scan returns a page of the whole table (limit 0 for the default), from
// cursor ("" for the start).
func (t *TableRef) Scan(ctx context.Context, limit int, cursor string) (*Page, error) {
	body := struct {
		Limit  int    `json:"limit,omitempty"`
		Cursor string `json:"cursor,omitempty"`
	}{limit, cursor}
	var p Page
	if err := doJSON(ctx, "POST", t.path("scan"), body, &p); err != nil {
		return nil, fmt.Errorf("table %s: scan: %w", t.name, err)
	}
	return &p, nil
}

// BatchGet returns the items with keys (at most 100), in order, with nil
// where no item has the key.
func (t *TableRef) BatchGet(ctx context.Context, keys []any) ([]*Item, error) {
	var out struct {
		Items []*Item `json:"items"`
	}
	if err := doJSON(ctx, "POST", t.path("batch-get"), map[string]any{"keys": keys}, &out); err != nil {
		return nil, fmt.Errorf("table %s: batch get: %w", t.name, err)
	}
	return out.Items, nil
}

// BatchResult is one item's outcome in BatchPut: its revision, or why it
// was not written.
type BatchResult struct {
	Revision uint64 `json:"revision,omitempty"`
	Error    string `json:"error,omitempty"`
}

// BatchPut writes items (at most 100) one by one; the results say which
// were written. The error is for the batch as a whole.
func (t *TableRef) BatchPut(ctx context.Context, items []any) ([]BatchResult, error) {
	var out struct {
		Results []BatchResult `json:"results"`
	}
	if err := doJSON(ctx, "POST", t.path("batch-put"), map[string]any{"items": items}, &out); err != nil {
		return nil, fmt.Errorf("table %s: batch put: %w", t.name, err)
	}
	return out.Results, nil
}

// BucketRef is a bucket the function uses (listed under uses.buckets in
// its spec). Put and Get move objects whole, as []byte (from a wasm
// function an object read whole is at most 8 MiB); Upload and Open stream
// objects of any size, a part at a time.
type BucketRef struct{ name string }

// Bucket returns the bucket name. It does no I/O.
func Bucket(name string) *BucketRef { return &BucketRef{name: name} }

// Name is the bucket's name.
func (b *BucketRef) Name() string { return b.name }

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key         string            `json:"key"`
	Size        int64             `json:"size"`
	ETag        string            `json:"etag"`
	ContentType string            `json:"content_type,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	// Headers are the HTTP headers the object keeps and is served with
	// (see ObjectHeader), by canonical name.
	Headers  map[string]string `json:"headers,omitempty"`
	Modified time.Time         `json:"modified"`
}

// Object is an object read whole.
type Object struct {
	ObjectInfo
	Body []byte
}

// ObjectOption sets what Put stores beside the bytes.
type ObjectOption func(*objectOptions)

type objectOptions struct {
	contentType          string
	meta, headers        map[string]string
	ifNoneMatch, ifMatch string
}

// PutIfAbsent makes a Put store the object only when the key holds none
// (a lock, a create-once file); otherwise it fails with
// ErrConditionFailed and nothing changes.
func PutIfAbsent() ObjectOption { return func(o *objectOptions) { o.ifNoneMatch = "*" } }

// PutIfMatch makes a Put replace the object only while its ETag is etag
// (what an earlier Put, Get or Head returned); otherwise it fails with
// ErrConditionFailed and nothing changes.
func PutIfMatch(etag string) ObjectOption {
	return func(o *objectOptions) { o.ifMatch = `"` + strings.Trim(etag, `"`) + `"` }
}

// ContentType sets the object's content type.
func ContentType(ct string) ObjectOption { return func(o *objectOptions) { o.contentType = ct } }

// ObjectHeader sets an HTTP header the object keeps and is served with:
// Cache-Control, Content-Disposition, Content-Encoding, Content-Language or
// Expires (as S3 keeps them). Put fails on any other name.
func ObjectHeader(name, value string) ObjectOption {
	return func(o *objectOptions) {
		if o.headers == nil {
			o.headers = map[string]string{}
		}
		o.headers[canonicalHeader(name)] = value
	}
}

// objectHeaders are the headers ObjectHeader takes (the node's list:
// api.ObjectHeaders; the SDK does not import the api package, which would
// grow every function).
var objectHeaders = []string{"Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Expires"}

// checkHeaders fails if an ObjectHeader option named a header objects do
// not keep.
func (b *BucketRef) checkHeaders(op, key string, headers map[string]string) error {
	for k := range headers {
		if !slices.Contains(objectHeaders, k) {
			return fmt.Errorf("bucket %s: %s %s: objects keep only the headers %s, not %s", b.name, op, key, strings.Join(objectHeaders, ", "), k)
		}
	}
	return nil
}

// Metadata adds a user metadata entry (names are case-insensitive).
func Metadata(name, value string) ObjectOption {
	return func(o *objectOptions) {
		if o.meta == nil {
			o.meta = map[string]string{}
		}
		o.meta[name] = value
	}
}

const metaPrefix = "X-Nimbus-Meta-"

// timeFormat is HTTP's date format (net/http's TimeFormat).
const timeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

func (b *BucketRef) objectPath(key string) string {
	return "/api/v1/buckets/" + url.PathEscape(b.name) + "/objects/" + urlpath.Key(key)
}

// Put stores body under key, replacing any object there.
func (b *BucketRef) Put(ctx context.Context, key string, body []byte, opts ...ObjectOption) (*ObjectInfo, error) {
	req, err := b.putRequest("put", key, opts)
	if err != nil {
		return nil, err
	}
	req.Body = body
	if body == nil {
		req.Body = []byte{}
	}
	resp, err := do(ctx, req)
	return b.putAnswer("put", key, resp, err)
}

// putRequest is the request of a put of key with opts, but its body.
func (b *BucketRef) putRequest(what, key string, opts []ObjectOption) (*apiRequest, error) {
	var o objectOptions
	for _, f := range opts {
		f(&o)
	}
	req := &apiRequest{Method: "PUT", Path: b.objectPath(key), Header: map[string]string{}}
	if o.contentType != "" {
		req.Header["Content-Type"] = o.contentType
	}
	for k, v := range o.meta {
		req.Header[metaPrefix+k] = v
	}
	if err := b.checkHeaders(what, key, o.headers); err != nil {
		return nil, err
	}
	for k, v := range o.headers {
		req.Header[k] = v
	}
	if o.ifNoneMatch != "" {
		req.Header["If-None-Match"] = o.ifNoneMatch
	}
	if o.ifMatch != "" {
		req.Header["If-Match"] = o.ifMatch
	}
	return req, nil
}

// putAnswer reads the answer of a put (or an upload) of key.
func (b *BucketRef) putAnswer(what, key string, resp *apiResponse, err error) (*ObjectInfo, error) {
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %s %s: %w", b.name, what, key, err)
	}
	var info ObjectInfo
	if err := json.Unmarshal(resp.Body, &info); err != nil {
		return nil, fmt.Errorf("bucket %s: %s %s: decode answer: %w", b.name, what, key, err)
	}
	return &info, nil
}

// Get reads the object under key whole, or fails wrapping ErrNotFound.
func (b *BucketRef) Get(ctx context.Context, key string) (*Object, error) {
	resp, err := do(ctx, &apiRequest{Method: "GET", Path: b.objectPath(key)})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: get %s: %w", b.name, key, err)
	}
	return &Object{ObjectInfo: infoOf(key, resp), Body: resp.Body}, nil
}

// GetRange reads length bytes of the object under key from offset, or all
// bytes from offset to the end when length <= 0. A range running past the
// end is cut short there. The answer's Size is the whole object's; Body
// holds the part read.
//
// # Errors
//
// A range starting at or past the end of the object fails with an error
// wrapping ErrInvalidRange (an *APIError of code "InvalidRange", status
// 416); a missing object wraps ErrNotFound.
func (b *BucketRef) GetRange(ctx context.Context, key string, offset, length int64) (*Object, error) {
	return b.getRange(ctx, key, offset, length, "")
}

// getRange is GetRange, of the object only while its ETag is etag when
// etag is not "" (else ErrConditionFailed).
func (b *BucketRef) getRange(ctx context.Context, key string, offset, length int64, etag string) (*Object, error) {
	if offset < 0 {
		return nil, fmt.Errorf("bucket %s: get %s: range offset %d is negative", b.name, key, offset)
	}
	rng := "bytes=" + strconv.FormatInt(offset, 10) + "-"
	if length > 0 && length <= math.MaxInt64-offset {
		rng += strconv.FormatInt(offset+length-1, 10)
	}
	h := map[string]string{"Range": rng}
	if etag != "" {
		h["If-Match"] = `"` + etag + `"`
	}
	resp, err := do(ctx, &apiRequest{Method: "GET", Path: b.objectPath(key), Header: h})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: get %s (%s): %w", b.name, key, rng, err)
	}
	obj := &Object{ObjectInfo: infoOf(key, resp), Body: resp.Body}
	obj.Size = int64(len(resp.Body))
	if total, ok := rangeTotal(resp.header("Content-Range")); ok {
		obj.Size = total
	}
	return obj, nil
}

// rangeTotal reads the object's size from a Content-Range of a 206
// ("bytes 0-99/1234"); ok is false when it is absent or unknown ("/*").
func rangeTotal(cr string) (int64, bool) {
	_, total, ok := strings.Cut(cr, "/")
	if !ok || !strings.HasPrefix(cr, "bytes ") {
		return 0, false
	}
	n, err := strconv.ParseInt(total, 10, 64)
	return n, err == nil && n >= 0
}

// Head describes the object under key without reading it.
func (b *BucketRef) Head(ctx context.Context, key string) (*ObjectInfo, error) {
	resp, err := do(ctx, &apiRequest{Method: "HEAD", Path: b.objectPath(key)})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: head %s: %w", b.name, key, err)
	}
	info := infoOf(key, resp)
	return &info, nil
}

// infoOf reads an object's description from the headers of a GET or HEAD.
func infoOf(key string, resp *apiResponse) ObjectInfo {
	info := ObjectInfo{
		Key:         key,
		ETag:        strings.Trim(resp.header("ETag"), `"`),
		ContentType: resp.header("Content-Type"),
	}
	info.Size, _ = strconv.ParseInt(resp.header("Content-Length"), 10, 64)
	info.Modified, _ = time.Parse(timeFormat, resp.header("Last-Modified"))
	for k, v := range resp.headers() {
		k = canonicalHeader(k)
		if name, ok := strings.CutPrefix(k, metaPrefix); ok {
			if info.Metadata == nil {
				info.Metadata = map[string]string{}
			}
			info.Metadata[strings.ToLower(name)] = v
		} else if slices.Contains(objectHeaders, k) {
			if info.Headers == nil {
				info.Headers = map[string]string{}
			}
			info.Headers[k] = v
		}
	}
	return info
}

// Delete removes the object under key.
func (b *BucketRef) Delete(ctx context.Context, key string) error {
	if _, err := do(ctx, &apiRequest{Method: "DELETE", Path: b.objectPath(key)}); err != nil {
		return fmt.Errorf("bucket %s: delete %s: %w", b.name, key, err)
	}
	return nil
}

// Copy copies srcKey of srcBucket ("" for this bucket) to key in this
// bucket. The function needs both buckets in its uses.
func (b *BucketRef) Copy(ctx context.Context, srcBucket, srcKey, key string) (*ObjectInfo, error) {
	body := map[string]string{"source_bucket": srcBucket, "source_key": srcKey, "key": key}
	var info ObjectInfo
	if err := doJSON(ctx, "POST", "/api/v1/buckets/"+url.PathEscape(b.name)+"/copy", body, &info); err != nil {
		return nil, fmt.Errorf("bucket %s: copy to %s: %w", b.name, key, err)
	}
	return &info, nil
}

// ListOptions select the objects List returns.
type ListOptions struct {
	Prefix string
	// Delimiter groups keys sharing a prefix up to it into CommonPrefixes.
	Delimiter string
	// Limit bounds the page (default 1000).
	Limit int
	// Cursor continues from a previous page's Cursor.
	Cursor string
}

// ObjectList is a page of objects; Cursor is empty on the last page.
type ObjectList struct {
	Objects        []ObjectInfo `json:"objects"`
	CommonPrefixes []string     `json:"common_prefixes,omitempty"`
	Cursor         string       `json:"cursor,omitempty"`
}

// List returns a page of the bucket's objects, in key order.
func (b *BucketRef) List(ctx context.Context, opt ListOptions) (*ObjectList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"prefix": opt.Prefix, "delimiter": opt.Delimiter, "cursor": opt.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if opt.Limit > 0 {
		q.Set("limit", strconv.Itoa(opt.Limit))
	}
	resp, err := do(ctx, &apiRequest{Method: "GET", Path: "/api/v1/buckets/" + url.PathEscape(b.name) + "/objects", Query: q.Encode()})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: list: %w", b.name, err)
	}
	var l ObjectList
	if err := json.Unmarshal(resp.Body, &l); err != nil {
		return nil, fmt.Errorf("bucket %s: list: decode answer: %w", b.name, err)
	}
	return &l, nil
}

// PresignOption sets what a presigned URL does beside its method.
type PresignOption func(map[string]string)

// DownloadAs makes a presigned GET URL answer with Content-Disposition:
// attachment and name, so a browser saves the object under that name. The
// name is signed with the URL.
func DownloadAs(name string) PresignOption { return func(b map[string]string) { b["download"] = name } }

// Presign returns a URL that lets anyone holding it GET or PUT (method)
// the object under key until it expires (at most 7 days; 0 for 1 hour).
func (b *BucketRef) Presign(ctx context.Context, method, key string, expires time.Duration, opts ...PresignOption) (string, time.Time, error) {
	body := map[string]string{"key": key, "method": method}
	if expires > 0 {
		body["expires"] = expires.String()
	}
	for _, o := range opts {
		o(body)
	}
	var out struct {
		URL     string    `json:"url"`
		Expires time.Time `json:"expires"`
	}
	if err := doJSON(ctx, "POST", "/api/v1/buckets/"+url.PathEscape(b.name)+"/presign", body, &out); err != nil {
		return "", time.Time{}, fmt.Errorf("bucket %s: presign %s: %w", b.name, key, err)
	}
	return out.URL, out.Expires, nil
}

// TableChange is one change of a table: what a table trigger's batch
// holds in Records (decode the event into struct{ Records []sdk.TableChange })
// and what Changes reads. EventName is INSERT, MODIFY or REMOVE.
type TableChange struct {
	EventID     string                     `json:"eventID"`
	EventName   string                     `json:"eventName"`
	EventSource string                     `json:"eventSource"` // nimbus:table
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

// ChangePage is a page of a table's changes, in revision order. Next is
// the from of the page after; 0 when the page is empty (nothing has
// changed since: ask again with the same from).
type ChangePage struct {
	Changes []TableChange `json:"changes"`
	Next    uint64        `json:"next,omitempty"`
}

// ChangesOption sets how Changes reads.
type ChangesOption func(url.Values)

// Wait makes a page that would be empty wait up to d (at most 50s) for
// the first change, and come back as soon as it is made: a long poll,
// where asking again and again would cost a request each time. The
// function's timeout still bounds the call.
func Wait(d time.Duration) ChangesOption {
	return func(q url.Values) { q.Set("wait", d.String()) }
}

// Changes reads up to limit changes of the table (0: 100, at most 1000)
// from from: "oldest" (or ""), a revision (strconv.FormatUint(page.Next,
// 10)), or an RFC 3339 time. The table keeps its items' last revisions
// (its history setting), so an item's older changes may be gone.
func (t *TableRef) Changes(ctx context.Context, from string, limit int, opts ...ChangesOption) (*ChangePage, error) {
	q := url.Values{}
	if from != "" {
		q.Set("from", from)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	for _, o := range opts {
		o(q)
	}
	resp, err := do(ctx, &apiRequest{Method: "GET", Path: t.path("changes"), Query: q.Encode()})
	if err != nil {
		return nil, fmt.Errorf("table %s: changes: %w", t.name, err)
	}
	var p ChangePage
	if err := json.Unmarshal(resp.Body, &p); err != nil {
		return nil, fmt.Errorf("table %s: changes: decode answer: %w", t.name, err)
	}
	return &p, nil
}
