// Package dataapi serves the data services over HTTP: the management and
// data API under /api/v1/tables and /api/v1/buckets (JSON; objects as raw
// bytes), and presigned object URLs under /api/v1/presigned/. Callers are
// administrators (the management token) or functions (the credential of
// their instance, which the SDK sends); package data checks what a function
// may use. Errors become responses through the gateway, as everywhere.
package dataapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway"
	"github.com/nimbus-run/nimbus/internal/gateway/cors"
	"github.com/nimbus-run/nimbus/internal/httpbody"
)

// Mux is where the routes go (the gateway).
type Mux interface {
	Handle(pattern string, h http.Handler)
	Protected(h http.HandlerFunc) http.Handler
}

// maxJSON bounds a JSON request: a batch of 100 items of 400 KB, and room.
const maxJSON = data.MaxBatch*data.MaxItemBytes + 1<<20

type principalKey struct{}

// API is the HTTP surface of a data.Service.
type API struct {
	svc *data.Service
	mux Mux
}

// Register adds the routes to m.
func Register(m Mux, svc *data.Service) *API {
	a := &API{svc: svc, mux: m}
	h := func(pattern string, f http.HandlerFunc) { m.Handle(pattern, a.auth(f)) }
	h("GET /api/v1/tables", a.listTables)
	h("GET /api/v1/tables/{table}", a.getTable)
	h("PUT /api/v1/tables/{table}", a.putTable)
	h("DELETE /api/v1/tables/{table}", a.deleteTable)
	h("PUT /api/v1/tables/{table}/items", a.putItem)
	h("POST /api/v1/tables/{table}/get", a.getItem)
	h("POST /api/v1/tables/{table}/delete", a.deleteItem)
	h("POST /api/v1/tables/{table}/update", a.updateItem)
	h("POST /api/v1/tables/{table}/query", a.query)
	h("POST /api/v1/tables/{table}/scan", a.scan)
	h("POST /api/v1/tables/{table}/batch-get", a.batchGet)
	h("POST /api/v1/tables/{table}/batch-put", a.batchPut)
	h("GET /api/v1/tables/{table}/changes", a.changes)

	h("GET /api/v1/buckets", a.listBuckets)
	h("GET /api/v1/buckets/{bucket}", a.getBucket)
	h("PUT /api/v1/buckets/{bucket}", a.putBucket)
	h("DELETE /api/v1/buckets/{bucket}", a.deleteBucket)
	h("GET /api/v1/buckets/{bucket}/objects", a.listObjects)
	h("PUT /api/v1/buckets/{bucket}/objects/{key...}", a.putObject)
	h("GET /api/v1/buckets/{bucket}/objects/{key...}", a.getObject)
	h("HEAD /api/v1/buckets/{bucket}/objects/{key...}", a.getObject)
	h("DELETE /api/v1/buckets/{bucket}/objects/{key...}", a.deleteObject)
	h("POST /api/v1/buckets/{bucket}/copy", a.copyObject)
	h("POST /api/v1/buckets/{bucket}/presign", a.presign)
	a.registerUploads(h)

	// Presigned URLs carry their own authorization.
	m.Handle("GET "+data.PresignPath+"{bucket}/{key...}", http.HandlerFunc(a.presigned))
	m.Handle("HEAD "+data.PresignPath+"{bucket}/{key...}", http.HandlerFunc(a.presigned))
	m.Handle("PUT "+data.PresignPath+"{bucket}/{key...}", http.HandlerFunc(a.presigned))
	m.Handle("OPTIONS "+data.PresignPath+"{bucket}/{key...}", http.HandlerFunc(a.presigned))
	return a
}

// auth lets in functions with a valid credential and, through the
// gateway's check, administrators.
func (a *API) auth(h http.HandlerFunc) http.Handler {
	admin := a.mux.Protected(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !strings.HasPrefix(tok, data.CredentialPrefix) {
			admin.ServeHTTP(w, r)
			return
		}
		p, err := a.svc.VerifyCredential(tok)
		if err != nil {
			gateway.WriteError(w, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func principal(r *http.Request) *data.Principal {
	p, _ := r.Context().Value(principalKey{}).(*data.Principal)
	return p
}

// allow checks the caller may use the request's table or bucket; the
// catalogue itself (listing, creating, deleting) is for administrators.
func (a *API) allow(w http.ResponseWriter, r *http.Request, kind string) bool {
	name := r.PathValue(kind)
	if err := a.svc.Allow(principal(r), kind, name); err != nil {
		gateway.WriteError(w, err)
		return false
	}
	return true
}

func (a *API) adminOnly(w http.ResponseWriter, r *http.Request) bool {
	if p := principal(r); p != nil {
		gateway.WriteError(w, errors.Join(data.ErrForbidden, errors.New("function "+p.Function+" may not manage tables and buckets: use the admin token")))
		return false
	}
	return true
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength > maxJSON {
		gateway.WriteError(w, function.ErrPayloadTooBig)
		return false
	}
	return decodeJSON(w, http.MaxBytesReader(w, r.Body, maxJSON), v)
}

// decodeJSON decodes a request body from r into v, strictly, writing the
// error response when it fails.
func decodeJSON(w http.ResponseWriter, r io.Reader, v any) bool {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			gateway.WriteError(w, function.ErrPayloadTooBig)
			return false
		}
		gateway.WriteError(w, function.Invalid("body", "not a valid request: %v", err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away
}

func changeStatus(c data.Change) int {
	if c == data.Created {
		return http.StatusCreated
	}
	return http.StatusOK
}

func tableAPI(d *data.TableDef) api.Table {
	return api.Table{Name: d.Name, Key: d.Key, Sort: d.Sort, TTL: d.TTL, History: d.History, Created: d.Created}
}

// tableWithUsage is a table's description with its stored bytes.
func (a *API) tableWithUsage(ctx context.Context, d *data.TableDef) (api.Table, error) {
	t := tableAPI(d)
	var err error
	t.StoredBytes, err = a.svc.TableStoredBytes(ctx, d.Name)
	return t, err
}

func (a *API) listTables(w http.ResponseWriter, r *http.Request) {
	tables, err := describeAll(r.Context(), a.svc.Tables(), a.tableWithUsage, data.ErrNoSuchTable)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.TableList{Tables: tables})
}

// describeAll describes each of defs (a table's or bucket's description
// with its stored bytes), leaving out those deleted meanwhile (gone).
func describeAll[D, T any](ctx context.Context, defs []D, describe func(context.Context, *D) (T, error), gone error) ([]T, error) {
	out := []T{}
	for i := range defs {
		t, err := describe(ctx, &defs[i])
		if errors.Is(err, gone) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func (a *API) getTable(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindTable) {
		return
	}
	d, err := a.svc.Table(r.PathValue("table"))
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	t, err := a.tableWithUsage(r.Context(), d)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (a *API) putTable(w http.ResponseWriter, r *http.Request) {
	if !a.adminOnly(w, r) {
		return
	}
	var t api.Table
	if !readJSON(w, r, &t) {
		return
	}
	if t.Name == "" {
		t.Name = r.PathValue("table")
	}
	if t.Name != r.PathValue("table") {
		gateway.WriteError(w, function.Invalid("name", "body names %q but the URL names %q", t.Name, r.PathValue("table")))
		return
	}
	d, change, err := a.svc.PutTable(r.Context(), data.TableDef{Name: t.Name, Key: t.Key, Sort: t.Sort, TTL: t.TTL, History: t.History})
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, changeStatus(change), api.PutTableResult{Table: tableAPI(d), Change: string(change)})
}

func force(r *http.Request) bool {
	f, _ := strconv.ParseBool(r.URL.Query().Get("force"))
	return f
}

func (a *API) deleteTable(w http.ResponseWriter, r *http.Request) {
	if !a.adminOnly(w, r) {
		return
	}
	if err := a.svc.DeleteTable(r.Context(), r.PathValue("table"), force(r)); err != nil {
		gateway.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) putItem(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindTable) {
		return
	}
	var req api.PutItemRequest
	if !readFast(w, r, &req, decodePutItem) {
		return
	}
	rev, err := a.svc.Put(r.Context(), r.PathValue("table"), req.Item, data.PutOptions{IfAbsent: req.IfAbsent, IfRevision: req.IfRevision})
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	// What writeJSON writes for api.PutItemResult, without reflection.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(append(strconv.AppendUint([]byte(`{"revision":`), rev, 10), "}\n"...)) //nolint:errcheck // the client went away
}

func (a *API) getItem(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindTable) {
		return
	}
	var req api.KeyRequest
	if !readFast(w, r, &req, decodeKeyRequest) {
		return
	}
	e, err := a.svc.Get(r.Context(), r.PathValue("table"), req.Key)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeEntry(w, e)
}

func (a *API) deleteItem(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindTable) {
		return
	}
	var req api.KeyRequest
	if !readFast(w, r, &req, decodeKeyRequest) {
		return
	}
	if err := a.svc.Delete(r.Context(), r.PathValue("table"), req.Key, data.DeleteOptions{IfRevision: req.IfRevision}); err != nil {
		gateway.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) updateItem(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindTable) {
		return
	}
	var req api.UpdateItemRequest
	if !readJSON(w, r, &req) {
		return
	}
	e, err := a.svc.Update(r.Context(), r.PathValue("table"), req.Key, req.Patch, data.DeleteOptions{IfRevision: req.IfRevision})
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeEntry(w, e)
}

func pageAPI(p *data.Page) api.Page {
	out := api.Page{Items: make([]api.Entry, len(p.Items)), Cursor: p.Cursor}
	for i, e := range p.Items {
		out.Items[i] = api.Entry(e)
	}
	return out
}

func (a *API) query(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindTable) {
		return
	}
	var req api.QueryRequest
	if !readJSON(w, r, &req) {
		return
	}
	q := data.Query{Partition: req.Partition, Where: req.Where, Reverse: req.Reverse, Limit: req.Limit, Cursor: req.Cursor}
	if req.Condition != nil {
		q.Condition = (*data.Condition)(req.Condition)
	}
	p, err := a.svc.Query(r.Context(), r.PathValue("table"), q)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, pageAPI(p))
}

func (a *API) scan(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindTable) {
		return
	}
	var req api.ScanRequest
	if !readJSON(w, r, &req) {
		return
	}
	p, err := a.svc.Scan(r.Context(), r.PathValue("table"), req.Limit, req.Cursor)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, pageAPI(p))
}

// changes reads a page of a table's change stream, from ?from= (oldest,
// a revision or a time; default oldest); with ?wait= (a duration, at most
// maxChangesWait), a page that would be empty waits for the first change.
func (a *API) changes(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindTable) {
		return
	}
	q := r.URL.Query()
	from := q.Get("from")
	if from == "new" {
		gateway.WriteError(w, function.Invalid("from", "new reads nothing yet: use oldest, a revision, or a time"))
		return
	}
	start, err := data.ParseStart("from", from)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	limit := data.DefaultLimit
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > data.MaxLimit {
			gateway.WriteError(w, function.Invalid("limit", "must be a number from 1 to %d", data.MaxLimit))
			return
		}
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 || wait > maxChangesWait {
			gateway.WriteError(w, function.Invalid("wait", "%q is not a wait: a duration from 0s to %v, e.g. 20s", v, maxChangesWait))
			return
		}
	}
	cs, err := a.svc.Changes(r.Context(), r.PathValue("table"), start, limit, wait)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	out := api.ChangePage{Changes: cs}
	if out.Changes == nil {
		out.Changes = []api.TableChange{}
	}
	if len(cs) > 0 {
		out.Next = cs[len(cs)-1].Revision + 1
	}
	writeJSON(w, http.StatusOK, out)
}

// maxChangesWait bounds a long poll of changes: proxies between a client
// and the node commonly cut requests idle for a minute.
const maxChangesWait = 50 * time.Second

func (a *API) batchGet(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindTable) {
		return
	}
	var req api.BatchGetRequest
	if !readJSON(w, r, &req) {
		return
	}
	es, err := a.svc.BatchGet(r.Context(), r.PathValue("table"), req.Keys)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	out := api.BatchGetResult{Items: make([]*api.Entry, len(es))}
	for i, e := range es {
		if e != nil {
			ae := api.Entry(*e)
			out.Items[i] = &ae
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) batchPut(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindTable) {
		return
	}
	var req api.BatchPutRequest
	if !readJSON(w, r, &req) {
		return
	}
	res, err := a.svc.BatchPut(r.Context(), r.PathValue("table"), req.Items)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	out := api.BatchPutResult{Results: make([]api.BatchItemResult, len(res))}
	for i, br := range res {
		out.Results[i] = api.BatchItemResult{Revision: br.Revision, Error: br.Error}
	}
	writeJSON(w, http.StatusOK, out)
}

func bucketAPI(d *data.BucketDef) api.Bucket { return api.Bucket{Name: d.Name, Created: d.Created} }

// bucketWithUsage is a bucket's description with its stored bytes.
func (a *API) bucketWithUsage(ctx context.Context, d *data.BucketDef) (api.Bucket, error) {
	b := bucketAPI(d)
	var err error
	b.StoredBytes, err = a.svc.BucketStoredBytes(ctx, d.Name)
	return b, err
}

func (a *API) listBuckets(w http.ResponseWriter, r *http.Request) {
	buckets, err := describeAll(r.Context(), a.svc.Buckets(), a.bucketWithUsage, data.ErrNoSuchBucket)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.BucketList{Buckets: buckets})
}

func (a *API) getBucket(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindBucket) {
		return
	}
	d, err := a.svc.Bucket(r.PathValue("bucket"))
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	b, err := a.bucketWithUsage(r.Context(), d)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (a *API) putBucket(w http.ResponseWriter, r *http.Request) {
	if !a.adminOnly(w, r) {
		return
	}
	d, change, err := a.svc.PutBucket(r.Context(), r.PathValue("bucket"))
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, changeStatus(change), api.PutBucketResult{Bucket: bucketAPI(d), Change: string(change)})
}

func (a *API) deleteBucket(w http.ResponseWriter, r *http.Request) {
	if !a.adminOnly(w, r) {
		return
	}
	if err := a.svc.DeleteBucket(r.Context(), r.PathValue("bucket"), force(r)); err != nil {
		gateway.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ObjectAPI converts an object's info to its wire form.
func ObjectAPI(o *data.ObjectInfo) api.Object {
	return api.Object{Bucket: o.Bucket, Key: o.Key, Size: o.Size, ETag: o.ETag, ContentType: o.ContentType, Metadata: o.Metadata, Headers: o.Headers, Modified: o.Modified}
}

func (a *API) listObjects(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindBucket) {
		return
	}
	q := r.URL.Query()
	opt := data.ListOptions{Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter")}
	if c := q.Get("cursor"); c != "" {
		after, err := data.DecodeListCursor(c)
		if err != nil {
			gateway.WriteError(w, err)
			return
		}
		opt.After = after
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			gateway.WriteError(w, function.Invalid("limit", "must be a number from 1 to 1000"))
			return
		}
		opt.Limit = n
	}
	l, err := a.svc.ListObjects(r.Context(), r.PathValue("bucket"), opt)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	out := api.ObjectList{Objects: make([]api.Object, len(l.Objects)), CommonPrefixes: l.CommonPrefixes}
	for i := range l.Objects {
		out.Objects[i] = ObjectAPI(&l.Objects[i])
	}
	if l.Truncated {
		out.Cursor = data.EncodeListCursor(l.Next)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) putObject(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindBucket) {
		return
	}
	a.put(w, r, r.PathValue("bucket"), r.PathValue("key"))
}

func (a *API) put(w http.ResponseWriter, r *http.Request, bucket, key string) {
	meta := map[string]string{}
	for k, vs := range r.Header {
		if name, ok := strings.CutPrefix(k, api.HeaderMetaPrefix); ok && len(vs) > 0 {
			meta[strings.ToLower(name)] = vs[0]
		}
	}
	info, err := a.svc.PutObject(r.Context(), bucket, key, r.Body, r.ContentLength,
		data.PutObjectOptions{ContentType: r.Header.Get("Content-Type"), Metadata: meta, Headers: data.HeadersOf(r.Header),
			IfNoneMatch: r.Header.Get("If-None-Match"), IfMatch: r.Header.Get("If-Match")})
	if err != nil {
		refuse(w, r, err)
		return
	}
	w.Header().Set("ETag", `"`+info.ETag+`"`)
	writeJSON(w, http.StatusOK, ObjectAPI(info))
}

// refuse answers an upload with its error once the client has sent the
// rest of the body, so that it reads the answer (httpbody.DrainRefused).
func refuse(w http.ResponseWriter, r *http.Request, err error) {
	httpbody.DrainRefused(w, r)
	gateway.WriteError(w, err)
}

func (a *API) getObject(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindBucket) {
		return
	}
	a.get(w, r, r.PathValue("bucket"), r.PathValue("key"), "")
}

// get serves an object or a range of it; HEAD only its headers.
// get answers a GET or HEAD of an object; disposition, when set, replaces
// its Content-Disposition (a presigned download's name).
func (a *API) get(w http.ResponseWriter, r *http.Request, bucket, key, disposition string) {
	if r.Method == http.MethodHead {
		info, err := a.svc.HeadObject(r.Context(), bucket, key)
		if err == nil {
			err = data.CheckConditions(r.Header, info)
		}
		if err != nil {
			if !data.NotModified(w, info, err) {
				writeHeadError(w, err)
			}
			return
		}
		objectHeaders(w, info, disposition)
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
		w.WriteHeader(http.StatusOK)
		return
	}
	var seen *data.ObjectInfo
	obj, err := a.svc.GetObjectIf(r.Context(), bucket, key, r.Header.Get("Range"), func(info *data.ObjectInfo) error {
		seen = info
		return data.CheckConditions(r.Header, info)
	})
	if err != nil {
		if data.NotModified(w, seen, err) {
			return
		}
		if errors.Is(err, data.ErrInvalidRange) {
			if info, herr := a.svc.HeadObject(r.Context(), bucket, key); herr == nil {
				w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(info.Size, 10))
			}
		}
		gateway.WriteError(w, err)
		return
	}
	defer obj.Body.Close()
	objectHeaders(w, obj.Info, disposition)
	status, length := http.StatusOK, obj.Info.Size
	if obj.Range != nil {
		status, length = http.StatusPartialContent, obj.Range.Length
		w.Header().Set("Content-Range", "bytes "+strconv.FormatInt(obj.Range.Start, 10)+"-"+
			strconv.FormatInt(obj.Range.Start+obj.Range.Length-1, 10)+"/"+strconv.FormatInt(obj.Info.Size, 10))
	}
	w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(status)
	io.Copy(w, obj.Body) //nolint:errcheck // a failure mid-body can only cut the response short
}

// ObjectHeaders sets the headers describing an object; disposition, when
// set, replaces its Content-Disposition.
func objectHeaders(w http.ResponseWriter, info *data.ObjectInfo, disposition string) {
	h := w.Header()
	h.Set("Content-Type", info.ContentType)
	h.Set("ETag", `"`+info.ETag+`"`)
	h.Set("Last-Modified", info.Modified.UTC().Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	if sum := info.SHA256(); sum != nil {
		// The whole object's, for a range too (RFC 9530): what a client
		// checks a download with, as the node does not hash what it reads.
		h.Set(api.HeaderReprDigest, api.FormatReprDigest(sum))
	}
	for k, v := range info.Metadata {
		h.Set(api.HeaderMetaPrefix+k, v)
	}
	for k, v := range info.Headers {
		h.Set(k, v)
	}
	if disposition != "" {
		h.Set("Content-Disposition", disposition)
	}
}

// writeHeadError answers a HEAD: the status only, no body.
func writeHeadError(w http.ResponseWriter, err error) {
	rec := &statusOnly{ResponseWriter: w}
	gateway.WriteError(rec, err)
}

type statusOnly struct{ http.ResponseWriter }

func (s *statusOnly) Write(b []byte) (int, error) { return len(b), nil }

func (a *API) deleteObject(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindBucket) {
		return
	}
	if err := a.svc.DeleteObjectIf(r.Context(), r.PathValue("bucket"), r.PathValue("key"), r.Header.Get("If-Match")); err != nil {
		gateway.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) copyObject(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindBucket) {
		return
	}
	var req api.CopyObjectRequest
	if !readJSON(w, r, &req) {
		return
	}
	if req.SourceBucket == "" {
		req.SourceBucket = r.PathValue("bucket")
	}
	if err := a.svc.Allow(principal(r), data.KindBucket, req.SourceBucket); err != nil {
		gateway.WriteError(w, err)
		return
	}
	info, err := a.svc.CopyObject(r.Context(), req.SourceBucket, req.SourceKey, r.PathValue("bucket"), req.Key, data.CopyOptions{})
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ObjectAPI(info))
}

func (a *API) presign(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindBucket) {
		return
	}
	var req api.PresignRequest
	if !readJSON(w, r, &req) {
		return
	}
	exp := time.Hour
	if req.Expires != "" {
		d, err := time.ParseDuration(req.Expires)
		if err != nil {
			gateway.WriteError(w, function.Invalid("expires", "%q is not a duration like 15m or 24h", req.Expires))
			return
		}
		exp = d
	}
	method := strings.ToUpper(req.Method)
	if method == "" {
		method = http.MethodGet
	}
	path, at, err := a.svc.Presign(method, r.PathValue("bucket"), req.Key, exp, req.Download)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	writeJSON(w, http.StatusOK, api.PresignResult{Path: path, URL: scheme + r.Host + path, Expires: at})
}

// presigned serves a presigned URL.
func (a *API) presigned(w http.ResponseWriter, r *http.Request) {
	if cors.Presigned.Handle(w, r) {
		return // a preflight, answered
	}
	if r.Method == http.MethodOptions {
		w.Header().Set("Allow", "GET, HEAD, PUT, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	bucket, key := r.PathValue("bucket"), r.PathValue("key")
	if err := a.svc.VerifyPresigned(r.Method, bucket, key, r.URL.Query()); err != nil {
		if r.Method == http.MethodHead {
			writeHeadError(w, err)
			return
		}
		refuse(w, r, err)
		return
	}
	if r.Method == http.MethodPut {
		a.put(w, r, bucket, key)
		return
	}
	disposition := ""
	if name := r.URL.Query().Get("download"); name != "" {
		disposition = data.Disposition(name)
	}
	a.get(w, r, bucket, key, disposition)
}
