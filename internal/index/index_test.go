package index_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	blobfs "github.com/hallmark-dev/hallmark/internal/blob/fs"
	"github.com/hallmark-dev/hallmark/internal/index"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/sign"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

type env struct {
	t     testing.TB
	blobs *blobfs.Store
	store *sqlite.Store
	ix    *index.Indexer
	key   *ecdsa.PrivateKey
}

// newEnv is an indexer on a fresh store; trusted makes it trust the env's
// key, roots are its trusted roots.
func newEnv(t testing.TB, trusted bool, roots ...*root.Material) *env {
	t.Helper()
	dir := t.TempDir()
	blobs, err := blobfs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "meta.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg := index.Config{Issuer: realServer}
	if len(roots) > 0 {
		cfg.Roots = map[string]*root.Material{index.RootHallmark: roots[0]}
	}
	e := &env{t: t, blobs: blobs, store: store, key: key}
	if trusted {
		cfg.Keys = e.trustedKeys(t)
	}
	e.ix = index.New(store, blobs, nil, cfg)
	return e
}

// trustedKeys is the env's key as the server's --trusted-key.
func (e *env) trustedKeys(t testing.TB) []verify.Key {
	t.Helper()
	pemBytes, _ := sign.PublicKeyPEM(&e.key.PublicKey)
	k, err := verify.ParseKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	return []verify.Key{k}
}

// putBlob stores b and links it to group/app, as an upload there does.
func (e *env) putBlob(b []byte) digest.Digest {
	e.t.Helper()
	return e.putBlobIn("group/app", b)
}

// putBlobIn stores b and links it to repo.
func (e *env) putBlobIn(repo string, b []byte) digest.Digest {
	e.t.Helper()
	ctx := context.Background()
	up, err := e.blobs.Uploads().New(ctx, repo, digest.SHA256)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := up.Append(ctx, 0, bytes.NewReader(b)); err != nil {
		e.t.Fatal(err)
	}
	d := digest.FromBytes(b)
	if _, err := up.Commit(ctx, d); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.LinkBlob(ctx, repo, d, int64(len(b))); err != nil {
		e.t.Fatal(err)
	}
	return d
}

type layer struct {
	payload []byte
	ann     map[string]string
}

func (e *env) signedLayer(subject digest.Digest, ann map[string]string) layer {
	opt, _ := json.Marshal(ann)
	p := []byte(fmt.Sprintf(`{"critical":{"identity":{"docker-reference":"r/group/app"},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":%s}`, subject, opt))
	h := sha256.Sum256(p)
	sig, _ := ecdsa.SignASN1(rand.Reader, e.key, h[:])
	return layer{p, map[string]string{sign.AnnotationSignature: base64.StdEncoding.EncodeToString(sig)}}
}

// push stores a cosign-style signature manifest with the given layers and
// feeds it to the indexer as the registry would.
func (e *env) push(subject digest.Digest, layers ...layer) *meta.Manifest {
	e.t.Helper()
	return e.pushRaw(subject, e.manifestOf(layers...))
}

// manifestOf stores the layers' blobs and returns a cosign-style
// signature manifest of them.
func (e *env) manifestOf(layers ...layer) []byte {
	e.t.Helper()
	cfg := e.putBlob([]byte(`{}`))
	m := oci.Manifest{SchemaVersion: 2, MediaType: oci.MediaTypeOCIManifest,
		Config: &oci.Descriptor{MediaType: oci.MediaTypeOCIConfig, Digest: cfg, Size: 2}}
	for _, l := range layers {
		d := e.putBlob(l.payload)
		m.Layers = append(m.Layers, oci.Descriptor{MediaType: sign.SimpleSigningMediaType, Digest: d, Size: int64(len(l.payload)), Annotations: l.ann})
	}
	raw, _ := json.Marshal(m)
	return raw
}

func (e *env) pushRaw(subject digest.Digest, raw []byte) *meta.Manifest {
	mm := &meta.Manifest{Repository: "group/app", Digest: digest.FromBytes(raw), MediaType: oci.MediaTypeOCIManifest, Payload: raw}
	tag := "sha256-" + subject.Encoded() + ".sig"
	if err := e.store.PutManifest(context.Background(), mm, []string{tag}); err != nil {
		e.t.Fatal(err)
	}
	e.settle(subject)
	return mm
}

// settle runs the image's indexing jobs, as a pull check would.
func (e *env) settle(subject digest.Digest) {
	e.t.Helper()
	if err := e.ix.Settle(context.Background(), "group/app", subject); err != nil {
		e.t.Fatal(err)
	}
}

func ciAnnotations(sha string) map[string]string {
	return map[string]string{
		"com.gitlab.ci.user.name": "alice", "com.gitlab.ci.pipeline.id": "101", "com.gitlab.ci.pipeline.url": "https://h/p/-/pipelines/101",
		"com.gitlab.ci.job.id": "202", "com.gitlab.ci.job.url": "https://h/p/-/jobs/202", "com.gitlab.ci.commit.sha": sha,
		"com.gitlab.ci.commit.ref.name": "main", "com.gitlab.ci.project.path": "group/app", "org.opencontainers.image.source": "https://h/group/app",
		"org.opencontainers.image.revision": sha, "tag": "v1",
	}
}

func TestIndexAndSearchByCommit(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	subject := digest.FromString("image manifest")
	sha := strings.Repeat("ab", 20)
	first := e.signedLayer(subject, ciAnnotations(sha))
	e.push(subject, first)

	sigs, err := e.store.ListSignatures(ctx, "group/app", subject)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("ListSignatures = %v, %v; want 1", sigs, err)
	}
	s := sigs[0]
	if s.Status != meta.StatusVerified || !strings.HasPrefix(s.Signer, "SHA256:") || len(s.Annotations) != 11 {
		t.Fatalf("signature = %+v", s)
	}
	byCommit := meta.SignatureSearch{Facts: []meta.FactFilter{{Field: meta.FieldCommit, Value: sha}}, Access: meta.Access{All: true}, Limit: 10}
	found, err := e.store.SearchSignatures(ctx, byCommit)
	if err != nil || len(found) != 1 || found[0].Subject != subject {
		t.Fatalf("search = %v, %v", found, err)
	}

	// Re-signing appends a layer and re-pushes the whole manifest: the old
	// signature is not indexed twice.
	second := e.signedLayer(subject, map[string]string{"tag": "v1", "com.gitlab.ci.commit.sha": sha})
	e.push(subject, first, second)
	sigs, _ = e.store.ListSignatures(ctx, "group/app", subject)
	if len(sigs) != 2 {
		t.Fatalf("after re-sign got %d signatures, want 2", len(sigs))
	}
	// Each signature comes back with its own annotations (they are read for
	// all of them at once).
	if len(sigs[0].Annotations) != 11 || len(sigs[1].Annotations) != 2 || sigs[1].Annotations["tag"] != "v1" ||
		sigs[0].CertExtensions == nil || len(sigs[0].CertExtensions) != 0 {
		t.Fatalf("annotations after re-sign: %v / %v (extensions %v)", sigs[0].Annotations, sigs[1].Annotations, sigs[0].CertExtensions)
	}
	found, _ = e.store.SearchSignatures(ctx, byCommit)
	if len(found) != 2 {
		t.Fatalf("search after re-sign = %d results, want 2", len(found))
	}
}

// openCounter is the real blob store, counting the blobs the indexer reads.
type openCounter struct {
	*blobfs.Store
	opened []digest.Digest
}

func (c *openCounter) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	c.opened = append(c.opened, d)
	return c.Store.Open(ctx, d)
}

// TestRepushReadsOnlyNewLayers: when a signature manifest is pushed again
// with one more layer (cosign appends and re-pushes), the layers already
// recorded are not read again; only the new one is.
func TestRepushReadsOnlyNewLayers(t *testing.T) {
	e := newEnv(t, true)
	blobs := &openCounter{Store: e.blobs}
	e.ix = index.New(e.store, blobs, nil, index.Config{Issuer: realServer})
	subject := digest.FromString("image manifest")
	first := e.signedLayer(subject, map[string]string{"tag": "v1"})
	second := e.signedLayer(subject, map[string]string{"tag": "v2"})
	e.push(subject, first)
	if len(blobs.opened) != 1 {
		t.Fatalf("first push read %v, want the one layer", blobs.opened)
	}
	blobs.opened = nil
	e.push(subject, first, second)
	if want := digest.FromBytes(second.payload); len(blobs.opened) != 1 || blobs.opened[0] != want {
		t.Fatalf("re-push read %v, want only the new layer %s", blobs.opened, want)
	}
	sigs, err := e.store.ListSignatures(context.Background(), "group/app", subject)
	if err != nil || len(sigs) != 2 {
		t.Fatalf("ListSignatures = %v, %v; want 2", sigs, err)
	}
}

func TestStatuses(t *testing.T) {
	subject := digest.FromString("image")
	t.Run("untrusted key is unverified", func(t *testing.T) {
		e := newEnv(t, false)
		e.push(subject, e.signedLayer(subject, map[string]string{"tag": "x"}))
		sigs, _ := e.store.ListSignatures(context.Background(), "group/app", subject)
		if len(sigs) != 1 || sigs[0].Status != meta.StatusUnverified {
			t.Fatalf("got %+v", sigs)
		}
	})
	bad := []struct {
		name   string
		mutate func(e *env, l layer) layer
		detail string
	}{
		{"tampered payload", func(_ *env, l layer) layer {
			l.payload = bytes.Replace(l.payload, []byte(`"x"`), []byte(`"y"`), 1)
			return l
		}, "untrusted"},
		{"garbage signature", func(_ *env, l layer) layer {
			l.ann = map[string]string{sign.AnnotationSignature: "!!"}
			return l
		}, "not standard base64"},
		{"signature for another digest", func(e *env, _ layer) layer {
			return e.signedLayer(digest.FromString("other"), map[string]string{"tag": "x"})
		}, "not the image"},
		{"payload not JSON", func(_ *env, l layer) layer {
			l.payload = []byte("\x00\x01garbage")
			return l
		}, "not simple-signing JSON"},
		{"bad certificate", func(_ *env, l layer) layer {
			l.ann = map[string]string{sign.AnnotationSignature: l.ann[sign.AnnotationSignature], sign.AnnotationCertificate: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}
			return l
		}, "certificate"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true)
			l := tc.mutate(e, e.signedLayer(subject, map[string]string{"tag": "x"}))
			e.push(subject, l)
			sigs, _ := e.store.ListSignatures(context.Background(), "group/app", subject)
			if len(sigs) != 1 {
				t.Fatalf("got %d signatures", len(sigs))
			}
			want := meta.StatusInvalid
			if tc.detail == "untrusted" {
				want = meta.StatusUnverified // a tampered payload matches no trusted key
			}
			if sigs[0].Status != want || (tc.detail != "untrusted" && !strings.Contains(sigs[0].StatusDetail, tc.detail)) {
				t.Fatalf("status %q detail %q; want %q containing %q", sigs[0].Status, sigs[0].StatusDetail, want, tc.detail)
			}
		})
	}
}

func TestMalformedManifestsAreIndexedAsInvalid(t *testing.T) {
	subject := digest.FromString("image")
	for name, raw := range map[string]string{
		"not json":       "{{{{",
		"no layers":      `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"sha256:` + strings.Repeat("0", 64) + `","size":1}}`,
		"missing blob":   `{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:` + strings.Repeat("0", 64) + `","size":1},"layers":[{"mediaType":"` + sign.SimpleSigningMediaType + `","digest":"sha256:` + strings.Repeat("1", 64) + `","size":10}]}`,
		"oversized blob": `{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:` + strings.Repeat("0", 64) + `","size":1},"layers":[{"mediaType":"` + sign.SimpleSigningMediaType + `","digest":"sha256:` + strings.Repeat("1", 64) + `","size":99999999999}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, false)
			e.pushRaw(subject, []byte(raw))
			sigs, err := e.store.ListSignatures(context.Background(), "group/app", subject)
			if err != nil || len(sigs) != 1 || sigs[0].Status != meta.StatusInvalid || sigs[0].StatusDetail == "" {
				t.Fatalf("got %+v, %v; want one invalid record with a reason", sigs, err)
			}
		})
	}
}

// TestLayerOfAnotherRepositoryIsNotRead: a signature manifest whose layer
// is stored only for another repository (one the pusher may not read) is
// recorded as invalid, and nothing of that layer reaches the index. The
// registry does not require such a layer in the repository when it is
// marked foreign (urls, non-distributable) or the server accepts sparse
// manifests, so the indexer must not read the blob store by digest alone.
func TestLayerOfAnotherRepositoryIsNotRead(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	subject := digest.FromString("image manifest")
	secret := e.signedLayer(subject, map[string]string{"tag": "v1", "com.example.secret": "private value"})
	// The signature layer exists, but only in private/other.
	d := e.putBlobIn("private/other", secret.payload)
	cfg := e.putBlob([]byte(`{}`))
	for _, tc := range []struct {
		name string
		urls []string
	}{
		{"sparse layer", nil},
		{"foreign layer", []string{"https://example.com/" + d.Encoded()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := oci.Manifest{SchemaVersion: 2, MediaType: oci.MediaTypeOCIManifest,
				Config: &oci.Descriptor{MediaType: oci.MediaTypeOCIConfig, Digest: cfg, Size: 2},
				Layers: []oci.Descriptor{{MediaType: sign.SimpleSigningMediaType, Digest: d, Size: int64(len(secret.payload)), Annotations: secret.ann, URLs: tc.urls}}}
			raw, _ := json.Marshal(m)
			mm := &meta.Manifest{Repository: "group/app", Digest: digest.FromBytes(raw), MediaType: oci.MediaTypeOCIManifest, Payload: raw}
			sigs := e.ix.Signatures(ctx, mm, subject)
			if len(sigs) != 1 {
				t.Fatalf("%d records, want one for the one layer", len(sigs))
			}
			for _, s := range sigs {
				if s.Status != meta.StatusInvalid || len(s.Annotations) != 0 || !strings.Contains(s.StatusDetail, "not in repository group/app") {
					t.Errorf("layer of another repository indexed: %s (%s), annotations %v", s.Status, s.StatusDetail, s.Annotations)
				}
			}
		})
	}
	// Linked to this repository, the same layer is read and verified.
	if err := e.store.LinkBlob(ctx, "group/app", d, int64(len(secret.payload))); err != nil {
		t.Fatal(err)
	}
	e.push(subject, secret)
	sigs, err := e.store.ListSignatures(ctx, "group/app", subject)
	if err != nil || len(sigs) != 1 || sigs[0].Status != meta.StatusVerified {
		t.Fatalf("layer of this repository: %+v, %v", sigs, err)
	}
}

func TestNonSignatureManifestsAreIgnored(t *testing.T) {
	e := newEnv(t, false)
	raw := []byte(`{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:` + strings.Repeat("0", 64) + `","size":1},"layers":[]}`)
	m := &meta.Manifest{Repository: "group/app", Digest: digest.FromBytes(raw), MediaType: oci.MediaTypeOCIManifest, Payload: raw}
	if err := e.store.PutManifest(context.Background(), m, []string{"v1", "sha256-abc.sig"}); err != nil {
		t.Fatal(err)
	}
	if n, err := e.ix.Pending(context.Background(), "", ""); err != nil || n != 0 {
		t.Fatalf("a plain image was queued for indexing (%d jobs, %v)", n, err)
	}
}

func FuzzSignatureManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:` + strings.Repeat("0", 64) + `","size":1},"layers":[{"mediaType":"a","digest":"sha256:` + strings.Repeat("1", 64) + `","size":3}]}`))
	f.Add([]byte(`{}`))
	ix := newEnv(f, false).ix
	subject := digest.FromString("s")
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := &meta.Manifest{Repository: "r", Digest: digest.FromBytes(raw), MediaType: oci.MediaTypeOCIManifest, Payload: raw}
		for _, s := range ix.Signatures(context.Background(), m, subject) {
			if s.Status == "" || s.Key == "" {
				t.Fatalf("record without status or key: %+v", s)
			}
		}
	})
}

// FuzzSignatureLayer feeds arbitrary payloads and layer annotations
// (signature, certificate, bundle) through the indexer: every layer's
// record gets a status and a key, and only a payload signed by the
// trusted key for this subject is ever "verified".
func FuzzSignatureLayer(f *testing.F) {
	e := newEnv(f, true)
	subject := digest.FromString("fuzz subject")
	good := e.signedLayer(subject, map[string]string{"tag": "v1"})
	f.Add(good.payload, good.ann[sign.AnnotationSignature], "", "")
	f.Add([]byte(`{"critical":{"image":{"docker-manifest-digest":"`+subject.String()+`"}},"optional":{"n":1}}`), "MEUCIQ==", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", `{"Payload":{"logIndex":7}}`)
	f.Add([]byte("\x00"), "%%%", "garbage", "{")
	f.Fuzz(func(t *testing.T, payload []byte, sig, cert, bundle string) {
		ann := map[string]string{sign.AnnotationSignature: sig}
		if cert != "" {
			ann[sign.AnnotationCertificate] = cert
		}
		if bundle != "" {
			ann[sign.AnnotationBundle] = bundle
		}
		s := meta.Signature{Repository: "group/app", Subject: subject}
		e.ix.SimpleSigningLayer(&s, oci.Descriptor{MediaType: sign.SimpleSigningMediaType, Digest: digest.FromBytes(payload), Size: int64(len(payload)), Annotations: ann}, payload)
		if s.Status == "" || s.Key == "" {
			t.Fatalf("want a record with a status and key, got %+v", s)
		}
		if s.Status == meta.StatusVerified && !bytes.Equal(payload, good.payload) && !bytes.Contains(payload, []byte(subject.String())) {
			t.Fatalf("verified a payload that is not for the subject: %q", payload)
		}
	})
}

// pushAttestation stores a cosign .att manifest with one DSSE layer (as
// cosign attest and hallmark attest --new-bundle-format=false write it)
// and feeds it to the indexer.
func (e *env) pushAttestation(subject digest.Digest, envelope []byte, predicateType string) {
	e.t.Helper()
	cfg := e.putBlob([]byte(`{}`))
	d := e.putBlob(envelope)
	m := oci.Manifest{SchemaVersion: 2, MediaType: oci.MediaTypeOCIManifest,
		Config: &oci.Descriptor{MediaType: oci.MediaTypeOCIConfig, Digest: cfg, Size: 2},
		Layers: []oci.Descriptor{{MediaType: payload.DSSEMediaType, Digest: d, Size: int64(len(envelope)),
			Annotations: map[string]string{sign.AnnotationSignature: "", sign.AnnotationPredicateType: predicateType}}}}
	raw, _ := json.Marshal(m)
	mm := &meta.Manifest{Repository: "group/app", Digest: digest.FromBytes(raw), MediaType: oci.MediaTypeOCIManifest, Payload: raw}
	tag := "sha256-" + subject.Encoded() + ".att"
	if err := e.store.PutManifest(context.Background(), mm, []string{tag}); err != nil {
		e.t.Fatal(err)
	}
	e.settle(subject)
}

// envelope signs an in-toto statement about subject with the env's key.
func (e *env) envelope(subject digest.Digest, predicateType string) []byte {
	e.t.Helper()
	st, err := payload.NewStatement(predicateType, json.RawMessage(`{"buildDefinition":{}}`),
		payload.Subject{Name: "r/group/app", Digest: map[string]string{"sha256": subject.Encoded()}}).Bytes()
	if err != nil {
		e.t.Fatal(err)
	}
	sig, err := sign.KeySigner{Key: e.key}.SignDSSE(context.Background(), payload.InTotoPayloadType, st)
	if err != nil {
		e.t.Fatal(err)
	}
	return sig.Payload
}

// TestIndexLegacyAttestation: a .att layer (a DSSE envelope) is recorded
// as an attestation, verified like every other signature, its predicate
// type searchable; a tampered one or one about another image is invalid.
func TestIndexLegacyAttestation(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, status, detail string
		envelope             func(e *env, subject digest.Digest) []byte
	}{
		{"valid", meta.StatusVerified, "verified with trusted key", func(e *env, s digest.Digest) []byte { return e.envelope(s, payload.PredicateSLSA1) }},
		// With keys, a signature that does not verify cannot be told from
		// one by another key: unverified, as for .sig layers.
		{"tampered statement", meta.StatusUnverified, "does not trust", func(e *env, s digest.Digest) []byte {
			var env payload.Envelope
			json.Unmarshal(e.envelope(s, payload.PredicateSLSA1), &env)
			body, _ := env.DecodePayload()
			env.Payload = base64.StdEncoding.EncodeToString(bytes.Replace(body, []byte("buildDefinition"), []byte("buildDefinitioN"), 1))
			b, _ := json.Marshal(env)
			return b
		}},
		{"about another image", meta.StatusInvalid, "not about the image", func(e *env, _ digest.Digest) []byte {
			return e.envelope(digest.FromString("other image"), payload.PredicateSLSA1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true)
			subject := digest.FromString("image manifest")
			e.pushAttestation(subject, tc.envelope(e, subject), payload.PredicateSLSA1)
			sigs, err := e.store.ListSignatures(ctx, "group/app", subject)
			if err != nil || len(sigs) != 1 {
				t.Fatalf("ListSignatures = %+v, %v; want the attestation", sigs, err)
			}
			s := sigs[0]
			if s.Kind != verify.KindAttestation || s.Status != tc.status || !strings.Contains(s.StatusDetail, tc.detail) ||
				s.PayloadType != payload.InTotoPayloadType || tc.status == meta.StatusVerified && !strings.HasPrefix(s.Signer, "SHA256:") {
				t.Fatalf("attestation record %+v", s)
			}
			if tc.status == meta.StatusVerified {
				found, err := e.store.SearchSignatures(ctx, meta.SignatureSearch{Annotations: []meta.KeyValue{{Key: "predicateType", Value: payload.PredicateSLSA1}}, Access: meta.Access{All: true}, Limit: 10})
				if err != nil || len(found) != 1 || found[0].Subject != subject {
					t.Fatalf("search by predicate type = %+v, %v", found, err)
				}
			}
		})
	}
}
