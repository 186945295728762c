package tuf

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// Handler serves the repository's files, GET /<name> for each name
// CheckName accepts (mount it under a prefix with http.StripPrefix). A
// name outside the layout, or not held, is a 404: TUF clients probe for
// the next root version and stop at a 404. Target files are content
// addressed and cacheable forever; metadata must be revalidated.
func (r *Repository) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(req.URL.Path, "/")
		if CheckName(name) != nil {
			http.NotFound(w, req)
			return
		}
		data, err := r.store.Get(req.Context(), name)
		if errors.Is(err, ErrNotFound) {
			http.NotFound(w, req)
			return
		}
		if err != nil {
			r.log.ErrorContext(req.Context(), "tuf: reading a repository file", "name", name, "err", err)
			http.Error(w, "the TUF repository cannot be read right now; try again later", http.StatusServiceUnavailable)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("X-Content-Type-Options", "nosniff")
		if strings.HasPrefix(name, targetsDir) {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		h.Set("Content-Length", strconv.Itoa(len(data)))
		if req.Method == http.MethodHead {
			return
		}
		w.Write(data)
	})
}
