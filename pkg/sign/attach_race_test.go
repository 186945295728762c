package sign

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/pkg/payload"
)

// sigRegistry is go-containerregistry's registry (which ignores
// If-Match) behind a hook that sees every manifest PUT of a ".sig" tag
// before and after it is served.
type sigRegistry struct {
	t    *testing.T
	host string
	h    http.Handler

	mu sync.Mutex
	// before, if set, answers a ".sig" manifest PUT instead of the registry
	// (return false to let it through).
	before func(w http.ResponseWriter, r *http.Request) bool
	// after runs once a ".sig" manifest PUT was served.
	after func(r *http.Request, h http.Handler)
	puts  []http.Header // headers of the ".sig" manifest PUTs
}

// putHeaders returns the headers of the ".sig" manifest PUTs so far.
func (s *sigRegistry) putHeaders() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.puts...)
}

func newSigRegistry(t *testing.T) *sigRegistry {
	s := &sigRegistry{t: t, h: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || !strings.Contains(r.URL.Path, "/manifests/") || !strings.HasSuffix(r.URL.Path, ".sig") {
			s.h.ServeHTTP(w, r)
			return
		}
		s.mu.Lock()
		s.puts = append(s.puts, r.Header.Clone())
		before, after := s.before, s.after
		s.mu.Unlock()
		if before != nil && before(w, r) {
			return
		}
		s.h.ServeHTTP(w, r)
		if after != nil {
			after(r, s.h)
		}
	}))
	t.Cleanup(srv.Close)
	s.host = strings.TrimPrefix(srv.URL, "http://")
	return s
}

// image pushes a random image and returns its repository and digest.
func (s *sigRegistry) image() (name.Repository, v1.Hash) {
	s.t.Helper()
	ref, _ := name.NewTag(s.host + "/race/app:v1")
	img, _ := random.Image(32, 1)
	if err := remote.Write(ref, img); err != nil {
		s.t.Fatal(err)
	}
	d, _ := img.Digest()
	return ref.Context(), d
}

// signature returns a fresh key signature over subject's payload.
func raceSignature(t *testing.T, repo name.Repository, subject v1.Hash) *Signature {
	t.Helper()
	body, err := payload.New(repo.Name(), subject.String(), nil).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sig, err := KeySigner{Key: key}.Sign(context.Background(), body)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// sigLayers returns the signature annotations of the ".sig" tag's layers.
func sigLayers(t *testing.T, repo name.Repository, subject v1.Hash) []string {
	t.Helper()
	img, err := remote.Image(repo.Tag(strings.Replace(subject.String(), ":", "-", 1) + ".sig"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Annotations[AnnotationSignature])
	}
	return out
}

func hasAll(got []string, sigs ...*Signature) bool {
	for _, s := range sigs {
		found := false
		for _, g := range got {
			found = found || g == s.annotations()[AnnotationSignature]
		}
		if !found {
			return false
		}
	}
	return len(got) == len(sigs)
}

// TestAttachSendsTagConditions: the manifest PUT says what the tag held
// when it was read, so a registry that checks (Hallmark) can refuse a
// write that would drop another signer's layer.
func TestAttachSendsTagConditions(t *testing.T) {
	reg := newSigRegistry(t)
	repo, subject := reg.image()
	first, err := Attach(repo, subject, raceSignature(t, repo, subject), AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Attach(repo, subject, raceSignature(t, repo, subject), AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	puts := reg.putHeaders()
	if len(puts) != 2 {
		t.Fatalf("%d manifest PUTs, want 2", len(puts))
	}
	if got := puts[0].Get("If-None-Match"); got != "*" || puts[0].Get("If-Match") != "" {
		t.Errorf("first signature: If-None-Match %q If-Match %q; want * and none", got, puts[0].Get("If-Match"))
	}
	if got, want := puts[1].Get("If-Match"), `"`+first.Digest.String()+`"`; got != want {
		t.Errorf("second signature: If-Match %q, want %q", got, want)
	}
}

// TestAttachMergesOntoMovedTag: a signature prepared before another signer
// wrote the tag is merged onto that write, not over it.
func TestAttachMergesOntoMovedTag(t *testing.T) {
	reg := newSigRegistry(t)
	repo, subject := reg.image()
	a, b := raceSignature(t, repo, subject), raceSignature(t, repo, subject)
	prepared := PrepareAttach(context.Background(), repo, subject, a.Payload, AttachOptions{})
	if _, err := Attach(repo, subject, b, AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := prepared.Commit(a, nil); err != nil {
		t.Fatal(err)
	}
	if got := sigLayers(t, repo, subject); !hasAll(got, a, b) {
		t.Fatalf("after a signature prepared before another was written: %d layers, want both signatures", len(got))
	}
}

// TestAttachRetriesWhenOverwritten: a registry that ignores the condition
// lets a slower signer overwrite the tag with its stale merge right after
// this write; reading the tag back finds the layer gone and merges again.
func TestAttachRetriesWhenOverwritten(t *testing.T) {
	reg := newSigRegistry(t)
	repo, subject := reg.image()
	b := raceSignature(t, repo, subject)
	if _, err := Attach(repo, subject, b, AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	// The tag as another signer read it: with b only. It writes that
	// (plus its own layer, here nothing) back once, after this write.
	stale, err := remote.Get(repo.Tag(strings.Replace(subject.String(), ":", "-", 1) + ".sig"))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	reg.after = func(r *http.Request, h http.Handler) {
		once.Do(func() {
			req := httptest.NewRequest(http.MethodPut, r.URL.Path, bytes.NewReader(stale.Manifest))
			req.Header.Set("Content-Type", string(stale.MediaType))
			h.ServeHTTP(httptest.NewRecorder(), req)
		})
	}
	a := raceSignature(t, repo, subject)
	if _, err := Attach(repo, subject, a, AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := sigLayers(t, repo, subject); !hasAll(got, a, b) {
		t.Fatalf("after an overwrite: %d layers, want both signatures", len(got))
	}
	if n := len(reg.putHeaders()); n != 3 {
		t.Errorf("%d manifest PUTs, want 3 (b, a overwritten, a again)", n)
	}
}

// TestAttachRetriesOnPreconditionFailed: a 412 (the registry saw the tag
// move) makes Attach merge again; a registry that never stops saying so
// gets a bounded number of attempts and an error that says why.
func TestAttachRetriesOnPreconditionFailed(t *testing.T) {
	reg := newSigRegistry(t)
	repo, subject := reg.image()
	var refuse atomic.Int64
	refuse.Store(1)
	reg.before = func(w http.ResponseWriter, r *http.Request) bool {
		if refuse.Add(-1) < 0 {
			return false
		}
		w.WriteHeader(http.StatusPreconditionFailed)
		return true
	}
	a := raceSignature(t, repo, subject)
	if _, err := Attach(repo, subject, a, AttachOptions{}); err != nil {
		t.Fatalf("after one 412: %v", err)
	}
	if got := sigLayers(t, repo, subject); !hasAll(got, a) || len(reg.putHeaders()) != 2 {
		t.Fatalf("after one 412: %d layers, %d PUTs", len(got), len(reg.putHeaders()))
	}

	refuse.Store(1 << 30)
	_, err := Attach(repo, subject, raceSignature(t, repo, subject), AttachOptions{})
	if err == nil || !strings.Contains(err.Error(), "other signers") {
		t.Fatalf("a registry that always answers 412: %v", err)
	}
	if n := len(reg.putHeaders()) - 2; n != maxAttachAttempts {
		t.Errorf("%d attempts, want %d", n, maxAttachAttempts)
	}
}
