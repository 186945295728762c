package cache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
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
	Fills        int64 // blobs copied to the disk after a whole pull
	Evictions    int64 // blobs removed to stay within the size limit
	Bytes        int64 // bytes held now
	Entries      int64 // blobs held now
}

// Cache is a size-bounded least-recently-used cache of whole blobs on a
// local directory, filled in the background after a whole blob was served
// from the source (blob.WholeReader). It is safe for concurrent use; Close
// stops the copies.
type Cache struct {
	src Source
	dir string
	max int64 // bytes held at most
	log *slog.Logger

	mu      sync.Mutex
	lru     *list.List // of *entry, most recently used first
	entries map[digest.Digest]*list.Element
	filling map[digest.Digest]bool // background copies running
	bytes   int64
	closed  bool

	ctx  context.Context // of the background copies; Close ends it
	stop context.CancelFunc
	wg   sync.WaitGroup

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
	c := &Cache{src: src, dir: dir, max: maxBytes, log: log, lru: list.New(),
		entries: map[digest.Digest]*list.Element{}, filling: map[digest.Digest]bool{}}
	c.ctx, c.stop = context.WithCancel(context.Background())
	return c, nil
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
	return filepath.Join(c.dir, filepath.FromSlash(blob.BlobPath(d)))
}

// Open returns blob d: a local file (an *os.File, so HTTP handlers send it
// with sendfile) when the cache holds it, else the source's reader; once
// that served the whole blob through its WriteTo, the cache copies it.
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
	if !ok || size > c.max/4 {
		return rc, size, nil
	}
	return &puller{wholeReadSeekCloser: wr, c: c, d: d, size: size}, size, nil
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

// puller is a source reader that, once WriteTo sent the whole blob to a
// client, has the cache fetch its own copy in the background. The pull
// itself is not slowed: copying to the disk as the bytes go out held the
// client to the disk's write speed (a first pull of 512 MiB at 0.2x).
// Reads and seeks (a Range request) pass through and fetch nothing.
type puller struct {
	wholeReadSeekCloser
	c    *Cache
	d    digest.Digest
	size int64
}

// WriteTo implements io.WriterTo.
func (p *puller) WriteTo(w io.Writer) (int64, error) {
	n, err := p.wholeReadSeekCloser.WriteTo(w)
	if err == nil && n == p.size {
		p.c.fillLater(p.d)
	}
	return n, err
}

// fillLater copies d from the source to the disk in the background, unless
// it is there, being copied, or maxFills copies are running (the next pull
// tries again).
func (c *Cache) fillLater(d digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.filling[d] || c.entries[d] != nil || len(c.filling) >= maxFills {
		return
	}
	c.filling[d] = true
	c.wg.Go(func() {
		defer c.endFill(d)
		if err := c.fill(d); err != nil && c.ctx.Err() == nil {
			c.log.Warn("blob cache: not filled", "digest", d, "err", err)
		}
	})
}

// maxFills bounds the background copies running at once.
const maxFills = 2

// fill copies d from the source to a temporary file and keeps it if every
// byte arrived and matched the digest.
func (c *Cache) fill(d digest.Digest) error {
	rc, size, err := c.src.Open(c.ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "fill-")
	if err != nil {
		return err
	}
	kept := false
	defer func() {
		if !kept {
			_ = os.Remove(tmp.Name())
		}
	}()
	h := d.Algorithm().Hash()
	var n int64
	if wr, ok := rc.(blob.WholeReader); ok {
		if err = wr.Start(); err == nil {
			n, err = wr.WriteTo(io.MultiWriter(tmp, h))
		}
	} else {
		n, err = io.Copy(io.MultiWriter(tmp, h), rc)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return err
	case n != size || digest.NewDigest(d.Algorithm(), h) != d:
		return fmt.Errorf("the source sent %d bytes that do not match the blob's digest and size %d", n, size)
	}
	if err := c.add(d, tmp.Name(), n); err != nil {
		return err
	}
	kept = true
	return nil
}

func (c *Cache) endFill(d digest.Digest) {
	c.mu.Lock()
	delete(c.filling, d)
	c.mu.Unlock()
}

// Close stops the background copies and waits for them.
func (c *Cache) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.stop()
	c.wg.Wait()
	return nil
}
