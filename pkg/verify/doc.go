// Package verify checks cosign-compatible image signatures: the signature
// over the exact payload bytes (with a public key, or a Fulcio certificate
// chained to a trusted root, carrying an SCT of a trusted CT log and
// matching an identity and issuer), the payload's integrity against its
// layer digest, the digest claim, the requested annotations and, when
// required, the transparency-log proof (SET, inclusion proof against a
// signed checkpoint, the logged entry binding this very signature). It
// verifies cosign's .sig layers, .att attestations (DSSE) and sigstore
// bundle referrers (cosign v3). Client reads images, signature manifests
// and referrers from any OCI registry (one authenticated transport per
// repository, so batches are cheap). The CLI, the registry's signature
// indexer and the UI all use it. Every failure names the check that failed
// and the signature it failed for.
package verify
