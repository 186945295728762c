package metatest

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
	"github.com/hallmark-dev/hallmark/internal/tlog"
)

func openTlog(t *testing.T, db DB) *sqlstore.TlogStore {
	t.Helper()
	ts, err := open(t, db).TransparencyLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func leaf(i int) [32]byte { return sha256.Sum256([]byte{byte(i), byte(i >> 8)}) }

// leaves is a fixed batch of leaf hashes.
func leaves(hs ...[32]byte) tlog.Leaves { return func() [][32]byte { return hs } }

// A one-entry batch extending cur, with made-up node hashes (the storage
// does not check tree arithmetic, only sequencing).
func oneEntry(cur tlog.TreeState, h [32]byte) *tlog.Batch {
	st := cur
	st.Size++
	st.Root = h
	st.Range = [][32]byte{h}
	st.Checkpoint = []byte("checkpoint")
	return &tlog.Batch{
		Entries: []tlog.Entry{{Index: cur.Size, LeafHash: h, Body: []byte(`{"n":1}`), IntegratedTime: 42}},
		Nodes:   []tlog.Node{{ID: tlog.NodeID{Level: 0, Index: cur.Size}, Hash: h}},
		State:   st,
	}
}

// testTlogStorage: two stores (two processes or replicas) share one log.
func testTlogStorage(t *testing.T, be Backend) {
	db := be.NewDB(t)
	a, b := openTlog(t, db), openTlog(t, db)
	now := time.Now()
	h1, err := a.Init(ctx, 111, now)
	if err != nil {
		t.Fatal(err)
	}
	// A second process creating the tree concurrently gets the first tree.
	h2, err := b.Init(ctx, 222, now)
	if err != nil {
		t.Fatal(err)
	}
	if h1.TreeID != 111 || h2.TreeID != 111 || h1.Size != 0 || h1.Root != sha256.Sum256(nil) {
		t.Fatalf("init: %+v / %+v", h1, h2)
	}

	// Sequence sees which leaf hashes exist and writes the batch.
	err = a.Sequence(ctx, leaves(leaf(1)), func(cur tlog.TreeState, existing map[[32]byte]uint64) (*tlog.Batch, error) {
		if len(existing) != 0 {
			t.Errorf("existing %v in an empty log", existing)
		}
		return oneEntry(cur, leaf(1)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Sequence(ctx, leaves(leaf(1), leaf(2)), func(cur tlog.TreeState, existing map[[32]byte]uint64) (*tlog.Batch, error) {
		if idx, ok := existing[leaf(1)]; !ok || idx != 0 || len(existing) != 1 || cur.Size != 1 {
			t.Errorf("other store sees size %d, existing %v", cur.Size, existing)
		}
		return nil, nil // nothing to write
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := b.EntryByIndex(ctx, 0)
	if err != nil || e.LeafHash != leaf(1) || string(e.Body) != `{"n":1}` || e.IntegratedTime != 42 {
		t.Fatalf("entry: %+v %v", e, err)
	}
	if e2, err := b.EntryByLeafHash(ctx, leaf(1)); err != nil || e2.Index != 0 {
		t.Fatalf("by hash: %+v %v", e2, err)
	}
	hs, err := b.Nodes(ctx, []tlog.NodeID{{Level: 0, Index: 0}})
	if err != nil || hs[0] != leaf(1) {
		t.Fatalf("nodes: %v %v", hs, err)
	}
	head, _ := b.Head(ctx)
	if head.Size != 1 || head.Root != leaf(1) || string(head.Checkpoint) != "checkpoint" || len(head.Range) != 1 {
		t.Fatalf("head %+v", head)
	}

	// Not found, and batches that do not extend the head, are errors.
	if _, err := a.EntryByIndex(ctx, 5); !errors.Is(err, tlog.ErrNotFound) {
		t.Fatalf("missing index: %v", err)
	}
	if _, err := a.EntryByLeafHash(ctx, leaf(9)); !errors.Is(err, tlog.ErrNotFound) {
		t.Fatalf("missing hash: %v", err)
	}
	if _, err := a.Nodes(ctx, []tlog.NodeID{{Level: 3, Index: 7}}); !errors.Is(err, tlog.ErrNotFound) {
		t.Fatalf("missing node: %v", err)
	}
	for name, mutate := range map[string]func(*tlog.Batch){
		"wrong size":  func(b *tlog.Batch) { b.State.Size += 1 },
		"wrong index": func(b *tlog.Batch) { b.Entries[0].Index = 7 },
		"other tree":  func(b *tlog.Batch) { b.State.TreeID = 5 },
	} {
		err := a.Sequence(ctx, leaves(), func(cur tlog.TreeState, _ map[[32]byte]uint64) (*tlog.Batch, error) {
			bt := oneEntry(cur, leaf(3))
			mutate(bt)
			return bt, nil
		})
		if err == nil {
			t.Fatalf("%s: batch accepted", name)
		}
	}
	// A duplicate leaf hash violates the unique index and rolls back.
	err = a.Sequence(ctx, leaves(), func(cur tlog.TreeState, _ map[[32]byte]uint64) (*tlog.Batch, error) {
		return oneEntry(cur, leaf(1)), nil
	})
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "unique") {
		t.Fatalf("duplicate leaf: %v", err)
	}
	if head, _ := a.Head(ctx); head.Size != 1 {
		t.Fatalf("failed batches changed the head: size %d", head.Size)
	}

	// The batch is what leaves returns once the head is locked, one of
	// them logged already: fn sees which, and the rest is written.
	batch := [][32]byte{leaf(5), leaf(1), leaf(6)}
	err = b.Sequence(ctx, leaves(batch...), func(cur tlog.TreeState, existing map[[32]byte]uint64) (*tlog.Batch, error) {
		if idx, ok := existing[leaf(1)]; !ok || idx != 0 || len(existing) != 1 {
			t.Errorf("existing %v, want leaf 1 at 0 only", existing)
		}
		bt := &tlog.Batch{State: cur}
		for _, h := range batch {
			if _, ok := existing[h]; ok {
				continue
			}
			one := oneEntry(bt.State, h)
			bt.Entries, bt.Nodes, bt.State = append(bt.Entries, one.Entries...), append(bt.Nodes, one.Nodes...), one.State
		}
		return bt, nil
	})
	if err != nil {
		t.Fatalf("batch with a logged entry: %v", err)
	}
	if e, err := a.EntryByLeafHash(ctx, leaf(6)); err != nil || e.Index != 2 {
		t.Fatalf("second new entry: %+v %v", e, err)
	}
	if head, _ := a.Head(ctx); head.Size != 3 {
		t.Fatalf("head size %d, want 3", head.Size)
	}
}
