package tuf_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/tuf"
)

// clock is a settable clock for the repository (clients use the real one).
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Set(offset time.Duration) {
	c.mu.Lock()
	c.offset = offset
	c.mu.Unlock()
}

// fixture is a repository in a temporary data dir, served over HTTP on
// loopback.
type fixture struct {
	t     *testing.T
	dir   string // the store's directory
	keys  *keystore.Dir
	clock *clock
	repo  *tuf.Repository
	url   string
}

func newFixture(t *testing.T, cfg tuf.Config) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{t: t, dir: filepath.Join(base, "tuf"), clock: &clock{}}
	var err error
	if f.keys, err = keystore.Open(filepath.Join(base, "keys")); err != nil {
		t.Fatal(err)
	}
	f.repo = f.open(cfg)
	srv := httptest.NewServer(http.StripPrefix("/tuf", f.repo.Handler()))
	t.Cleanup(srv.Close)
	f.url = srv.URL + "/tuf"
	return f
}

// open returns another Repository on the fixture's store and keys (as a
// second process would).
func (f *fixture) open(cfg tuf.Config) *tuf.Repository {
	f.t.Helper()
	store, err := tuf.NewFileStore(f.dir)
	if err != nil {
		f.t.Fatal(err)
	}
	if cfg.Now == nil {
		cfg.Now = f.clock.Now
	}
	repo, err := tuf.New(store, tuf.KeystoreKeys(f.keys), nil, cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return repo
}

func (f *fixture) publish(targets map[string][]byte) bool {
	f.t.Helper()
	changed, err := f.repo.Publish(context.Background(), targets)
	if err != nil {
		f.t.Fatal(err)
	}
	return changed
}

func (f *fixture) root() []byte {
	f.t.Helper()
	b, err := f.repo.Root(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) status() *tuf.Status {
	f.t.Helper()
	st, err := f.repo.Status(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

func (f *fixture) version(role string) int64 {
	f.t.Helper()
	for _, rs := range f.status().Roles {
		if rs.Role == role {
			return rs.Version
		}
	}
	f.t.Fatalf("no role %s in the status", role)
	return 0
}

// client is a TUF client with a persistent cache, as cosign keeps one in
// TUF_ROOT: each fetch starts from the newest root it trusts (the one it
// cached) and runs the whole go-tuf update workflow.
type client struct {
	t     *testing.T
	url   string
	cache string
	root  []byte // the root it was initialized with
}

func newClient(t *testing.T, url string, root []byte) *client {
	return &client{t: t, url: url, cache: t.TempDir(), root: root}
}

// fetch refreshes the metadata and downloads target name.
func (c *client) fetch(name string) ([]byte, error) {
	trusted := c.root
	if b, err := os.ReadFile(filepath.Join(c.cache, "root.json")); err == nil {
		trusted = b
	}
	cfg, err := config.New(c.url, trusted)
	if err != nil {
		return nil, err
	}
	cfg.LocalMetadataDir = c.cache
	cfg.LocalTargetsDir = filepath.Join(c.cache, "targets")
	up, err := updater.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := up.Refresh(); err != nil {
		return nil, err
	}
	ti, err := up.GetTargetInfo(name)
	if err != nil {
		return nil, err
	}
	_, data, err := up.DownloadTarget(ti, filepath.Join(c.cache, "targets", name), "")
	return data, err
}

func (c *client) mustFetch(name string) []byte {
	c.t.Helper()
	b, err := c.fetch(name)
	if err != nil {
		c.t.Fatalf("client fetching %s: %v", name, err)
	}
	return b
}

// trustedRootVersion is the version of the root the client now trusts.
func (c *client) trustedRootVersion() int64 {
	c.t.Helper()
	md, err := metadata.Root().FromFile(filepath.Join(c.cache, "root.json"))
	if err != nil {
		c.t.Fatal(err)
	}
	return md.Signed.Version
}

// isExpired reports whether err is go-tuf's expired-metadata error.
func isExpired(err error) bool {
	var e *metadata.ErrExpiredMetadata
	return errors.As(err, &e)
}
