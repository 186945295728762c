package meta

import (
	"context"
	"errors"
	"time"

	"github.com/opencontainers/go-digest"
)

// IndexJob is a signature manifest of one image waiting to be indexed or
// re-evaluated. PutManifest enqueues one, in the manifest's own
// transaction, for every image Manifest.SignatureSubjects says the
// manifest signs, so an acknowledged push is never lost to the index; a
// policy change or a rebuild enqueues the signature manifests of the
// repositories concerned. There is at most one job per (repository,
// manifest, subject): asking again merges into it.
type IndexJob struct {
	ID         int64
	Repository string
	Manifest   digest.Digest
	Subject    digest.Digest
	// Generation: signatures of the manifest whose status was decided in an
	// earlier generation are decided again; 0 (a push) decides only the
	// signatures not indexed yet.
	Generation int64
	// Seq changes whenever the job is asked for again; FinishIndexJobs
	// completes a job only if it did not change while it was claimed.
	Seq int64
}

// IndexQueue is the durable queue of indexing work, shared by every
// replica on the database: a job is claimed by one worker at a time (with
// a lease that expires if the worker dies) and completed in the same
// transaction that records its signatures.
type IndexQueue interface {
	// ClaimIndexJobs claims for owner up to n jobs that nobody holds or
	// whose claim is older than lease, oldest first. With repo and subject
	// set, only that image's jobs.
	ClaimIndexJobs(ctx context.Context, owner string, n int, lease time.Duration, repo string, subject digest.Digest) ([]IndexJob, error)
	// FinishIndexJobs records sigs (new ones with their annotations and
	// extensions; known ones, same repository and Key, get the new status,
	// detail and generation) and completes jobs, all in one transaction. A
	// job asked for again while claimed (its Seq changed) is released for
	// another run instead. It returns how many signatures were new.
	FinishIndexJobs(ctx context.Context, owner string, jobs []IndexJob, sigs []Signature) (int, error)
	// ReleaseIndexJobs gives up owner's claims (at shutdown).
	ReleaseIndexJobs(ctx context.Context, owner string) error
	// PendingIndexJobs counts the jobs not completed: of one image (repo
	// and subject), of one repository (subject ""), or all (repo "").
	PendingIndexJobs(ctx context.Context, repo string, subject digest.Digest) (int, error)
	// IndexGeneration is the current index generation (0 until the first
	// policy change or rebuild).
	IndexGeneration(ctx context.Context) (int64, error)
	// JobManifests returns the signature manifest of each job (by its
	// Repository and Manifest), nil when it no longer exists: what
	// GetManifest returns by digest, without the pull policy (Quarantine,
	// RequireSignature, Project). The indexer reads a batch's manifests
	// at once with it.
	JobManifests(ctx context.Context, jobs []IndexJob) ([]*Manifest, error)
	// SignatureGenerations returns, for the keys (by repository) recorded
	// in each repository, the generation their status was decided in, by
	// repository and key.
	SignatureGenerations(ctx context.Context, keys map[string][]string) (map[string]map[string]int64, error)
	// RepositoryBlobs tells which of the blobs (by repository) each
	// repository has, as BlobSize would: the repositories that exist are
	// in the result (with a map that may be empty), with the blobs they
	// have set; one that does not exist is absent.
	RepositoryBlobs(ctx context.Context, blobs map[string][]digest.Digest) (map[string]map[digest.Digest]bool, error)
	// Reindex starts a new generation and enqueues with it every indexed
	// signature manifest of the repositories project governs (project ""
	// : every repository). It returns the generation and how many
	// manifests were enqueued.
	Reindex(ctx context.Context, project string) (gen int64, jobs int, err error)
}

// ErrProjectNotFound is returned for a trust policy of a project that does
// not exist.
var ErrProjectNotFound = errors.New("project not found")

// TrustPolicy is a project's trust policy as stored: a JSON document that
// internal/index validates and applies, versioned per project.
type TrustPolicy struct {
	// Project is the project's path; "" when no project governs the
	// repository asked about (TrustPolicyFor).
	Project string
	// ProjectIssuer is the OIDC issuer the project is pinned to ("" for
	// the built-in one).
	ProjectIssuer string
	// Version counts the policy's changes (0: never set, Document nil).
	Version   int64
	Document  []byte
	Updated   time.Time
	UpdatedBy string
}

// TrustPolicies stores the projects' trust policies.
type TrustPolicies interface {
	// TrustPolicy returns project's policy (Version 0 when none was set),
	// or ErrProjectNotFound.
	TrustPolicy(ctx context.Context, project string) (TrustPolicy, error)
	// TrustPolicyFor returns the policy of the project governing repo
	// (the longest project path covering it); Project "" when none does.
	TrustPolicyFor(ctx context.Context, repo string) (TrustPolicy, error)
	// SetTrustPolicy stores doc as project's next version and, in the same
	// transaction, re-evaluates the project's signatures (Reindex). It
	// returns the stored policy and how many manifests were enqueued.
	SetTrustPolicy(ctx context.Context, project string, doc []byte, by string) (TrustPolicy, int, error)
}
