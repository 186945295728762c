package tlog

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// Config configures a Log.
type Config struct {
	// Hostname names the log in checkpoints: the signer name, and the
	// origin "<Hostname> - <treeID>" as Rekor v1 writes it. Required; no
	// spaces or '+'.
	Hostname string
	// MaxBatch bounds how many queued submissions one transaction appends
	// (default 512).
	MaxBatch int
	// MaxQueue bounds the submissions waiting for a batch; beyond it Add
	// fails fast with ErrBusy (default 4096).
	MaxQueue int
	// Now is the clock for integrated times (default time.Now).
	Now func() time.Time
}

// Log is a Rekor v1 compatible transparency log over a Storage. It is safe
// for concurrent use; several Logs (in several processes) may share one
// database.
type Log struct {
	store    Storage
	signer   crypto.Signer
	pub      *ecdsa.PublicKey
	logID    [32]byte
	logIDHex string
	treeID   int64
	created  time.Time
	hostname string
	maxBatch int
	maxQueue int
	now      func() time.Time
	log      *slog.Logger
	rf       *compact.RangeFactory

	mu       sync.Mutex
	queue    []*pending
	flushing bool
}

// LogEntry is an entry with everything a Rekor response carries.
type LogEntry struct {
	EntryID string // %016x tree ID followed by the hex leaf hash
	Entry
	Proof InclusionProof
	// SET is the signed entry timestamp: ECDSA over SHA-256 of the JCS of
	// {body, integratedTime, logID, logIndex}.
	SET []byte
}

// InclusionProof proves an entry is in the tree of TreeSize leaves whose
// root RootHash is signed in Checkpoint.
type InclusionProof struct {
	LogIndex   uint64
	TreeSize   uint64
	RootHash   [32]byte
	Hashes     [][]byte
	Checkpoint []byte
}

var hasher = rfc6962.DefaultHasher

// New opens the log kept in store, creating its tree on first use. signer
// must be an ECDSA P-256 key: clients verify signed entry timestamps with
// ECDSA only.
func New(ctx context.Context, store Storage, signer crypto.Signer, logger *slog.Logger, cfg Config) (*Log, error) {
	pub, ok := signer.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("tlog: the log key must be ECDSA P-256 (Rekor clients verify signed entry timestamps with ECDSA), got %T", signer.Public())
	}
	if cfg.Hostname == "" || strings.ContainsAny(cfg.Hostname, " \t\r\n+") {
		return nil, fmt.Errorf("tlog: hostname %q must be non-empty without spaces or '+' (it names the log in checkpoints)", cfg.Hostname)
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 512
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 4096
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	id, err := logIDOf(pub)
	if err != nil {
		return nil, err
	}
	l := &Log{
		store: store, signer: signer, pub: pub, logID: id, logIDHex: hex.EncodeToString(id[:]),
		hostname: cfg.Hostname, maxBatch: cfg.MaxBatch, maxQueue: cfg.MaxQueue, now: cfg.Now, log: logger,
		rf: &compact.RangeFactory{Hash: hasher.HashChildren},
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	// Rekor tree IDs are positive int64s; 0 is rejected by cosign.
	candidate := int64(binary.BigEndian.Uint64(rnd[:])&math.MaxInt64) | 1
	head, err := store.Init(ctx, candidate, cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("tlog: open tree: %w", err)
	}
	l.treeID, l.created = head.TreeID, head.CreatedAt
	if !l.checkpointCurrent(head) {
		// New tree, new key or new hostname: sign the head afresh.
		if err := l.resign(ctx); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func logIDOf(pub crypto.PublicKey) ([32]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [32]byte{}, fmt.Errorf("tlog: encode log key: %w", err)
	}
	return sha256.Sum256(der), nil
}

// PublicKey is the log's public key (ECDSA P-256).
func (l *Log) PublicKey() crypto.PublicKey { return l.pub }

// LogID is SHA-256 of the log key's DER SubjectPublicKeyInfo.
func (l *Log) LogID() [32]byte { return l.logID }

// TreeID is the log's Rekor tree ID (positive).
func (l *Log) TreeID() int64 { return l.treeID }

// Hostname is the name the log signs checkpoints with.
func (l *Log) Hostname() string { return l.hostname }

// Origin is the checkpoint origin line, "<hostname> - <treeID>".
func (l *Log) Origin() string { return fmt.Sprintf("%s - %d", l.hostname, l.treeID) }

// CreatedAt is when the tree was created, rounded down to the second: no
// entry has an earlier integrated time, so it is the trusted root's
// validFor.start for this log (clients reject entries integrated before it).
func (l *Log) CreatedAt() time.Time { return l.created.Truncate(time.Second) }

func (l *Log) checkpointCurrent(head TreeState) bool {
	if len(head.Checkpoint) == 0 {
		return false
	}
	sc, err := rekor.VerifyCheckpoint(head.Checkpoint, l.pub)
	return err == nil && sc.Origin == l.Origin() && sc.Size == head.Size && sc.Root == head.Root
}

func (l *Log) resign(ctx context.Context) error {
	return l.store.Sequence(ctx, func() [][32]byte { return nil }, func(cur TreeState, _ map[[32]byte]uint64) (*Batch, error) {
		if l.checkpointCurrent(cur) {
			return nil, nil
		}
		if cur.Size == 0 {
			copy(cur.Root[:], hasher.EmptyRoot())
		}
		cp, err := l.sign(cur.Size, cur.Root)
		if err != nil {
			return nil, err
		}
		cur.Checkpoint = cp
		return &Batch{State: cur}, nil
	})
}

// sign signs the checkpoint of a tree head (the key hint is the first four
// bytes of the log ID, the SHA-256 of the key).
func (l *Log) sign(size uint64, root [32]byte) ([]byte, error) {
	return rekor.Checkpoint{Origin: l.Origin(), Size: size, Root: root}.Sign(l.signer, [4]byte(l.logID[:4]), l.hostname)
}

// signSET signs the entry timestamp of e (rekor.SETPayload).
func (l *Log) signSET(e Entry) ([]byte, error) {
	if e.Index > 1<<53 {
		return nil, fmt.Errorf("tlog: log index %d exceeds what JSON numbers carry exactly", e.Index)
	}
	payload, err := rekor.SETPayload(e.Body, e.IntegratedTime, l.logIDHex, int64(e.Index))
	if err != nil {
		return nil, fmt.Errorf("tlog: SET payload: %w", err)
	}
	d := sha256.Sum256(payload)
	sig, err := l.signer.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("tlog: sign SET: %w", err)
	}
	return sig, nil
}

// EntryID is the 80-hex Rekor entry ID of a leaf in this log.
func (l *Log) EntryID(leafHash [32]byte) string {
	return fmt.Sprintf("%016x%s", l.treeID, hex.EncodeToString(leafHash[:]))
}

// pending is one submission waiting for its batch.
type pending struct {
	leaf [32]byte
	body []byte
	done chan struct{}

	// results, set before done is closed
	err   error
	dup   bool
	index uint64
	time  int64
	proof InclusionProof
}

// Add appends a validated entry and returns it with its inclusion proof,
// checkpoint and SET once it is durably committed. Concurrent calls are
// batched into one transaction. An entry already in the log yields a
// *DuplicateError.
func (l *Log) Add(ctx context.Context, c *rekor.Canonical) (*LogEntry, error) {
	p := &pending{leaf: c.LeafHash, body: c.Body, done: make(chan struct{})}
	if !l.submit(ctx, p) {
		return nil, fmt.Errorf("%w: %d submissions are already waiting for the log", ErrBusy, l.maxQueue)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if p.err != nil {
		return nil, p.err
	}
	if p.dup {
		return nil, &DuplicateError{EntryID: l.EntryID(c.LeafHash), Index: p.index}
	}
	return l.finish(Entry{Index: p.index, LeafHash: p.leaf, Body: p.body, IntegratedTime: p.time}, p.proof)
}

// submit queues p. If no batch is being written, the caller becomes the
// writer: it commits batches until its own entry is done, then hands any
// remaining queue to a new goroutine (group commit, no idle goroutine).
// It returns false, without queueing, when the queue is full.
func (l *Log) submit(ctx context.Context, p *pending) bool {
	l.mu.Lock()
	if len(l.queue) >= l.maxQueue {
		l.mu.Unlock()
		return false
	}
	l.queue = append(l.queue, p)
	if l.flushing {
		l.mu.Unlock()
		return true
	}
	l.flushing = true
	l.mu.Unlock()
	l.flush(context.WithoutCancel(ctx), p)
	return true
}

func (l *Log) flush(ctx context.Context, own *pending) {
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.flushing = false
			l.mu.Unlock()
			return
		}
		if own != nil && isDone(own) {
			// Our own entry is answered; let another goroutine carry on.
			l.mu.Unlock()
			go l.flush(ctx, nil)
			return
		}
		l.mu.Unlock()
		bctx, cancel := context.WithTimeout(ctx, batchTimeout)
		l.integrate(bctx)
		cancel()
	}
}

// batchTimeout bounds one sequencing transaction (a stuck database fails
// the waiting submissions instead of holding them forever).
const batchTimeout = time.Minute

func isDone(p *pending) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// integrate takes queued submissions (up to maxBatch) once the storage
// has locked the head, appends them in one storage transaction and
// answers every one it took.
func (l *Log) integrate(ctx context.Context) {
	var batch []*pending
	var hashes [][32]byte
	take := func() [][32]byte {
		l.mu.Lock()
		n := min(len(l.queue), l.maxBatch-len(batch))
		batch = append(batch, l.queue[:n]...)
		l.queue = append(l.queue[:0], l.queue[n:]...)
		l.mu.Unlock()
		for _, p := range batch[len(hashes):] {
			hashes = append(hashes, p.leaf)
		}
		return slices.Clone(hashes)
	}
	defer func() {
		for _, p := range batch {
			close(p.done)
		}
	}()
	var known map[compact.NodeID][]byte
	var size uint64
	var root [32]byte
	var checkpoint []byte
	err := l.store.Sequence(ctx, take, func(cur TreeState, existing map[[32]byte]uint64) (*Batch, error) {
		rng, ids, err := l.rangeOf(cur)
		if err != nil {
			return nil, err
		}
		known = make(map[compact.NodeID][]byte, len(ids)+2*len(batch))
		for i, id := range ids {
			known[id] = rng.Hashes()[i]
		}
		seen := make(map[[32]byte]uint64, len(batch))
		now := l.now().Unix()
		b := &Batch{Entries: make([]Entry, 0, len(batch)), Nodes: make([]Node, 0, 2*len(batch))}
		visit := func(id compact.NodeID, h []byte) {
			known[id] = h
			b.Nodes = append(b.Nodes, Node{ID: NodeID{Level: id.Level, Index: id.Index}, Hash: [32]byte(h)})
		}
		for _, p := range batch {
			p.dup, p.index, p.time = false, 0, 0
			if idx, ok := existing[p.leaf]; ok {
				p.dup, p.index = true, idx
				continue
			}
			if idx, ok := seen[p.leaf]; ok {
				p.dup, p.index = true, idx
				continue
			}
			p.index, p.time = rng.End(), now
			seen[p.leaf] = p.index
			b.Entries = append(b.Entries, Entry{Index: p.index, LeafHash: p.leaf, Body: p.body, IntegratedTime: now})
			if err := rng.Append(p.leaf[:], visit); err != nil {
				return nil, err
			}
		}
		if len(b.Entries) == 0 {
			return nil, nil // only duplicates: nothing to write
		}
		size = rng.End()
		r, err := rng.GetRootHash(nil)
		if err != nil {
			return nil, err
		}
		root = [32]byte(r)
		if checkpoint, err = l.sign(size, root); err != nil {
			return nil, err
		}
		st := TreeState{TreeID: cur.TreeID, Size: size, Root: root, Checkpoint: checkpoint, CreatedAt: cur.CreatedAt}
		for _, h := range rng.Hashes() {
			st.Range = append(st.Range, [32]byte(h))
		}
		b.State = st
		return b, nil
	})
	if err != nil {
		if len(batch) == 0 {
			take() // failed before taking any: those queued fail with it
		}
		err = fmt.Errorf("tlog: append %d entries: %w", len(batch), err)
		l.log.Error("transparency log append failed", "entries", len(batch), "err", err)
		for _, p := range batch {
			p.err = err
		}
		return
	}
	for _, p := range batch {
		if p.dup {
			continue
		}
		nodes, err := proof.Inclusion(p.index, size)
		if err == nil {
			hs := make([][]byte, len(nodes.IDs))
			for i, id := range nodes.IDs {
				if hs[i] = known[id]; hs[i] == nil {
					err = fmt.Errorf("tlog: node %v missing while proving entry %d", id, p.index)
					break
				}
			}
			if err == nil {
				hs, err = nodes.Rehash(hs, hasher.HashChildren)
			}
			p.proof = InclusionProof{LogIndex: p.index, TreeSize: size, RootHash: root, Hashes: hs, Checkpoint: checkpoint}
		}
		p.err = err
	}
}

// rangeOf rebuilds the compact range of [0, cur.Size) from the stored head.
func (l *Log) rangeOf(cur TreeState) (*compact.Range, []compact.NodeID, error) {
	hs := make([][]byte, len(cur.Range))
	for i := range cur.Range {
		hs[i] = cur.Range[i][:]
	}
	rng, err := l.rf.NewRange(0, cur.Size, hs)
	if err != nil {
		return nil, nil, fmt.Errorf("stored tree head is corrupt: %w", err)
	}
	return rng, compact.RangeNodes(0, cur.Size, nil), nil
}

// finish signs the SET and assembles the response entry.
func (l *Log) finish(e Entry, p InclusionProof) (*LogEntry, error) {
	set, err := l.signSET(e)
	if err != nil {
		return nil, err
	}
	return &LogEntry{EntryID: l.EntryID(e.LeafHash), Entry: e, Proof: p, SET: set}, nil
}

// EntryByUUID returns the entry with that UUID: the 64-hex leaf hash, or
// the 80-hex entry ID (tree ID prefix + leaf hash).
func (l *Log) EntryByUUID(ctx context.Context, uuid string) (*LogEntry, error) {
	leaf, err := l.ParseEntryID(uuid)
	if err != nil {
		return nil, err
	}
	e, err := l.store.EntryByLeafHash(ctx, leaf)
	if err != nil {
		return nil, err
	}
	return l.withProof(ctx, e)
}

// EntryByIndex returns the entry at a log index.
func (l *Log) EntryByIndex(ctx context.Context, index uint64) (*LogEntry, error) {
	e, err := l.store.EntryByIndex(ctx, index)
	if err != nil {
		return nil, err
	}
	return l.withProof(ctx, e)
}

// Lookup returns the entry whose canonical form is c, if logged.
func (l *Log) Lookup(ctx context.Context, c *rekor.Canonical) (*LogEntry, error) {
	e, err := l.store.EntryByLeafHash(ctx, c.LeafHash)
	if err != nil {
		return nil, err
	}
	return l.withProof(ctx, e)
}

// ParseEntryID returns the leaf hash named by a 64-hex UUID or an 80-hex
// entry ID of this tree.
func (l *Log) ParseEntryID(id string) ([32]byte, error) {
	var leaf [32]byte
	switch len(id) {
	case 64:
	case 80:
		tree := id[:16]
		if !strings.EqualFold(tree, fmt.Sprintf("%016x", l.treeID)) {
			if _, err := hex.DecodeString(tree); err != nil {
				return leaf, fmt.Errorf("%w: entry ID %.80q is not hex", ErrBadRequest, id)
			}
			return leaf, fmt.Errorf("%w: entry ID %s is in tree %s; this log is tree %016x", ErrNotFound, id, tree, l.treeID)
		}
		id = id[16:]
	default:
		return leaf, fmt.Errorf("%w: entry UUID %.90q must be 64 hex characters (leaf hash) or 80 (tree ID and leaf hash)", ErrBadRequest, id)
	}
	if _, err := hex.Decode(leaf[:], []byte(id)); err != nil {
		return leaf, fmt.Errorf("%w: entry UUID %.80q is not hex", ErrBadRequest, id)
	}
	return leaf, nil
}

func (l *Log) withProof(ctx context.Context, e *Entry) (*LogEntry, error) {
	head, err := l.store.Head(ctx)
	if err != nil {
		return nil, err
	}
	if e.Index >= head.Size {
		return nil, fmt.Errorf("tlog: entry %d is beyond the tree head %d (database inconsistent)", e.Index, head.Size)
	}
	hs, err := l.inclusion(ctx, e.Index, head.Size)
	if err != nil {
		return nil, err
	}
	return l.finish(*e, InclusionProof{LogIndex: e.Index, TreeSize: head.Size, RootHash: head.Root, Hashes: hs, Checkpoint: head.Checkpoint})
}

// inclusion returns the audit path of leaf index in the tree of size
// leaves, read from storage (O(log size) node reads).
func (l *Log) inclusion(ctx context.Context, index, size uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return l.fetch(ctx, nodes)
}

func (l *Log) fetch(ctx context.Context, nodes proof.Nodes) ([][]byte, error) {
	ids := make([]NodeID, len(nodes.IDs))
	for i, id := range nodes.IDs {
		ids[i] = NodeID{Level: id.Level, Index: id.Index}
	}
	got, err := l.store.Nodes(ctx, ids)
	if err != nil {
		return nil, err
	}
	hs := make([][]byte, len(got))
	for i := range got {
		hs[i] = got[i][:]
	}
	return nodes.Rehash(hs, hasher.HashChildren)
}

// Head is the latest signed tree head.
func (l *Log) Head(ctx context.Context) (TreeState, error) {
	return l.store.Head(ctx)
}

// Consistency returns the root of the tree of size last and the RFC 6962
// consistency proof from size first to size last.
func (l *Log) Consistency(ctx context.Context, first, last uint64) ([32]byte, [][]byte, error) {
	var root [32]byte
	head, err := l.store.Head(ctx)
	if err != nil {
		return root, nil, err
	}
	if first > last {
		return root, nil, fmt.Errorf("%w: firstSize(%d) must be less than or equal to lastSize(%d)", ErrBadRequest, first, last)
	}
	if last > head.Size {
		return root, nil, fmt.Errorf("%w: lastSize(%d) must be less than or equal to the current tree size (%d)", ErrBadRequest, last, head.Size)
	}
	nodes, err := proof.Consistency(first, last)
	if err != nil {
		return root, nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	hs, err := l.fetch(ctx, nodes)
	if err != nil {
		return root, nil, err
	}
	if root, err = l.rootAt(ctx, last, head); err != nil {
		return root, nil, err
	}
	return root, hs, nil
}

// rootAt computes the root of the tree of size leaves from its perfect
// subtrees.
func (l *Log) rootAt(ctx context.Context, size uint64, head TreeState) ([32]byte, error) {
	if size == head.Size {
		return head.Root, nil
	}
	if size == 0 {
		return [32]byte(hasher.EmptyRoot()), nil
	}
	cids := compact.RangeNodes(0, size, nil)
	ids := make([]NodeID, len(cids))
	for i, id := range cids {
		ids[i] = NodeID{Level: id.Level, Index: id.Index}
	}
	hs, err := l.store.Nodes(ctx, ids)
	if err != nil {
		return [32]byte{}, err
	}
	root := hs[len(hs)-1][:]
	for i := len(hs) - 2; i >= 0; i-- {
		root = hasher.HashChildren(hs[i][:], root)
	}
	return [32]byte(root), nil
}
