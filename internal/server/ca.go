package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hallmark-dev/hallmark/internal/ca"
	"github.com/hallmark-dev/hallmark/internal/keystore"
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
	c, err := ca.New(s.keys, s.oidcVerifier, s.log, ca.Config{Records: s.meta})
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

// RotateCA creates the next CA generation in a server's data dir, for
// `hallmark ca rotate`. The server issues from it from its next start on;
// its trusted root (and the TUF target) then lists both generations, the
// older valid until that start.
func RotateCA(dataDir string, now time.Time) (int, *x509.Certificate, error) {
	if fi, err := os.Stat(filepath.Join(dataDir, "keys")); err != nil || !fi.IsDir() {
		return 0, nil, fmt.Errorf("data dir %s holds no keys: pass the server's --data-dir (env HALLMARK_DATA_DIR) or start the server once", dataDir)
	}
	keys, err := keystore.Open(filepath.Join(dataDir, "keys"))
	if err != nil {
		return 0, nil, err
	}
	return ca.Rotate(keys, now)
}
