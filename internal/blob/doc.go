// Package blob defines Hallmark's content-addressed blob store and its
// resumable upload sessions. Drivers (blob/fs, blob/s3) compute the digest
// while streaming, so no blob ever has to sit in memory, and make a blob
// visible only once its bytes are durable and match their digest.
package blob
