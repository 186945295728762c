// Package server is Hallmark's one composition root: from a config.Server it
// builds the blob store, the metadata database and the services, mounts
// them on one HTTP mux with health checks and Prometheus metrics, and runs
// it until its context ends, then shuts down gracefully.
package server
