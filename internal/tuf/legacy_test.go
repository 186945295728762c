package tuf_test

import (
	"bytes"
	"context"
	"testing"

	legacy "github.com/theupdateframework/go-tuf/client"

	"github.com/hallmark-dev/hallmark/internal/tuf"
)

// buffer is a download destination for the legacy client.
type buffer struct{ bytes.Buffer }

func (b *buffer) Delete() error { b.Reset(); return nil }

// TestLegacyGoTUFClient: the pre-v2 go-tuf client, which sigstore's legacy
// TUF package (cosign v2's fallback, policy-controller's remote
// TrustRoot) is built on, reads the repository and follows a rotation of
// every key.
func TestLegacyGoTUFClient(t *testing.T) {
	f := newFixture(t, tuf.Config{})
	targets := sigstoreTargets(t)
	f.publish(targets)
	remote, err := legacy.HTTPRemoteStore(f.url, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := legacy.NewClient(legacy.MemoryLocalStore(), remote)
	if err := c.Init(f.root()); err != nil {
		t.Fatal(err)
	}
	fetch := func() {
		t.Helper()
		if _, err := c.Update(); err != nil {
			t.Fatalf("legacy client update: %v", err)
		}
		for name, want := range targets {
			var b buffer
			if err := c.Download(name, &b); err != nil || !bytes.Equal(b.Bytes(), want) {
				t.Fatalf("legacy client download of %s: %v (%d bytes)", name, err, b.Len())
			}
		}
	}
	fetch()
	for _, role := range tuf.Roles() {
		if _, _, err := f.repo.Rotate(context.Background(), role); err != nil {
			t.Fatal(err)
		}
	}
	fetch()
}
