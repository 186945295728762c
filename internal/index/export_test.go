package index

import (
	"context"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// SimpleSigningLayer exposes the per-layer path to the fuzz tests, which
// would otherwise spend their time storing blobs.
func (ix *Indexer) SimpleSigningLayer(s *meta.Signature, l oci.Descriptor, payload []byte) {
	ix.record(context.Background(), s, l, payload)
}
