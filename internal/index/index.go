package index

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// Bounds on what one signature manifest may cost the index and the
// database (a manifest may name up to a thousand layers, all pointing at
// one 4 MiB blob, each with other annotations).
const (
	// MaxLayers signature layers of a manifest are indexed; the rest are
	// recorded as one invalid "overflow" record.
	MaxLayers = 100
	// maxSignatureBlob bounds one signature layer's blob.
	maxSignatureBlob = 4 << 20
	// MaxReadPerManifest bounds the bytes read from the blob store for one
	// manifest; each distinct blob is read (and its payload parsed) once.
	MaxReadPerManifest = 8 << 20
	// MaxAnnotations signed annotations and certificate extensions are
	// stored per signature, each with a key of at most MaxAnnotationKey
	// bytes and a value of at most MaxAnnotationValue bytes; the others
	// are named in the status detail, not stored (nor searchable).
	MaxAnnotations     = 64
	MaxAnnotationKey   = 256
	MaxAnnotationValue = 4096
	// maxText bounds a stored signer or issuer, maxDetail a status detail.
	maxText   = 1024
	maxDetail = 2048
)

// Store is what the indexer needs of the metadata database.
// A batch's manifests, the generations of their signatures and which of
// their layers the repositories have (a layer is read only then) are read
// at once (meta.IndexQueue's JobManifests, SignatureGenerations,
// RepositoryBlobs).
type Store interface {
	ListSignatures(ctx context.Context, repo string, subject digest.Digest) ([]meta.Signature, error)
	meta.IndexQueue
	meta.TrustPolicies
}

// Blobs opens stored blobs.
type Blobs interface {
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error)
}

// Config is what the indexer judges signatures with.
type Config struct {
	// Roots are the trust roots a policy may name: RootHallmark, the
	// trusted root this server publishes (its CA, CT log and transparency
	// log), and those the server imports (--trusted-root NAME=FILE).
	Roots map[string]*root.Material
	// Keys (--trusted-key) are trusted by every project.
	Keys []verify.Key
	// Issuer is the built-in OIDC issuer's URL (the server's): the
	// default issuer of a project not pinned to another.
	Issuer string
	// Workers is the number of indexing goroutines Run starts (0: two
	// per CPU, 2*GOMAXPROCS: while one worker commits its batch through
	// the database's writer, others verify; negative: none, this replica
	// leaves the queue to others).
	Workers int
}

// Indexer indexes signature manifests from the queue (Run) and manages
// trust policies.
type Indexer struct {
	store Store
	blobs Blobs
	log   *slog.Logger
	cfg   Config
	owner string // this process's name in job claims
	kick  chan struct{}

	policies policyCache
	stats    counters
}

// New returns an indexer.
func New(store Store, blobs Blobs, log *slog.Logger, cfg Config) *Indexer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	var b [6]byte
	rand.Read(b[:])
	return &Indexer{store: store, blobs: blobs, log: log, cfg: cfg, kick: make(chan struct{}, 1),
		owner: fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)}
}

// counters are the indexer's progress, for /metrics.
type counters struct {
	jobs, signatures, blobReads, blobBytes, failures atomic.Int64
}

// Stats are the indexer's counters since start.
type Stats struct {
	Jobs       int64 // jobs completed
	Signatures int64 // signatures whose status was decided
	BlobReads  int64 // signature blobs read from the blob store
	BlobBytes  int64 // bytes read
	Failures   int64 // jobs that failed and will be retried
}

// Stats returns the counters.
func (ix *Indexer) Stats() Stats {
	c := &ix.stats
	return Stats{Jobs: c.jobs.Load(), Signatures: c.signatures.Load(), BlobReads: c.blobReads.Load(), BlobBytes: c.blobBytes.Load(), Failures: c.failures.Load()}
}

// ManifestPushed implements registry.EventSink: the push enqueued its job
// (PutManifest); the workers are woken.
func (ix *Indexer) ManifestPushed(_ context.Context, m *meta.Manifest, tags []string) {
	if _, ok := m.SignatureSubject(tags); ok {
		ix.wake()
	}
}

// ManifestDeleted implements registry.EventSink. The store already did
// what a delete means for the index, in the delete's transaction: the
// signatures the deleted manifests carried, and those of a deleted image,
// stay as history of what was signed but are marked deleted, so the
// provenance API no longer lists or finds them; pushed again, they are
// listed again. The transparency log keeps every entry.
func (ix *Indexer) ManifestDeleted(context.Context, string, string) {}

func (ix *Indexer) wake() {
	select {
	case ix.kick <- struct{}{}:
	default:
	}
}

// policy returns the compiled policy governing repo.
func (ix *Indexer) policy(ctx context.Context, repo string) (*compiled, error) {
	tp, err := ix.store.TrustPolicyFor(ctx, repo)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s\x00%d\x00%s", tp.Project, tp.Version, tp.ProjectIssuer)
	if tp.Project == "" {
		key = "\x00repo\x00" + repo
	}
	if c := ix.policies.get(key); c != nil {
		return c, nil
	}
	c, err := ix.compile(tp, repo)
	if err != nil {
		// A stored policy is validated when set; one that no longer
		// compiles (e.g. written by a newer version) judges nothing.
		return nil, fmt.Errorf("the trust policy governing %s: %w", repo, err)
	}
	ix.policies.put(key, c)
	return c, nil
}

// batch is what the jobs of one claimed batch share: the generation their
// statuses are decided in, the signatures already decided in it (the
// records are written at the end of the batch), and what was read for
// all its manifests at once (read).
type batch struct {
	gen      int64
	decided  map[string]bool      // repository + "\x00" + key
	policies map[string]*compiled // by repository

	generations map[string]map[string]int64       // by repository and key; nil if the lookup failed
	blobs       map[string]map[digest.Digest]bool // the layers each repository has
	blobsErr    error                             // the blob lookup failed
}

func newBatch(gen int64) *batch {
	return &batch{gen: gen, decided: map[string]bool{}, policies: map[string]*compiled{}}
}

// sigManifest is a job's signature manifest, parsed: the layers the index
// reads (at most MaxLayers) and their keys.
type sigManifest struct {
	m       *meta.Manifest
	subject digest.Digest
	jobGen  int64 // the job's generation
	pm      *oci.Manifest
	err     error // not a manifest
	layers  []oci.Descriptor
	keys    []string
}

func parseSigManifest(m *meta.Manifest, subject digest.Digest, jobGen int64) *sigManifest {
	sm := &sigManifest{m: m, subject: subject, jobGen: jobGen}
	if sm.pm, sm.err = oci.ParseManifest(m.MediaType, m.Payload); sm.err != nil || oci.IsIndex(sm.pm.MediaType) {
		return sm
	}
	bundle := oci.IsBundleType(m.ArtifactType)
	sm.layers = sm.pm.Layers[:min(len(sm.pm.Layers), MaxLayers)]
	sm.keys = make([]string, len(sm.layers))
	for i, l := range sm.layers {
		sm.keys[i] = layerKey(subject, l, bundle)
	}
	return sm
}

// read looks up for b, at once, what indexing the manifests sms (nil
// ones skipped) needs of the database: the generations their layers' keys
// were decided in, and which of the layers to read (those not decided
// yet) their repositories have.
func (ix *Indexer) read(ctx context.Context, b *batch, sms []*sigManifest) {
	keys := map[string][]string{}
	for _, sm := range sms {
		if sm != nil && len(sm.keys) > 0 {
			keys[sm.m.Repository] = append(keys[sm.m.Repository], sm.keys...)
		}
	}
	var err error
	if b.generations, err = ix.store.SignatureGenerations(ctx, keys); err != nil {
		ix.log.Warn("looking up indexed signatures; deciding every layer", "repositories", slices.Sorted(maps.Keys(keys)), "err", err)
		b.generations = nil
	}
	blobs := map[string][]digest.Digest{}
	for _, sm := range sms {
		if sm == nil {
			continue
		}
		for i, l := range sm.layers {
			if !b.skip(sm, i) {
				blobs[sm.m.Repository] = append(blobs[sm.m.Repository], l.Digest)
			}
		}
	}
	b.blobs, b.blobsErr = ix.store.RepositoryBlobs(ctx, blobs)
}

// skip says layer i of sm was decided in its job's generation or later.
func (b *batch) skip(sm *sigManifest, i int) bool {
	g, ok := b.generations[sm.m.Repository][sm.keys[i]]
	return ok && g >= sm.jobGen
}

// has tells, as BlobSize would, whether repo has blob d: nil if it does.
func (b *batch) has(repo string, d digest.Digest) error {
	held, ok := b.blobs[repo]
	switch {
	case b.blobsErr != nil:
		return b.blobsErr
	case !ok:
		return &meta.RepositoryNotFoundError{Repository: repo, Miss: meta.ErrBlobNotFound}
	case !held[d]:
		return meta.ErrBlobNotFound
	}
	return nil
}

// indexManifest returns the signature records of signature manifest sm,
// with their status under policy pol, decided in b's generation (read
// for it first). Layers already decided in the job's generation, or in b,
// are skipped (a push's job generation is 0: only layers not indexed
// yet). Every problem becomes an invalid record, never an error.
func (ix *Indexer) indexManifest(ctx context.Context, sm *sigManifest, pol *compiled, b *batch) []meta.Signature {
	m := sm.m
	base := meta.Signature{Repository: m.Repository, Subject: sm.subject, Manifest: m.Digest, Kind: verify.KindSimpleSigning, Generation: b.gen}
	if oci.IsBundleType(m.ArtifactType) {
		base.Kind = verify.KindBundle
	}
	invalid := func(layer digest.Digest, key, detail string) meta.Signature {
		s := base
		s.Layer, s.Key, s.Status, s.StatusDetail = layer, key, meta.StatusInvalid, truncate(detail, maxDetail)
		return s
	}
	if sm.err != nil {
		return []meta.Signature{invalid("", "manifest:"+m.Digest.String(), sm.err.Error())}
	}
	if oci.IsIndex(sm.pm.MediaType) || len(sm.pm.Layers) == 0 {
		return []meta.Signature{invalid("", "manifest:"+m.Digest.String(), "signature manifest has no signature layers")}
	}
	var out []meta.Signature
	rd := &manifestReader{ix: ix, b: b, repo: m.Repository, budget: MaxReadPerManifest, blobs: map[digest.Digest]blobResult{}, payloads: verify.NewPayloads()}
	for i, l := range sm.layers {
		inBatch := m.Repository + "\x00" + sm.keys[i]
		if b.decided[inBatch] {
			continue // the same signature twice in one manifest, or in the batch
		}
		b.decided[inBatch] = true
		if b.skip(sm, i) {
			continue
		}
		data, err := rd.read(ctx, l)
		if err != nil {
			out = append(out, invalid(l.Digest, "layer:"+l.Digest.String()+":"+m.Digest.String(), err.Error()))
			continue
		}
		s := base
		s.Layer = l.Digest
		ix.record(ctx, &s, l, sm.keys[i], data, rd.payloads, pol)
		out = append(out, s)
	}
	if len(sm.pm.Layers) > MaxLayers {
		out = append(out, invalid("", "manifest:"+m.Digest.String()+":overflow",
			fmt.Sprintf("the signature manifest has %d layers; the index reads the first %d, the rest are not indexed", len(sm.pm.Layers), MaxLayers)))
	}
	return out
}

// layerKey is the dedupe key of one signature layer of an image: the same
// signature under another image's signature tag is another record (for
// that image it is invalid).
func layerKey(subject digest.Digest, l oci.Descriptor, bundleKind bool) string {
	if bundleKind || oci.IsBundleType(l.MediaType) {
		return dedupeKey(subject.String(), l.Digest.String())
	}
	sigB64, certPEM := l.Annotations[oci.AnnotationSignature], l.Annotations[oci.AnnotationCertificate]
	if b := l.Annotations[oci.AnnotationBundle]; b != "" {
		// A re-pushed layer with another log bundle (e.g. a forged SET) is
		// another record, judged on its own.
		return dedupeKey(subject.String(), l.Digest.String(), sigB64, certPEM, b)
	}
	return dedupeKey(subject.String(), l.Digest.String(), sigB64, certPEM)
}

// dedupeKey is the hex SHA-256 of the parts, each followed by a NUL.
func dedupeKey(parts ...string) string {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	buf := make([]byte, 0, n) // one copy, not one per part
	for _, p := range parts {
		buf = append(append(buf, p...), 0)
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}

// manifestReader reads the layers of one manifest: each distinct blob
// once, within a budget of bytes.
type manifestReader struct {
	ix       *Indexer
	b        *batch
	repo     string
	budget   int64
	blobs    map[digest.Digest]blobResult
	payloads *verify.Payloads
}

type blobResult struct {
	data []byte
	err  error
}

func (rd *manifestReader) read(ctx context.Context, l oci.Descriptor) ([]byte, error) {
	if r, ok := rd.blobs[l.Digest]; ok {
		return r.data, r.err
	}
	var r blobResult
	switch {
	case l.Size > maxSignatureBlob:
		r.err = fmt.Errorf("signature layer is %d bytes; the limit is %d", l.Size, maxSignatureBlob)
	case l.Size > rd.budget:
		r.err = fmt.Errorf("not read: the layers of this signature manifest exceed the %d bytes the index reads per manifest", MaxReadPerManifest)
	default:
		r.data, r.err = rd.ix.readBlob(ctx, rd.b, rd.repo, l)
		rd.budget -= int64(len(r.data))
	}
	rd.blobs[l.Digest] = r
	return r.data, r.err
}

// readBlob reads layer l of a manifest of repo. The layer must be repo's:
// the registry lets a manifest name layers the repository lacks (foreign
// layers; any with --sparse-manifests), and the blob store, shared by all
// repositories, would otherwise hand out another repository's content.
func (ix *Indexer) readBlob(ctx context.Context, b *batch, repo string, l oci.Descriptor) ([]byte, error) {
	if err := b.has(repo, l.Digest); err != nil {
		return nil, fmt.Errorf("signature layer %s is not in repository %s: %v", l.Digest, repo, err)
	}
	rc, _, err := ix.blobs.Open(ctx, l.Digest)
	if err != nil {
		return nil, fmt.Errorf("signature layer %s is not in the registry: %v", l.Digest, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxSignatureBlob+1))
	ix.stats.blobReads.Add(1)
	ix.stats.blobBytes.Add(int64(len(data)))
	if err != nil {
		return nil, err
	}
	if l.Digest.Algorithm().FromBytes(data) != l.Digest {
		return nil, fmt.Errorf("signature layer content does not match its digest %s", l.Digest)
	}
	return data, nil
}

// record fills s from one stored signature layer: what the signature says
// about itself, and its status: Verify, once, against the policy's trust
// and rules. key is the layer's layerKey.
func (ix *Indexer) record(ctx context.Context, s *meta.Signature, l oci.Descriptor, key string, data []byte, ps *verify.Payloads, pol *compiled) {
	var signed verify.Signed
	s.Key = key
	if s.Kind == verify.KindBundle || oci.IsBundleType(l.MediaType) {
		s.Kind = verify.KindBundle
		signed = verify.BundleSignature(data, l.Digest.String())
	} else {
		s.PayloadType = l.MediaType
		stored := verify.Layer{Digest: l.Digest.String(), MediaType: l.MediaType, Payload: data, Annotations: l.Annotations, Payloads: ps}
		if l.MediaType == payload.DSSEMediaType {
			// A legacy ".att" layer: a DSSE envelope.
			s.Kind = verify.KindAttestation
			signed = verify.LayerAttestation(stored)
		} else {
			signed = verify.LayerSignature(stored)
		}
	}
	d := verify.Describe(signed, s.Subject.String())
	if d.PredicateType != "" && d.PredicateType != payload.CosignSignPredicateType {
		// An attestation (legacy .att or bundle): its predicate type is
		// searchable as the annotation cosign's .att layers carry it in,
		// unless the statement signed an annotation of that name.
		if _, signed := d.Annotations[oci.AnnotationPredicateType]; !signed {
			if d.Annotations == nil {
				d.Annotations = map[string]string{}
			}
			d.Annotations[oci.AnnotationPredicateType] = d.PredicateType
		}
	}
	var dropped []string
	s.Annotations, dropped = bounded(d.Annotations, "annotation", dropped)
	s.LogIndex = d.LogIndex
	if d.PayloadType != "" {
		s.PayloadType = d.PayloadType
	}
	if d.Certificate != nil {
		s.Signer, s.CertIssuer = fulcio.Identity(d.Certificate)
		s.CertExtensions, dropped = bounded(fulcio.Values(d.Certificate), "certificate extension", dropped)
		sum := sha256.Sum256(d.Certificate.Raw) // the link to the CA's record of it
		s.CertSHA256 = hex.EncodeToString(sum[:])
	} else if d.KeyHint != "" {
		s.Signer = "SHA256:" + d.KeyHint
	}
	v, err := verify.Verify(ctx, signed, pol.trust, verify.Policy{Subject: s.Subject.String(), Identities: pol.identities,
		Annotations: pol.annotations, IgnoreTlogForKeysUnsafe: true}) // --trusted-key signatures may be made without a log
	if v != nil && v.Key != "" {
		s.Signer = v.Key
	}
	s.Status, s.StatusDetail = pol.status(v, err, d.Certificate != nil)
	if len(dropped) > 0 {
		s.StatusDetail += "; not stored (over the index's limits): " + strings.Join(dropped, ", ")
	}
	s.Signer, s.CertIssuer = truncate(s.Signer, maxText), truncate(s.CertIssuer, maxText)
	s.StatusDetail = truncate(s.StatusDetail, maxDetail)
	ix.stats.signatures.Add(1)
}

// bounded keeps the entries of kv within the storage limits (MaxAnnotations
// entries, keys and values in bytes) and adds what it leaves out to
// dropped.
func bounded(kv map[string]string, what string, dropped []string) (map[string]string, []string) {
	if len(kv) == 0 {
		return kv, dropped
	}
	fits := len(kv) <= MaxAnnotations
	for k, v := range kv {
		if len(k) > MaxAnnotationKey || len(v) > MaxAnnotationValue {
			fits = false
			break
		}
	}
	if fits { // the usual case: all of them, no need to sort
		return maps.Clone(kv), dropped
	}
	out := make(map[string]string, min(len(kv), MaxAnnotations))
	var over int
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		v := kv[k]
		switch {
		case len(k) > MaxAnnotationKey || len(v) > MaxAnnotationValue:
			if len(dropped) < 8 {
				dropped = append(dropped, fmt.Sprintf("%s %.64q (%d bytes)", what, k, len(k)+len(v)))
			}
		case len(out) == MaxAnnotations:
			over++
		default:
			out[k] = v
		}
	}
	if over > 0 {
		dropped = append(dropped, fmt.Sprintf("%d more %ss (at most %d are stored)", over, what, MaxAnnotations))
	}
	return out, dropped
}

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n - 3
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

// status turns the outcome of Verify into the index's status, naming the
// rule that failed; keyless says whether the signature carries a
// certificate.
func (c *compiled) status(v *verify.Verified, err error, keyless bool) (string, string) {
	if err == nil {
		allowed := "allowed by " + c.where
		if v.Key != "" {
			return meta.StatusVerified, "verified with trusted key " + v.Key + "; " + allowed
		}
		detail := "certificate issued by " + c.caName(v)
		if e := v.LogEntry; e != nil {
			detail += fmt.Sprintf("; transparency log entry %d verified (SET)", e.LogIndex)
		}
		return meta.StatusVerified, detail + "; signer " + allowed
	}
	var ce *verify.CheckError
	if !errors.As(err, &ce) {
		return meta.StatusInvalid, err.Error()
	}
	switch ce.Class {
	case verify.Invalid:
		return meta.StatusInvalid, ce.Check + ": " + ce.Reason
	case verify.NotAllowed:
		rule := "the " + ce.Check + " rule"
		switch ce.Check {
		case verify.CheckIdentity:
			rule = "the identity rule (allowed: " + c.describeIdentities() + ")"
		case verify.CheckAnnotation:
			rule = "the required annotations rule"
		}
		return meta.StatusUntrusted, "valid, but " + c.where + " does not allow it: " + rule + " failed: " + ce.Reason
	}
	detail := ce.Check + ": " + ce.Reason
	switch {
	case ce.Check == verify.CheckSignature, ce.Check == verify.CheckCertificate && !keyless:
		detail = "signed with a key the server does not trust (" + c.where + ")"
	case ce.Check == verify.CheckCertificate:
		detail = "certificate is not issued by " + c.rootsWords() + ": " + ce.Reason
	case errors.Is(err, verify.ErrNoBundle):
		detail = "certificate issued by a trusted CA, but the signature carries no transparency log bundle (signed with --tlog-upload=false)"
	case errors.Is(err, verify.ErrUnknownLog):
		detail = "logged in a transparency log this server does not know: " + ce.Reason
	}
	if len(c.missing) > 0 {
		detail += fmt.Sprintf(" (the policy names trust roots this server does not import: %s; start it with --trusted-root NAME=FILE)", strings.Join(c.missing, ", "))
	}
	return meta.StatusUnverified, detail
}

// caName names the trust root a verified certificate chains to.
func (c *compiled) caName(v *verify.Verified) string {
	if v.Chain != nil {
		for _, ca := range v.Chain.CAs {
			if name, ok := c.rootOf[ca.Roots]; ok {
				if name == RootHallmark {
					return "this server's CA"
				}
				return "the CA " + v.CA + " of trust root " + name
			}
		}
	}
	return "the CA " + v.CA
}

// rootsWords names the policy's trust roots in a reason.
func (c *compiled) rootsWords() string {
	others := slices.DeleteFunc(slices.Clone(c.roots), func(n string) bool { return n == RootHallmark })
	switch {
	case len(others) == len(c.roots):
		if len(others) == 0 {
			return "a CA of the policy's trust roots (it names none this server has)"
		}
		return "a CA of the policy's trust roots (" + strings.Join(others, ", ") + ")"
	case len(others) == 0:
		return "this server's CA"
	}
	return "this server's CA or another trust root of the policy (" + strings.Join(others, ", ") + ")"
}

// describeIdentities lists the allowed identities in a reason.
func (c *compiled) describeIdentities() string {
	var out []string
	for _, id := range c.identities {
		iss, sub := id.Issuer, id.Subject
		if iss == "" {
			iss = "~" + id.IssuerRegexp
		}
		if sub == "" {
			sub = "~" + id.SubjectRegexp
		}
		out = append(out, sub+" from "+iss)
	}
	return truncate(strings.Join(out, "; "), 512)
}

// LayerKey is the dedupe key the indexer records for signature layer l of
// a manifest (bundle: a sigstore bundle referrer's): it tells apart the
// layers of one manifest that share a payload (several signers of one
// image), for those who read a recorded signature back (exports).
func LayerKey(subject digest.Digest, l oci.Descriptor, bundle bool) string {
	return layerKey(subject, l, bundle)
}
