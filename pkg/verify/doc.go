// Package verify is Hallmark's verification policy, used by the CLI, the
// signature indexer and the console: one Verify that checks any signed
// thing (a cosign .sig layer, a .att attestation, a sigstore bundle, a
// signature over a blob, each adapted to the small Signed interface)
// against a Trust (trusted roots and keys) and a Policy (subject,
// identities, annotations, what may be skipped), in the order of the
// specification, and says which check failed and what that means (Class:
// invalid, unverifiable, not allowed). Image and Attestations verify
// everything attached to an image, in both layouts, through a Registry;
// verify itself reads no network.
package verify
