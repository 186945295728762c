// Package tuf publishes the server's trusted root and signing config as a
// TUF repository (consistent snapshots, as sigstore's root-signing
// repository lays it out), the trust channel sigstore clients read:
// `cosign initialize --mirror URL/tuf --root root.json`, sigstore-go,
// policy-controller and kyverno. It signs the metadata with go-tuf, keeps
// the timestamp and snapshot fresh, rotates role keys so that existing
// clients follow the chain of root versions, and serves the files.
package tuf
