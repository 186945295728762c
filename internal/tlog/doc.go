// Package tlog is Hallmark's transparency log: a Rekor v1 compatible,
// append-only RFC 6962 Merkle tree of hashedrekord and dsse entries (their
// formats and validation live in pkg/rekor, shared with the clients), with
// signed entry timestamps, inclusion and consistency proofs and signed
// checkpoints. The tree lives in the metadata database behind the small
// Storage interface; the database is the sequencer, and concurrent
// submissions are group-committed in one durable transaction per batch.
package tlog
