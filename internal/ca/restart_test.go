package ca_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/ca"
	"github.com/hallmark-dev/hallmark/internal/keystore"
)

// TestRestartReusesHierarchy: keys and certificates are created once
// (0600) and reused; a certificate issued before a restart verifies against
// the chain and CT key after it.
func TestRestartReusesHierarchy(t *testing.T) {
	f := newFixture(t)
	claims := f.iss.gitlab.gitlabClaims()
	k := newP256(t)
	status, _, body := f.post(t, "/api/v1/signingCert", f.iss.gitlab.mint(claims), v1Body(pubPEM(t, k.Public()), proveP256(t, k, claims["sub"].(string))))
	if status != 201 {
		t.Fatalf("status %d: %s", status, body)
	}
	before := parsePEMChain(t, body)

	for _, name := range []string{"ca-root", "ca-intermediate", "ca-root-cert", "ca-intermediate-cert", "ctlog"} {
		fi, err := os.Stat(filepath.Join(f.keys, name+".pem"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}

	v, _ := newVerifier(t)
	ks, _ := keystore.Open(f.keys)
	again, err := ca.New(context.Background(), ks, v, nil, ca.Config{Organization: "Other"}) // Organization only applies at creation
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := f.ca.Chain(), again.Chain()
	for i := range c1 {
		if !c1[i].Equal(c2[i]) {
			t.Fatalf("chain certificate %d changed across restart", i)
		}
	}
	if f.ca.CTLogID() != again.CTLogID() || !samePub(f.ca.CTLogPublicKey(), again.CTLogPublicKey()) {
		t.Fatal("CT log key changed across restart")
	}
	verifyLeaf(t, again, before)
}

// TestStoredCertificateProblems: a damaged or mismatched stored
// certificate stops the CA instead of silently creating a new one.
func TestStoredCertificateProblems(t *testing.T) {
	v, _ := newVerifier(t)
	for _, tc := range []struct {
		name   string
		damage func(dir string)
		msg    string
	}{
		{"garbage root certificate", func(dir string) {
			os.WriteFile(filepath.Join(dir, "ca-root-cert.pem"), []byte("garbage"), 0o600)
		}, "no PEM CERTIFICATE"},
		{"intermediate certificate in place of the root", func(dir string) {
			raw, _ := os.ReadFile(filepath.Join(dir, "ca-intermediate-cert.pem"))
			os.Remove(filepath.Join(dir, "ca-root-cert.pem"))
			os.WriteFile(filepath.Join(dir, "ca-root-cert.pem"), raw, 0o600)
		}, "does not belong to the key"},
		{"intermediate key replaced", func(dir string) {
			os.Remove(filepath.Join(dir, "ca-intermediate.pem"))
		}, "does not belong to the key"},
		{"CT key not ECDSA", func(dir string) {
			os.Remove(filepath.Join(dir, "ctlog.pem"))
			ks, _ := keystore.Open(dir)
			keystore.LoadOrCreate(context.Background(), ks, "ctlog", keystore.Ed25519)
		}, "must be ECDSA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ks, _ := keystore.Open(dir)
			if _, err := ca.New(context.Background(), ks, v, nil, ca.Config{}); err != nil {
				t.Fatal(err)
			}
			tc.damage(dir)
			_, err := ca.New(context.Background(), ks, v, nil, ca.Config{})
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want %q", err, tc.msg)
			}
		})
	}
}
