// Package meta defines the registry's metadata database: repositories, blob
// links, manifests (exact bytes), tags and manifest references (index
// children and subject -> referrers). Drivers live in sub-packages
// (meta/sqlite is the embedded default); the registry sees only these
// interfaces. Manifest.SignatureSubject is the one rule for what counts as
// a signature manifest (the indexer and the audit log both use it).
package meta
