// Package testenv is test support shared by Hallmark's integration tests and
// benchmarks: it finds the pinned third-party peer binaries (cosign, crane,
// oras, regctl, skopeo, the distribution registry), starts a real Hallmark
// server on a loopback port, starts a throwaway PostgreSQL server
// (scripts/start-postgres) with a fresh database per test, and builds the
// hallmark binary for tests that need a separate process. It is imported
// only from _test.go files.
package testenv
