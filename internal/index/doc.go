// Package index is the signature indexer. When the registry stores a
// signature manifest (a cosign ".sig" tag, or a referrer whose artifact type
// is a cosign signature or a sigstore bundle) it adapts every signature in
// it to pkg/verify, verifies it once against the server's trust (the
// trusted root the server publishes and the --trusted-key keys: chain, SCT,
// log entry, signature) and records subject, signer identity, issuer, the
// certificate's Fulcio extensions, annotations, log index and the outcome
// as a status (verified, invalid, unverified) in the metadata database. It
// checks nothing itself; nothing here can fail a push or crash the server.
// When an image is deleted (with its signatures), the index keeps its
// signatures as history, marked deleted and no longer served.
package index
