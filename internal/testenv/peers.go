package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// PeersDir is where scripts/install-peers puts the pinned peer binaries:
// $HALLMARK_PEERS, else ~/.cache/hallmark-peers/bin.
func PeersDir() string {
	if d := os.Getenv("HALLMARK_PEERS"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "hallmark-peers", "bin")
}

// LookPeer returns the path of peer binary name (PeersDir first, then PATH),
// or "" when it is not installed.
func LookPeer(name string) string {
	p := filepath.Join(PeersDir(), name)
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}

// RequirePeers reports whether missing peers are a failure rather than a
// skip (HALLMARK_REQUIRE_PEERS=1, set by scripts/test and so by CI).
func RequirePeers() bool { return os.Getenv("HALLMARK_REQUIRE_PEERS") == "1" }

// Peer returns the path of peer binary name. When it is missing the test is
// skipped with a loud message, or fails under HALLMARK_REQUIRE_PEERS=1.
func Peer(tb testing.TB, name string) string {
	tb.Helper()
	if p := LookPeer(name); p != "" {
		return p
	}
	msg := "PEER NOT INSTALLED, INTEROP NOT TESTED: " + name + " not found in " + PeersDir() +
		" or PATH; run `bash scripts/install-peers all` (or set HALLMARK_PEERS)"
	if RequirePeers() {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}
