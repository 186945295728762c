package index

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// SimpleSigningLayer exposes the per-layer path to the fuzz tests, which
// would otherwise spend their time storing blobs: s is judged under the
// policy governing its repository.
func (ix *Indexer) SimpleSigningLayer(s *meta.Signature, l oci.Descriptor, payload []byte) {
	pol, err := ix.policy(context.Background(), s.Repository)
	if err != nil {
		panic(err)
	}
	ix.record(context.Background(), s, l, layerKey(s.Subject, l, false), payload, nil, pol)
}

// Signatures returns the records of signature manifest m of subject as a
// push's job would, without storing them.
func (ix *Indexer) Signatures(ctx context.Context, m *meta.Manifest, subject digest.Digest) []meta.Signature {
	pol, err := ix.policy(ctx, m.Repository)
	if err != nil {
		panic(err)
	}
	b := newBatch(0)
	sm := parseSigManifest(m, subject, 0)
	ix.read(ctx, b, []*sigManifest{sm})
	return ix.indexManifest(ctx, sm, pol, b)
}

// RunBatch claims and indexes one batch of any image's jobs, as a worker
// of Run does; it returns how many jobs it claimed.
func (ix *Indexer) RunBatch(ctx context.Context) (int, error) {
	return ix.runBatch(ctx, ix.owner, "", "")
}
