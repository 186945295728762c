// Package verify checks cosign-compatible image signatures: the signature
// over the exact payload bytes (with a public key, or a certificate chained
// to a trusted root), the payload's integrity against its layer digest, the
// digest claim, the requested annotations and, when required, the
// transparency-log bundle. Client reads images and signature manifests from
// any OCI registry (one authenticated transport per repository, so batches
// are cheap). The CLI, the registry's signature indexer and the UI all use
// it. Every failure names the check that failed and the signature it failed
// for.
package verify
