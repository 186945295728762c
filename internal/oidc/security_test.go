package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestUnreachableIssuerNotHammered: a token only has to name a trusted
// issuer (no valid signature needed) to make the verifier fetch that
// issuer's keys. While an issuer is unreachable and nothing is cached,
// every such token used to cost an outbound discovery request (up to the
// fetch timeout, serialised behind one lock), so anyone could turn the
// server into a request amplifier against the issuer and stall every
// login and certificate request for it. Failed fetches are rate-limited
// like refreshes: at most one per refresh interval.
func TestUnreachableIssuerNotHammered(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	c := newClock()
	v := newTestVerifier(t, c, nil, TrustedIssuer{URL: srv.URL, Type: TypeGitLab})
	forged := rawJWT(map[string]any{"alg": "RS256", "kid": "k1"}, gitlabPayload(srv.URL, c.Now()), []byte("not a signature"))
	for i := 0; i < 5; i++ {
		_, err := v.Verify(context.Background(), forged, "sigstore")
		if !errors.Is(err, ErrIssuerUnavailable) {
			t.Fatalf("attempt %d: %v, want ErrIssuerUnavailable", i, err)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("%d requests to the unreachable issuer for 5 tokens within the refresh interval, want 1", n)
	}
	c.Advance(11 * time.Second)
	v.Verify(context.Background(), forged, "sigstore")
	if n := hits.Load(); n != 2 {
		t.Fatalf("%d requests after the refresh interval, want 2 (the issuer must be retried)", n)
	}
}

// TestCancelledFetchDoesNotBlockOthers: a client that sends a token and
// hangs up aborts the key fetch; that must not be remembered as the
// issuer's failure (it would lock everyone else out for the refresh
// interval, on demand).
func TestCancelledFetchDoesNotBlockOthers(t *testing.T) {
	c := newClock()
	ext := newExtIssuer(t, false)
	k1, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ext.publish("k1", &k1.PublicKey, "RS256")
	v := newTestVerifier(t, c, nil, TrustedIssuer{URL: ext.URL, Type: TypeGitLab})
	tok := signJWT(t, jose.RS256, k1, "k1", gitlabPayload(ext.URL, c.Now()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.Verify(ctx, tok, "sigstore"); err == nil {
		t.Fatal("verified with a cancelled context")
	}
	if _, err := v.Verify(context.Background(), tok, "sigstore"); err != nil {
		t.Fatalf("after another caller's cancelled fetch: %v", err)
	}
}
