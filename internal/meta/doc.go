// Package meta defines the registry's metadata database: repositories, blob
// links, manifests (exact bytes), tags and manifest references (index
// children and subject -> referrers). The one implementation over SQL is
// meta/sqlstore; its drivers are meta/sqlite (the embedded default) and
// meta/postgres (shared by replicas); meta/metatest is the contract suite
// both pass. The registry sees only these interfaces.
// Manifest.SignatureSubject is the one rule for what counts as a signature
// manifest (the indexer, the audit log and image deletes use it); Facts is the one
// rule for what a signature's searchable values are and what they rest on
// (the CA's claims and the certificate before the signer's annotations).
// The store also keeps garbage collection's review queues (internal/gc).
package meta
