package server

import (
	"github.com/hallmark-dev/hallmark/internal/web"
)

// webOptions limits the provenance API to what the caller may pull when
// registry access control is on (the authorizer is internal/auth's).
func (s *Server) webOptions() []web.Option {
	if s.auth == nil {
		return nil
	}
	return []web.Option{web.WithAuthorizer(s.auth.APIAuthorizer())}
}
