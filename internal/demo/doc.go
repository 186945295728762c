// Package demo runs the reference CI workflow against a Hallmark server
// from Go, the way a GitLab job does it: given a CI job environment (job
// token, ID token, GitLab's predefined variables), it builds a small image,
// pushes it with the job token, signs it keylessly with the eleven
// provenance annotations, verifies it by identity, issuer and tag, and
// searches the provenance index. `hallmark demo` and the load test
// (RunLoad; bench scenario "load") are built on it.
package demo
