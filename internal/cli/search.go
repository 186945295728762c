package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/web"
)

// searchOptions are hallmark search's flags.
type searchOptions struct {
	server             string
	commit, pipeline   string
	job, project, ref  string
	user, runner       string
	identity, issuer   string
	annotations        []string
	certificate        []string
	status             []string
	since, until       string
	limit              int
	all                bool
	cursor             string
	output             string
	username, password string
	timeout            time.Duration
}

func newSearchCmd() *cobra.Command {
	o := &searchOptions{}
	cmd := &cobra.Command{
		Use:   "search [flags]",
		Short: "Search the provenance index of a Hallmark server: which images a commit, pipeline, job, runner or user signed",
		Long: `Search the signatures a Hallmark server indexed, newest first, through its API
(GET /api/v1/search; exports: /api/v1/search/export). Every condition given must hold.

Conditions rest on evidence where there is any: the claims of the verified CI token that
the server's CA recorded when it issued the signing certificate (pipeline, job, user,
runner: the certificate cannot carry them), and the certificate itself (commit, ref, job
URL). A signer's own annotations count only where no evidence speaks: an annotation never
overrides what a verified token said. Each result says what it matched on (-o json:
"matches", with "basis" and "evidence") and which annotations the evidence contradicts.

Only images the caller may pull are searched. Credentials come from docker's config
(hallmark login SERVER) for the server's host, or --registry-username/--registry-password;
without any, public projects only.`,
		Example: `  hallmark search --commit 714a629c                          # every image signed at that commit
  hallmark search --runner 12270835 --since 7d               # what a runner signed this week
  hallmark search --user alice --status verified -o json | jq '.results[].subject'
  hallmark search --pipeline https://gitlab.example.com/grp/app/-/pipelines/574 -o csv > audit.csv
  hallmark search --project grp/app --all -o ndjson
  hallmark search --job 302 -o bundles > bundles.tar         # sigstore bundles, for offline re-verification`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	def := "http://127.0.0.1:5000"
	if v, ok := lookupEnv("HALLMARK_SERVER"); ok && v != "" {
		def = v
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", def, "base URL of the Hallmark server; env HALLMARK_SERVER")
	f.StringVar(&o.commit, "commit", "", "commit SHA, or a prefix of at least 7 hex digits")
	f.StringVar(&o.pipeline, "pipeline", "", "pipeline id or URL")
	f.StringVar(&o.job, "job", "", "job id or URL")
	f.StringVar(&o.project, "project", "", "project path: images in repositories under it, and certificates issued to it")
	f.StringVar(&o.ref, "ref", "", "git ref: refs/heads/main, or main")
	f.StringVar(&o.user, "user", "", "CI user (the token's user_login)")
	f.StringVar(&o.runner, "runner", "", "runner id")
	f.StringVar(&o.identity, "identity", "", "certificate identity (SAN) or key fingerprint (SHA256:...)")
	f.StringVar(&o.issuer, "issuer", "", "OIDC issuer of the certificate")
	f.StringArrayVarP(&o.annotations, "annotation", "a", nil, "signed annotation key=value (repeatable)")
	f.StringArrayVar(&o.certificate, "certificate", nil, "certificate extension <name|number|OID>=value (repeatable)")
	f.StringSliceVar(&o.status, "status", nil, "verified, invalid, unverified (comma list)")
	f.StringVar(&o.since, "since", "", "recorded at or after: RFC 3339 time, date (2025-01-31) or duration ago (24h, 7d)")
	f.StringVar(&o.until, "until", "", "recorded before: as --since")
	f.IntVar(&o.limit, "limit", 0, "results per page (1..1000; default 50); with -o csv|ndjson|bundles, the most rows to export")
	f.BoolVar(&o.all, "all", false, "follow the cursor through every page (table and json)")
	f.StringVar(&o.cursor, "cursor", "", "continue a search where a page ended (its \"next\")")
	f.StringVarP(&o.output, "output", "o", "table", "table, json, csv, ndjson, or bundles (a tar of sigstore bundles)")
	f.StringVar(&o.username, "registry-username", "", "user name (default: docker's credential store for the server's host)")
	f.StringVar(&o.password, "registry-password", "", "password or token, with --registry-username")
	f.DurationVarP(&o.timeout, "timeout", "t", 5*time.Minute, "give up after this long (0: no limit)")
	return cmd
}

// values are the search parameters of o.
func (o *searchOptions) values() url.Values {
	v := url.Values{}
	for _, p := range []struct{ k, v string }{{"commit", o.commit}, {"pipeline", o.pipeline}, {"job", o.job}, {"project", o.project},
		{"ref", o.ref}, {"user", o.user}, {"runner", o.runner}, {"identity", o.identity}, {"issuer", o.issuer},
		{"since", o.since}, {"until", o.until}, {"cursor", o.cursor}} {
		if p.v != "" {
			v.Set(p.k, p.v)
		}
	}
	for _, a := range o.annotations {
		v.Add("annotation", a)
	}
	for _, c := range o.certificate {
		v.Add("certificate", c)
	}
	if len(o.status) > 0 {
		v.Set("status", strings.Join(o.status, ","))
	}
	return v
}

func (o *searchOptions) run(ctx context.Context, stdout, stderr io.Writer) error {
	base, err := serverURL(o.server)
	if err != nil {
		return err
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	authz, err := o.authorization(base)
	if err != nil {
		return err
	}
	c := &searchClient{base: base, authz: authz, http: &http.Client{}}
	v := o.values()
	switch o.output {
	case "csv", "ndjson", "bundles":
		v.Set("format", o.output)
		if o.limit > 0 {
			v.Set("max", strconv.Itoa(o.limit))
		}
		return c.export(ctx, v, stdout, stderr)
	case "table", "json":
	default:
		return fmt.Errorf("-o %q: use table, json, csv, ndjson or bundles", o.output)
	}
	if o.limit > 0 {
		v.Set("limit", strconv.Itoa(o.limit))
	}
	var all []json.RawMessage
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	if o.output == "table" {
		fmt.Fprintln(tw, "CREATED\tIMAGE\tSTATUS\tMATCHED ON")
	}
	n := 0
	for {
		page, err := c.page(ctx, v)
		if err != nil {
			return err
		}
		n += len(page.Results)
		if o.output == "json" {
			all = append(all, page.Raw...)
		} else {
			for _, r := range page.Results {
				fmt.Fprintln(tw, tableRow(r))
			}
			tw.Flush()
		}
		if !o.all || page.Next == "" {
			if o.output == "json" {
				b, _ := json.MarshalIndent(struct {
					Results []json.RawMessage `json:"results"`
					Next    string            `json:"next,omitempty"`
				}{append([]json.RawMessage{}, all...), page.Next}, "", "  ")
				fmt.Fprintln(stdout, string(b))
			} else if page.Next != "" {
				fmt.Fprintf(stderr, "%d results; more with --cursor %s (or --all)\n", n, page.Next)
			} else if n == 0 {
				fmt.Fprintln(stderr, "no signature matches (only images you may pull are searched)")
			}
			return nil
		}
		v.Set("cursor", page.Next)
	}
}

// authorization is the Authorization header for the server: explicit
// credentials, else docker's credential store for its host, else none.
func (o *searchOptions) authorization(base string) (string, error) {
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	if o.username != "" || o.password != "" {
		return basic(o.username, o.password), nil
	}
	u, _ := url.Parse(base)
	reg, err := name.NewRegistry(u.Host, name.Insecure)
	if err != nil {
		return "", fmt.Errorf("server host %q: %w", u.Host, err)
	}
	a, err := authn.DefaultKeychain.Resolve(reg)
	if err != nil {
		return "", fmt.Errorf("reading docker's credentials for %s: %w", u.Host, err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		return "", fmt.Errorf("reading docker's credentials for %s: %w", u.Host, err)
	}
	switch {
	case cfg.Username != "" && cfg.Password != "":
		return basic(cfg.Username, cfg.Password), nil
	case cfg.Auth != "":
		return "Basic " + cfg.Auth, nil
	}
	return "", nil
}

// searchResult is what the table shows of a result.
type searchResult struct {
	Repository     string      `json:"repository"`
	Subject        string      `json:"subject"`
	Status         string      `json:"status"`
	Signer         string      `json:"signer"`
	Created        time.Time   `json:"created"`
	Matches        []web.Match `json:"matches"`
	Contradictions []struct {
		Field string `json:"field"`
	} `json:"contradictions"`
}

type searchPage struct {
	Results []searchResult
	Raw     []json.RawMessage
	Next    string
}

type searchClient struct {
	base, authz string
	http        *http.Client
}

func (c *searchClient) get(ctx context.Context, path string, v url.Values) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path+"?"+v.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "hallmark/"+Version)
	if c.authz != "" {
		req.Header.Set("Authorization", c.authz)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("contacting the Hallmark server at %s: %w", c.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			return nil, fmt.Errorf("%s rejected the credentials (%s); log in with hallmark login %s", c.base, msg, strings.TrimPrefix(strings.TrimPrefix(c.base, "https://"), "http://"))
		case http.StatusNotFound:
			return nil, fmt.Errorf("%s has no search API at %s (is it a Hallmark server of this version?)", c.base, path)
		}
		return nil, fmt.Errorf("search: %s: %s", resp.Status, msg)
	}
	return resp, nil
}

func (c *searchClient) page(ctx context.Context, v url.Values) (*searchPage, error) {
	resp, err := c.get(ctx, "/api/v1/search", v)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Results []json.RawMessage `json:"results"`
		Next    string            `json:"next"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("the search answer of %s is not the API's JSON: %w", c.base, err)
	}
	p := &searchPage{Raw: body.Results, Next: body.Next}
	for _, raw := range body.Results {
		var r searchResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("a search result of %s is not the API's JSON: %w", c.base, err)
		}
		p.Results = append(p.Results, r)
	}
	return p, nil
}

// export streams an export to w; an export the server stopped early
// (trailers) is reported on stderr and is an error.
func (c *searchClient) export(ctx context.Context, v url.Values, w, stderr io.Writer) error {
	resp, err := c.get(ctx, "/api/v1/search/export", v)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("export from %s interrupted: %w", c.base, err)
	}
	if msg := resp.Trailer.Get(web.TrailerError); msg != "" {
		return errors.New("export: " + msg)
	}
	if msg := resp.Trailer.Get(web.TrailerTruncated); msg != "" {
		fmt.Fprintf(stderr, "export %s; continue with --cursor %s\n", msg, resp.Trailer.Get(web.TrailerNext))
	}
	return nil
}

// tableRow is one result in at most 100 columns: time, image (repository
// and short digest), status, and what matched with its basis (a "!"
// marks results whose annotations the evidence contradicts).
func tableRow(r searchResult) string {
	img := r.Repository + "@" + shortDigest(r.Subject)
	if len(img) > 40 {
		img = "..." + img[len(img)-37:]
	}
	var m []string
	for _, x := range r.Matches {
		v := x.Value
		if len(v) > 12 {
			v = v[:12]
		}
		m = append(m, x.Field+"="+v+" ("+x.Basis+")")
	}
	matched := strings.Join(m, ", ")
	if len(r.Contradictions) > 0 {
		matched = "! " + matched
	}
	if len(matched) > 28 {
		matched = matched[:25] + "..."
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s", r.Created.UTC().Format("2006-01-02 15:04"), img, r.Status, matched)
}

func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) < 12 {
		return d
	}
	return alg + ":" + hex[:12]
}
