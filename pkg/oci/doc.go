// Package oci holds small OCI helpers shared by the Hallmark client and server:
// media types, digest parsing, repository-name and tag grammar, and manifest
// parsing into the few fields a registry and a signer need.
package oci
