// Package bundle reads and writes sigstore bundles (protojson v0.1 to
// v0.3), the form cosign v3 and --new-bundle-format attach signatures and
// attestations in and sign-blob writes: the DSSE envelope or message
// signature, the signing certificate or key hint, and the
// transparency-log entries, converted to and from pkg/rekor's. It also
// reads and writes cosign's older sign-blob bundle file (Cosign). It does
// no I/O and verifies nothing.
package bundle
