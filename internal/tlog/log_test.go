package tlog_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/hallmark-dev/hallmark/internal/meta/postgres"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/internal/tlog"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/rekor/rekortest"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// mth is the RFC 6962 Merkle tree hash of leaf hashes, written out from the
// RFC's recursive definition as an independent reference.
func mth(leaves [][32]byte) [32]byte {
	switch n := len(leaves); n {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	default:
		k := 1
		for k*2 < n {
			k *= 2
		}
		l, r := mth(leaves[:k]), mth(leaves[k:])
		return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
	}
}

// checkEntry verifies everything a client checks on a log entry: the SET,
// the inclusion proof against the proof's root, and the checkpoint's
// signature, size and root.
func checkEntry(t *testing.T, l *tlog.Log, e *tlog.LogEntry) *rekor.SignedCheckpoint {
	t.Helper()
	pub := l.PublicKey().(*ecdsa.PublicKey)
	id := l.LogID()
	// The SET is checked with the client's own verifier, as cosign would.
	logID := hex.EncodeToString(id[:])
	ve := &rekor.LogEntry{Body: e.Body, IntegratedTime: e.IntegratedTime, LogIndex: int64(e.Index), LogID: logID, SET: e.SET}
	if err := verify.VerifySET(ve, map[string]root.LogKey{logID: {Key: pub}}); err != nil {
		t.Fatalf("entry %d: %v", e.Index, err)
	}
	if e.LeafHash != rekor.LeafHash(e.Body) {
		t.Fatalf("entry %d: leaf hash does not match body", e.Index)
	}
	if want := l.EntryID(e.LeafHash); e.EntryID != want || !strings.HasSuffix(want, hex.EncodeToString(e.LeafHash[:])) || len(want) != 80 {
		t.Fatalf("entry ID %s, want %s", e.EntryID, want)
	}
	if e.Proof.LogIndex != e.Index {
		t.Fatalf("proof log index %d for entry %d", e.Proof.LogIndex, e.Index)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, e.Index, e.Proof.TreeSize, e.LeafHash[:], e.Proof.Hashes, e.Proof.RootHash[:]); err != nil {
		t.Fatalf("entry %d: inclusion proof: %v", e.Index, err)
	}
	sc, err := rekor.VerifyCheckpoint(e.Proof.Checkpoint, pub)
	if err != nil {
		t.Fatalf("entry %d: %v\n%s", e.Index, err, e.Proof.Checkpoint)
	}
	if sc.Size != e.Proof.TreeSize || sc.Root != e.Proof.RootHash || sc.Origin != l.Origin() {
		t.Fatalf("checkpoint (%s, %d, %x) does not match proof (%d, %x)", sc.Origin, sc.Size, sc.Root, e.Proof.TreeSize, e.Proof.RootHash)
	}
	return sc
}

func add(t *testing.T, l *tlog.Log, entry []byte) *tlog.LogEntry {
	t.Helper()
	c, err := rekor.Canonicalize(entry)
	if err != nil {
		t.Fatal(err)
	}
	e, err := l.Add(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestAppendProofsAndConsistency(t *testing.T) {
	ctx := context.Background()
	l := newTestLog(t, tlog.Config{})
	if l.TreeID() <= 0 {
		t.Fatalf("tree ID %d must be positive", l.TreeID())
	}
	if got := l.Origin(); got != fmt.Sprintf("rekor.test - %d", l.TreeID()) {
		t.Fatalf("origin %q", got)
	}
	head, err := l.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head.Size != 0 || head.Root != sha256.Sum256(nil) {
		t.Fatalf("empty head: size %d root %x", head.Size, head.Root)
	}
	if _, err := rekor.VerifyCheckpoint(head.Checkpoint, &l.key.PublicKey); err != nil {
		t.Fatalf("empty tree checkpoint: %v", err)
	}

	k := rekortest.NewKey(t)
	const n = 37
	var leaves [][32]byte
	roots := map[uint64][32]byte{0: sha256.Sum256(nil)}
	for i := 0; i < n; i++ {
		e := add(t, l.Log, rekortest.SignedEntry(t, k, []byte(fmt.Sprint("artifact ", i))))
		if e.Index != uint64(i) {
			t.Fatalf("entry %d got index %d", i, e.Index)
		}
		checkEntry(t, l.Log, e)
		leaves = append(leaves, e.LeafHash)
		if want := mth(leaves); e.Proof.RootHash != want || e.Proof.TreeSize != uint64(i+1) {
			t.Fatalf("after %d entries root %x size %d, reference MTH %x", i+1, e.Proof.RootHash, e.Proof.TreeSize, want)
		}
		roots[e.Proof.TreeSize] = e.Proof.RootHash
	}
	// Reads prove against the latest head.
	for i := 0; i < n; i++ {
		byIdx, err := l.EntryByIndex(ctx, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		checkEntry(t, l.Log, byIdx)
		if byIdx.Proof.TreeSize != n {
			t.Fatalf("read proof at size %d, head is %d", byIdx.Proof.TreeSize, n)
		}
		for _, id := range []string{byIdx.EntryID, byIdx.EntryID[16:], strings.ToUpper(byIdx.EntryID)} {
			byID, err := l.EntryByUUID(ctx, id)
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			if byID.Index != uint64(i) {
				t.Fatalf("UUID %s gave index %d", id, byID.Index)
			}
		}
	}
	// Every consistency proof verifies.
	for m := uint64(0); m <= n; m++ {
		for size := m; size <= n; size++ {
			root, hs, err := l.Consistency(ctx, m, size)
			if err != nil {
				t.Fatalf("consistency %d->%d: %v", m, size, err)
			}
			if root != roots[size] {
				t.Fatalf("root at %d: %x, want %x", size, root, roots[size])
			}
			r1 := roots[m]
			if m == 0 {
				continue // nothing to prove from the empty tree
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, m, size, hs, r1[:], root[:]); err != nil {
				t.Fatalf("consistency %d->%d does not verify: %v", m, size, err)
			}
		}
	}
	if _, _, err := l.Consistency(ctx, 5, 4); !errors.Is(err, tlog.ErrBadRequest) {
		t.Fatalf("first > last: %v", err)
	}
	if _, _, err := l.Consistency(ctx, 1, n+1); !errors.Is(err, tlog.ErrBadRequest) {
		t.Fatalf("last beyond the head: %v", err)
	}
	if _, err := l.EntryByIndex(ctx, n); !errors.Is(err, tlog.ErrNotFound) {
		t.Fatalf("index beyond the head: %v", err)
	}
	if _, err := l.EntryByUUID(ctx, strings.Repeat("ab", 32)); !errors.Is(err, tlog.ErrNotFound) {
		t.Fatalf("unknown UUID: %v", err)
	}
	if _, err := l.EntryByUUID(ctx, "0000000000000001"+strings.Repeat("ab", 32)); !errors.Is(err, tlog.ErrNotFound) {
		t.Fatalf("UUID of another tree: %v", err)
	}
	for _, bad := range []string{"xyz", strings.Repeat("zz", 32), strings.Repeat("a", 70)} {
		if _, err := l.EntryByUUID(ctx, bad); !errors.Is(err, tlog.ErrBadRequest) {
			t.Fatalf("malformed UUID %q: %v", bad, err)
		}
	}
}

func TestConcurrentAppendsAreBatched(t *testing.T) {
	l := newTestLog(t, tlog.Config{})
	const workers, each = 32, 12
	var mu sync.Mutex
	got := map[uint64]*tlog.LogEntry{}
	sizes := map[uint64]bool{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := rekortest.NewKey(t)
			for i := 0; i < each; i++ {
				c, err := rekor.Canonicalize(rekortest.SignedEntry(t, k, []byte(fmt.Sprint(w, "/", i))))
				if err != nil {
					t.Error(err)
					return
				}
				e, err := l.Add(context.Background(), c)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if got[e.Index] != nil {
					t.Errorf("index %d handed out twice", e.Index)
				}
				got[e.Index] = e
				sizes[e.Proof.TreeSize] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	leaves := make([][32]byte, workers*each)
	for i := range leaves {
		e := got[uint64(i)]
		if e == nil {
			t.Fatalf("index %d missing: indices are not contiguous", i)
		}
		checkEntry(t, l.Log, e)
		leaves[i] = e.LeafHash
	}
	head, err := l.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if head.Size != uint64(len(leaves)) || head.Root != mth(leaves) {
		t.Fatalf("head %d/%x, reference %d/%x", head.Size, head.Root, len(leaves), mth(leaves))
	}
	t.Logf("%d entries committed in %d batches (distinct tree sizes)", len(leaves), len(sizes))
}

func TestDuplicates(t *testing.T) {
	ctx := context.Background()
	l := newTestLog(t, tlog.Config{})
	k := rekortest.NewKey(t)
	entry := rekortest.SignedEntry(t, k, []byte("once"))
	first := add(t, l.Log, entry)
	c, _ := rekor.Canonicalize(entry)
	_, err := l.Add(ctx, c)
	var dup *tlog.DuplicateError
	if !errors.As(err, &dup) || dup.EntryID != first.EntryID || dup.Index != first.Index {
		t.Fatalf("second add: %v, want duplicate of %s", err, first.EntryID)
	}
	if !strings.Contains(err.Error(), "an equivalent entry already exists in the transparency log with UUID "+first.EntryID) {
		t.Fatalf("message %q", err)
	}

	// The same new entry submitted concurrently: one wins, the rest are
	// duplicates of it, whether they meet in one batch or not.
	c2, _ := rekor.Canonicalize(rekortest.SignedEntry(t, k, []byte("race")))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var wins, dups int
	var index uint64
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := l.Add(ctx, c2)
			mu.Lock()
			defer mu.Unlock()
			var d *tlog.DuplicateError
			switch {
			case err == nil:
				wins++
				index = e.Index
			case errors.As(err, &d):
				dups++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || dups != 15 {
		t.Fatalf("%d successes and %d duplicates, want 1 and 15", wins, dups)
	}
	head, _ := l.Head(ctx)
	if head.Size != 2 || index != 1 {
		t.Fatalf("head size %d, winner index %d", head.Size, index)
	}
}

// replicaStores returns two stores (two replicas) over one new database
// of the backend.
func replicaStores(t *testing.T, backend string) [2]tlog.Storage {
	t.Helper()
	var out [2]tlog.Storage
	var open func() *sqlstore.Store
	switch backend {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "hallmark.db")
		open = func() *sqlstore.Store { return openStore(t, path) }
	case "postgres":
		url := testenv.Postgres(t)
		open = func() *sqlstore.Store {
			st, err := postgres.Open(context.Background(), postgres.Config{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}
	}
	for i := range out {
		out[i] = tlogStore(t, open())
	}
	return out
}

// Two servers (two Stores and Logs on one database, as replicas share a
// database) append concurrently: the database sequences them into one
// consistent tree. Every entry's proof verifies against the checkpoint it
// came with, both replicas serve the same head, and every checkpoint seen
// is consistent with the final one (proved by either replica).
func TestReplicasShareOneTree(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { testReplicas(t, backend) })
	}
}

func testReplicas(t *testing.T, backend string) {
	ctx := context.Background()
	key := rekortest.NewKey(t)
	var logs [2]*tlog.Log
	for i, st := range replicaStores(t, backend) {
		l, err := tlog.New(ctx, st, key, nil, tlog.Config{Hostname: "replica-a"})
		if err != nil {
			t.Fatal(err)
		}
		logs[i] = l
	}
	if logs[0].TreeID() != logs[1].TreeID() {
		t.Fatalf("replicas see tree IDs %d and %d", logs[0].TreeID(), logs[1].TreeID())
	}
	const writers, perWriter = 6, 15
	var wg sync.WaitGroup
	var mu sync.Mutex
	all := map[uint64]*tlog.LogEntry{}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := logs[w%2]
			k := rekortest.NewKey(t)
			for i := 0; i < perWriter; i++ {
				c, _ := rekor.Canonicalize(rekortest.SignedEntry(t, k, []byte(fmt.Sprint(w, i))))
				e, err := l.Add(ctx, c)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if _, ok := all[e.Index]; ok {
					t.Errorf("index %d assigned twice", e.Index)
				}
				all[e.Index] = e
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const total = writers * perWriter
	leaves := make([][32]byte, total)
	for i := range leaves {
		e, ok := all[uint64(i)]
		if !ok {
			t.Fatalf("index %d missing", i)
		}
		leaves[i] = e.LeafHash
	}
	heads := [2]tlog.TreeState{}
	for i, l := range logs {
		h, err := l.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if h.Size != total || h.Root != mth(leaves) {
			t.Fatalf("replica %d: head %d %x, want %d %x", i, h.Size, h.Root, total, mth(leaves))
		}
		heads[i] = h
	}
	if string(heads[0].Checkpoint) != string(heads[1].Checkpoint) {
		t.Fatalf("replicas serve different checkpoints:\n%s\n%s", heads[0].Checkpoint, heads[1].Checkpoint)
	}
	// Each answer's inclusion proof and checkpoint, as the client got them;
	// then the checkpoints it saw, proved consistent with the final tree by
	// the other replica.
	seen := map[uint64][32]byte{}
	for i := 0; i < total; i++ {
		e := all[uint64(i)]
		sc := checkEntry(t, logs[0], e)
		if r, ok := seen[sc.Size]; ok && r != sc.Root {
			t.Fatalf("two roots for tree size %d", sc.Size)
		}
		seen[sc.Size] = sc.Root
	}
	if len(seen) < 2 {
		t.Logf("only %d distinct checkpoints seen", len(seen))
	}
	for size, r := range seen {
		for _, l := range logs {
			root, hs, err := l.Consistency(ctx, size, total)
			if err != nil {
				t.Fatal(err)
			}
			if root != heads[0].Root {
				t.Fatalf("consistency root %x, head %x", root, heads[0].Root)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size, total, hs, r[:], root[:]); err != nil {
				t.Fatalf("checkpoint at size %d is not consistent with the final tree: %v", size, err)
			}
		}
	}
	// Between consecutive checkpoints too: each replica proves size i to
	// size j and computes the root of size j the other replica signed.
	sizes := slices.Sorted(maps.Keys(seen))
	for k := 1; k < len(sizes); k++ {
		i, j := sizes[k-1], sizes[k]
		for _, l := range logs {
			root, hs, err := l.Consistency(ctx, i, j)
			if err != nil {
				t.Fatal(err)
			}
			ri, rj := seen[i], seen[j]
			if root != rj {
				t.Fatalf("root of size %d: %x, signed %x", j, root, rj)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, i, j, hs, ri[:], rj[:]); err != nil {
				t.Fatalf("checkpoints at sizes %d and %d are not consistent: %v", i, j, err)
			}
		}
	}
	// Both replicas serve every entry with a proof against the final head.
	for i := 0; i < total; i += 7 {
		for _, l := range logs {
			e, err := l.EntryByIndex(ctx, uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			if e.Proof.TreeSize != total {
				t.Fatalf("entry %d proved against size %d", i, e.Proof.TreeSize)
			}
			checkEntry(t, l, e)
		}
	}
}

func TestReopenKeepsTreeAndResigns(t *testing.T) {
	ctx := context.Background()
	l := newTestLog(t, tlog.Config{})
	k := rekortest.NewKey(t)
	e := add(t, l.Log, rekortest.SignedEntry(t, k, []byte("durable")))
	add(t, l.Log, rekortest.SignedEntry(t, k, []byte("durable 2")))

	// Same key, same name: same tree, same signed head.
	again := openTestLog(t, l.path, l.key, tlog.Config{})
	h1, _ := l.Head(ctx)
	h2, _ := again.Head(ctx)
	if again.TreeID() != l.TreeID() || h2.Size != 2 || string(h2.Checkpoint) != string(h1.Checkpoint) {
		t.Fatalf("reopened: tree %d size %d, checkpoint changed: %v", again.TreeID(), h2.Size, string(h2.Checkpoint) != string(h1.Checkpoint))
	}
	got, err := again.EntryByUUID(ctx, e.EntryID)
	if err != nil || string(got.Body) != string(e.Body) || got.IntegratedTime != e.IntegratedTime {
		t.Fatalf("entry after reopen: %v", err)
	}

	// A new hostname re-signs the head under the new origin.
	renamed := openTestLog(t, l.path, l.key, tlog.Config{Hostname: "rekor.renamed"})
	h3, _ := renamed.Head(ctx)
	sc, err := rekor.VerifyCheckpoint(h3.Checkpoint, &l.key.PublicKey)
	if err != nil || sc.Origin != fmt.Sprintf("rekor.renamed - %d", l.TreeID()) || sc.Size != 2 || sc.Root != h1.Root {
		t.Fatalf("re-signed checkpoint: %v %+v", err, sc)
	}
}

func TestRejectsNonP256Key(t *testing.T) {
	st := tlogStore(t, openStore(t, t.TempDir()+"/db"))
	k := rekortest.NewKey(t)
	if _, err := tlog.New(context.Background(), st, k, nil, tlog.Config{Hostname: "a b"}); err == nil {
		t.Fatal("hostname with a space accepted")
	}
	_, edKey := mustEd25519(t)
	if _, err := tlog.New(context.Background(), st, edKey, nil, tlog.Config{Hostname: "x"}); err == nil || !strings.Contains(err.Error(), "ECDSA P-256") {
		t.Fatalf("Ed25519 log key: %v", err)
	}
}
