package rekor

import (
	"bytes"
	"crypto/ecdsa"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// VerifyInclusion checks e's inclusion proof: the RFC 6962 leaf hash of the
// body, through the proof hashes, gives the root hash, and that root hash
// and tree size are those of a checkpoint signed by key. Which key to
// trust, and when, is the caller's decision. Errors wrap ErrInclusionProof.
func VerifyInclusion(e *LogEntry, key *ecdsa.PublicKey) error {
	p := e.Proof
	if p == nil {
		return fmt.Errorf("%w: the entry carries no inclusion proof", ErrInclusionProof)
	}
	if p.LogIndex < 0 || p.TreeSize <= 0 || p.LogIndex >= p.TreeSize {
		return fmt.Errorf("%w: index %d is not inside a tree of size %d", ErrInclusionProof, p.LogIndex, p.TreeSize)
	}
	leaf := LeafHash(e.Body)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(p.LogIndex), uint64(p.TreeSize), leaf[:], p.Hashes, p.RootHash); err != nil {
		return fmt.Errorf("%w: the entry is not at index %d of the tree of size %d with root %x: %v", ErrInclusionProof, p.LogIndex, p.TreeSize, p.RootHash, err)
	}
	if p.Checkpoint == "" {
		return fmt.Errorf("%w: no signed checkpoint for the proof's tree", ErrInclusionProof)
	}
	cp, err := VerifyCheckpoint([]byte(p.Checkpoint), key)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInclusionProof, err)
	}
	if cp.Size != uint64(p.TreeSize) || !bytes.Equal(cp.Root[:], p.RootHash) {
		return fmt.Errorf("%w: the proof is for a tree of size %d with root %x, but the log's signed checkpoint is for size %d with root %x (a proof for another tree)",
			ErrInclusionProof, p.TreeSize, p.RootHash, cp.Size, cp.Root)
	}
	return nil
}
