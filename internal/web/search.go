package web

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

// Access is what a caller may see: everything, public projects' images,
// further projects' and single repositories (auth.Visible in the form the
// store filters by).
type Access = meta.Access

// SearchStore is what the search reads from the metadata database.
type SearchStore interface {
	SearchSignatures(ctx context.Context, q meta.SignatureSearch) ([]meta.Signature, error)
}

// SearchConfig bounds what searches may cost.
type SearchConfig struct {
	// Timeout bounds one search (one page; an export's each page);
	// default 10 s.
	Timeout time.Duration
	// Concurrent bounds the searches running at once (others wait for a
	// slot until their timeout); default 4.
	Concurrent int
	// ExportRows bounds the rows of one CSV or NDJSON export (default
	// 100,000); ExportBundles the bundles of one tar (default 10,000).
	ExportRows, ExportBundles int
}

// ErrBusy: every search slot stayed taken until the request's timeout.
var ErrBusy = errors.New("the server is busy with other searches; retry shortly")

// Searcher runs incident searches for the JSON API, the CLI (through the
// API) and the console: Search returns one page, Each streams all pages
// (exports).
type Searcher struct {
	store SearchStore
	cfg   SearchConfig
	slots chan struct{}
}

// NewSearcher returns the search service over store.
func NewSearcher(store SearchStore, cfg SearchConfig) *Searcher {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Concurrent <= 0 {
		cfg.Concurrent = 4
	}
	if cfg.ExportRows <= 0 {
		cfg.ExportRows = 100_000
	}
	if cfg.ExportBundles <= 0 {
		cfg.ExportBundles = 10_000
	}
	return &Searcher{store: store, cfg: cfg, slots: make(chan struct{}, cfg.Concurrent)}
}

// Page is one page of results, newest first.
type Page struct {
	Results []Result
	// Next continues the search after this page (Query.Cursor); empty
	// on the last page.
	Next string
}

// Result is one matching signature.
type Result struct {
	meta.Signature
	Tags []string // of the signed image in its repository
	// Matches say what each condition of the query matched and what it
	// rests on: evidence (the CA's claims, the certificate of a verified
	// signature, the repository) or the signer's own annotations.
	Matches []Match
	// Contradictions are the signature's annotations that the evidence
	// contradicts.
	Contradictions []meta.Contradiction
}

// Match is what one condition of a query matched on a signature.
type Match struct {
	Field    string `json:"field"`            // commit, pipeline, ..., annotation, certificate
	Value    string `json:"value"`            // the matched value (key=value for annotations and certificate extensions)
	Basis    string `json:"basis"`            // meta.Basis*: ca-claims, certificate, key, repository, annotation
	Evidence bool   `json:"evidence"`         // the basis is evidence, not the signer's claim (meta.Evidence)
	Note     string `json:"note,omitempty"`   // why a basis is not evidence
	Source   string `json:"source,omitempty"` // the claim, extension or annotation
}

// Search runs q for a caller who may see a and returns one page. Its
// results are brief: of the certificate extensions they hold none (the
// image's signatures have them all), of the facts those matched.
func (s *Searcher) Search(ctx context.Context, q Query, a Access) (Page, error) {
	var page Page
	err := s.run(ctx, q, a, q.Limit, true, func(rs []Result, next string) (bool, error) {
		page.Results, page.Next = rs, next
		return false, nil
	})
	if page.Results == nil {
		page.Results = []Result{}
	}
	return page, err
}

// run runs q page by page (size rows each, at most), handing each page
// and the cursor after it to fn until fn returns false or no page follows.
// Each page holds a search slot and is bounded by the timeout.
func (s *Searcher) run(ctx context.Context, q Query, a Access, size int, brief bool, fn func(rs []Result, next string) (bool, error)) error {
	ms, err := q.search(a)
	if err != nil {
		return err
	}
	ms.Limit = size + 1 // one more: is there a next page?
	ms.Brief = brief
	for {
		rs, next, err := s.page(ctx, q, ms, size)
		if err != nil {
			return err
		}
		more, err := fn(rs, next)
		if err != nil || !more || next == "" {
			return err
		}
		c, _ := decodeCursor(next)
		ms.After = &c
	}
}

// page runs one page of ms (size results, ms.Limit = size+1).
func (s *Searcher) page(ctx context.Context, q Query, ms meta.SignatureSearch, size int) ([]Result, string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, "", fmt.Errorf("%w (waited %s)", ErrBusy, s.cfg.Timeout)
	}
	defer func() { <-s.slots }()
	sigs, err := s.store.SearchSignatures(ctx, ms)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", fmt.Errorf("%w: the search took longer than %s; narrow it (a longer commit prefix, a project, a time range)", ErrTimeout, s.cfg.Timeout)
		}
		return nil, "", err
	}
	next := ""
	if len(sigs) > size {
		sigs = sigs[:size]
		next = encodeCursor(meta.CursorOf(&sigs[size-1]))
	}
	rs := make([]Result, 0, len(sigs))
	for _, sg := range sigs {
		r := NewResult(sg, sg.Tags, q)
		if ms.Brief {
			r.CertExtensions = nil // only those facts rest on were read
		}
		rs = append(rs, r)
	}
	return rs, next, nil
}

// ErrTimeout: a search ran out of time.
var ErrTimeout = errors.New("search timed out")

// NewResult completes a signature with its tags, what q matched (nil q
// fields match nothing) and the contradictions of its annotations.
func NewResult(sg meta.Signature, tags []string, q Query) Result {
	r := Result{Signature: sg, Tags: tags}
	var claims map[string]string
	if sg.Certificate != nil {
		claims = sg.Certificate.Claims
	}
	r.Contradictions = meta.Contradictions(&sg, claims)
	want := func(field, value string, prefix bool) {
		if value == "" {
			return
		}
		value = meta.NormalizeFact(field, value)
		for _, f := range sg.Facts {
			if f.Field == field && (f.Value == value || prefix && strings.HasPrefix(f.Value, value)) {
				r.Matches = append(r.Matches, newMatch(field, f.Value, f.Basis, sg.Status, ""))
			}
		}
	}
	want(meta.FieldCommit, q.Commit, len(q.Commit) != 40 && len(q.Commit) != 64)
	want(meta.FieldPipeline, q.Pipeline, false)
	want(meta.FieldJob, q.Job, false)
	want(meta.FieldProject, q.Project, false)
	want(meta.FieldRef, q.Ref, false)
	want(meta.FieldUser, q.User, false)
	want(meta.FieldRunner, q.Runner, false)
	want(meta.FieldIdentity, q.Identity, false)
	want(meta.FieldIssuer, q.Issuer, false)
	for _, a := range q.Annotations {
		r.Matches = append(r.Matches, newMatch("annotation", a.Key+"="+a.Value, meta.BasisAnnotation, sg.Status, a.Key))
	}
	for _, c := range q.Certificate {
		r.Matches = append(r.Matches, newMatch("certificate", c.Key+"="+c.Value, meta.BasisCertificate, sg.Status, c.Key))
	}
	return r
}

func newMatch(field, value, basis, status, source string) Match {
	m := Match{Field: field, Value: value, Basis: basis, Evidence: meta.Evidence(basis, status), Source: source}
	switch {
	case basis == meta.BasisAnnotation:
		m.Note = "self-asserted by the signer"
	case !m.Evidence:
		m.Note = "the signature is " + status + ": its certificate or key is not evidence"
	}
	return m
}
