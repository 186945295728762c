package tuf_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sgtuf "github.com/sigstore/sigstore-go/pkg/tuf"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/tuf"
)

func sigstoreTargets(t *testing.T) map[string][]byte {
	t.Helper()
	tr, err := os.ReadFile("../../pkg/root/testdata/public-trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := os.ReadFile("../../pkg/root/testdata/public-signing_config.v0.2.json")
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{tuf.TrustedRootTarget: tr, tuf.SigningConfigTarget: sc}
}

// TestPublishServesWhatClientsFetch: the first Publish creates the
// repository; go-tuf's updater and sigstore-go's TUF client (what cosign
// runs), initialized with root.json, fetch both targets byte for byte.
func TestPublishServesWhatClientsFetch(t *testing.T) {
	f := newFixture(t, tuf.Config{})
	targets := sigstoreTargets(t)
	if !f.publish(targets) {
		t.Fatal("first publish reported no change")
	}
	c := newClient(t, f.url, f.root())
	for name, want := range targets {
		if got := c.mustFetch(name); !bytes.Equal(got, want) {
			t.Errorf("%s: client got %d bytes, want the %d published", name, len(got), len(want))
		}
	}
	sg, err := sgtuf.New(sgtuf.DefaultOptions().WithRoot(f.root()).WithRepositoryBaseURL(f.url).WithCachePath(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := sg.GetTarget(tuf.TrustedRootTarget)
	if err != nil || !bytes.Equal(got, targets[tuf.TrustedRootTarget]) {
		t.Fatalf("sigstore-go client: %v (%d bytes)", err, len(got))
	}
	st := f.status()
	for _, rs := range st.Roles {
		if rs.Version != 1 || len(rs.KeyIDs) != 1 || rs.Threshold != 1 {
			t.Errorf("%s: version %d, %d keys, threshold %d; want version 1, one key, threshold 1", rs.Role, rs.Version, len(rs.KeyIDs), rs.Threshold)
		}
		if _, err := os.Stat(f.keys.Where(keystore.KeyItem("tuf-" + rs.KeyIDs[0]))); err != nil {
			t.Errorf("%s key not in the key directory: %v", rs.Role, err)
		}
	}
	if len(st.Targets) != 2 {
		t.Errorf("targets %v, want the two published", st.Targets)
	}
	// Distinct keys for distinct roles: a leaked online timestamp key
	// must not sign targets.
	ids := map[string]bool{}
	for _, rs := range st.Roles {
		ids[rs.KeyIDs[0]] = true
	}
	if len(ids) != 4 {
		t.Errorf("roles share keys: %v", st.Roles)
	}
}

// TestPublishUnchangedSignsNothing: publishing the same targets again
// (every server start does) writes no new metadata.
func TestPublishUnchangedSignsNothing(t *testing.T) {
	f := newFixture(t, tuf.Config{})
	f.publish(sigstoreTargets(t))
	before := f.status()
	if f.publish(sigstoreTargets(t)) {
		t.Error("publishing the same targets reported a change")
	}
	after := f.status()
	for i := range before.Roles {
		if before.Roles[i].Version != after.Roles[i].Version {
			t.Errorf("%s went from version %d to %d", before.Roles[i].Role, before.Roles[i].Version, after.Roles[i].Version)
		}
	}
	if renewed, err := f.repo.Renew(context.Background()); err != nil || len(renewed) != 0 {
		t.Errorf("fresh repository: Renew signed %v (%v), want nothing", renewed, err)
	}
}

// TestTargetChangeReachesClient: a client initialized before a target
// changed gets the new content, and only one that the targets metadata
// vouches for.
func TestTargetChangeReachesClient(t *testing.T) {
	f := newFixture(t, tuf.Config{})
	targets := sigstoreTargets(t)
	f.publish(targets)
	c := newClient(t, f.url, f.root())
	c.mustFetch(tuf.TrustedRootTarget)

	changed := bytes.Replace(targets[tuf.TrustedRootTarget], []byte(`"https://rekor.sigstore.dev"`), []byte(`"https://rekor.example.com"`), 1)
	if bytes.Equal(changed, targets[tuf.TrustedRootTarget]) {
		t.Fatal("test data lacks the Rekor URL to change")
	}
	targets[tuf.TrustedRootTarget] = changed
	if !f.publish(targets) {
		t.Fatal("a changed target was not published")
	}
	if got := c.mustFetch(tuf.TrustedRootTarget); !bytes.Equal(got, changed) {
		t.Error("client still gets the old trusted root")
	}
	for role, want := range map[string]int64{tuf.RoleRoot: 1, tuf.RoleTargets: 2, tuf.RoleSnapshot: 2, tuf.RoleTimestamp: 2} {
		if v := f.version(role); v != want {
			t.Errorf("%s version %d, want %d", role, v, want)
		}
	}
	// Dropping a target is a change too.
	delete(targets, tuf.SigningConfigTarget)
	if !f.publish(targets) {
		t.Fatal("dropping a target was not published")
	}
	if _, err := c.fetch(tuf.SigningConfigTarget); err == nil {
		t.Error("client still finds the dropped target")
	}
}

// TestRotateEachRole: after a key rotation of any role, a client that
// trusts only an earlier root follows the chain, fetches the targets, and
// the retired key is gone from the key directory.
func TestRotateEachRole(t *testing.T) {
	for _, role := range tuf.Roles() {
		t.Run(role, func(t *testing.T) {
			f := newFixture(t, tuf.Config{})
			targets := sigstoreTargets(t)
			f.publish(targets)
			root1 := f.root()
			c := newClient(t, f.url, root1)
			c.mustFetch(tuf.TrustedRootTarget)
			old := f.status().Roles[slices.Index(tuf.Roles(), role)].KeyIDs[0]

			version, newID, err := f.repo.Rotate(context.Background(), role)
			if err != nil {
				t.Fatal(err)
			}
			if version != 2 || newID == old {
				t.Fatalf("rotate: root version %d, key %s (old %s); want version 2 and a new key", version, newID, old)
			}
			if got := f.status().Roles[slices.Index(tuf.Roles(), role)].KeyIDs; !slices.Equal(got, []string{newID}) {
				t.Errorf("%s keys after rotation %v, want [%s]", role, got, newID)
			}
			if _, err := os.Stat(f.keys.Where(keystore.KeyItem("tuf-" + old))); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("retired key still in the key directory (%v)", err)
			}
			if got := c.mustFetch(tuf.TrustedRootTarget); !bytes.Equal(got, targets[tuf.TrustedRootTarget]) {
				t.Error("target changed by a key rotation")
			}
			if v := c.trustedRootVersion(); v != 2 {
				t.Errorf("client trusts root version %d, want 2", v)
			}
			// A brand-new client given only version 1 follows too.
			newClient(t, f.url, root1).mustFetch(tuf.SigningConfigTarget)

			// A second rotation: a chain of two.
			if _, _, err := f.repo.Rotate(context.Background(), role); err != nil {
				t.Fatal(err)
			}
			c.mustFetch(tuf.TrustedRootTarget)
			newClient(t, f.url, root1).mustFetch(tuf.TrustedRootTarget)
			if v := c.trustedRootVersion(); v != 3 {
				t.Errorf("client trusts root version %d, want 3", v)
			}
		})
	}
}

// TestRootSignedByOldAndNewKeys: a rotated root carries the signatures
// TUF requires: the previous root's key and its own new key.
func TestRootSignedByOldAndNewKeys(t *testing.T) {
	f := newFixture(t, tuf.Config{})
	f.publish(sigstoreTargets(t))
	v1, err := metadata.Root().FromBytes(f.root())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.repo.Rotate(context.Background(), tuf.RoleRoot); err != nil {
		t.Fatal(err)
	}
	v2, err := metadata.Root().FromBytes(f.root())
	if err != nil {
		t.Fatal(err)
	}
	if err := v1.VerifyDelegate(tuf.RoleRoot, v2); err != nil {
		t.Errorf("version 2 is not signed by version 1's root key: %v", err)
	}
	if err := v2.VerifyDelegate(tuf.RoleRoot, v2); err != nil {
		t.Errorf("version 2 is not signed by its own root key: %v", err)
	}
	if len(v2.Signatures) != 2 {
		t.Errorf("version 2 has %d signatures, want 2", len(v2.Signatures))
	}
	if _, _, err := f.repo.Rotate(context.Background(), "mirror"); err == nil {
		t.Error("rotating an unknown role succeeded")
	}
}

// TestRenewBeforeExpiry: metadata past half its lifetime is re-signed, and
// what points at it with it; fresh metadata is left alone.
func TestRenewBeforeExpiry(t *testing.T) {
	day := 24 * time.Hour
	f := newFixture(t, tuf.Config{RootExpiry: 100 * day, TargetsExpiry: 40 * day, SnapshotExpiry: 10 * day, TimestampExpiry: day})
	f.publish(sigstoreTargets(t))
	c := newClient(t, f.url, f.root())
	c.mustFetch(tuf.TrustedRootTarget)
	for _, tc := range []struct {
		at   time.Duration
		want []string
	}{
		{11 * time.Hour, nil},
		{13 * time.Hour, []string{tuf.RoleTimestamp}},
		{6 * day, []string{tuf.RoleSnapshot, tuf.RoleTimestamp}},
		{21 * day, []string{tuf.RoleTargets, tuf.RoleSnapshot, tuf.RoleTimestamp}},
		{51 * day, []string{tuf.RoleRoot, tuf.RoleTargets, tuf.RoleSnapshot, tuf.RoleTimestamp}},
	} {
		// Each step is relative to the last renewal of everything: go
		// back to "now" and renew all first.
		f.clock.Set(tc.at)
		got, err := f.repo.Renew(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("after %v: renewed %v, want %v", tc.at, got, tc.want)
		}
		f.clock.Set(0)
		// Signed at a later time, the metadata is still valid now.
		c.mustFetch(tuf.TrustedRootTarget)
	}
	if v := f.version(tuf.RoleTimestamp); v != 5 {
		t.Errorf("timestamp version %d, want 5", v)
	}
}

// TestExpiredTimestampRefused: metadata whose expiry has passed is
// refused by the client; renewing it makes the repository usable again.
// The repository's clock runs behind, so what it signs is already
// expired by the client's clock.
func TestExpiredTimestampRefused(t *testing.T) {
	f := newFixture(t, tuf.Config{TimestampExpiry: time.Hour})
	f.publish(sigstoreTargets(t))
	c := newClient(t, f.url, f.root())
	c.mustFetch(tuf.TrustedRootTarget)

	f.clock.Set(-2 * time.Hour) // signs a timestamp that expired an hour ago
	if err := renewTimestamp(f); err != nil {
		t.Fatal(err)
	}
	_, err := c.fetch(tuf.TrustedRootTarget)
	if !isExpired(err) || !strings.Contains(err.Error(), "timestamp.json is expired") {
		t.Fatalf("client accepted or failed otherwise on an expired timestamp: %v", err)
	}
	// A new client refuses it as well.
	if _, err := newClient(t, f.url, f.root()).fetch(tuf.TrustedRootTarget); !isExpired(err) {
		t.Fatalf("new client: %v, want an expired-metadata error", err)
	}
	f.clock.Set(0)
	if got, err := f.repo.Renew(context.Background()); err != nil || !slices.Equal(got, []string{tuf.RoleTimestamp}) {
		t.Fatalf("renew of the expired timestamp: %v %v", got, err)
	}
	c.mustFetch(tuf.TrustedRootTarget)
}

// renewTimestamp forces a timestamp re-signing at the repository's clock:
// rotating the timestamp key is the one operation that always signs one.
func renewTimestamp(f *fixture) error {
	_, _, err := f.repo.Rotate(context.Background(), tuf.RoleTimestamp)
	return err
}

// TestTamperedRepositoryRefused: files changed on the server side without
// the keys (a substituted target, a timestamp signed by a stranger, an
// altered timestamp, a rolled back timestamp) are refused by the client.
func TestTamperedRepositoryRefused(t *testing.T) {
	timestamp := func(f *fixture) string { return filepath.Join(f.dir, "timestamp.json") }
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, f *fixture, c *client)
	}{
		{"target content", func(t *testing.T, f *fixture, c *client) {
			paths, _ := filepath.Glob(filepath.Join(f.dir, "targets", "*."+tuf.TrustedRootTarget))
			if len(paths) != 1 {
				t.Fatalf("target files %v", paths)
			}
			b, _ := os.ReadFile(paths[0])
			os.WriteFile(paths[0], bytes.Replace(b, []byte("sigstore"), []byte("sigstorf"), 1), 0o644)
		}},
		{"timestamp signed by another key", func(t *testing.T, f *fixture, c *client) {
			ts := readMeta(t, metadata.Timestamp(), timestamp(f))
			ts.Signed.Version++
			ts.ClearSignatures()
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			s, err := signature.LoadED25519Signer(priv)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ts.Sign(s); err != nil {
				t.Fatal(err)
			}
			writeMeta(t, ts, timestamp(f))
		}},
		{"timestamp altered after signing", func(t *testing.T, f *fixture, c *client) {
			ts := readMeta(t, metadata.Timestamp(), timestamp(f))
			ts.Signed.Version++
			ts.Signed.Expires = ts.Signed.Expires.Add(365 * 24 * time.Hour)
			writeMeta(t, ts, timestamp(f))
		}},
		{"timestamp rolled back", func(t *testing.T, f *fixture, c *client) {
			old, _ := os.ReadFile(timestamp(f))
			f.publish(map[string][]byte{tuf.TrustedRootTarget: []byte(`{"changed":true}`)})
			c.mustFetch(tuf.TrustedRootTarget) // the client now trusts timestamp version 2
			os.WriteFile(timestamp(f), old, 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tuf.Config{})
			f.publish(sigstoreTargets(t))
			c := newClient(t, f.url, f.root())
			c.mustFetch(tuf.TrustedRootTarget)
			tc.tamper(t, f, c)
			// The client's cached copy would hide a substituted target.
			os.RemoveAll(filepath.Join(c.cache, "targets"))
			_, err := c.fetch(tuf.TrustedRootTarget)
			if err == nil {
				t.Fatal("client accepted the tampered repository")
			}
			t.Logf("refused: %v", err)
		})
	}
}

func readMeta[T metadata.Roles](t *testing.T, md *metadata.Metadata[T], path string) *metadata.Metadata[T] {
	t.Helper()
	m, err := md.FromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func writeMeta[T metadata.Roles](t *testing.T, md *metadata.Metadata[T], path string) {
	t.Helper()
	b, err := md.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentWritersKeepOneChain: writers in parallel (two Repository
// values on one store, as the server and `hallmark tuf` are) serialise on
// the store's lock: every version is signed once and the chain verifies.
func TestConcurrentWritersKeepOneChain(t *testing.T) {
	f := newFixture(t, tuf.Config{})
	f.publish(sigstoreTargets(t))
	other := f.open(tuf.Config{})
	c := newClient(t, f.url, f.root())
	const rounds = 10
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	for i := range rounds {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := f.repo.Publish(context.Background(), map[string][]byte{tuf.TrustedRootTarget: []byte{byte('a' + i)}})
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, _, err := other.Rotate(context.Background(), tuf.Roles()[i%len(tuf.Roles())])
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if v := f.version(tuf.RoleRoot); v != 1+rounds {
		t.Errorf("root version %d after %d rotations, want %d", v, rounds, 1+rounds)
	}
	c.mustFetch(tuf.TrustedRootTarget)
	if v := c.trustedRootVersion(); v != 1+rounds {
		t.Errorf("client trusts root version %d, want %d", v, 1+rounds)
	}
}

// TestCrashBeforeRootJSON: a root version written without root.json being
// replaced (a crash between the two writes) is the newest root all the
// same, and the next change completes the write.
func TestCrashBeforeRootJSON(t *testing.T) {
	f := newFixture(t, tuf.Config{})
	f.publish(sigstoreTargets(t))
	v1, _ := os.ReadFile(filepath.Join(f.dir, "root.json"))
	if _, _, err := f.repo.Rotate(context.Background(), tuf.RoleRoot); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(f.dir, "root.json"), v1, 0o644) // as if the crash came first
	if v := f.version(tuf.RoleRoot); v != 2 {
		t.Fatalf("root version %d, want 2", v)
	}
	if _, _, err := f.repo.Rotate(context.Background(), tuf.RoleTargets); err != nil {
		t.Fatal(err)
	}
	md := readMeta(t, metadata.Root(), filepath.Join(f.dir, "root.json"))
	if md.Signed.Version != 3 {
		t.Errorf("root.json is version %d, want 3", md.Signed.Version)
	}
	newClient(t, f.url, v1).mustFetch(tuf.TrustedRootTarget)
}

// TestMissingKeyIsAnError: metadata that needs re-signing with a key the
// key directory lost is an error naming the key, never unsigned output.
func TestMissingKeyIsAnError(t *testing.T) {
	f := newFixture(t, tuf.Config{})
	f.publish(sigstoreTargets(t))
	id := f.status().Roles[slices.Index(tuf.Roles(), tuf.RoleTargets)].KeyIDs[0]
	if err := os.Remove(f.keys.Where(keystore.KeyItem("tuf-" + id))); err != nil {
		t.Fatal(err)
	}
	_, err := f.repo.Publish(context.Background(), map[string][]byte{tuf.TrustedRootTarget: []byte("{}")})
	if !errors.Is(err, tuf.ErrNoKey) || !strings.Contains(err.Error(), id) {
		t.Fatalf("publish without the targets key: %v", err)
	}
	// Rotating the lost key recovers: the root key signs the new one in.
	if _, _, err := f.repo.Rotate(context.Background(), tuf.RoleTargets); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.Publish(context.Background(), map[string][]byte{tuf.TrustedRootTarget: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
}

// TestUninitialized: operations other than Publish need a repository.
func TestUninitialized(t *testing.T) {
	f := newFixture(t, tuf.Config{})
	ctx := context.Background()
	if _, _, err := f.repo.Rotate(ctx, tuf.RoleRoot); !errors.Is(err, tuf.ErrUninitialized) {
		t.Errorf("rotate: %v", err)
	}
	if _, err := f.repo.Renew(ctx); !errors.Is(err, tuf.ErrUninitialized) {
		t.Errorf("renew: %v", err)
	}
	if _, err := f.repo.Root(ctx); !errors.Is(err, tuf.ErrUninitialized) {
		t.Errorf("root: %v", err)
	}
	if _, err := f.repo.Publish(ctx, map[string][]byte{"../x": []byte("x")}); err == nil {
		t.Error("a target name with a path was published")
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []tuf.Config{
		{TimestampExpiry: time.Second},
		{RootExpiry: -time.Hour},
		{CheckInterval: -time.Second},
	} {
		if _, err := tuf.New(&tuf.FileStore{}, tuf.KeystoreKeys(nil), nil, cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

// TestTamperedStoreIsNeverSigned: metadata in the store that our keys did
// not sign (written by someone with access to the directory but not the
// keys) stops every change with an error, instead of being signed anew and
// so vouched for.
func TestTamperedStoreIsNeverSigned(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, f *fixture)
	}{
		{"targets with another target", func(t *testing.T, f *fixture) {
			p := filepath.Join(f.dir, "1.targets.json")
			md := readMeta(t, metadata.Targets(), p)
			tf, _ := metadata.TargetFile().FromBytes("evil.json", []byte("{}"), "sha256")
			md.Signed.Targets["evil.json"] = tf
			writeMeta(t, md, p)
		}},
		{"timestamp signed by another key", func(t *testing.T, f *fixture) {
			p := filepath.Join(f.dir, "timestamp.json")
			md := readMeta(t, metadata.Timestamp(), p)
			md.ClearSignatures()
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			s, _ := signature.LoadED25519Signer(priv)
			md.Sign(s)
			writeMeta(t, md, p)
		}},
		{"a root version signed by another key", func(t *testing.T, f *fixture) {
			md := readMeta(t, metadata.Root(), filepath.Join(f.dir, "root.json"))
			md.Signed.Version = 2
			md.ClearSignatures()
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			s, _ := signature.LoadED25519Signer(priv)
			md.Sign(s)
			writeMeta(t, md, filepath.Join(f.dir, "2.root.json"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tuf.Config{})
			f.publish(sigstoreTargets(t))
			tc.tamper(t, f)
			before, _ := os.ReadFile(filepath.Join(f.dir, "timestamp.json"))
			for op, err := range map[string]error{
				"publish": func() error {
					_, err := f.repo.Publish(context.Background(), map[string][]byte{tuf.TrustedRootTarget: []byte("{}")})
					return err
				}(),
				"renew":  func() error { f.clock.Set(20 * time.Hour); _, err := f.repo.Renew(context.Background()); return err }(),
				"rotate": func() error { _, _, err := f.repo.Rotate(context.Background(), tuf.RoleTargets); return err }(),
			} {
				if err == nil || !strings.Contains(err.Error(), "restore the repository from a backup") {
					t.Errorf("%s on a tampered store: %v", op, err)
				}
			}
			if after, _ := os.ReadFile(filepath.Join(f.dir, "timestamp.json")); !bytes.Equal(before, after) {
				t.Error("a new timestamp was signed over the tampered store")
			}
		})
	}
}

// TestInterruptedRotation: a key rotation that stopped after writing the
// new root version (the role's metadata still signed with the old key) is
// completed by the next change, and clients follow.
func TestInterruptedRotation(t *testing.T) {
	f := newFixture(t, tuf.Config{})
	f.publish(sigstoreTargets(t))
	c := newClient(t, f.url, f.root())
	c.mustFetch(tuf.TrustedRootTarget)
	oldTS, _ := os.ReadFile(filepath.Join(f.dir, "timestamp.json"))
	oldRoot, _ := os.ReadFile(filepath.Join(f.dir, "root.json"))
	if _, _, err := f.repo.Rotate(context.Background(), tuf.RoleTimestamp); err != nil {
		t.Fatal(err)
	}
	// As if the process died right after writing 2.root.json.
	os.WriteFile(filepath.Join(f.dir, "timestamp.json"), oldTS, 0o644)
	os.WriteFile(filepath.Join(f.dir, "root.json"), oldRoot, 0o644)
	if _, err := c.fetch(tuf.TrustedRootTarget); err == nil {
		t.Fatal("client accepted a timestamp signed with a key root version 2 revoked")
	}
	got, err := f.repo.Renew(context.Background())
	if err != nil || !slices.Equal(got, []string{tuf.RoleTimestamp}) {
		t.Fatalf("completing the rotation: signed %v, %v", got, err)
	}
	c.mustFetch(tuf.TrustedRootTarget)
	if v := c.trustedRootVersion(); v != 2 {
		t.Errorf("client trusts root version %d, want 2", v)
	}
}
