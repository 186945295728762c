package server

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"time"

	"github.com/hallmark-dev/hallmark/internal/ca"
)

// setupCA builds the Fulcio-compatible CA (root, intermediate and CT log
// keys in <data-dir>/keys, created on first start) on top of the OIDC
// verifier, and registers Fulcio's v1 and v2 HTTP API. It runs after
// setupOIDC.
func (s *Server) setupCA(ctx context.Context, mux *http.ServeMux) error {
	if s.oidcVerifier == nil {
		return errors.New("the CA needs the OIDC verifier: setupOIDC must run first")
	}
	// The CA records the verified claims of each certificate it issues
	// (incident search by runner, user, pipeline).
	kind, err := ca.ParseKeyType(s.cfg.CAKeyType)
	if err != nil {
		return err
	}
	c, err := ca.New(ctx, s.keys, s.oidcVerifier, s.log, ca.Config{Records: s.meta, KeyType: kind})
	if err != nil {
		return err
	}
	for _, r := range c.Routes() {
		mux.Handle(r.Pattern, s.metrics.instrument(r.Label, r.Handler))
	}
	s.ca = c
	root := c.Chain()[len(c.Chain())-1]
	s.log.InfoContext(ctx, "ca: ready", "root", root.Subject.String(), "root_not_after", root.NotAfter)
	return nil
}

// RotateCA creates the next CA generation in the key store of a server's
// database db (<data-dir>/keys, or sealed in PostgreSQL), for `hallmark
// ca rotate`. The server issues from it from its next start on (restart
// every replica); its trusted root (and the TUF target) then lists both
// generations, the older valid until that start. keyType names the new
// keys' type (ca.ParseKeyType).
func RotateCA(ctx context.Context, db Database, keyType string, now time.Time) (int, *x509.Certificate, error) {
	kind, err := ca.ParseKeyType(keyType)
	if err != nil {
		return 0, nil, err
	}
	keys, _, closeFn, err := db.keysOf(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer closeFn()
	return ca.Rotate(ctx, keys, kind, now)
}
