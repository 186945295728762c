package tlog_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/hallmark-dev/hallmark/internal/tlog"
	"github.com/hallmark-dev/hallmark/pkg/rekor/rekortest"
)

func openStore(tb testing.TB, path string) *sqlite.Store {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func tlogStore(tb testing.TB, st *sqlite.Store) *sqlite.TlogStore {
	tb.Helper()
	ts, err := st.TransparencyLog(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return ts
}

// testLog is a Log on a fresh SQLite file.
type testLog struct {
	*tlog.Log
	key   *ecdsa.PrivateKey
	store *sqlite.TlogStore
	path  string
}

func newTestLog(tb testing.TB, cfg tlog.Config) *testLog {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "hallmark.db")
	return openTestLog(tb, path, rekortest.NewKey(tb), cfg)
}

func openTestLog(tb testing.TB, path string, key *ecdsa.PrivateKey, cfg tlog.Config) *testLog {
	tb.Helper()
	if cfg.Hostname == "" {
		cfg.Hostname = "rekor.test"
	}
	ts := tlogStore(tb, openStore(tb, path))
	l, err := tlog.New(context.Background(), ts, key, nil, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return &testLog{Log: l, key: key, store: ts, path: path}
}

func mustEd25519(tb testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return pub, priv
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func httptestServer(tb testing.TB, h http.Handler) string {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv.URL
}
