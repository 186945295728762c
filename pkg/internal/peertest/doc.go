// Package peertest finds the pinned third-party peer binaries (cosign...)
// for the interoperability tests of the pkg/ packages, which cannot use
// internal/testenv. Import it from _test.go files only.
package peertest
