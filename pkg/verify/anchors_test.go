package verify

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/root"
)

// tinyCA is a root, an intermediate and leaves they issue.
type tinyCA struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
}

func newTinyCA(t *testing.T, rootTmpl *x509.Certificate) *tinyCA {
	t.Helper()
	c := &tinyCA{rootKey: newKey(t), interKey: newKey(t)}
	now := time.Now()
	if rootTmpl == nil {
		rootTmpl = &x509.Certificate{}
	}
	rootTmpl.SerialNumber, rootTmpl.Subject = big.NewInt(1), pkix.Name{CommonName: "root"}
	if rootTmpl.NotBefore.IsZero() {
		rootTmpl.NotBefore, rootTmpl.NotAfter = now.Add(-time.Hour), now.Add(time.Hour)
	}
	rootTmpl.IsCA, rootTmpl.BasicConstraintsValid, rootTmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	der, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &c.rootKey.PublicKey, c.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	c.root, _ = x509.ParseCertificate(der)
	interTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "intermediate"}, NotBefore: now.Add(-2 * time.Hour),
		NotAfter: now.Add(2 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	der, err = x509.CreateCertificate(rand.Reader, interTmpl, c.root, &c.interKey.PublicKey, c.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	c.inter, _ = x509.ParseCertificate(der)
	return c
}

func (c *tinyCA) leaf(t *testing.T, at time.Time, uri string) *x509.Certificate {
	t.Helper()
	u, _ := url.Parse(uri)
	k := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(at.UnixNano()), NotBefore: at, NotAfter: at.Add(10 * time.Minute), URIs: []*url.URL{u},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.inter, &k.PublicKey, c.interKey)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := x509.ParseCertificate(der)
	return l
}

func (c *tinyCA) material() *root.Material {
	ca := root.CA{URI: "https://ca.test", Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool()}
	ca.Roots.AddCert(c.root)
	ca.Intermediates.AddCert(c.inter)
	return &root.Material{CAs: []root.CA{ca}}
}

// TestAnchorShortcut: once a chain through a trusted intermediate has been
// verified, the next leaf of that intermediate is checked against it
// alone, with the same result; what anchoring would skip is never skipped.
func TestAnchorShortcut(t *testing.T) {
	c := newTinyCA(t, nil)
	trust := NewTrust([]*root.Material{c.material()})
	now := time.Now()
	first, err := verifyChain(c.leaf(t, now, "https://a.test"), nil, trust.CAs, trust.anchors)
	if err != nil || len(first.Certificates) != 3 {
		t.Fatalf("full verification: %v", err)
	}
	leaf := c.leaf(t, now, "https://b.test")
	if got := trust.anchors.shortcut(0, leaf); len(got) != 3 || got[1] != c.inter && !got[1].Equal(c.inter) || !got[2].Equal(c.root) {
		t.Fatalf("no shortcut after a full verification: %v", got)
	}
	second, err := verifyChain(leaf, nil, trust.CAs, trust.anchors)
	if err != nil || !second.Certificates[2].Equal(c.root) || second.CA() != "https://ca.test" {
		t.Fatalf("through the shortcut: %+v, %v", second, err)
	}
	// A leaf of another intermediate of the same name is not let through.
	other := newTinyCA(t, nil)
	if _, err := verifyChain(other.leaf(t, now, "https://c.test"), nil, trust.CAs, trust.anchors); err == nil {
		t.Fatal("a leaf of another CA verified")
	}

	// The root's own validity at the leaf's time is checked: a root that
	// expired before the leaf was issued does not vouch for it.
	shortRoot := newTinyCA(t, &x509.Certificate{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Minute)})
	st := NewTrust([]*root.Material{shortRoot.material()})
	if _, err := verifyChain(shortRoot.leaf(t, now, "https://a.test"), nil, st.CAs, st.anchors); err != nil {
		t.Fatal(err)
	}
	late := shortRoot.leaf(t, now.Add(30*time.Minute), "https://late.test")
	if got := st.anchors.shortcut(0, late); got != nil {
		t.Fatal("the shortcut vouched for a leaf issued after its root expired")
	}
	if _, err := verifyChain(late, nil, st.CAs, st.anchors); err == nil {
		t.Fatal("a leaf issued after its root expired verified")
	}

	// A root with name constraints is never skipped.
	constrained := newTinyCA(t, &x509.Certificate{PermittedURIDomains: []string{"a.test"}})
	ct := NewTrust([]*root.Material{constrained.material()})
	if _, err := verifyChain(constrained.leaf(t, now, "https://a.test"), nil, ct.CAs, ct.anchors); err != nil {
		t.Fatal(err)
	}
	if got := ct.anchors.shortcut(0, constrained.leaf(t, now, "https://b.test")); got != nil {
		t.Fatal("learned an intermediate under a name-constrained root")
	}
	if _, err := verifyChain(constrained.leaf(t, now, "https://b.test"), nil, ct.CAs, ct.anchors); err == nil {
		t.Fatal("a leaf outside the root's name constraints verified")
	}

	// Intermediates stored with a signature (a CA without trusted ones)
	// are never learned.
	ca := root.CA{Roots: x509.NewCertPool()}
	ca.Roots.AddCert(c.root)
	stored := NewTrust([]*root.Material{{CAs: []root.CA{ca}}})
	if _, err := verifyChain(c.leaf(t, now, "https://a.test"), []*x509.Certificate{c.inter}, stored.CAs, stored.anchors); err != nil {
		t.Fatal(err)
	}
	if got := stored.anchors.shortcut(0, c.leaf(t, now, "https://b.test")); got != nil {
		t.Fatal("learned an intermediate stored with a signature")
	}
}
