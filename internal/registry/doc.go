// Package registry serves the OCI Distribution Spec v1.1 HTTP API (plus the
// Docker catalog): blobs with ranges, monolithic/chunked/streamed uploads
// with resumption, cross-repository mounts, manifests by tag and digest,
// tags, referrers. It sees only the blob.Store interface and its own Store
// (the part of the metadata database it uses), and one table (errors.go)
// turns domain errors into OCI error responses.
package registry
