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
	} else if err := checkTag(rt.ref); err != nil {
		return err
	}
	m, err := h.meta.GetManifest(r.Context(), rt.name, rt.ref)
	if err != nil {
		if errors.Is(err, meta.ErrManifestNotFound) && !errors.Is(err, meta.ErrRepositoryNotFound) {
			return apiErr(http.StatusNotFound, oci.CodeManifestUnknown, "manifest unknown", map[string]string{"reference": rt.ref})
		}
		return err
	}
	warning, err := h.applyPullPolicy(r, rt, m)
	if err != nil {
		return err
	}
	etag := `"` + m.Digest.String() + `"`
	hd := w.Header()
	if warning != "" {
		hd.Add("Warning", warningHeader(warning))
	}
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
	body, err := h.readManifest(r)
	if err != nil {
		return err
	}
	dgst, tags, err := manifestTarget(r, rt, body)
	if err != nil {
		return err
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
		References:   references(pm, h.cfg.SparseManifests),
	}
	if pm.Subject != nil {
		m.Subject = pm.Subject.Digest
	}
	if err := h.meta.PutManifest(ctx, m, tags, tagConditions(r, rt)...); err != nil {
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

// readManifest reads a manifest body of at most MaxManifestSize bytes.
func (h *Handler) readManifest(r *http.Request) ([]byte, error) {
	max := h.cfg.MaxManifestSize
	if r.ContentLength > max {
		return nil, apiErr(http.StatusRequestEntityTooLarge, oci.CodeSizeInvalid, "manifest is "+strconv.FormatInt(r.ContentLength, 10)+" bytes; the limit is "+strconv.FormatInt(max, 10), nil)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, bodyReadError(err, oci.CodeManifestInvalid)
	}
	if int64(len(body)) > max {
		return nil, apiErr(http.StatusRequestEntityTooLarge, oci.CodeSizeInvalid, "manifest exceeds the limit of "+strconv.FormatInt(max, 10)+" bytes", nil)
	}
	return body, nil
}

// manifestTarget returns the digest a pushed manifest is stored under and
// the tags to point at it: the reference of the URL (a digest the body
// must have, or a tag) and the tag query parameters (OCI 1.1).
func manifestTarget(r *http.Request, rt route, body []byte) (digest.Digest, []string, error) {
	var tags []string
	var dgst digest.Digest
	if oci.IsDigestReference(rt.ref) {
		want, err := parseDigestParam(rt.ref)
		if err != nil {
			return "", nil, err
		}
		dgst = want.Algorithm().FromBytes(body)
		if dgst != want {
			return "", nil, apiErr(http.StatusBadRequest, oci.CodeDigestInvalid, "manifest content has digest "+dgst.String()+", not "+want.String(), nil)
		}
	} else {
		if err := checkTag(rt.ref); err != nil {
			return "", nil, err
		}
		dgst = digest.Canonical.FromBytes(body)
		tags = append(tags, rt.ref)
	}
	for _, t := range r.URL.Query()["tag"] {
		if err := checkTag(t); err != nil {
			return "", nil, err
		}
		tags = append(tags, t)
	}
	return dgst, tags, nil
}

// tagConditions turns If-Match and If-None-Match on a PUT by tag into the
// condition the store checks in its transaction (RFC 9110 13.1.1, 13.1.2;
// a manifest's entity tag is its quoted digest, as GET sends it): "*"
// stands for any manifest, a list for those digests. A client that read
// the tag at digest D and writes it with If-Match: "D" overwrites nobody
// else's write; one that found no tag sends If-None-Match: *. A PUT by
// digest has no conditions: its content is its name.
func tagConditions(r *http.Request, rt route) []meta.TagCondition {
	im, hasIM := entityTags(r.Header.Values("If-Match"))
	inm, hasINM := entityTags(r.Header.Values("If-None-Match"))
	if oci.IsDigestReference(rt.ref) || !hasIM && !hasINM {
		return nil
	}
	holds := func(cur digest.Digest) bool {
		if hasIM && (cur == "" || !im.matches(cur)) {
			return false
		}
		return !hasINM || cur == "" || !inm.matches(cur)
	}
	return []meta.TagCondition{{Tag: rt.ref, Holds: holds}}
}

// etagList is the value of an If-Match or If-None-Match header.
type etagList struct {
	any  bool            // "*"
	tags map[string]bool // unquoted entity tags
}

func (l etagList) matches(d digest.Digest) bool { return l.any || l.tags[d.String()] }

// entityTags parses the header values (comma-separated entity tags, or
// "*"); ok is false when the header is absent. Weak tags (W/"...") never
// match: the conditions here compare strongly.
func entityTags(values []string) (l etagList, ok bool) {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			switch {
			case t == "":
				continue
			case t == "*":
				l.any = true
			case len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"':
				if l.tags == nil {
					l.tags = map[string]bool{}
				}
				l.tags[t[1:len(t)-1]] = true
			}
			ok = true
		}
	}
	return l, ok
}

// checkTag fails with MANIFEST_INVALID unless t is a valid tag.
func checkTag(t string) error {
	if !oci.ValidTag(t) {
		return apiErr(http.StatusBadRequest, oci.CodeManifestInvalid, "invalid tag "+strconv.Quote(truncate(t, 200)), nil)
	}
	return nil
}

// references lists what must already be in the repository for m to be
// accepted, or with sparse what may be absent (and is checked only if
// present). The subject is deliberately absent: a referrer may be pushed
// before its subject.
func references(m *oci.Manifest, sparse bool) []meta.Reference {
	var refs []meta.Reference
	if oci.IsIndex(m.MediaType) {
		for _, d := range m.Manifests {
			refs = append(refs, meta.Reference{Digest: d.Digest, Kind: meta.RefManifest, Size: d.Size, Optional: sparse})
		}
		return refs
	}
	refs = append(refs, meta.Reference{Digest: m.Config.Digest, Kind: meta.RefBlob, Size: m.Config.Size, Optional: sparse})
	for _, l := range m.Layers {
		if oci.IsNonDistributable(l.MediaType) || len(l.URLs) > 0 {
			continue
		}
		refs = append(refs, meta.Reference{Digest: l.Digest, Kind: meta.RefBlob, Size: l.Size, Optional: sparse})
	}
	return refs
}

// deleteManifest deletes a tag, or an image by digest: with its cosign
// signatures and attestations and its signature referrers (each reported
// to the event sink as deleted too). The transparency log keeps every
// entry; the index keeps the signatures as history.
func (h *Handler) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	refs := []string{rt.ref}
	if oci.IsDigestReference(rt.ref) {
		d, err := parseDigestParam(rt.ref)
		if err != nil {
			return err
		}
		deleted, err := h.meta.DeleteImage(ctx, rt.name, d)
		if err != nil {
			return err
		}
		for _, m := range deleted[1:] {
			refs = append(refs, m.Digest.String())
		}
	} else {
		if err := checkTag(rt.ref); err != nil {
			return err
		}
		if err := h.meta.DeleteTag(ctx, rt.name, rt.ref); err != nil {
			return err
		}
	}
	h.log.InfoContext(ctx, "manifest deleted", "repository", rt.name, "reference", rt.ref, "attachments", len(refs)-1)
	if h.cfg.Events != nil {
		for _, ref := range refs {
			h.cfg.Events.ManifestDeleted(ctx, rt.name, ref)
		}
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
