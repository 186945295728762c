package payload

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// cosignBinary returns the pinned cosign v2.6 peer binary
// (${HALLMARK_PEERS:-~/.cache/hallmark-peers/bin}/cosign, installed by
// scripts/install-peers). Without it the test is skipped, loudly, unless
// HALLMARK_REQUIRE_PEERS=1 makes that a failure.
func cosignBinary(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HALLMARK_PEERS")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "hallmark-peers", "bin")
	}
	bin := filepath.Join(dir, "cosign")
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		msg := "INTEROP NOT TESTED: cosign peer binary not found at " + bin + "; run scripts/install-peers (or set HALLMARK_PEERS)"
		if os.Getenv("HALLMARK_REQUIRE_PEERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// TestBytesMatchesLiveCosign regenerates every golden payload with the real
// cosign binary (`cosign generate`, offline for digest references) and
// compares it with Bytes, so the testdata cannot drift from cosign.
func TestBytesMatchesLiveCosign(t *testing.T) {
	bin := cosignBinary(t)
	for _, tc := range goldenCases {
		t.Run(tc.file, func(t *testing.T) {
			ref := tc.ref
			if tc.file == "no-annotations.json" {
				ref = "ubuntu" // cosign normalises Docker Hub names itself
			}
			args := []string{"generate", ref + "@" + tc.digest}
			for k, v := range tc.annotations {
				args = append(args, "-a", k+"="+v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("cosign %q: %v\n%s", args, err, stderr.Bytes())
			}
			ours, err := New(tc.ref, tc.digest, tc.annotations).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, ours) {
				t.Errorf("cosign generate wrote\n%s\nwe wrote\n%s", out, ours)
			}
		})
	}
}
