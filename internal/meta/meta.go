package meta

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
)

// Sentinel errors returned by drivers. Callers test them with errors.Is.
var (
	ErrRepositoryNotFound = errors.New("repository not found")
	ErrManifestNotFound   = errors.New("manifest not found")
	ErrTagNotFound        = errors.New("tag not found")
	ErrBlobNotFound       = errors.New("blob not linked to repository")
	// ErrUnavailable: the database cannot be reached or is restarting;
	// the request may succeed when retried (the registry answers 503).
	ErrUnavailable = errors.New("the metadata database is unavailable; retry shortly")
	// ErrPreconditionFailed: a TagCondition of PutManifest does not hold;
	// nothing was stored.
	ErrPreconditionFailed = errors.New("tag precondition failed")
)

// TagCondition makes PutManifest conditional on where Tag points when its
// transaction runs (HTTP If-Match / If-None-Match on a manifest PUT by
// tag): Holds gets the digest the tag points at, "" when there is no such
// tag, and the put fails with ErrPreconditionFailed unless it returns true.
// It is how concurrent writers of one tag (signers appending to a ".sig"
// tag) avoid overwriting each other.
type TagCondition struct {
	Tag   string
	Holds func(current digest.Digest) bool
}

// RepositoryNotFoundError is what a lookup or delete in a repository
// returns when the repository itself does not exist. errors.Is matches it
// with ErrRepositoryNotFound and with the miss the call returns otherwise
// (Miss: ErrManifestNotFound, ErrTagNotFound or ErrBlobNotFound), so a
// caller asking only whether the item was there needs not tell the two
// apart, and the registry answers NAME_UNKNOWN without asking again.
type RepositoryNotFoundError struct {
	Repository string
	Miss       error
}

func (e *RepositoryNotFoundError) Error() string {
	return fmt.Sprintf("repository %q not found", e.Repository)
}

// Is matches ErrRepositoryNotFound and e.Miss.
func (e *RepositoryNotFoundError) Is(target error) bool {
	return target == ErrRepositoryNotFound || target == e.Miss
}

// MissingReferenceError is returned by PutManifest when the manifest refers
// to a blob or child manifest that the repository does not have.
type MissingReferenceError struct {
	Digest digest.Digest
	Kind   RefKind
}

func (e *MissingReferenceError) Error() string {
	return fmt.Sprintf("manifest references %s %s, which is not in the repository; push it first", e.Kind, e.Digest)
}

// SizeMismatchError is returned by PutManifest when a reference's declared
// size is not the size of the content the repository has under its digest.
type SizeMismatchError struct {
	Digest         digest.Digest
	Kind           RefKind
	Declared, Have int64
}

func (e *SizeMismatchError) Error() string {
	return fmt.Sprintf("manifest says %s %s has %d bytes, but it has %d; fix the descriptor's size", e.Kind, e.Digest, e.Declared, e.Have)
}

// RefKind says what a manifest reference points at.
type RefKind string

// Reference kinds.
const (
	RefBlob     RefKind = "blob"
	RefManifest RefKind = "manifest"
)

// Reference is one descriptor of a manifest that the repository should
// have, with the size it declares: a config or layer blob, or an index
// child manifest.
type Reference struct {
	Digest digest.Digest
	Kind   RefKind
	Size   int64
	// Optional: the reference may be absent (a sparse manifest, OCI 1.1);
	// it is recorded all the same, and if present its size is checked.
	Optional bool
}

// Manifest is a stored manifest with its exact bytes.
type Manifest struct {
	Repository   string
	Digest       digest.Digest
	MediaType    string
	ArtifactType string // effective artifact type (artifactType or config media type)
	Payload      []byte
	Subject      digest.Digest // empty when the manifest has no subject
	Annotations  map[string]string
	References   []Reference // checked on PutManifest, recorded for lookups (present or not)
	Created      time.Time

	// Pull policy, reported by GetManifest from the same query (never
	// stored by PutManifest). Quarantine is the active quarantine that
	// blocks pulls of this manifest, nil when none: the manifest's own, or
	// that of the image it is attached to (its subject, or the image named
	// by the cosign attachment tag it was looked up by), or that of a
	// direct child of the manifest or of that image (Quarantine.Digest says
	// which). RequireSignature is the setting of the project covering the
	// repository when it is not off ("" otherwise), Project that project.
	Quarantine       *Quarantine
	RequireSignature RequireSignature
	Project          string
}

// Descriptor is a referrer as the referrers API lists it.
type Descriptor struct {
	MediaType    string
	Digest       digest.Digest
	Size         int64
	ArtifactType string
	Annotations  map[string]string
}

// Blobs records which blobs each repository may serve.
type Blobs interface {
	// LinkBlob makes blob d (already in the blob store) part of repo,
	// creating the repository if needed.
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
	// BlobSize returns the size of d if repo has it, else ErrBlobNotFound
	// (a *RepositoryNotFoundError when repo does not exist).
	BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error)
	// UnlinkBlob removes d from repo, or returns ErrBlobNotFound (a
	// *RepositoryNotFoundError when repo does not exist).
	UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error
	// PrepareBlob announces that blob d is about to be committed to the
	// blob store: garbage collection leaves d alone for its grace period
	// from now. It returns ErrBlobDeleting while GC deletes d's object;
	// the commit must wait until it no longer does.
	PrepareBlob(ctx context.Context, d digest.Digest) error
	// MountBlob links blob d of repository from into to (cross-repository
	// mount) in one transaction and returns its size, or ErrBlobNotFound
	// when from does not have it (or GC is deleting it).
	MountBlob(ctx context.Context, from, to string, d digest.Digest) (int64, error)
}

// Manifests stores manifests and tags.
type Manifests interface {
	// PutManifest stores m and points tags at it in one transaction, if
	// every condition holds (else ErrPreconditionFailed). It fails with
	// *MissingReferenceError when a reference that is not Optional is
	// absent and with *SizeMismatchError when one has another size. A
	// signature manifest (Manifest.SignatureSubject) gets its indexing job
	// (IndexQueue) in the same transaction.
	PutManifest(ctx context.Context, m *Manifest, tags []string, conds ...TagCondition) error
	// GetManifest looks a manifest up by tag or digest ("sha256:..."), or
	// returns ErrManifestNotFound (a *RepositoryNotFoundError when repo
	// does not exist). It also reports the pull policy that applies
	// (Manifest.Quarantine, RequireSignature, Project).
	GetManifest(ctx context.Context, repo, reference string) (*Manifest, error)
	// DeleteManifest deletes the image with digest d as DeleteImage does.
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error
	// DeleteImage deletes the manifest with digest d and every tag on it,
	// with its cosign signatures and attestations (the ".sig"/".att" tags
	// naming d and the manifests they point at, unless other tags keep
	// those) and its signature referrers (Manifest.SignatureSubject), in
	// one transaction. It returns every manifest deleted, d first, or
	// ErrManifestNotFound (as GetManifest). The signatures they carried
	// stay in the index, marked deleted.
	DeleteImage(ctx context.Context, repo string, d digest.Digest) ([]DeletedManifest, error)
	// DeleteTag removes one tag; the manifest stays. ErrTagNotFound (a
	// *RepositoryNotFoundError when repo does not exist) if there is none.
	DeleteTag(ctx context.Context, repo, tag string) error
	// Referrers lists the manifests in repo whose subject is d, optionally
	// only those with the given artifact type.
	Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]Descriptor, error)
}

// Listing pages through tags and repositories in lexical (byte) order.
type Listing interface {
	// ListTags returns up to n tags after last; more reports whether
	// further tags exist. ErrRepositoryNotFound for an unknown repository.
	ListTags(ctx context.Context, repo, last string, n int) (tags []string, more bool, err error)
	// ListRepositories returns up to n repository names after last.
	ListRepositories(ctx context.Context, last string, n int) (repos []string, more bool, err error)
}

// Store is everything a metadata database driver provides.
type Store interface {
	Blobs
	Manifests
	Listing
	Signatures
	IndexQueue
	TrustPolicies
	SignatureVerdicts
	Quarantines
	Certificates
	Ping(ctx context.Context) error
	Close() error
}

// Signature statuses recorded by the indexer: one per signature, under the
// trust policy of the project that governs its repository.
const (
	// StatusVerified: valid, and the policy allows its signer.
	StatusVerified = "verified"
	// StatusUntrusted: cryptographically valid under a trust root of the
	// policy, but the policy does not allow its signer (identity) or it
	// lacks a required annotation; the detail names the rule.
	StatusUntrusted = "untrusted"
	// StatusInvalid: broken (bad signature, chain, SCT, log proof, digest
	// mismatch, malformed).
	StatusInvalid = "invalid"
	// StatusUnverified: cannot be checked: an unknown key, CA or log, or
	// not logged.
	StatusUnverified = "unverified"
)

// Signature is one indexed signature (one layer of a cosign signature
// manifest, or one sigstore bundle referrer).
type Signature struct {
	ID           int64
	Repository   string
	Subject      digest.Digest // the signed image manifest
	Manifest     digest.Digest // the signature manifest that carried it
	Layer        digest.Digest // the payload / bundle blob
	Key          string        // dedupe key: one row per distinct signature
	Kind         string        // e.g. "cosign", "sigstore-bundle"
	PayloadType  string
	Signer       string // public key fingerprint "SHA256:..." or certificate identity
	CertIssuer   string
	LogIndex     *int64
	Status       string
	StatusDetail string
	Annotations  map[string]string
	// CertExtensions are the Fulcio extensions (fulcio.Values: keyed by
	// dotted OID) of a keyless signature's certificate.
	CertExtensions map[string]string
	// CertSHA256 is the hex SHA-256 of a keyless signature's certificate
	// (DER): the link to what the CA recorded when it issued it.
	CertSHA256 string
	Created    time.Time
	// Generation is the index generation the status was decided in
	// (IndexQueue): a job of a later generation decides it again.
	Generation int64

	// Read back only (ListSignatures, SearchSignatures):
	// Certificate is the CA's record of the certificate, nil when this
	// server's CA did not issue it.
	Certificate *CertificateRecord
	// Facts are the signature's searchable values (see Facts).
	Facts []Fact
	// Tags are the signed image's tags in its repository (SearchSignatures).
	Tags []string
}

// Signatures is the signature index.
type Signatures interface {
	// RecordSignatures stores signatures, ignoring ones already recorded
	// (same repository and Key). It returns how many were new.
	RecordSignatures(ctx context.Context, sigs []Signature) (int, error)
	// ListSignatures returns the signatures of subject in repo, oldest first.
	ListSignatures(ctx context.Context, repo string, subject digest.Digest) ([]Signature, error)
	// SearchSignatures returns the signatures matching q that q.Access
	// may see, newest first (created, then id), at most q.Limit, after
	// q.After.
	SearchSignatures(ctx context.Context, q SignatureSearch) ([]Signature, error)
	// TagsOf returns the tags pointing at manifest d in repo.
	TagsOf(ctx context.Context, repo string, d digest.Digest) ([]string, error)
}
