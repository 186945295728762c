// Package bundle reads sigstore bundles (protojson v0.1 to v0.3), the form
// cosign v3 and --new-bundle-format attach signatures and attestations in:
// the DSSE envelope, the signing certificate or key hint, and the
// transparency-log entries, converted to pkg/rekor's. It does no I/O and
// verifies nothing.
package bundle
