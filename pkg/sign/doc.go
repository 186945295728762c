// Package sign signs container images and files the way cosign does: key-based
// (cosign's encrypted key files, PKCS#8/SEC1 keys, env:// references) and
// keyless (an ephemeral key certified by a Fulcio-compatible CA and logged
// in a Rekor-compatible transparency log), and attaches the signatures to
// images in either registry layout cosign reads: sigstore bundle referrers
// (cosign v3) or layers of the .sig/.att tags (cosign v2).
package sign
