// Package sign signs container images the way cosign v2 does: key-based
// (cosign's encrypted key files, PKCS#8/SEC1 keys, env:// references) and
// keyless (an ephemeral key certified by a Fulcio-compatible CA and logged
// in a Rekor-compatible transparency log), and attaches the signatures to
// images in the registry layout cosign reads.
package sign
