package ca_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/ca"
	"github.com/hallmark-dev/hallmark/internal/keystore"
)

// TestKeyType: a CA is created with the configured key type; a stored CA
// keeps its keys when the setting changes (else every client's trust would
// break); what either issues chains to it; unknown names are refused.
func TestKeyType(t *testing.T) {
	for _, tc := range []struct {
		name  string
		curve elliptic.Curve
		alg   x509.SignatureAlgorithm
	}{{"", elliptic.P256(), x509.ECDSAWithSHA256}, {"ecdsa-p256", elliptic.P256(), x509.ECDSAWithSHA256}, {"ecdsa-p384", elliptic.P384(), x509.ECDSAWithSHA384}} {
		kind, err := ca.ParseKeyType(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		ks, err := keystore.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		v, is := newVerifier(t)
		c, err := ca.New(context.Background(), ks, v, nil, ca.Config{KeyType: kind})
		if err != nil {
			t.Fatal(err)
		}
		check := func(c *ca.CA, when string) {
			t.Helper()
			for _, cert := range c.Chain() {
				if k, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != tc.curve || cert.SignatureAlgorithm != tc.alg {
					t.Errorf("%q %s: %s has %T %s", tc.name, when, cert.Subject.CommonName, cert.PublicKey, cert.SignatureAlgorithm)
				}
			}
			claims := is.gitlab.gitlabClaims()
			k := newP256(t)
			iss, err := c.Issue(context.Background(), is.gitlab.mint(claims),
				ca.KeyRequest{PublicKey: pubPEM(t, k.Public()), Proof: proveP256(t, k, claims["sub"].(string))})
			if err != nil {
				t.Fatal(err)
			}
			if iss.Leaf.SignatureAlgorithm != tc.alg {
				t.Errorf("%q %s: leaf signed with %s, want %s", tc.name, when, iss.Leaf.SignatureAlgorithm, tc.alg)
			}
			roots, inters := x509.NewCertPool(), x509.NewCertPool()
			roots.AddCert(c.Chain()[1])
			inters.AddCert(c.Chain()[0])
			if _, err := iss.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: time.Now(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
				t.Errorf("%q %s: leaf does not chain to the CA: %v", tc.name, when, err)
			}
		}
		check(c, "created")
		// Restarted with the other type configured: the stored keys win.
		other := keystore.ECDSAP384
		if kind == keystore.ECDSAP384 {
			other = keystore.ECDSAP256
		}
		again, err := ca.New(context.Background(), ks, v, nil, ca.Config{KeyType: other})
		if err != nil {
			t.Fatal(err)
		}
		check(again, "restarted with the other key type configured")
	}
	for _, bad := range []string{"rsa", "P-256", "ecdsa-p521", "ed25519"} {
		if _, err := ca.ParseKeyType(bad); err == nil {
			t.Errorf("ParseKeyType(%q) accepted", bad)
		}
	}
}
