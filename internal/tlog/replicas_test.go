package tlog_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/tlog"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/rekor/rekortest"
)

// batchSizes is a storage that says when a Sequence call starts and
// records how many leaves each committed one took (the last call of its
// Leaves).
type batchSizes struct {
	tlog.Storage
	entered chan struct{}
	mu      sync.Mutex
	sizes   []int
}

func (b *batchSizes) Sequence(ctx context.Context, leaves tlog.Leaves, fn tlog.SequenceFunc) error {
	b.entered <- struct{}{}
	n := 0
	err := b.Storage.Sequence(ctx, func() [][32]byte { h := leaves(); n = len(h); return h }, fn)
	if err == nil && n > 0 {
		b.mu.Lock()
		b.sizes = append(b.sizes, n)
		b.mu.Unlock()
	}
	return err
}

// While another replica holds the log's head (a real transaction on the
// same database, from another store), the entries submitted to this
// replica queue up; once the head is free they go in one batch, not the
// first alone and the rest after it.
func TestBatchTakesWhatQueuedWhileWaitingForTheHead(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	other := tlogStore(t, openStore(t, path))
	rec := &batchSizes{Storage: tlogStore(t, openStore(t, path)), entered: make(chan struct{}, 16)}
	l, err := tlog.New(ctx, rec, rekortest.NewKey(t), nil, tlog.Config{Hostname: "replicas.test"})
	if err != nil {
		t.Fatal(err)
	}
	for len(rec.entered) > 0 { // tlog.New's own calls
		<-rec.entered
	}

	held, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- other.Sequence(ctx, func() [][32]byte { return nil }, func(tlog.TreeState, map[[32]byte]uint64) (*tlog.Batch, error) {
			close(held)
			<-release
			return nil, nil
		})
	}()
	<-held

	const n = 10
	k := rekortest.NewKey(t)
	res := make(chan error, n)
	add := func(i int) {
		c, err := rekor.Canonicalize(rekortest.SignedEntry(t, k, fmt.Appendf(nil, "entry %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		go func() { _, err := l.Add(ctx, c); res <- err }()
	}
	add(0) // becomes the writer: its batch waits for the head
	<-rec.entered
	first := l.Queued() // 1 if the batch takes its entries only once it holds the head
	for i := 1; i < n; i++ {
		add(i)
	}
	for l.Queued() != first+n-1 {
		runtime.Gosched()
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-res; err != nil {
			t.Fatal(err)
		}
	}
	if len(rec.sizes) != 1 || rec.sizes[0] != n {
		t.Fatalf("batches %v, want one of %d", rec.sizes, n)
	}
}
