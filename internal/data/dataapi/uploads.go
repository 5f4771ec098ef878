package dataapi

import (
	"net/http"
	"strconv"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway"
)

// Multipart uploads through the node's API (docs/http-api.md): the S3
// API's, named by upload id alone, with JSON for the requests that are not
// a part's bytes. A client that cannot hold or resend a whole object (a
// wasm function, whose answers and requests pass through its memory; a
// client on a link that breaks) sends it in parts instead.

func (a *API) registerUploads(h func(string, http.HandlerFunc)) {
	h("POST /api/v1/buckets/{bucket}/uploads", a.createUpload)
	h("GET /api/v1/buckets/{bucket}/uploads", a.listUploads)
	h("GET /api/v1/buckets/{bucket}/uploads/{id}", a.getUpload)
	h("DELETE /api/v1/buckets/{bucket}/uploads/{id}", a.abortUpload)
	h("PUT /api/v1/buckets/{bucket}/uploads/{id}/parts/{n}", a.uploadPart)
	h("POST /api/v1/buckets/{bucket}/uploads/{id}/complete", a.completeUpload)
}

func uploadAPI(u *data.Upload) api.Upload {
	return api.Upload{ID: u.ID, Bucket: u.Bucket, Key: u.Key, ContentType: u.ContentType, Metadata: u.Metadata, Headers: u.Headers, Created: u.Created}
}

func (a *API) createUpload(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindBucket) {
		return
	}
	var req api.Upload
	if !readJSON(w, r, &req) {
		return
	}
	if req.Key == "" {
		gateway.WriteError(w, function.Invalid("key", "name the object's key"))
		return
	}
	u, err := a.svc.CreateUpload(r.Context(), r.PathValue("bucket"), req.Key,
		data.PutObjectOptions{ContentType: req.ContentType, Metadata: req.Metadata, Headers: req.Headers}, "")
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, uploadAPI(u))
}

func (a *API) listUploads(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r, data.KindBucket) {
		return
	}
	us, err := a.svc.Uploads(r.Context(), r.PathValue("bucket"))
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	out := api.UploadList{Uploads: make([]api.Upload, len(us))}
	for i := range us {
		out.Uploads[i] = uploadAPI(&us[i])
	}
	writeJSON(w, http.StatusOK, out)
}

// upload reads the request's upload, writing the error when there is none
// (or the caller may not use its bucket).
func (a *API) upload(w http.ResponseWriter, r *http.Request) (*data.Upload, bool) {
	if !a.allow(w, r, data.KindBucket) {
		return nil, false
	}
	u, err := a.svc.UploadOf(r.Context(), r.PathValue("bucket"), r.PathValue("id"))
	if err != nil {
		gateway.WriteError(w, err)
		return nil, false
	}
	return u, true
}

func (a *API) getUpload(w http.ResponseWriter, r *http.Request) {
	u, ok := a.upload(w, r)
	if !ok {
		return
	}
	parts, err := a.svc.Parts(r.Context(), u.Bucket, u.Key, u.ID)
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	out := uploadAPI(u)
	out.Parts = make([]api.Part, len(parts))
	for i, p := range parts {
		out.Parts[i] = api.Part{Number: p.Number, ETag: p.ETag, Size: p.Size, Modified: p.Modified}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) abortUpload(w http.ResponseWriter, r *http.Request) {
	u, ok := a.upload(w, r)
	if !ok {
		return
	}
	if err := a.svc.AbortUpload(r.Context(), u.Bucket, u.Key, u.ID); err != nil {
		gateway.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) uploadPart(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 || n > data.MaxParts {
		refuse(w, r, function.Invalid("part", "the part number is %q: use 1 to %d", r.PathValue("n"), data.MaxParts))
		return
	}
	u, ok := a.upload(w, r)
	if !ok {
		return
	}
	p, err := a.svc.UploadPart(r.Context(), u.Bucket, u.Key, u.ID, n, r.Body, r.ContentLength, data.PartOptions{})
	if err != nil {
		refuse(w, r, err)
		return
	}
	w.Header().Set("ETag", `"`+p.ETag+`"`)
	writeJSON(w, http.StatusOK, api.Part{Number: p.Number, ETag: p.ETag, Size: p.Size, Modified: p.Modified})
}

func (a *API) completeUpload(w http.ResponseWriter, r *http.Request) {
	u, ok := a.upload(w, r)
	if !ok {
		return
	}
	var req api.CompleteUploadRequest
	if !readJSON(w, r, &req) {
		return
	}
	parts := make([]data.CompletePart, len(req.Parts))
	for i, p := range req.Parts {
		parts[i] = data.CompletePart{Number: p.Number, ETag: p.ETag}
	}
	info, err := a.svc.CompleteUpload(r.Context(), u.Bucket, u.Key, u.ID, parts,
		data.CompleteOptions{IfNoneMatch: req.IfNoneMatch, IfMatch: req.IfMatch})
	if err != nil {
		gateway.WriteError(w, err)
		return
	}
	w.Header().Set("ETag", `"`+info.ETag+`"`)
	writeJSON(w, http.StatusOK, ObjectAPI(info))
}
