package registry

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// maxPage caps a listing page when the client asks for no or too large n.
const maxPage = 1000

func pageParams(r *http.Request) (last string, n int, err error) {
	q := r.URL.Query()
	last = q.Get("last")
	n = maxPage
	if s := q.Get("n"); s != "" {
		v, perr := strconv.Atoi(s)
		if perr != nil || v < 0 {
			return "", 0, apiErr(http.StatusBadRequest, oci.CodePaginationInvalid, "n must be a non-negative integer, got "+strconv.Quote(truncate(s, 50)), nil)
		}
		n = min(v, maxPage)
	}
	return last, n, nil
}

func setNextLink(w http.ResponseWriter, path, last string, n int) {
	q := url.Values{"last": {last}, "n": {strconv.Itoa(n)}}
	w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

func (h *Handler) tags(w http.ResponseWriter, r *http.Request, rt route) error {
	last, n, err := pageParams(r)
	if err != nil {
		return err
	}
	tags := []string{}
	more := false
	if n > 0 {
		tags, more, err = h.meta.ListTags(r.Context(), rt.name, last, n)
		if err != nil {
			return err
		}
	} else if _, _, err := h.meta.ListTags(r.Context(), rt.name, "", 0); err != nil {
		return err // unknown repository is still NAME_UNKNOWN with n=0
	}
	if more {
		setNextLink(w, "/v2/"+rt.name+"/tags/list", tags[len(tags)-1], n)
	}
	return writeJSON(w, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.name, tags})
}

func (h *Handler) catalog(w http.ResponseWriter, r *http.Request, _ route) error {
	last, n, err := pageParams(r)
	if err != nil {
		return err
	}
	repos := []string{}
	more := false
	if n > 0 {
		repos, more, err = h.meta.ListRepositories(r.Context(), last, n)
		if err != nil {
			return err
		}
	}
	if more {
		setNextLink(w, "/v2/_catalog", repos[len(repos)-1], n)
	}
	return writeJSON(w, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
}
