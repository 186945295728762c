package server

import (
	"crypto/x509"
	"encoding/hex"

	"github.com/hallmark-dev/hallmark/internal/index"
	"github.com/hallmark-dev/hallmark/internal/web"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// setupIndexTrust gives the signature indexer the server's own keyless
// trust (the CA chain, its CT log key and the transparency log key), so
// keyless signatures made with this server's services are recorded as
// verified and a bad SET as invalid. It runs after setupCA and setupTlog.
func (s *Server) setupIndexTrust(ix *index.Indexer) {
	if s.ca == nil || s.tlog == nil {
		return
	}
	// The server's own chain is trusted as a whole: its intermediate is an
	// anchor too, so indexing a signature verifies one certificate
	// signature (the leaf's), not two, on the manifest push path. Its own
	// keys and current CA are trusted at any time (open windows).
	// A rotated-out CA generation is trusted for what it issued until the
	// next one took over.
	t := index.KeylessTrust{CTLogKeys: map[string]root.LogKey{}, TlogKeys: map[string]root.LogKey{}}
	for _, g := range s.ca.Generations() {
		ca := root.CA{URI: s.url, Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool(), ValidFor: root.Window{End: g.Until}}
		for _, c := range g.Chain {
			ca.Roots.AddCert(c)
		}
		t.CAs = append(t.CAs, ca)
	}
	ctID := s.ca.CTLogID()
	t.CTLogKeys[hex.EncodeToString(ctID[:])] = root.LogKey{Key: s.ca.CTLogPublicKey()}
	tlogID := s.tlog.LogID()
	t.TlogKeys[hex.EncodeToString(tlogID[:])] = root.LogKey{Key: s.tlog.PublicKey()}
	ix.SetKeylessTrust(t)
}

// webOptions limits the provenance API to what the caller may pull when
// registry access control is on (the authorizer is internal/auth's).
func (s *Server) webOptions() []web.Option {
	if s.auth == nil {
		return nil
	}
	return []web.Option{web.WithAuthorizer(s.auth.APIAuthorizer())}
}
