// Package root reads and writes sigstore trust material: the trusted root
// (trusted_root.json, media type application/vnd.dev.sigstore.trustedroot+json;version=0.1,
// exactly as sigstore-go and cosign --trusted-root require) and the signing
// config (signing_config.v0.2.json). It turns a trusted root into the
// certificate pools and log keys verification needs, derives cosign v2's
// legacy PEM files from it, and pins it by Fingerprint (SHA-256 of the
// exact trusted_root.json bytes); Load and DefaultTrustedRootPath are what
// `hallmark sign`/`verify` use to find it ($HALLMARK_TRUST_DIR or ~/.hallmark).
package root
