package verify

import (
	"crypto/x509"
	"sync"
)

// anchorCache remembers, per CA of a Trust, the trusted intermediates that
// a full chain verification already proved to be issued by the CA's root,
// so that the next leaf they issue is checked with one signature (the
// leaf's, against the intermediate as anchor) instead of two. Go's
// verifier still checks the anchor's validity, key usages and name
// constraints at the leaf's time; the shortcut adds what anchoring drops:
// the root's validity at that time. It is taken only when that is all
// that is dropped: a chain of exactly leaf, intermediate, root, through
// an intermediate of the trusted root (never one stored with a
// signature), whose root sets no name constraints.
type anchorCache struct {
	mu  sync.RWMutex
	cas map[int]*anchors
}

// anchors are one CA's verified intermediates, and the root each chains
// to. A value is never changed once published (a CertPool is not safe to
// grow while it is read): learn publishes a new one.
type anchors struct {
	pool  *x509.CertPool
	pairs map[string][2]*x509.Certificate // intermediate DER -> intermediate, its root
}

// shortcut returns the chain of leaf through a verified intermediate of CA
// i, or nil when there is none (then the full verification runs).
func (c *anchorCache) shortcut(i int, leaf *x509.Certificate) []*x509.Certificate {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	a := c.cas[i]
	c.mu.RUnlock()
	if a == nil {
		return nil
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: a.pool, CurrentTime: leaf.NotBefore,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}})
	if err != nil || len(chains[0]) != 2 {
		return nil
	}
	pair, ok := a.pairs[string(chains[0][1].Raw)]
	if t := leaf.NotBefore; !ok || t.Before(pair[1].NotBefore) || t.After(pair[1].NotAfter) {
		return nil
	}
	return []*x509.Certificate{chains[0][0], pair[0], pair[1]}
}

// learn remembers the intermediate of a fully verified chain of CA i.
func (c *anchorCache) learn(i int, chain []*x509.Certificate) {
	if c == nil || len(chain) != 3 || constrains(chain[2]) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cas == nil {
		c.cas = map[int]*anchors{}
	}
	old := c.cas[i]
	if old != nil {
		if _, ok := old.pairs[string(chain[1].Raw)]; ok {
			return
		}
	}
	next := &anchors{pool: x509.NewCertPool(), pairs: map[string][2]*x509.Certificate{string(chain[1].Raw): {chain[1], chain[2]}}}
	if old != nil {
		for raw, pair := range old.pairs {
			next.pairs[raw] = pair
		}
	}
	for _, pair := range next.pairs {
		next.pool.AddCert(pair[0])
	}
	c.cas[i] = next
}

// constrains reports whether a root sets name constraints, which anchoring
// at its intermediate would skip.
func constrains(r *x509.Certificate) bool {
	return r.PermittedDNSDomainsCritical || len(r.PermittedDNSDomains) > 0 || len(r.ExcludedDNSDomains) > 0 ||
		len(r.PermittedIPRanges) > 0 || len(r.ExcludedIPRanges) > 0 || len(r.PermittedEmailAddresses) > 0 ||
		len(r.ExcludedEmailAddresses) > 0 || len(r.PermittedURIDomains) > 0 || len(r.ExcludedURIDomains) > 0
}
