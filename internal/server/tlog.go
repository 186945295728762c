package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
	"github.com/hallmark-dev/hallmark/internal/tlog"
)

// setupTlog opens the transparency log kept in the metadata database, with
// the "rekor" key of the key store, and serves its Rekor v1 API under
// /api/v1/log.
func (s *Server) setupTlog(ctx context.Context, mux *http.ServeMux) error {
	db, ok := s.meta.(*sqlstore.Store)
	if !ok {
		return fmt.Errorf("the transparency log needs a SQL metadata database (got %T)", s.meta)
	}
	store, err := db.TransparencyLog(ctx)
	if err != nil {
		return err
	}
	key, err := keystore.LoadOrCreate(ctx, s.keys, "rekor", keystore.ECDSAP256)
	if err != nil {
		return fmt.Errorf("log key: %w", err)
	}
	u, err := url.Parse(s.url)
	if err != nil || u.Host == "" {
		return fmt.Errorf("external URL %q has no host to name the log with", s.url)
	}
	l, err := tlog.New(ctx, store, key, s.log, tlog.Config{Hostname: u.Host})
	if err != nil {
		return err
	}
	api, err := tlog.NewAPI(l, s.log, tlog.APIConfig{BaseURL: s.url})
	if err != nil {
		return err
	}
	api.Register(mux, s.metrics.instrument)
	s.tlog = l
	return nil
}

// Tlog is the server's transparency log (for trust distribution and tests).
func (s *Server) Tlog() *tlog.Log { return s.tlog }
