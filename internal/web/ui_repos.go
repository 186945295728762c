package web

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// Page sizes and scan bounds: a filtered page reads at most pageScan rows
// to fill pageRows, then offers to continue where it stopped.
const (
	pageRows  = 50
	pageScan  = 500
	scanBatch = 100
	// sigsPerImage is how many of an image's newest signatures the
	// repository page reads to pick the one it shows.
	sigsPerImage = 8
)

type repoRow struct {
	Name      string
	Images    int
	Verified  int
	Unsigned  int
	LastPush  string
	HasImages bool
}

type repositoriesData struct {
	Query string
	Rows  []repoRow
	Next  string
}

func (ui *UI) repositories(w http.ResponseWriter, r *http.Request, v *Visitor) {
	ctx := r.Context()
	q := r.URL.Query()
	filter, after := q.Get("q"), q.Get("after")
	if len(filter) > 255 || len(after) > 255 {
		ui.badRequest(w, r, v, "The filter and the cursor are at most 255 characters.")
		return
	}
	counts, err := ui.statusCounts(ctx)
	if err != nil {
		ui.internalError(w, r, v, err)
		return
	}
	stats := map[string]*repoRow{}
	last := map[string]time.Time{}
	for _, c := range counts {
		rr := stats[c.Repository]
		if rr == nil {
			rr = &repoRow{Name: c.Repository}
			stats[c.Repository] = rr
		}
		rr.Images += c.Images
		switch c.Status {
		case meta.StatusVerified:
			rr.Verified += c.Images
		case StatusUnsigned:
			rr.Unsigned += c.Images
		}
		if c.LastPush.After(last[c.Repository]) {
			last[c.Repository] = c.LastPush
			rr.LastPush = formatTime(c.LastPush, ui.cfg.Now())
		}
	}
	d := repositoriesData{Query: filter}
	d.Rows, d.Next, _, err = scanPage(after,
		func(cursor string) ([]string, bool, error) {
			return ui.store.SearchRepositories(ctx, filter, cursor, scanBatch)
		},
		func(name string) string { return name },
		func(name string) (bool, error) { return v.may(ctx, name) },
		func(name string) repoRow {
			if s := stats[name]; s != nil {
				row := *s
				row.HasImages = true
				return row
			}
			return repoRow{Name: name}
		})
	if err != nil {
		ui.internalError(w, r, v, err)
		return
	}
	ui.render(w, r, http.StatusOK, "repositories", page{Title: "Repositories", Nav: "repositories", V: v, Data: d})
}

// link is a labelled external link (a commit, a pipeline, a job) and
// whether the signing certificate attests it.
type link struct {
	Label    string
	URL      string
	Attested bool
}

type tagRow struct {
	meta.TagInfo
	Status   string
	Signer   string
	Issuer   string
	Commit   *link
	Pipeline *link
	// Contradicted lists the signed annotations the signature's
	// certificate contradicts.
	Contradicted []string
}

type repositoryData struct {
	Repository string
	Rows       []tagRow
	Status     string
	Artifacts  bool
	Next       string
	Statuses   []string
	Scanned    int
}

// repoFilters are the values of the repository page's status filter.
var repoFilters = append(append([]string{"signed"}, statusOrder...), StatusUnsigned)

func (ui *UI) repository(w http.ResponseWriter, r *http.Request, v *Visitor, rawRepo string) {
	ctx := r.Context()
	repo, err := url.PathUnescape(rawRepo)
	if err != nil || oci.ValidateName(repo) != nil {
		ui.notFound(w, r, v, "There is no such repository.")
		return
	}
	q := r.URL.Query()
	filter, after := q.Get("status"), q.Get("after")
	if filter != "" && !contains(repoFilters, filter) {
		ui.badRequest(w, r, v, "status: use one of "+strings.Join(repoFilters, ", ")+", or leave it empty for every image.")
		return
	}
	if after != "" && !oci.ValidTag(after) {
		ui.badRequest(w, r, v, "after: not a tag; use the link at the bottom of the previous page.")
		return
	}
	artifacts := q.Get("artifacts") == "1"
	if ok, err := v.may(ctx, repo); err != nil {
		ui.internalError(w, r, v, err)
		return
	} else if !ok {
		ui.notFound(w, r, v, "There is no repository "+strconv.Quote(repo)+".")
		return
	}
	d := repositoryData{Repository: repo, Status: filter, Artifacts: artifacts, Statuses: repoFilters}
	d.Rows, d.Next, d.Scanned, err = scanPage(after,
		func(cursor string) ([]tagRow, bool, error) {
			tags, more, err := ui.store.ListTagInfo(ctx, repo, cursor, scanBatch, artifacts)
			if err != nil {
				return nil, false, err
			}
			rows, err := ui.tagRows(r, repo, tags, artifacts)
			return rows, more, err
		},
		func(row tagRow) string { return row.Name },
		func(row tagRow) (bool, error) { return statusMatches(filter, row.Status), nil },
		func(row tagRow) tagRow { return row })
	if errors.Is(err, meta.ErrRepositoryNotFound) {
		ui.notFound(w, r, v, "There is no repository "+strconv.Quote(repo)+".")
		return
	}
	if err != nil {
		ui.internalError(w, r, v, err)
		return
	}
	ui.render(w, r, http.StatusOK, "repository", page{Title: repo, Nav: "repositories", V: v, Data: d})
}

// scanPage fills one page of at most pageRows rows: it reads batches
// after the cursor after (read says whether more follow), keeps the items
// keep accepts, and stops after pageScan items. next is where the next
// page starts ("" at the end), scanned how many items were read.
func scanPage[T, R any](after string, read func(cursor string) ([]T, bool, error), key func(T) string,
	keep func(T) (bool, error), row func(T) R) (rows []R, next string, scanned int, err error) {
	cursor := after
	for len(rows) < pageRows && scanned < pageScan {
		items, more, err := read(cursor)
		if err != nil {
			return nil, "", scanned, err
		}
		for i, it := range items {
			scanned++
			cursor = key(it)
			ok, err := keep(it)
			if err != nil {
				return nil, "", scanned, err
			}
			if !ok {
				continue
			}
			rows = append(rows, row(it))
			if len(rows) == pageRows {
				if i < len(items)-1 || more {
					next = cursor
				}
				return rows, next, scanned, nil
			}
		}
		if !more {
			return rows, "", scanned, nil
		}
	}
	return rows, cursor, scanned, nil
}

func statusMatches(filter, status string) bool {
	switch filter {
	case "":
		return true
	case "signed":
		return status != StatusUnsigned
	}
	return filter == status
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// tagRows adds each tag's image status and representative signature.
func (ui *UI) tagRows(r *http.Request, repo string, tags []meta.TagInfo, artifacts bool) ([]tagRow, error) {
	var subjects []digest.Digest
	seen := map[digest.Digest]bool{}
	rows := make([]tagRow, 0, len(tags))
	for _, t := range tags {
		if !artifacts && meta.IsArtifactTag(t.Name) {
			continue
		}
		rows = append(rows, tagRow{TagInfo: t})
		if !seen[t.Digest] {
			seen[t.Digest] = true
			subjects = append(subjects, t.Digest)
		}
	}
	counts, err := ui.store.SignatureStatusCounts(r.Context(), repo, subjects)
	if err != nil {
		return nil, err
	}
	latest, err := ui.store.LatestSignatures(r.Context(), repo, subjects, sigsPerImage*len(subjects))
	if err != nil {
		return nil, err
	}
	for i := range rows {
		row := &rows[i]
		row.Status = ImageStatus(counts[row.Digest])
		if s := representative(latest, row.Digest, row.Status); s != nil {
			row.Signer, row.Issuer = s.Signer, s.CertIssuer
			row.Commit, row.Pipeline, row.Contradicted = ciLinks(s)
		}
	}
	return rows, nil
}

// representative is the newest signature of subject with the image's
// status (else its newest), from sigs (newest first).
func representative(sigs []meta.Signature, subject digest.Digest, status string) *meta.Signature {
	var newest *meta.Signature
	for i := range sigs {
		s := &sigs[i]
		if s.Subject != subject {
			continue
		}
		if s.Status == status {
			return s
		}
		if newest == nil {
			newest = s
		}
	}
	return newest
}

// Fulcio extensions the console links.
const (
	extIssuer     = 8
	extSourceRepo = 12
	extCommit     = 13
	extRunURI     = 21
)

// indexedCertificate stands for a signature's certificate when only the
// index's record of its Fulcio extensions is at hand (the repository
// page does not read certificates): verify.CheckProvenance reads nothing
// else, so the marks agree with the image page's, which uses the
// certificate itself.
func indexedCertificate(exts map[string]string) *x509.Certificate {
	if len(exts) == 0 {
		return nil
	}
	c := &x509.Certificate{}
	for oid, v := range exts {
		id, n, ok := fulcio.ParseOID(oid)
		if !ok {
			continue
		}
		val := []byte(v)
		if n >= 8 {
			der, err := asn1.MarshalWithParams(v, "utf8")
			if err != nil {
				continue
			}
			val = der
		}
		c.Extensions = append(c.Extensions, pkix.Extension{Id: id, Value: val})
	}
	return c
}

// extOID is the dotted OID of Fulcio extension n.
func extOID(n int) string { return fulcio.OID(n).String() }

// ciLinks returns the commit and pipeline (or job) of a signature: from
// the certificate where it attests them, else from the signed annotations
// (marked self-asserted); and the annotations the certificate contradicts.
func ciLinks(s *meta.Signature) (commit, pipeline *link, contradicted []string) {
	ext := s.CertExtensions
	if sha := ext[extOID(extCommit)]; sha != "" {
		commit = &link{Label: shortSHA(sha), URL: commitURL(ext[extOID(extSourceRepo)], ext[extOID(extIssuer)], sha), Attested: true}
	} else if sha := firstOf(s.Annotations, "com.gitlab.ci.commit.sha", "org.opencontainers.image.revision", "com.github.actions.commit.sha"); sha != "" {
		commit = &link{Label: shortSHA(sha), URL: commitURL(firstOf(s.Annotations, "org.opencontainers.image.source"), "", sha)}
	}
	marks := map[string]string{}
	for _, c := range verify.CheckProvenance(indexedCertificate(ext), anyMap(s.Annotations)) {
		marks[c.Annotation] = c.Status
		if c.Status == verify.ProvenanceContradiction {
			contradicted = append(contradicted, c.Annotation)
		}
	}
	switch {
	case s.Annotations["com.gitlab.ci.pipeline.url"] != "":
		label := "pipeline"
		if id := s.Annotations["com.gitlab.ci.pipeline.id"]; id != "" {
			label += " " + id
		}
		pipeline = &link{Label: label, URL: s.Annotations["com.gitlab.ci.pipeline.url"],
			Attested: marks["com.gitlab.ci.pipeline.url"] == verify.ProvenanceMatch}
	case ext[extOID(extRunURI)] != "":
		u := ext[extOID(extRunURI)]
		pipeline = &link{Label: "job " + u[strings.LastIndexByte(u, '/')+1:], URL: u, Attested: true}
	}
	if commit != nil {
		commit.URL = safeLink(commit.URL)
	}
	if pipeline != nil {
		pipeline.URL = safeLink(pipeline.URL)
	}
	return commit, pipeline, contradicted
}

// commitURL links a commit on its forge: GitHub's /commit/<sha>, GitLab's
// /-/commit/<sha>.
func commitURL(repoURL, issuer, sha string) string {
	if repoURL == "" || sha == "" {
		return ""
	}
	repoURL = strings.TrimSuffix(repoURL, "/")
	if strings.HasPrefix(repoURL, "https://github.com/") || strings.Contains(issuer, "token.actions.githubusercontent.com") {
		return repoURL + "/commit/" + url.PathEscape(sha)
	}
	return repoURL + "/-/commit/" + url.PathEscape(sha)
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func firstOf(m map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := m[k]; v != "" {
			return v
		}
	}
	return ""
}

func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
