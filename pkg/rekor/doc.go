// Package rekor is the one home of the transparency log's wire formats,
// used alike by the log (internal/tlog) and its clients (signing,
// verification, the indexer): proposed and canonical hashedrekord and dsse
// entries with the log's validation of a proposal, log entries as the API
// returns them and as cosign's bundle annotation carries them, the signed
// entry timestamp, inclusion proofs and signed checkpoints. It does no I/O
// and decides no trust: callers choose which log key to check with.
package rekor
