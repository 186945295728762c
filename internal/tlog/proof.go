package tlog

import (
	"bytes"
	"context"
	"errors"
	"strings"

	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// InclusionProof returns the inclusion proof, against the current tree
// head, of e as a signature carries it (a cosign bundle annotation: body,
// index, log ID and SET, no proof), or nil when e is not this log's entry:
// another log's ID, an index beyond the tree, or another body at that
// index. It lets an exported sigstore bundle of a legacy signature be
// v0.3 (inclusion proof required).
func (l *Log) InclusionProof(ctx context.Context, e *rekor.LogEntry) (*rekor.InclusionProof, error) {
	if e == nil || e.LogIndex < 0 || !strings.EqualFold(e.LogID, l.logIDHex) {
		return nil, nil
	}
	got, err := l.EntryByIndex(ctx, uint64(e.LogIndex))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(got.Body, e.Body) || got.IntegratedTime != e.IntegratedTime {
		return nil, nil
	}
	return got.Proof.Rekor(), nil
}

// Rekor is p in the log's wire types.
func (p InclusionProof) Rekor() *rekor.InclusionProof {
	return &rekor.InclusionProof{LogIndex: int64(p.LogIndex), TreeSize: int64(p.TreeSize), RootHash: p.RootHash[:],
		Hashes: p.Hashes, Checkpoint: string(p.Checkpoint)}
}
