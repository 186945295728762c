package payload

import (
	"bytes"
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/internal/peertest"
)

// TestBytesMatchesLiveCosign regenerates every golden payload with the real
// cosign binary (`cosign generate`, offline for digest references) and
// compares it with Bytes, so the testdata cannot drift from cosign.
func TestBytesMatchesLiveCosign(t *testing.T) {
	bin := peertest.Peer(t, "cosign")
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
