package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
)

// searchField is one text condition of the search form.
type searchField struct {
	Name, Label, Value, Placeholder, Help string
}

// searchRow is one result of the search page.
type searchRow struct {
	Repository     string
	Digest         digest.Digest
	Tags           []string
	Status         string
	StatusDetail   string
	Identity       string
	Issuer         string
	Created        time.Time
	Matches        []Match
	Contradictions int
	// Maintainer: the visitor may quarantine this image (its checkbox).
	Maintainer bool
}

// Item is the row's image as the quarantine form names it.
func (r searchRow) Item() string { return r.Repository + "@" + r.Digest.String() }

type searchData struct {
	Fields        []searchField
	Annotations   []string // the annotation conditions, plus one empty input
	StatusChoices []statusChoice
	Since         string
	Until         string
	Limit         int
	Searched      bool
	Results       []searchRow
	Next          string // URL of the next page
	First         string // URL of the first page (on later pages)
	Query         string // the search as URL parameters (no cursor): quarantine of all
	// ExportCSV, ExportNDJSON, ExportBundles download every match.
	ExportCSV, ExportNDJSON, ExportBundles string
	// CanQuarantine: the visitor may quarantine at least one result.
	CanQuarantine bool
	MaxItems      int
	Limits        []int
}

type statusChoice struct {
	Name string
	On   bool
}

// searchStatuses are the statuses a search may ask for, in the form's
// order.
var searchStatuses = []string{meta.StatusVerified, meta.StatusInvalid, meta.StatusUnverified}

// searchLimits are the page sizes the form offers.
var searchLimits = []int{DefaultLimit, 50, 100, 500}

// searchValues are the request's search parameters without empty ones
// (the form sends every field).
func searchValues(in url.Values) url.Values {
	out := url.Values{}
	for k, vs := range in {
		for _, s := range vs {
			if strings.TrimSpace(s) != "" {
				out.Add(k, s)
			}
		}
	}
	return out
}

// caller is the visitor's API caller: what the JSON API would let the
// same principal see and do.
func (ui *UI) caller(r *http.Request, v *Visitor) auth.Caller {
	a := ui.cfg.Auth
	if a == nil {
		return auth.OpenCaller(r.RemoteAddr)
	}
	return a.Caller(v.p, a.ClientAddr(r))
}

// access is what c may see, as a search's filter.
func (ui *UI) access(ctx context.Context, c auth.Caller) (Access, error) {
	if ui.cfg.Auth == nil {
		return Access{All: true}, nil
	}
	vis, err := ui.cfg.Auth.Visible(ctx, c)
	return Access(vis), err
}

// visitorAccess is the visitor's caller and what it may see.
func (ui *UI) visitorAccess(r *http.Request, v *Visitor) (Access, auth.Caller, error) {
	c := ui.caller(r, v)
	acc, err := ui.access(r.Context(), c)
	return acc, c, err
}

// searchFailed answers a failed search as a page: 400 for a bad query,
// 503 when busy, else a server error.
func (ui *UI) searchFailed(w http.ResponseWriter, r *http.Request, v *Visitor, err error) {
	switch {
	case errors.Is(err, ErrBadQuery):
		ui.badRequest(w, r, v, err.Error())
	case errors.Is(err, ErrBusy), errors.Is(err, ErrTimeout):
		w.Header().Set("Retry-After", "2")
		ui.errorPage(w, r, v, http.StatusServiceUnavailable, "Search unavailable", err.Error())
	default:
		ui.internalError(w, r, v, err)
	}
}

// search serves /ui/search: the form, and with conditions one page of
// results (newest first) the visitor may pull, the next page by the
// search's cursor.
func (ui *UI) search(w http.ResponseWriter, r *http.Request, v *Visitor) {
	if ui.cfg.API == nil {
		ui.notFound(w, r, v, "This server has no incident search.")
		return
	}
	ctx := r.Context()
	vals := searchValues(r.URL.Query())
	q, err := ParseQuery(vals, ui.cfg.Now())
	if err != nil {
		ui.searchFailed(w, r, v, err)
		return
	}
	d := &searchData{Limit: q.Limit, Since: vals.Get("since"), Until: vals.Get("until"), MaxItems: maxQuarantineItems,
		Limits: searchLimits, Annotations: append(slices.Clone(vals["annotation"]), "")}
	for _, st := range searchStatuses {
		d.StatusChoices = append(d.StatusChoices, statusChoice{Name: st, On: slices.Contains(q.Status, st)})
	}
	d.Fields = []searchField{
		{Name: "commit", Label: "Commit", Value: q.Commit, Placeholder: "SHA or prefix (7+ hex digits)"},
		{Name: "pipeline", Label: "Pipeline", Value: q.Pipeline, Placeholder: "id or URL"},
		{Name: "job", Label: "Job", Value: q.Job, Placeholder: "id or URL"},
		{Name: "project", Label: "Project", Value: q.Project, Placeholder: "group/project"},
		{Name: "ref", Label: "Ref", Value: q.Ref, Placeholder: "main or refs/heads/main"},
		{Name: "user", Label: "CI user", Value: q.User, Placeholder: "user login"},
		{Name: "runner", Label: "Runner", Value: q.Runner, Placeholder: "runner id", Help: "from the CA's record of the token"},
		{Name: "identity", Label: "Identity", Value: q.Identity, Placeholder: "certificate identity or key"},
		{Name: "issuer", Label: "Issuer", Value: q.Issuer, Placeholder: "OIDC issuer URL"},
	}
	if len(vals) == 0 {
		ui.render(w, r, http.StatusOK, "search", page{Title: "Search", Nav: "search", V: v, Data: d})
		return
	}
	acc, caller, err := ui.visitorAccess(r, v)
	if err != nil {
		ui.internalError(w, r, v, err)
		return
	}
	res, err := ui.cfg.API.searcher.Search(ctx, q, acc)
	if err != nil {
		ui.searchFailed(w, r, v, err)
		return
	}
	d.Searched = true
	base := q.Values()
	base.Del("cursor")
	d.Query = base.Encode()
	base.Del("limit")
	for _, x := range []struct {
		dst    *string
		format string
	}{{&d.ExportCSV, FormatCSV}, {&d.ExportNDJSON, FormatNDJSON}, {&d.ExportBundles, FormatBundles}} {
		*x.dst = UIPath + "search/export?format=" + x.format + "&" + base.Encode()
	}
	if res.Next != "" {
		next := q.Values()
		next.Set("cursor", res.Next)
		d.Next = UIPath + "search?" + next.Encode()
	}
	if q.Cursor != "" {
		d.First = UIPath + "search?" + d.Query
	}
	may := ui.maintainerCheck(v, caller)
	for _, rs := range res.Results {
		row := searchRow{Repository: rs.Repository, Digest: rs.Subject, Tags: rs.Tags, Status: rs.Status, StatusDetail: rs.StatusDetail,
			Identity: rs.Signer, Issuer: rs.CertIssuer, Created: rs.Created, Matches: rs.Matches, Contradictions: len(rs.Contradictions)}
		if row.Maintainer, err = may(ctx, rs.Repository); err != nil {
			ui.internalError(w, r, v, err)
			return
		}
		d.CanQuarantine = d.CanQuarantine || row.Maintainer
		d.Results = append(d.Results, row)
	}
	ui.render(w, r, http.StatusOK, "search", page{Title: "Search", Nav: "search", V: v, Data: d})
}

// maintainerCheck reports, memoized per repository, whether the visitor
// may quarantine in a repository: signed in (forms need a session's CSRF
// token), the console can quarantine, and the caller has maintainer
// rights (delete) there, as the policy service will check again.
func (ui *UI) maintainerCheck(v *Visitor, c auth.Caller) func(ctx context.Context, repo string) (bool, error) {
	if ui.cfg.Quarantine == nil || !v.SignedIn {
		return func(context.Context, string) (bool, error) { return false, nil }
	}
	seen := map[string]bool{}
	return func(ctx context.Context, repo string) (bool, error) {
		if ok, done := seen[repo]; done {
			return ok, nil
		}
		ok, err := c.May(ctx, repo, auth.ActionDelete)
		if err != nil {
			return false, err
		}
		seen[repo] = ok
		return ok, nil
	}
}

// searchExport serves /ui/search/export?format=csv|ndjson|bundles&<search>:
// the JSON API's export of the search, with the visitor's access (a GET
// without side effects: the session cookie is enough).
func (ui *UI) searchExport(w http.ResponseWriter, r *http.Request, v *Visitor) {
	api := ui.cfg.API
	if api == nil {
		ui.notFound(w, r, v, "This server has no incident search.")
		return
	}
	x, err := api.parseExport(searchValues(r.URL.Query()))
	if errors.Is(err, errNoBundles) {
		ui.errorPage(w, r, v, http.StatusNotImplemented, "Not available", "This server cannot export bundles.")
		return
	}
	if err != nil {
		ui.searchFailed(w, r, v, err)
		return
	}
	acc, _, err := ui.visitorAccess(r, v)
	if err != nil {
		ui.internalError(w, r, v, err)
		return
	}
	api.writeExport(w, r, x, acc, func(err error) { ui.searchFailed(w, r, v, err) })
}
