// Package rekortest makes keys, certificates, signatures and proposed log
// entries for tests of the transparency log and its clients: what a
// hashedrekord or dsse client sends, signed for real. Production code never
// imports it.
package rekortest
