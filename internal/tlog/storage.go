package tlog

import (
	"context"
	"math/bits"
	"time"
)

// NodeID names a node of the Merkle tree: level 0 holds the leaf hashes,
// node (l, i) covers leaves [i*2^l, (i+1)*2^l).
type NodeID struct {
	Level uint
	Index uint64
}

// PostOrder is the node's position in the order nodes are completed as
// leaves are appended (the post-order of the tree): leaf 0 is 0, leaf 1 is
// 1, their parent is 2, and so on. Storing nodes under this key makes every
// append an append at the end of the key space.
func (id NodeID) PostOrder() uint64 {
	last := (id.Index+1)<<id.Level - 1 // the leaf that completes the node
	return 2*last - uint64(bits.OnesCount64(last)) + uint64(id.Level)
}

// Entry is one logged entry as stored.
type Entry struct {
	Index          uint64
	LeafHash       [32]byte
	Body           []byte // canonical JSON
	IntegratedTime int64  // Unix seconds
}

// Node is a completed (perfect subtree) node hash.
type Node struct {
	ID   NodeID
	Hash [32]byte
}

// TreeState is the log's committed head.
type TreeState struct {
	TreeID     int64
	Size       uint64
	Root       [32]byte
	Range      [][32]byte // compact range of [0, Size): the perfect subtree roots, left to right
	Checkpoint []byte     // signed note for (Size, Root); empty for a new tree
	CreatedAt  time.Time
}

// Batch is what one sequencing transaction writes: entries at indices
// State.Size-len(Entries) .. State.Size-1, every node those appends
// completed (leaves included), and the new head.
type Batch struct {
	Entries []Entry
	Nodes   []Node
	State   TreeState
}

// SequenceFunc computes a batch from the head read inside the transaction.
// existing maps the leaf hashes asked about that are already logged to their
// indices. It must not block on I/O.
type SequenceFunc func(cur TreeState, existing map[[32]byte]uint64) (*Batch, error)

// Leaves returns the leaf hashes of the entries to sequence. A Sequencer
// calls it once the head is locked, so that what was submitted while
// another process held the head joins the batch (group commit across
// replicas); it calls it again when the transaction starts over: each call
// returns the entries of the previous calls and perhaps more. fn is called
// for the entries of the latest call.
type Leaves func() [][32]byte

// Sequencer is the write side of a log's storage. The database is the
// sequencer: Sequence runs in one transaction that serializes against every
// other Sequence on the same database (from any process) and commits
// durably before it returns.
type Sequencer interface {
	// Init returns the head, first creating an empty tree with treeID if
	// the database has none (a tree created concurrently by another process
	// wins; its ID is returned).
	Init(ctx context.Context, treeID int64, now time.Time) (TreeState, error)
	// Sequence locks the head, takes the entries to sequence (leaves),
	// reads which are logged, calls fn, and writes what it returns, all in
	// one transaction. It may call fn more than once (the transaction
	// started over); only what the last call returned is written.
	Sequence(ctx context.Context, leaves Leaves, fn SequenceFunc) error
}

// Reader is the read side of a log's storage.
type Reader interface {
	// Head returns the latest committed head.
	Head(ctx context.Context) (TreeState, error)
	// EntryByLeafHash and EntryByIndex return ErrNotFound when absent.
	EntryByLeafHash(ctx context.Context, leafHash [32]byte) (*Entry, error)
	EntryByIndex(ctx context.Context, index uint64) (*Entry, error)
	// Nodes returns the hashes of completed nodes, in the order asked;
	// ErrNotFound if one is missing.
	Nodes(ctx context.Context, ids []NodeID) ([][32]byte, error)
}

// Storage is everything a Log needs from its database.
type Storage interface {
	Sequencer
	Reader
}
