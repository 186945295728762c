// Package index is the signature indexer. When the registry stores a
// signature manifest (a cosign ".sig" tag, or a referrer whose artifact type
// is a cosign signature or a sigstore bundle) it parses every signature in
// it, checks it against the server's configured trust, and records subject,
// signer, annotations, log index and a verification status in the metadata
// database. Malformed signatures are recorded as invalid; nothing here can
// fail a push or crash the server.
package index
