// Package abuse attacks a running Hallmark server the way an outsider, a
// member of another project and a CI job would: floods, oversized and slow
// bodies, other projects' tokens, amplification. Every test talks to a real
// server on loopback, with bounded loops, and is a regression test for a
// defect that was found that way (issue 9) or for an attack family that held.
package abuse
