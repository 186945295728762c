package registry

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

func (h *Handler) getManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	if oci.IsDigestReference(rt.ref) {
		if _, err := parseDigestParam(rt.ref); err != nil {
			return err
		}
	} else if !oci.ValidTag(rt.ref) {
		return apiErr(http.StatusBadRequest, CodeManifestInvalid, "invalid tag "+strconv.Quote(truncate(rt.ref, 200)), nil)
	}
	m, err := h.meta.GetManifest(r.Context(), rt.name, rt.ref)
	if err != nil {
		if errors.Is(err, meta.ErrManifestNotFound) {
			return h.orNameUnknown(r.Context(), rt.name, apiErr(http.StatusNotFound, CodeManifestUnknown, "manifest unknown", map[string]string{"reference": rt.ref}))
		}
		return err
	}
	etag := `"` + m.Digest.String() + `"`
	hd := w.Header()
	hd.Set("Content-Type", m.MediaType)
	hd.Set("Docker-Content-Digest", m.Digest.String())
	hd.Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	hd.Set("Content-Length", strconv.Itoa(len(m.Payload)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(m.Payload)
	}
	return nil
}

func (h *Handler) putManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	max := h.cfg.MaxManifestSize
	if r.ContentLength > max {
		return apiErr(http.StatusRequestEntityTooLarge, CodeSizeInvalid, "manifest is "+strconv.FormatInt(r.ContentLength, 10)+" bytes; the limit is "+strconv.FormatInt(max, 10), nil)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return bodyReadError(err, CodeManifestInvalid)
	}
	if int64(len(body)) > max {
		return apiErr(http.StatusRequestEntityTooLarge, CodeSizeInvalid, "manifest exceeds the limit of "+strconv.FormatInt(max, 10)+" bytes", nil)
	}
	var tags []string
	var dgst digest.Digest
	if oci.IsDigestReference(rt.ref) {
		want, err := parseDigestParam(rt.ref)
		if err != nil {
			return err
		}
		dgst = want.Algorithm().FromBytes(body)
		if dgst != want {
			return apiErr(http.StatusBadRequest, CodeDigestInvalid, "manifest content has digest "+dgst.String()+", not "+want.String(), nil)
		}
	} else {
		if !oci.ValidTag(rt.ref) {
			return apiErr(http.StatusBadRequest, CodeManifestInvalid, "invalid tag "+strconv.Quote(truncate(rt.ref, 200)), nil)
		}
		dgst = digest.Canonical.FromBytes(body)
		tags = append(tags, rt.ref)
	}
	for _, t := range r.URL.Query()["tag"] {
		if !oci.ValidTag(t) {
			return apiErr(http.StatusBadRequest, CodeManifestInvalid, "invalid tag "+strconv.Quote(truncate(t, 200)), nil)
		}
		tags = append(tags, t)
	}
	pm, err := oci.ParseManifest(r.Header.Get("Content-Type"), body)
	if err != nil {
		return err
	}
	m := &meta.Manifest{
		Repository:   rt.name,
		Digest:       dgst,
		MediaType:    pm.MediaType,
		ArtifactType: pm.EffectiveArtifactType(),
		Payload:      body,
		Annotations:  pm.Annotations,
		References:   references(pm),
	}
	if pm.Subject != nil {
		m.Subject = pm.Subject.Digest
	}
	if err := h.meta.PutManifest(ctx, m, tags); err != nil {
		return err
	}
	h.log.InfoContext(ctx, "manifest pushed", "repository", rt.name, "digest", dgst, "tags", tags, "media_type", pm.MediaType)
	if h.cfg.Events != nil {
		h.cfg.Events.ManifestPushed(ctx, m, tags)
	}
	hd := w.Header()
	hd.Set("Location", "/v2/"+rt.name+"/manifests/"+dgst.String())
	hd.Set("Docker-Content-Digest", dgst.String())
	if m.Subject != "" {
		hd.Set("OCI-Subject", m.Subject.String())
	}
	for _, t := range r.URL.Query()["tag"] {
		hd.Add("OCI-Tag", t)
	}
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// references lists what must already be in the repository for m to be
// accepted. The subject is deliberately absent: a referrer may be pushed
// before its subject.
func references(m *oci.Manifest) []meta.Reference {
	var refs []meta.Reference
	if oci.IsIndex(m.MediaType) {
		for _, d := range m.Manifests {
			refs = append(refs, meta.Reference{Digest: d.Digest, Kind: meta.RefManifest, Size: d.Size})
		}
		return refs
	}
	refs = append(refs, meta.Reference{Digest: m.Config.Digest, Kind: meta.RefBlob, Size: m.Config.Size})
	for _, l := range m.Layers {
		if oci.IsNonDistributable(l.MediaType) || len(l.URLs) > 0 {
			continue
		}
		refs = append(refs, meta.Reference{Digest: l.Digest, Kind: meta.RefBlob, Size: l.Size})
	}
	return refs
}

func (h *Handler) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	if oci.IsDigestReference(rt.ref) {
		d, err := parseDigestParam(rt.ref)
		if err != nil {
			return err
		}
		err = h.meta.DeleteManifest(ctx, rt.name, d)
		if errors.Is(err, meta.ErrManifestNotFound) {
			return h.orNameUnknown(ctx, rt.name, err)
		}
		if err != nil {
			return err
		}
	} else {
		if !oci.ValidTag(rt.ref) {
			return apiErr(http.StatusBadRequest, CodeManifestInvalid, "invalid tag "+strconv.Quote(truncate(rt.ref, 200)), nil)
		}
		if err := h.meta.DeleteTag(ctx, rt.name, rt.ref); err != nil {
			if errors.Is(err, meta.ErrTagNotFound) {
				return h.orNameUnknown(ctx, rt.name, err)
			}
			return err
		}
	}
	h.log.InfoContext(ctx, "manifest deleted", "repository", rt.name, "reference", rt.ref)
	if h.cfg.Events != nil {
		h.cfg.Events.ManifestDeleted(ctx, rt.name, rt.ref)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

type indexBody struct {
	SchemaVersion int              `json:"schemaVersion"`
	MediaType     string           `json:"mediaType"`
	Manifests     []oci.Descriptor `json:"manifests"`
}

func (h *Handler) referrers(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigestParam(rt.ref)
	if err != nil {
		return err
	}
	at := r.URL.Query().Get("artifactType")
	list, err := h.meta.Referrers(r.Context(), rt.name, d, at)
	if err != nil {
		return err
	}
	body := indexBody{SchemaVersion: 2, MediaType: oci.MediaTypeOCIIndex, Manifests: make([]oci.Descriptor, 0, len(list))}
	for _, x := range list {
		body.Manifests = append(body.Manifests, oci.Descriptor{MediaType: x.MediaType, Digest: x.Digest, Size: x.Size, ArtifactType: x.ArtifactType, Annotations: x.Annotations})
	}
	if at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSON(w, oci.MediaTypeOCIIndex, body)
}

func writeJSON(w http.ResponseWriter, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b)
	return err
}
