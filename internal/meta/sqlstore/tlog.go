package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/internal/tlog"
)

// TlogStore is the transparency log's storage (tlog.Storage) in the
// metadata database: the head row, entries and Merkle nodes (tables
// tlog_tree, tlog_entries, tlog_nodes). The database is the sequencer:
// every Sequence transaction first locks the head row (SQLite: BEGIN
// IMMEDIATE on the single writer, which holds the file's write lock;
// PostgreSQL: SELECT ... FOR UPDATE), so appends from every process and
// replica sharing the database form one sequence.
type TlogStore struct {
	s                     *Store
	head, byHash, byIndex stmt
}

// Rows per multi-row INSERT.
const (
	entryRows = 200
	nodeRows  = 400
)

const headQuery = `SELECT tree_id, size, root_hash, compact_range, checkpoint, created_at FROM tlog_tree WHERE id = 1`

var _ tlog.Storage = (*TlogStore)(nil)

// TransparencyLog returns the log storage of this database.
func (s *Store) TransparencyLog(ctx context.Context) (*TlogStore, error) {
	t := &TlogStore{s: s}
	var err error
	prep := func(dst *stmt, q string) {
		if err == nil {
			*dst, err = s.r.prepare(ctx, q)
		}
	}
	prep(&t.head, headQuery)
	prep(&t.byHash, `SELECT idx, leaf_hash, body, integrated_time FROM tlog_entries WHERE leaf_hash = ?`)
	prep(&t.byIndex, `SELECT idx, leaf_hash, body, integrated_time FROM tlog_entries WHERE idx = ?`)
	if err != nil {
		return nil, fmt.Errorf("%s: prepare transparency log statements: %w", s.d.Name, err)
	}
	return t, nil
}

type rowScanner interface{ Scan(dest ...any) error }

func scanHead(row rowScanner) (tlog.TreeState, error) {
	var st tlog.TreeState
	var size, created int64
	var root, rng, cp []byte
	if err := row.Scan(&st.TreeID, &size, &root, &rng, &cp, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return st, fmt.Errorf("%w: the transparency log tree is not initialised", tlog.ErrNotFound)
		}
		return st, err
	}
	if len(root) != 32 || len(rng)%32 != 0 {
		return st, errors.New("transparency log head row is corrupt (hash lengths)")
	}
	st.Size, st.Checkpoint, st.CreatedAt = uint64(size), cp, time.Unix(0, created)
	copy(st.Root[:], root)
	for i := 0; i < len(rng); i += 32 {
		st.Range = append(st.Range, [32]byte(rng[i:i+32]))
	}
	return st, nil
}

// Init implements tlog.Sequencer.
func (t *TlogStore) Init(ctx context.Context, treeID int64, now time.Time) (tlog.TreeState, error) {
	empty := sha256.Sum256(nil)
	var st tlog.TreeState
	err := t.s.tx(ctx, func(tx conn) error {
		if _, err := tx.exec(ctx, `INSERT INTO tlog_tree(id, tree_id, size, root_hash, compact_range, checkpoint, created_at, updated_at)
			VALUES (1, ?, 0, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING`,
			treeID, empty[:], []byte{}, []byte{}, now.UnixNano(), now.UnixNano()); err != nil {
			return err
		}
		var err error
		st, err = scanHead(tx.queryRow(ctx, headQuery))
		return err
	})
	if err != nil {
		return st, fmt.Errorf("%s: initialise transparency log: %w", t.s.d.Name, err)
	}
	return st, nil
}

// Sequence implements tlog.Sequencer: one transaction that locks the head
// row, reads it, takes the batch's leaves and looks them up, appends the
// batch and advances the head, committed durably (SQLite: WAL fsync with
// synchronous=FULL; PostgreSQL: synchronous commit) before it returns.
func (t *TlogStore) Sequence(ctx context.Context, leaves tlog.Leaves, fn tlog.SequenceFunc) error {
	return t.s.tx(ctx, func(tx conn) error {
		cur, err := scanHead(tx.queryRow(ctx, headQuery+t.s.d.ForUpdate))
		if err != nil {
			return err
		}
		existing, err := t.existing(ctx, tx, leaves())
		if err != nil {
			return err
		}
		b, err := fn(cur, existing)
		if err != nil || b == nil {
			return err
		}
		if b.State.Size != cur.Size+uint64(len(b.Entries)) || b.State.TreeID != cur.TreeID {
			return fmt.Errorf("transparency log batch of %d entries does not extend the head at %d to %d", len(b.Entries), cur.Size, b.State.Size)
		}
		for i, e := range b.Entries {
			if e.Index != cur.Size+uint64(i) {
				return fmt.Errorf("transparency log entry index %d out of sequence (want %d)", e.Index, cur.Size+uint64(i))
			}
		}
		if err := t.insertEntries(ctx, tx, b.Entries); err != nil {
			return fmt.Errorf("insert log entries: %w", err)
		}
		if err := t.insertNodes(ctx, tx, b.Nodes); err != nil {
			return fmt.Errorf("insert log nodes: %w", err)
		}
		rng := make([]byte, 0, 32*len(b.State.Range))
		for _, h := range b.State.Range {
			rng = append(rng, h[:]...)
		}
		res, err := tx.exec(ctx, `UPDATE tlog_tree SET size = ?, root_hash = ?, compact_range = ?, checkpoint = ?, updated_at = ?
			WHERE id = 1 AND size = ?`,
			int64(b.State.Size), b.State.Root[:], rng, b.State.Checkpoint, time.Now().UnixNano(), int64(cur.Size))
		if err != nil {
			return fmt.Errorf("update log head: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errors.New("transparency log head moved during the transaction")
		}
		return nil
	})
}

// existing looks leafHashes up in chunks; the map holds the logged ones.
func (t *TlogStore) existing(ctx context.Context, tx conn, leafHashes [][32]byte) (map[[32]byte]uint64, error) {
	out := map[[32]byte]uint64{}
	const chunk = 500
	for start := 0; start < len(leafHashes); start += chunk {
		part := leafHashes[start:min(start+chunk, len(leafHashes))]
		args := make([]any, len(part))
		for i := range part {
			args[i] = part[i][:]
		}
		rows, err := tx.query(ctx, `SELECT idx, leaf_hash FROM tlog_entries WHERE leaf_hash IN (`+placeholders(len(part), 1)+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var idx int64
			var h []byte
			if err := rows.Scan(&idx, &h); err != nil {
				rows.Close()
				return nil, err
			}
			if len(h) == 32 {
				out[[32]byte(h)] = uint64(idx)
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// placeholders returns "(?,?),(?,?)" style groups: n groups of width w, or
// "?,?,?" for w == 1.
func placeholders(n, w int) string {
	if w == 1 {
		return strings.TrimSuffix(strings.Repeat("?,", n), ",")
	}
	g := "(" + strings.TrimSuffix(strings.Repeat("?,", w), ",") + ")"
	return strings.TrimSuffix(strings.Repeat(g+",", n), ",")
}

func (t *TlogStore) insertEntries(ctx context.Context, tx conn, es []tlog.Entry) error {
	for start := 0; start < len(es); start += entryRows {
		part := es[start:min(start+entryRows, len(es))]
		args := make([]any, 0, 4*len(part))
		for i := range part {
			e := &part[i]
			args = append(args, int64(e.Index), e.LeafHash[:], e.Body, e.IntegratedTime)
		}
		if _, err := tx.exec(ctx, `INSERT INTO tlog_entries(idx, leaf_hash, body, integrated_time) VALUES `+placeholders(len(part), 4), args...); err != nil {
			return err
		}
	}
	return nil
}

func (t *TlogStore) insertNodes(ctx context.Context, tx conn, ns []tlog.Node) error {
	for start := 0; start < len(ns); start += nodeRows {
		part := ns[start:min(start+nodeRows, len(ns))]
		args := make([]any, 0, 2*len(part))
		for i := range part {
			n := &part[i]
			args = append(args, int64(n.ID.PostOrder()), n.Hash[:])
		}
		if _, err := tx.exec(ctx, `INSERT INTO tlog_nodes(id, hash) VALUES `+placeholders(len(part), 2), args...); err != nil {
			return err
		}
	}
	return nil
}

// Head implements tlog.Reader.
func (t *TlogStore) Head(ctx context.Context) (tlog.TreeState, error) {
	return scanHead(t.head.queryRow(ctx))
}

func scanEntry(row rowScanner, what string) (*tlog.Entry, error) {
	var e tlog.Entry
	var idx int64
	var h []byte
	if err := row.Scan(&idx, &h, &e.Body, &e.IntegratedTime); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: no entry with %s", tlog.ErrNotFound, what)
		}
		return nil, err
	}
	if len(h) != 32 {
		return nil, errors.New("transparency log entry row is corrupt (leaf hash length)")
	}
	e.Index, e.LeafHash = uint64(idx), [32]byte(h)
	return &e, nil
}

// EntryByLeafHash implements tlog.Reader.
func (t *TlogStore) EntryByLeafHash(ctx context.Context, leafHash [32]byte) (*tlog.Entry, error) {
	return scanEntry(t.byHash.queryRow(ctx, leafHash[:]), fmt.Sprintf("UUID %x", leafHash))
}

// EntryByIndex implements tlog.Reader.
func (t *TlogStore) EntryByIndex(ctx context.Context, index uint64) (*tlog.Entry, error) {
	if index >= 1<<63 {
		return nil, fmt.Errorf("%w: no entry with log index %d", tlog.ErrNotFound, index)
	}
	return scanEntry(t.byIndex.queryRow(ctx, int64(index)), fmt.Sprintf("log index %d", index))
}

// Nodes implements tlog.Reader with one primary-key IN query.
func (t *TlogStore) Nodes(ctx context.Context, ids []tlog.NodeID) ([][32]byte, error) {
	out := make([][32]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = int64(id.PostOrder())
	}
	rows, err := t.s.r.query(ctx, `SELECT id, hash FROM tlog_nodes WHERE id IN (`+placeholders(len(ids), 1)+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	got := make(map[int64][]byte, len(ids))
	for rows.Next() {
		var id int64
		var h []byte
		if err := rows.Scan(&id, &h); err != nil {
			return nil, err
		}
		got[id] = h
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, id := range ids {
		h := got[args[i].(int64)]
		if len(h) != 32 {
			return nil, fmt.Errorf("%w: Merkle node (level %d, index %d)", tlog.ErrNotFound, id.Level, id.Index)
		}
		out[i] = [32]byte(h)
	}
	return out, nil
}
