package registry_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
)

// BenchmarkManifestGetPolicy measures a manifest GET by tag where the pull
// policy has work to do (BenchmarkManifestGet is the common case: no
// quarantine in the repository, no project asking for signatures, which
// costs two index probes in the lookup's one query): another manifest of
// the repository is quarantined (the lookup probes the manifest's own and
// its children's quarantines), and the project enforces require-signature
// for a signed image (one more query, for the verdict).
func BenchmarkManifestGetPolicy(b *testing.B) {
	h, blobDir := benchHandlerDir(b)
	ctx := context.Background()
	// The handler's database, opened a second time to set the policy.
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(filepath.Dir(blobDir), "hallmark.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	for _, c := range []struct {
		name  string
		setup func(repo string, d digest.Digest)
	}{
		{"quarantine-in-repository", func(repo string, _ digest.Digest) {
			if _, err := store.Quarantine(ctx, meta.QuarantineChange{Items: []meta.QuarantineItem{{Repository: repo, Digest: digest.FromString("other")}},
				Reason: "bench", Actor: "bench", At: time.Now()}); err != nil {
				b.Fatal(err)
			}
		}},
		{"enforce-signed", func(repo string, d digest.Digest) {
			if _, err := store.CreateProject(ctx, auth.Project{Path: repo, Visibility: auth.VisibilityPrivate, RequireSignature: meta.RequireSignatureEnforce, Created: time.Now()}); err != nil {
				b.Fatal(err)
			}
			if _, err := store.RecordSignatures(ctx, []meta.Signature{{Repository: repo, Subject: d, Manifest: d, Key: "k", Kind: "cosign", Status: meta.StatusVerified}}); err != nil {
				b.Fatal(err)
			}
		}},
	} {
		repo := "bench/" + c.name
		dg, _ := benchPushImage(b, h, repo)
		c.setup(repo, digest.Digest(dg))
		target := "/v2/" + repo + "/manifests/v1"
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if w := benchDo(b, h, http.MethodGet, target, nil, "Accept", "application/vnd.oci.image.manifest.v1+json"); w.Code != http.StatusOK {
					b.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
				}
			}
		})
	}
}
