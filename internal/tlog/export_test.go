package tlog

import (
	"context"
	"errors"

	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// AppendBulk appends already canonical entries through the sequencer's own
// integrate path in one transaction (benchmarks build large trees with it;
// nothing else may append meanwhile).
func (l *Log) AppendBulk(ctx context.Context, cs []*rekor.Canonical) error {
	ps := make([]*pending, len(cs))
	for i, c := range cs {
		ps[i] = &pending{leaf: c.LeafHash, body: c.Body, done: make(chan struct{})}
	}
	l.mu.Lock()
	l.queue = append(l.queue, ps...)
	maxBatch := l.maxBatch
	l.maxBatch = len(l.queue)
	l.mu.Unlock()
	l.integrate(ctx)
	l.mu.Lock()
	l.maxBatch = maxBatch
	l.mu.Unlock()
	for _, p := range ps {
		if p.err != nil {
			return p.err
		}
		if p.dup {
			return errors.New("tlog: bulk append of an entry already in the log")
		}
	}
	return nil
}

// InclusionProofAt is the storage-backed inclusion proof used by reads.
func (l *Log) InclusionProofAt(ctx context.Context, index, size uint64) ([][]byte, error) {
	return l.inclusion(ctx, index, size)
}

// Queued is the number of submissions waiting for a batch.
func (l *Log) Queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue)
}
