package server

import (
	"context"
	"errors"
	"net/http"

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
	c, err := ca.New(s.keys, s.oidcVerifier, s.log, ca.Config{})
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
