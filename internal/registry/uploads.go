package registry

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

func uploadLocation(name, id string) string { return "/v2/" + name + "/blobs/uploads/" + id }
func blobLocation(name string, d digest.Digest) string {
	return "/v2/" + name + "/blobs/" + d.String()
}

// hasBody reports whether a request carries a body to append.
func hasBody(r *http.Request) bool {
	return r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
}

func (h *Handler) startUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	q := r.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		d, err := parseDigestParam(mount)
		if err != nil {
			return err
		}
		if from := q.Get("from"); from != "" && from != rt.name {
			// Checked and linked in one transaction: garbage collection
			// cannot delete the blob in between.
			_, err := h.meta.MountBlob(ctx, from, rt.name, d)
			if err != nil && !errors.Is(err, meta.ErrBlobNotFound) {
				return err
			}
			if err == nil {
				hd := w.Header()
				hd.Set("Location", blobLocation(rt.name, d))
				hd.Set("Docker-Content-Digest", d.String())
				hd.Set("Content-Length", "0")
				w.WriteHeader(http.StatusCreated)
				return nil
			}
		}
		// Cannot mount: fall through to a normal upload session (202).
	}
	alg := digest.Canonical
	if a := q.Get("digest-algorithm"); a != "" {
		alg = digest.Algorithm(a)
		if alg != digest.SHA256 && alg != digest.SHA512 {
			return apiErr(http.StatusBadRequest, oci.CodeDigestInvalid, "digest-algorithm "+strconv.Quote(a)+" is not supported; use sha256 or sha512", nil)
		}
	}
	var want digest.Digest
	if ds := q.Get("digest"); ds != "" {
		d, err := parseDigestParam(ds)
		if err != nil {
			return err
		}
		want, alg = d, d.Algorithm()
	}
	up, err := h.blobs.Uploads().New(ctx, rt.name, alg)
	if err != nil {
		return err
	}
	h.uploadsDelta(1)
	if want != "" {
		// Monolithic upload: the whole blob is in this request.
		if _, err := up.Append(ctx, 0, r.Body); err != nil {
			up.Cancel(ctx)
			h.uploadsDelta(-1)
			return uploadIOError(err)
		}
		return h.finishUpload(w, r, rt, up, want)
	}
	if err := up.Close(); err != nil {
		return err
	}
	writeUploadStatus(w, rt.name, up, http.StatusAccepted)
	return nil
}

func writeUploadStatus(w http.ResponseWriter, name string, up blob.Upload, status int) {
	hd := w.Header()
	hd.Set("Location", uploadLocation(name, up.ID()))
	hd.Set("Docker-Upload-UUID", up.ID())
	end := up.Size() - 1
	if end < 0 {
		end = 0
	}
	hd.Set("Range", "0-"+strconv.FormatInt(end, 10))
	hd.Set("Content-Length", "0")
	w.WriteHeader(status)
}

func (h *Handler) uploadsDelta(d int) {
	if h.UploadsInProgress != nil {
		h.UploadsInProgress(d)
	}
}

// upload serves GET (status), PATCH (append), PUT (finish) and DELETE
// (cancel) on an upload session, one request per session at a time.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request, rt route) error {
	switch r.Method {
	case http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete:
	default:
		return methodNotAllowed(r)
	}
	ctx := r.Context()
	// An id no driver hands out is unknown: answered before anything
	// (a lock, a lookup) is spent on it.
	if !blob.ValidUploadID(rt.ref) {
		return blob.ErrUploadNotFound
	}
	unlock := h.uploadLocks.lock(rt.ref)
	defer unlock()
	up, err := h.blobs.Uploads().Resume(ctx, rt.ref)
	if err != nil {
		return err
	}
	if up.Repository() != rt.name {
		up.Close()
		return blob.ErrUploadNotFound
	}
	switch r.Method {
	case http.MethodGet:
		up.Close()
		writeUploadStatus(w, rt.name, up, http.StatusNoContent)
		return nil
	case http.MethodDelete:
		if err := up.Cancel(ctx); err != nil {
			return err
		}
		h.uploadsDelta(-1)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNoContent)
		return nil
	case http.MethodPatch:
		return h.patchUpload(w, r, rt, up)
	}
	return h.putUpload(w, r, rt, up)
}

// patchUpload appends the request body to up (PATCH).
func (h *Handler) patchUpload(w http.ResponseWriter, r *http.Request, rt route, up blob.Upload) error {
	err := h.appendChunk(r, up)
	if cerr := up.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, blob.ErrRangeMismatch) {
		writeRangeError(w, r, rt.name, up)
		return nil
	}
	if err != nil {
		return err
	}
	writeUploadStatus(w, rt.name, up, http.StatusAccepted)
	return nil
}

// putUpload appends the request body, if any, and finishes up with the
// digest the query names (PUT).
func (h *Handler) putUpload(w http.ResponseWriter, r *http.Request, rt route, up blob.Upload) error {
	ds := r.URL.Query().Get("digest")
	if ds == "" {
		up.Close()
		return apiErr(http.StatusBadRequest, oci.CodeDigestInvalid, "the digest query parameter is required to finish an upload", nil)
	}
	want, err := parseDigestParam(ds)
	if err != nil {
		up.Close()
		return err
	}
	if hasBody(r) {
		if err := h.appendChunk(r, up); err != nil {
			up.Close()
			if errors.Is(err, blob.ErrRangeMismatch) {
				writeRangeError(w, r, rt.name, up)
				return nil
			}
			return err
		}
	}
	return h.finishUpload(w, r, rt, up, want)
}

func writeRangeError(w http.ResponseWriter, r *http.Request, name string, up blob.Upload) {
	hd := w.Header()
	hd.Set("Location", uploadLocation(name, up.ID()))
	end := up.Size() - 1
	if end < 0 {
		end = 0
	}
	hd.Set("Range", "0-"+strconv.FormatInt(end, 10))
	writeError(w, r, apiErr(http.StatusRequestedRangeNotSatisfiable, oci.CodeBlobUploadInvalid,
		"chunk does not start where the upload ends (at byte "+strconv.FormatInt(up.Size(), 10)+"); send the next chunk from there", nil))
}

// appendChunk appends the request body, honouring Content-Range when sent.
func (h *Handler) appendChunk(r *http.Request, up blob.Upload) error {
	offset := up.Size()
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, end, err := parseContentRange(cr)
		if err != nil {
			return err
		}
		if start != up.Size() {
			return blob.ErrRangeMismatch
		}
		if r.ContentLength >= 0 && r.ContentLength != end-start+1 {
			return apiErr(http.StatusBadRequest, oci.CodeSizeInvalid, "Content-Length "+strconv.FormatInt(r.ContentLength, 10)+" does not match Content-Range "+cr, nil)
		}
		offset = start
		if r.ContentLength < 0 {
			// No Content-Length to hold the body to its range: a body
			// of another length fails the read, and Append drops the chunk.
			body := &exactReader{r: r.Body, left: end - start + 1}
			_, err = up.Append(r.Context(), offset, body)
			if body.err != nil {
				return apiErr(http.StatusBadRequest, oci.CodeSizeInvalid, body.err.Error()+" (Content-Range "+cr+"); the chunk was discarded", nil)
			}
			return uploadIOError(err)
		}
	}
	_, err := up.Append(r.Context(), offset, r.Body)
	return uploadIOError(err)
}

// exactReader reads exactly left bytes from r; a shorter or longer stream
// makes Read fail (and sets err).
type exactReader struct {
	r    io.Reader
	left int64
	err  error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		// Expect EOF; anything more is too much.
		var one [1]byte
		n, err := e.r.Read(one[:])
		if n > 0 {
			e.err = errors.New("request body is longer than its Content-Range")
			return 0, e.err
		}
		if err == nil {
			return 0, nil
		}
		return 0, err
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		e.err = errors.New("request body is shorter than its Content-Range")
		return n, e.err
	}
	return n, err
}

func uploadIOError(err error) error {
	if err == nil || errors.Is(err, blob.ErrRangeMismatch) {
		return err
	}
	return bodyReadError(err, oci.CodeBlobUploadInvalid)
}

// parseContentRange accepts "start-end" (the OCI form) and tolerates the
// "bytes start-end/total" and "bytes=start-end" spellings some clients use.
func parseContentRange(s string) (int64, int64, error) {
	v := strings.TrimSpace(s)
	v = strings.TrimPrefix(v, "bytes=")
	v = strings.TrimPrefix(v, "bytes ")
	if i := strings.IndexByte(v, '/'); i >= 0 {
		v = v[:i]
	}
	a, b, ok := strings.Cut(v, "-")
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	// end must leave room for end-start+1: a range reaching MaxInt64 would
	// overflow the chunk length.
	if !ok || err1 != nil || err2 != nil || start < 0 || end < start || end == math.MaxInt64 {
		return 0, 0, apiErr(http.StatusRequestedRangeNotSatisfiable, oci.CodeBlobUploadInvalid, "invalid Content-Range "+strconv.Quote(truncate(s, 100))+"; want <start>-<end>", nil)
	}
	return start, end, nil
}

func (h *Handler) finishUpload(w http.ResponseWriter, r *http.Request, rt route, up blob.Upload, want digest.Digest) error {
	ctx := r.Context()
	if err := h.prepareBlob(ctx, want); err != nil {
		up.Cancel(ctx)
		h.uploadsDelta(-1)
		return err
	}
	size, err := up.Commit(ctx, want)
	h.uploadsDelta(-1)
	if err != nil {
		return err
	}
	if err := h.meta.LinkBlob(ctx, rt.name, want, size); err != nil {
		return err
	}
	h.log.DebugContext(ctx, "blob pushed", "repository", rt.name, "digest", want, "size", size)
	hd := w.Header()
	hd.Set("Location", blobLocation(rt.name, want))
	hd.Set("Docker-Content-Digest", want.String())
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// prepareBlob tells the store that want is about to be committed (see
// blobLinks). While garbage collection deletes the object of the same
// digest it waits, polling, for up to BlobDeletingWait; then the client
// gets 503 and pushes again.
func (h *Handler) prepareBlob(ctx context.Context, want digest.Digest) error {
	deadline := time.Now().Add(h.cfg.BlobDeletingWait)
	pause := 20 * time.Millisecond
	for {
		err := h.meta.PrepareBlob(ctx, want)
		if !errors.Is(err, meta.ErrBlobDeleting) || time.Now().Add(pause).After(deadline) {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, time.Second)
	}
}
