// Package verify checks cosign-compatible image signatures: the signature
// over the exact payload bytes (with a public key, or later a certificate
// chained to a trusted root), the digest claim, and requested annotations.
// The CLI, the registry's signature indexer and the UI all use it. Every
// failure names the check that failed and the signature it failed for.
package verify
