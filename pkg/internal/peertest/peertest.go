package peertest

import (
	"os"
	"path/filepath"
	"testing"
)

// Peer returns the pinned peer binary name
// (${HALLMARK_PEERS:-~/.cache/hallmark-peers/bin}/<name>, installed by
// scripts/install-peers). Without it the test is skipped, loudly, unless
// HALLMARK_REQUIRE_PEERS=1 makes that a failure.
func Peer(tb testing.TB, name string) string {
	tb.Helper()
	dir := os.Getenv("HALLMARK_PEERS")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "hallmark-peers", "bin")
	}
	bin := filepath.Join(dir, name)
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		msg := "INTEROP NOT TESTED: " + name + " peer binary not found at " + bin + "; run scripts/install-peers (or set HALLMARK_PEERS)"
		if os.Getenv("HALLMARK_REQUIRE_PEERS") == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return bin
}
