// Package index is the signature indexer and the projects' trust policies.
// A pushed signature manifest (a cosign ".sig" tag, or a referrer whose
// artifact type is a cosign signature or a sigstore bundle) is queued in
// the transaction that stores it; workers (Run) claim queued manifests,
// adapt each signature to pkg/verify and verify it once against the trust
// roots and keys of the policy governing its repository (Policy: roots,
// keys, allowed identities, required annotations; by default the server's
// root and the project's own pipelines), and record subject, signer,
// issuer, certificate extensions, annotations, log index and one status:
// verified, untrusted (valid, but the policy does not allow it), invalid or
// unverified. A policy change or a rebuild queues the signatures again.
// What one manifest may cost is bounded; nothing here can fail a push.
// When an image is deleted (with its signatures), the index keeps its
// signatures as history, marked deleted and no longer served.
package index
