package ca_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/ca"
	"github.com/hallmark-dev/hallmark/internal/keystore"
)

// TestRotateGenerations: a rotation adds a CA generation that a restarted
// CA issues from; the older generations stay listed, each valid until the
// start that took the next one into use (recorded once, kept across
// restarts), and what they issued still chains to them. A second rotation
// before the first was taken into use is refused.
func TestRotateGenerations(t *testing.T) {
	dir := t.TempDir()
	ks, _ := keystore.Open(dir)
	v, is := newVerifier(t)
	c1, err := ca.New(context.Background(), ks, v, nil, ca.Config{})
	if err != nil {
		t.Fatal(err)
	}
	claims := is.gitlab.gitlabClaims()
	issue := func(c *ca.CA) []*x509.Certificate {
		t.Helper()
		k := newP256(t)
		iss, err := c.Issue(context.Background(), is.gitlab.mint(claims),
			ca.KeyRequest{PublicKey: pubPEM(t, k.Public()), Proof: proveP256(t, k, claims["sub"].(string))})
		if err != nil {
			t.Fatal(err)
		}
		return append([]*x509.Certificate{iss.Leaf}, iss.Chain...)
	}
	old := issue(c1)
	if g := c1.Generations(); len(g) != 1 || g[0].N != 1 || !g[0].Until.IsZero() {
		t.Fatalf("generations of a new CA: %+v", g)
	}

	// The new generation may have another key type than the first.
	n, root2, err := ca.Rotate(context.Background(), ks, keystore.ECDSAP384, time.Now())
	if err != nil || n != 2 || root2.Subject.CommonName != "Hallmark root 2" {
		t.Fatalf("rotate: %d %v %v", n, root2.Subject, err)
	}
	if k, ok := root2.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P384() || root2.SignatureAlgorithm != x509.ECDSAWithSHA384 {
		t.Errorf("generation 2 root: %T %s, want ECDSA P-384 with SHA-384", root2.PublicKey, root2.SignatureAlgorithm)
	}
	if _, _, err := ca.Rotate(context.Background(), ks, keystore.ECDSAP256, time.Now()); !errors.Is(err, ca.ErrRotationPending) {
		t.Fatalf("second rotation before a restart: %v", err)
	}
	start := time.Now()
	c2, err := ca.New(context.Background(), ks, v, nil, ca.Config{})
	if err != nil {
		t.Fatal(err)
	}
	gens := c2.Generations()
	if len(gens) != 2 || !gens[1].Chain[1].Equal(root2) || !c2.Chain()[1].Equal(root2) || !gens[1].Until.IsZero() {
		t.Fatalf("after the restart: %+v", gens)
	}
	if !gens[0].Chain[1].Equal(old[2]) || gens[0].Until.Before(start.Add(-time.Second)) || gens[0].Until.After(time.Now()) {
		t.Fatalf("generation 1: root changed or valid until %v (restart at %v)", gens[0].Until, start)
	}
	if fi, err := os.Stat(filepath.Join(dir, "ca-activated-2")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("activation record: %v %v", fi, err)
	}
	verifyLeaf(t, c2, issue(c2))
	// What generation 1 issued still chains to generation 1.
	if err := old[1].CheckSignatureFrom(gens[0].Chain[1]); err != nil || old[0].CheckSignatureFrom(gens[0].Chain[0]) != nil {
		t.Errorf("generation 1's certificate does not chain to generation 1: %v", err)
	}

	// Fulcio's trust endpoints list both generations, the current first.
	mux := http.NewServeMux()
	c2.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	var tb struct {
		Chains []struct {
			Certificates []string `json:"certificates"`
		} `json:"chains"`
	}
	resp, err := http.Get(srv.URL + "/api/v2/trustBundle")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&tb)
	resp.Body.Close()
	if err != nil || len(tb.Chains) != 2 || !parsePEMChain(t, []byte(tb.Chains[0].Certificates[1]))[0].Equal(root2) ||
		!parsePEMChain(t, []byte(tb.Chains[1].Certificates[1]))[0].Equal(old[2]) {
		t.Errorf("trust bundle after a rotation: %v %d chains", err, len(tb.Chains))
	}
	resp, err = http.Get(srv.URL + "/api/v1/rootCert")
	if err != nil {
		t.Fatal(err)
	}
	all, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if certs := parsePEMChain(t, all); len(certs) != 4 || !certs[1].Equal(root2) || !certs[3].Equal(old[2]) {
		t.Errorf("rootCert after a rotation: %d certificates", len(certs))
	}

	// A later restart keeps the record.
	c3, err := ca.New(context.Background(), ks, v, nil, ca.Config{})
	if err != nil || !c3.Generations()[0].Until.Equal(gens[0].Until) {
		t.Fatalf("restart moved the end of generation 1: %v", err)
	}
	// Now a third generation may come.
	if n, _, err := ca.Rotate(context.Background(), ks, keystore.ECDSAP256, time.Now()); err != nil || n != 3 {
		t.Fatalf("third generation: %d %v", n, err)
	}
	c4, err := ca.New(context.Background(), ks, v, nil, ca.Config{})
	if err != nil || len(c4.Generations()) != 3 || c4.Generations()[1].Until.IsZero() {
		t.Fatalf("three generations: %v %+v", err, c4.Generations())
	}
}

// TestRotateProblems: rotating without a CA, and a lost activation record,
// are errors that say what to do.
func TestRotateProblems(t *testing.T) {
	empty, _ := keystore.Open(t.TempDir())
	if _, _, err := ca.Rotate(context.Background(), empty, keystore.ECDSAP256, time.Now()); err == nil || !strings.Contains(err.Error(), "start the server once") {
		t.Errorf("rotate without a CA: %v", err)
	}
	f := newFixture(t)
	ks, _ := keystore.Open(f.keys)
	v, _ := newVerifier(t)
	if _, _, err := ca.Rotate(context.Background(), ks, keystore.ECDSAP256, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.New(context.Background(), ks, v, nil, ca.Config{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Rotate(context.Background(), ks, keystore.ECDSAP256, time.Now()); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(f.keys, "ca-activated-2"))
	if _, err := ca.New(context.Background(), ks, v, nil, ca.Config{}); err == nil || !strings.Contains(err.Error(), "ca-activated-2") {
		t.Errorf("lost activation record: %v", err)
	}
	os.WriteFile(filepath.Join(f.keys, "ca-activated-2"), []byte("yesterday"), 0o600)
	if _, err := ca.New(context.Background(), ks, v, nil, ca.Config{}); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Errorf("damaged activation record: %v", err)
	}
}
