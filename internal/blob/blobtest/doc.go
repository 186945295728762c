// Package blobtest is the contract every blob store driver meets: one test
// suite (Run) and one set of benchmarks (Bench*) that run unchanged
// against the filesystem and the S3 driver. It is imported only from
// _test.go files.
package blobtest
