package tlog_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/tlog"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/rekor/rekortest"
)

// gatedStore is the real SQLite storage with a gate in front of Sequence:
// it makes a slow database, which cannot be caused otherwise.
type gatedStore struct {
	tlog.Storage
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStore) Sequence(ctx context.Context, leaves tlog.Leaves, fn tlog.SequenceFunc) error {
	gated := false
	return g.Storage.Sequence(ctx, func() [][32]byte {
		h := leaves()
		if len(h) > 0 && !gated {
			gated = true
			g.entered <- struct{}{}
			<-g.release
		}
		return h
	}, fn)
}

// When the queue is full, submissions fail fast with ErrBusy (503 with
// Retry-After over the API) instead of piling up; queued ones still commit.
func TestBusyPushback(t *testing.T) {
	ctx := context.Background()
	ts := tlogStore(t, openStore(t, filepath.Join(t.TempDir(), "db")))
	g := &gatedStore{Storage: ts, entered: make(chan struct{}, 4), release: make(chan struct{})}
	l, err := tlog.New(ctx, g, rekortest.NewKey(t), nil, tlog.Config{Hostname: "busy.test", MaxQueue: 1, MaxBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	k := rekortest.NewKey(t)
	res := make(chan error, 3)
	add := func(name string) {
		c, _ := rekor.Canonicalize(rekortest.SignedEntry(t, k, []byte(name)))
		go func() { _, err := l.Add(ctx, c); res <- err }()
	}
	add("first")
	<-g.entered // the first batch is being written; the queue is empty
	add("second")
	add("third") // one of these two fills the queue, the other is refused
	select {
	case err := <-res:
		if !errors.Is(err, tlog.ErrBusy) {
			t.Fatalf("add beyond the queue: %v, want ErrBusy", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no submission was refused while the queue was full")
	}

	mux := http.NewServeMux()
	api, _ := tlog.NewAPI(l, nil, tlog.APIConfig{BaseURL: "http://busy.test"})
	api.Register(mux, nil)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/log/entries", strings.NewReader(string(rekortest.SignedEntry(t, k, []byte("fourth"))))))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "busy") {
		t.Fatalf("API while busy: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}

	close(g.release)
	for i := 0; i < 2; i++ { // first and the queued one
		if err := <-res; err != nil {
			t.Fatalf("queued add: %v", err)
		}
	}
	head, _ := l.Head(ctx)
	if head.Size != 2 {
		t.Fatalf("head size %d, want 2", head.Size)
	}
}
