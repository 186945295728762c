package server

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
	"github.com/hallmark-dev/hallmark/internal/policy"
)

// setupPolicy builds the pull policy's service and mounts its JSON API on
// api (the /api/ mux), authorized as the provenance API when access
// control is on.
func (s *Server) setupPolicy(api *http.ServeMux, store *sqlstore.Store) {
	s.policy = policy.New(store, s.log, policy.Config{})
	var authz policy.Authorizer
	if s.auth != nil {
		authz = s.auth.APIAuthorizer()
	}
	policy.NewAPI(s.policy, authz).Register(api)
}

// Policy returns the pull policy's service (quarantine, require-signature),
// e.g. for the console's quarantine of a search's result set.
func (s *Server) Policy() *policy.Service { return s.policy }

// OpenPolicy opens the database db names for the quarantine and
// require-signature commands (the server may be running). close must be
// called.
func OpenPolicy(ctx context.Context, db Database, log *slog.Logger) (svc *policy.Service, close func() error, err error) {
	if err := db.checkDataDir(); err != nil {
		return nil, nil, err
	}
	store, err := db.open(ctx, 2)
	if err != nil {
		return nil, nil, err
	}
	return policy.New(store, log, policy.Config{}), store.Close, nil
}
