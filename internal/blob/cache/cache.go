package cache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
	_ "github.com/hallmark-dev/hallmark/pkg/oci" // registers sha256/sha512 for go-digest
)

// Source is the store the cache reads through: Open of a blob it does not
// hold goes there.
type Source interface {
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error)
}

// Stats counts what the cache did since it was opened.
type Stats struct {
	Hits, Misses int64 // Opens answered from the disk / from the source
	Fills        int64 // blobs copied to the disk while they were served
	Evictions    int64 // blobs removed to stay within the size limit
	Bytes        int64 // bytes held now
	Entries      int64 // blobs held now
}

// Cache is a size-bounded least-recently-used cache of whole blobs on a
// local directory, filled while a whole blob is served from the source
// (blob.WholeReader). It is safe for concurrent use.
type Cache struct {
	src Source
	dir string
	max int64 // bytes held at most
	log *slog.Logger

	mu      sync.Mutex
	lru     *list.List // of *entry, most recently used first
	entries map[digest.Digest]*list.Element
	filling map[digest.Digest]bool
	bytes   int64

	hits, misses, fills, evictions atomic.Int64
}

type entry struct {
	d    digest.Digest
	size int64
}

// New opens a cache of at most maxBytes in dir (created if needed; what it
// holds is removed: a copy written before a crash may be incomplete) in
// front of src.
func New(src Source, dir string, maxBytes int64, log *slog.Logger) (*Cache, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("blob cache: size %d: must be positive", maxBytes)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("blob cache: emptying %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("blob cache: %w", err)
	}
	return &Cache{src: src, dir: dir, max: maxBytes, log: log, lru: list.New(),
		entries: map[digest.Digest]*list.Element{}, filling: map[digest.Digest]bool{}}, nil
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	st := Stats{Bytes: c.bytes, Entries: int64(len(c.entries))}
	c.mu.Unlock()
	st.Hits, st.Misses, st.Fills, st.Evictions = c.hits.Load(), c.misses.Load(), c.fills.Load(), c.evictions.Load()
	return st
}

func (c *Cache) path(d digest.Digest) string {
	enc := d.Encoded()
	return filepath.Join(c.dir, string(d.Algorithm()), enc[:2], enc)
}

// Open returns blob d: a local file (an *os.File, so HTTP handlers send it
// with sendfile) when the cache holds it, else the source's reader, which
// fills the cache if the blob is served whole through its WriteTo.
func (c *Cache) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	if err := d.Validate(); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", blob.ErrNotFound, err)
	}
	if f, size, ok := c.local(d); ok {
		c.hits.Add(1)
		return f, size, nil
	}
	c.misses.Add(1)
	rc, size, err := c.src.Open(ctx, d)
	if err != nil {
		return nil, 0, err
	}
	wr, ok := rc.(wholeReadSeekCloser)
	if !ok || size > c.max/4 || !c.startFill(d) {
		return rc, size, nil
	}
	return &filler{wholeReadSeekCloser: wr, c: c, d: d, size: size}, size, nil
}

// local opens d's copy if the cache holds it.
func (c *Cache) local(d digest.Digest) (*os.File, int64, bool) {
	c.mu.Lock()
	e, ok := c.entries[d]
	if ok {
		c.lru.MoveToFront(e)
	}
	c.mu.Unlock()
	if !ok {
		return nil, 0, false
	}
	f, err := os.Open(c.path(d))
	if err != nil {
		// Evicted between the lookup and the open, or removed behind the
		// cache's back: the source answers.
		c.forget(d, errors.Is(err, fs.ErrNotExist))
		return nil, 0, false
	}
	return f, e.Value.(*entry).size, true
}

// Forget removes the copies of ds (blobs deleted from the source).
func (c *Cache) Forget(ds []digest.Digest) {
	for _, d := range ds {
		c.forget(d, false)
	}
}

func (c *Cache) forget(d digest.Digest, gone bool) {
	c.mu.Lock()
	e, ok := c.entries[d]
	if ok {
		c.drop(e)
	}
	c.mu.Unlock()
	if ok && !gone {
		c.remove(d)
	}
}

// drop takes e out of the index; c.mu is held.
func (c *Cache) drop(e *list.Element) {
	en := e.Value.(*entry)
	c.lru.Remove(e)
	delete(c.entries, en.d)
	c.bytes -= en.size
}

func (c *Cache) remove(d digest.Digest) {
	if err := os.Remove(c.path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("blob cache: removing a copy", "digest", d, "err", err)
	}
}

// startFill reports whether the caller may fill d (no one else is).
func (c *Cache) startFill(d digest.Digest) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.filling[d] || c.entries[d] != nil {
		return false
	}
	c.filling[d] = true
	return true
}

func (c *Cache) endFill(d digest.Digest) {
	c.mu.Lock()
	delete(c.filling, d)
	c.mu.Unlock()
}

// add moves a complete, checked copy at tmp into the cache and evicts the
// least recently used copies beyond the size limit.
func (c *Cache) add(d digest.Digest, tmp string, size int64) error {
	p := c.path(d)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	var evict []digest.Digest
	c.mu.Lock()
	if c.entries[d] == nil {
		c.entries[d] = c.lru.PushFront(&entry{d: d, size: size})
		c.bytes += size
	}
	for c.bytes > c.max {
		e := c.lru.Back()
		evict = append(evict, e.Value.(*entry).d)
		c.drop(e)
	}
	c.mu.Unlock()
	for _, d := range evict {
		c.remove(d)
		c.evictions.Add(1)
	}
	c.fills.Add(1)
	return nil
}

type wholeReadSeekCloser interface {
	io.ReadSeekCloser
	blob.WholeReader
}

// filler is a source reader that copies a whole blob to the disk while
// WriteTo sends it; the copy is kept if every byte arrived and matched
// the digest. Reads and seeks (a Range request) pass through uncopied.
type filler struct {
	wholeReadSeekCloser
	c    *Cache
	d    digest.Digest
	size int64
	done bool
}

// WriteTo implements io.WriterTo: w gets the blob, the cache a copy.
func (f *filler) WriteTo(w io.Writer) (int64, error) {
	if f.done {
		return f.wholeReadSeekCloser.WriteTo(w)
	}
	f.done = true
	defer f.c.endFill(f.d)
	tmp, err := os.CreateTemp(filepath.Join(f.c.dir, "tmp"), "fill-")
	if err != nil {
		f.c.log.Warn("blob cache: not filled", "digest", f.d, "err", err)
		return f.wholeReadSeekCloser.WriteTo(w)
	}
	t := &tee{w: w, f: tmp, h: f.d.Algorithm().Hash()}
	n, err := f.wholeReadSeekCloser.WriteTo(t)
	cerr := tmp.Close()
	var why error
	switch {
	case err != nil:
		// The client went away or the source failed: an incomplete copy.
	case t.ferr != nil:
		why = t.ferr
	case cerr != nil:
		why = cerr
	case n != f.size || digest.NewDigest(f.d.Algorithm(), t.h) != f.d:
		why = fmt.Errorf("the source sent %d bytes that do not match the blob's digest and size %d", n, f.size)
	default:
		if why = f.c.add(f.d, tmp.Name(), n); why == nil {
			return n, nil
		}
	}
	if why != nil {
		f.c.log.Warn("blob cache: not filled", "digest", f.d, "err", why)
	}
	_ = os.Remove(tmp.Name())
	return n, err
}

// Close implements io.Closer; a filler never written releases its claim.
func (f *filler) Close() error {
	if !f.done {
		f.done = true
		f.c.endFill(f.d)
	}
	return f.wholeReadSeekCloser.Close()
}

// tee writes to w and, while that works, copies what w took to f and h.
// A failing copy stops copying, not the answer.
type tee struct {
	w    io.Writer
	f    *os.File
	h    hash.Hash
	ferr error
}

func (t *tee) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if t.ferr == nil {
		if _, t.ferr = t.f.Write(p[:n]); t.ferr == nil {
			t.h.Write(p[:n])
		}
	}
	return n, err
}
