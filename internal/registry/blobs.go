package registry

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

func parseDigestParam(s string) (digest.Digest, error) {
	d, err := oci.ParseDigest(s)
	if err != nil {
		return "", apiErr(http.StatusBadRequest, oci.CodeDigestInvalid, err.Error(), nil)
	}
	return d, nil
}

func (h *Handler) getBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigestParam(rt.ref)
	if err != nil {
		return err
	}
	ctx := r.Context()
	size, err := h.meta.BlobSize(ctx, rt.name, d)
	if errors.Is(err, meta.ErrBlobNotFound) && !errors.Is(err, meta.ErrRepositoryNotFound) {
		// Manifests are content too: serve one by digest as a blob.
		if m, merr := h.meta.GetManifest(ctx, rt.name, d.String()); merr == nil {
			hd := w.Header()
			hd.Set("Docker-Content-Digest", d.String())
			hd.Set("ETag", `"`+d.String()+`"`)
			hd.Set("Content-Type", m.MediaType)
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(m.Payload))
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	if rd, ok := h.blobs.(blob.Redirector); ok && r.Method == http.MethodGet {
		// The storage serves the bytes itself (a presigned S3 URL). The
		// redirect must not be cached longer than the URL is valid.
		u, err := rd.RedirectURL(ctx, d)
		if err != nil {
			return err
		}
		if u != "" {
			w.Header().Set("Docker-Content-Digest", d.String())
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, u, http.StatusTemporaryRedirect)
			return nil
		}
	}
	hd := w.Header()
	hd.Set("Docker-Content-Digest", d.String())
	hd.Set("ETag", `"`+d.String()+`"`)
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Accept-Ranges", "bytes")
	hd.Set("Cache-Control", "max-age=31536000")
	if r.Method == http.MethodHead && r.Header.Get("Range") == "" {
		hd.Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	f, _, err := h.blobs.Open(ctx, d)
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			h.log.ErrorContext(ctx, "blob linked in metadata but missing from the blob store", "repository", rt.name, "digest", d)
		}
		return err
	}
	defer f.Close()
	if wr, ok := f.(blob.WholeReader); ok && r.Method == http.MethodGet && plainGet(r) {
		// A whole blob from object storage (a pull), written as the
		// storage does best. Start comes before the answer: storage that
		// fails at once gets an error answer, not a cut-off 200.
		if err := wr.Start(); err != nil {
			return err
		}
		hd.Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		if _, err := wr.WriteTo(w); err != nil && r.Context().Err() == nil {
			h.log.WarnContext(ctx, "blob read failed after the response started", "repository", rt.name, "digest", d, "err", err)
		}
		return nil
	}
	// ServeContent handles Range (206/416), If-None-Match and HEAD; with
	// an *os.File the body goes out with sendfile.
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

// plainGet reports whether r asks for the whole body unconditionally (no
// Range, no conditional header): what a pull asks.
func plainGet(r *http.Request) bool {
	for _, k := range []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if r.Header.Get(k) != "" {
			return false
		}
	}
	return true
}

func (h *Handler) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigestParam(rt.ref)
	if err != nil {
		return err
	}
	if err := h.meta.UnlinkBlob(r.Context(), rt.name, d); err != nil {
		return err
	}
	h.log.InfoContext(r.Context(), "blob deleted", "repository", rt.name, "digest", d)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
