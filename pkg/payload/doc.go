// Package payload holds the documents Hallmark signs and verifies: cosign's
// "simple signing" container-image payload (byte-identical to what cosign
// v2.6 writes), and the DSSE envelope and in-toto Statement used by
// attestations and Sigstore bundles.
//
// Signatures cover exact bytes, so parsers here never normalise: keep the
// bytes you verified, and use Bytes only to produce new payloads.
package payload
