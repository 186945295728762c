package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
	"github.com/hallmark-dev/hallmark/internal/web"
)

// ConsolePath is where the web console is served.
const ConsolePath = web.UIPath

// consoleStore is what the console reads: the SQL store, and blobs from
// the blob store.
type consoleStore struct {
	*sqlstore.Store
	blobs blobStore
}

func (c consoleStore) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	return c.blobs.Open(ctx, d)
}

// setupConsole serves the web console under /ui/: with access control on,
// visitors sign in with a password or personal access token (sessions in
// the database) and see what the provenance API would show them; the
// search page shares api's search and exports, and quarantines through
// the pull policy's service. It runs after setupTlog and setupPolicy.
func (s *Server) setupConsole(mux *http.ServeMux, api *web.API) error {
	db, ok := s.meta.(*sqlstore.Store)
	if !ok {
		return fmt.Errorf("the console needs a SQL metadata database (got %T)", s.meta)
	}
	cfg := web.UIConfig{ExternalURL: s.url, SecureCookies: strings.HasPrefix(s.url, "https://") || s.cfg.TLSCert != "", API: api}
	if s.policy != nil {
		cfg.Quarantine = s.policy
	}
	if s.auth != nil {
		authz := s.auth.APIAuthorizer()
		cfg.Auth = &web.UIAuth{
			Sessions:   s.auth.Sessions(db, auth.SessionConfig{IdleTimeout: s.cfg.SessionIdleTimeout}),
			PullCheck:  authz.PullCheck,
			ClientAddr: s.auth.ClientAddr,
			Audit:      s.auth.AuditEvents,
			Caller:     authz.SessionCaller,
			Visible:    authz.VisibleTo,
		}
	}
	var tl web.TransparencyLog
	if s.tlog != nil {
		tl = s.tlog
	}
	ui, err := web.NewUI(consoleStore{Store: db, blobs: s.blobs}, tl, s.log, cfg)
	if err != nil {
		return err
	}
	h := s.metrics.instrument("console", ui)
	mux.Handle(ConsolePath, h)
	mux.Handle("GET /ui", http.RedirectHandler(ConsolePath, http.StatusMovedPermanently))
	return nil
}
