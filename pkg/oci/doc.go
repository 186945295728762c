// Package oci holds the OCI helpers shared by the Hallmark client and
// server: media types, digest parsing, repository-name and tag grammar,
// manifest parsing into the few fields a registry and a signer need,
// cosign's attachment naming (signature and attestation tags, layer
// annotations, sigstore bundle referrers), and Client, the small registry
// client that reads images, signature manifests and referrers for
// verification.
package oci
