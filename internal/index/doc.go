// Package index is the signature indexer. When the registry stores a
// signature manifest (a cosign ".sig" tag, or a referrer whose artifact type
// is a cosign signature or a sigstore bundle) it parses every signature in
// it, checks it against the server's trust (configured keys, and for keyless
// signatures the server's own CA and transparency log: chain, SCT and SET),
// and records subject, signer identity, issuer, the certificate's Fulcio
// extensions, annotations, log index and a verification status in the
// metadata database. Malformed signatures are recorded as invalid; nothing
// here can fail a push or crash the server.
package index
