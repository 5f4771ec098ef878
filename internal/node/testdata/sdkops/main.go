// Command sdkops is a test function that makes one SDK data call per
// invocation, named by the event, and answers what the call returned: the
// test drives every table and bucket operation through it and checks the
// answers. The same source is built for wasm and as a native process.
//
// An event with Records (a bucket trigger's batch) is written to the table
// "seen" instead, one item per record in the partition of its bucket, so a
// test can see the deliveries.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"time"

	"github.com/nimbus-run/nimbus/sdk"
)

type call struct {
	Op     string `json:"op"`
	Table  string `json:"table"`
	Bucket string `json:"bucket"`

	Item       json.RawMessage   `json:"item"`
	Key        json.RawMessage   `json:"key"`
	Patch      json.RawMessage   `json:"patch"`
	Items      []json.RawMessage `json:"items"`
	Keys       []json.RawMessage `json:"keys"`
	IfAbsent   bool              `json:"if_absent"`
	IfRevision uint64            `json:"if_revision"`
	IfMatch    string            `json:"if_match"`

	Partition json.RawMessage `json:"partition"`
	Where     string          `json:"where"`
	Condition *sdk.Condition  `json:"condition"`
	Reverse   bool            `json:"reverse"`
	Limit     int             `json:"limit"`
	Cursor    string          `json:"cursor"`

	Object      string            `json:"object"`
	Body        []byte            `json:"body"`
	ContentType string            `json:"content_type"`
	Meta        map[string]string `json:"meta"`
	Headers     map[string]string `json:"headers"`
	Prefix      string            `json:"prefix"`
	Delimiter   string            `json:"delimiter"`
	SrcBucket   string            `json:"src_bucket"`
	SrcObject   string            `json:"src_object"`
	Method      string            `json:"method"`
	Expires     string            `json:"expires"`
	Download    string            `json:"download"`
	Offset      int64             `json:"offset"`
	Length      int64             `json:"length"`
	Size        int64             `json:"size"`
	FailAt      int64             `json:"fail_at"`
	CutAt       int64             `json:"cut_at"`  // the body ends with io.ErrUnexpectedEOF there
	HangAt      int64             `json:"hang_at"` // the body stops there, past the function's timeout
	ReplaceAt   int64             `json:"replace_at"`
	From        string            `json:"from"`
	Wait        string            `json:"wait"`

	Records []json.RawMessage `json:"Records"`
}

// answer is what a call returned: OK, or Err with what errors.Is and
// errors.As tell about it.
type answer struct {
	OK  any      `json:"ok,omitempty"`
	Err *errInfo `json:"err,omitempty"`
}

type errInfo struct {
	Message   string `json:"message"`
	Code      string `json:"code"`
	Status    int    `json:"status"`
	NotFound  bool   `json:"not_found"`
	Condition bool   `json:"condition_failed"`
	Denied    bool   `json:"denied"`
	Range     bool   `json:"invalid_range"`
}

func main() {
	sdk.Start(handle)
}

func handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var c call
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	if c.Records != nil {
		return nil, record(ctx, c.Records)
	}
	v, err := run(ctx, &c)
	if err != nil {
		e := &errInfo{
			Message:   err.Error(),
			NotFound:  errors.Is(err, sdk.ErrNotFound),
			Condition: errors.Is(err, sdk.ErrConditionFailed),
			Denied:    errors.Is(err, sdk.ErrAccessDenied),
			Range:     errors.Is(err, sdk.ErrInvalidRange),
		}
		var ae *sdk.APIError
		if errors.As(err, &ae) {
			e.Code, e.Status = ae.Code, ae.Status
		}
		return answer{Err: e}, nil
	}
	return answer{OK: v}, nil
}

func record(ctx context.Context, recs []json.RawMessage) error {
	for _, r := range recs {
		var ev struct {
			ID     string `json:"eventID"`
			Name   string `json:"eventName"`
			Bucket string `json:"bucket"`
			Key    string `json:"key"`
			Size   int64  `json:"size"`
			ETag   string `json:"etag"`
		}
		if err := json.Unmarshal(r, &ev); err != nil {
			return err
		}
		item := map[string]any{"pk": ev.Bucket, "sk": ev.ID, "name": ev.Name, "key": ev.Key, "size": ev.Size, "etag": ev.ETag}
		if _, err := sdk.Table("seen").Put(ctx, item); err != nil {
			return err
		}
	}
	return nil
}

func run(ctx context.Context, c *call) (any, error) {
	t, b := sdk.Table(c.Table), sdk.Bucket(c.Bucket)
	var wo []sdk.WriteOption
	if c.IfAbsent {
		wo = append(wo, sdk.IfAbsent())
	}
	if c.IfRevision != 0 {
		wo = append(wo, sdk.IfRevision(c.IfRevision))
	}
	switch c.Op {
	case "put":
		return t.Put(ctx, c.Item, wo...)
	case "get":
		return t.Get(ctx, c.Key)
	case "delete":
		return nil, t.Delete(ctx, c.Key, wo...)
	case "update":
		return t.Update(ctx, c.Key, c.Patch, wo...)
	case "query":
		return t.Query(ctx, sdk.Query{Partition: c.Partition, Where: c.Where, Condition: c.Condition, Reverse: c.Reverse, Limit: c.Limit, Cursor: c.Cursor})
	case "scan":
		return t.Scan(ctx, c.Limit, c.Cursor)
	case "batch_get":
		keys := make([]any, len(c.Keys))
		for i, k := range c.Keys {
			keys[i] = k
		}
		return t.BatchGet(ctx, keys)
	case "batch_put":
		items := make([]any, len(c.Items))
		for i, it := range c.Items {
			items[i] = it
		}
		return t.BatchPut(ctx, items)

	case "changes":
		if c.Wait != "" {
			d, err := time.ParseDuration(c.Wait)
			if err != nil {
				return nil, err
			}
			return t.Changes(ctx, c.From, c.Limit, sdk.Wait(d))
		}
		return t.Changes(ctx, c.From, c.Limit)
	case "obj_put":
		return b.Put(ctx, c.Object, c.Body, c.objectOptions()...)
	case "obj_get":
		return b.Get(ctx, c.Object)
	case "obj_get_range":
		return b.GetRange(ctx, c.Object, c.Offset, c.Length)
	case "obj_head":
		return b.Head(ctx, c.Object)
	case "obj_list":
		return b.List(ctx, sdk.ListOptions{Prefix: c.Prefix, Delimiter: c.Delimiter, Limit: c.Limit, Cursor: c.Cursor})
	case "obj_delete":
		return nil, b.Delete(ctx, c.Object)
	case "obj_copy":
		return b.Copy(ctx, c.SrcBucket, c.SrcObject, c.Object)
	case "obj_upload":
		return b.Upload(ctx, c.Object, &pattern{size: c.Size, failAt: c.FailAt, cutAt: c.CutAt, hangAt: c.HangAt}, c.objectOptions()...)
	case "obj_stream_copy":
		// Uploads what Open reads of src_object as object: the upload's
		// body makes data calls of its own while the upload streams.
		r, err := b.Open(ctx, c.SrcObject)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return b.Upload(ctx, c.Object, r)
	case "obj_read":
		// Reads the object through Open, answering its size and CRC-32;
		// with replace_at, replaces it (one byte) once that many bytes
		// are read, and reads on.
		r, err := b.Open(ctx, c.Object)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		sum := crc32.NewIEEE()
		var n int64
		if c.ReplaceAt > 0 {
			if n, err = io.CopyN(sum, r, c.ReplaceAt); err != nil {
				return nil, err
			}
			if _, err := b.Put(ctx, c.Object, []byte("x")); err != nil {
				return nil, err
			}
		}
		m, err := io.Copy(sum, r)
		if err != nil {
			return nil, err
		}
		return map[string]any{"size": n + m, "crc32": sum.Sum32(), "etag": r.Info.ETag}, nil
	case "obj_read_at":
		// Reads length bytes at offset through Open, with ReadAt, and
		// then with Seek and Read.
		r, err := b.Open(ctx, c.Object)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		at := make([]byte, c.Length)
		n, err := r.ReadAt(at, c.Offset)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if _, err := r.Seek(c.Offset, io.SeekStart); err != nil {
			return nil, err
		}
		read, err := io.ReadAll(io.LimitReader(r, c.Length))
		if err != nil {
			return nil, err
		}
		return map[string]any{"read_at": at[:n], "read": read}, nil
	case "presign":
		var d time.Duration
		if c.Expires != "" {
			var err error
			if d, err = time.ParseDuration(c.Expires); err != nil {
				return nil, err
			}
		}
		var opts []sdk.PresignOption
		if c.Download != "" {
			opts = append(opts, sdk.DownloadAs(c.Download))
		}
		u, exp, err := b.Presign(ctx, c.Method, c.Object, d, opts...)
		if err != nil {
			return nil, err
		}
		return map[string]any{"url": u, "expires": exp}, nil
	}
	return nil, &sdk.Error{Type: "BadOp", Message: "unknown op " + c.Op}
}

// objectOptions are the call's options of an object put or upload.
func (c *call) objectOptions() []sdk.ObjectOption {
	var opts []sdk.ObjectOption
	if c.ContentType != "" {
		opts = append(opts, sdk.ContentType(c.ContentType))
	}
	for k, v := range c.Meta {
		opts = append(opts, sdk.Metadata(k, v))
	}
	for k, v := range c.Headers {
		opts = append(opts, sdk.ObjectHeader(k, v))
	}
	if c.IfAbsent {
		opts = append(opts, sdk.PutIfAbsent())
	}
	if c.IfMatch != "" {
		opts = append(opts, sdk.PutIfMatch(c.IfMatch))
	}
	return opts
}

// pattern yields size bytes, byte i being Pattern(i), made as they are
// read (the test makes them again to compare); with failAt, it fails once
// that many bytes are read.
type pattern struct {
	off, size, failAt, cutAt, hangAt int64
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.failAt > 0 && p.off >= p.failAt {
		return 0, errors.New("the body failed on purpose")
	}
	if p.cutAt > 0 && p.off >= p.cutAt {
		return 0, io.ErrUnexpectedEOF // as a cut-off download says
	}
	if p.hangAt > 0 && p.off >= p.hangAt {
		time.Sleep(time.Hour)
	}
	if p.off >= p.size {
		return 0, io.EOF
	}
	end := p.size
	for _, at := range []int64{p.cutAt, p.hangAt} {
		if at > p.off {
			end = min(end, at) // a read stops where the body is cut or hangs
		}
	}
	n := int(min(int64(len(b)), end-p.off))
	for i := range n {
		b[i] = patternByte(p.off + int64(i))
	}
	p.off += int64(n)
	return n, nil
}

// patternByte is byte i of a pattern: the test's copy must match.
func patternByte(i int64) byte { return byte(i*31 + i>>13) }
