package server

import (
	"github.com/hallmark-dev/hallmark/internal/web"
)

// webOptions are the provenance API's: the search service (shared with the
// console), bundle exports from the blob store with inclusion proofs from
// the transparency log, and, when registry access control is on, answers
// limited to what the caller may pull (the authorizer is internal/auth's).
func (s *Server) webOptions(searcher *web.Searcher) []web.Option {
	opts := []web.Option{web.WithSearcher(searcher), web.WithExport(s.blobs, s.tlog)}
	if s.auth == nil {
		return opts
	}
	return append(opts, web.WithAuthorizer(s.auth.APIAuthorizer()))
}
