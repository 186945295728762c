package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/policy"
	"github.com/hallmark-dev/hallmark/internal/server"
)

// policyOptions say where the pull policy is changed: on a running server
// through its API (--server, with the admin token or the credentials of
// hallmark login / docker login for that host), else on the server's
// database directly (--data-dir / --database-url), as the project
// commands do.
type policyOptions struct {
	dd        *dataDirOption
	server    string
	tokenFile string
}

// bindRemote binds --server and --admin-token-file (o.dd binds the
// database's flags).
func (o *policyOptions) bindRemote(fs *pflag.FlagSet) {
	srv, _ := lookupEnv("HALLMARK_SERVER")
	fs.StringVar(&o.server, "server", srv, "change it on this running server through its API (base URL) instead of on the database; env HALLMARK_SERVER")
	fs.StringVar(&o.tokenFile, "admin-token-file", "", "with --server: authenticate with the admin token in this file (else env HALLMARK_ADMIN_TOKEN, else the credentials hallmark login stored for the server)")
}

// remote reports whether the API is used; then it returns the server's
// base URL and the Authorization header to send: the admin token, or the
// credentials hallmark login / docker login stored for the server's host
// (a password as Basic; a refresh token, which docker stores instead, is
// exchanged at the token endpoint for an access token granting actions on
// repos, as docker does).
func (o *policyOptions) remote(ctx context.Context, repos []string, actions string) (use bool, base, authz string, err error) {
	if o.server == "" {
		return false, "", "", nil
	}
	if base, err = serverURL(o.server); err != nil {
		return true, "", "", err
	}
	if o.tokenFile != "" || envSet("HALLMARK_ADMIN_TOKEN") {
		tok, err := (&adminClientOptions{tokenFile: o.tokenFile}).adminToken()
		return true, base, "Bearer " + tok, err
	}
	u, _ := url.Parse(base)
	reg, err := name.NewRegistry(u.Host)
	if err != nil {
		return true, "", "", err
	}
	a, err := authn.DefaultKeychain.Resolve(reg)
	if err != nil {
		return true, "", "", fmt.Errorf("reading the stored credentials for %s: %w", u.Host, err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		return true, "", "", err
	}
	switch {
	case cfg.Username != "" && cfg.Password != "":
		req, _ := http.NewRequest(http.MethodGet, base, nil)
		req.SetBasicAuth(cfg.Username, cfg.Password)
		return true, base, req.Header.Get("Authorization"), nil
	case cfg.IdentityToken != "":
		tok, err := exchangeRefreshToken(ctx, base, u.Host, cfg.IdentityToken, repos, actions)
		return true, base, "Bearer " + tok, err
	}
	return true, "", "", fmt.Errorf("no credentials for %s: run hallmark login -u USER %s first, or pass --admin-token-file", u.Host, u.Host)
}

// exchangeRefreshToken asks the server's token endpoint for an access
// token granting actions on repos (OAuth2 refresh_token grant).
func exchangeRefreshToken(ctx context.Context, base, service, refresh string, repos []string, actions string) (string, error) {
	var scopes []string
	for _, r := range repos {
		scopes = append(scopes, "repository:"+r+":"+actions)
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "service": {service},
		"client_id": {"hallmark"}, "scope": {strings.Join(scopes, " ")}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+server.TokenPath, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "hallmark/"+Version)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return "", fmt.Errorf("contacting the Hallmark server at %s: %w", base, err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.AccessToken == "" {
		return "", fmt.Errorf("%s refused the stored login (HTTP %d: %s): log in again with hallmark login", base, resp.StatusCode, out.Error)
	}
	return out.AccessToken, nil
}

func envSet(k string) bool {
	v, ok := lookupEnv(k)
	return ok && strings.TrimSpace(v) != ""
}

// local opens the database and runs fn as the operator (the OS user).
func (o *policyOptions) local(ctx context.Context, fn func(*policy.Service, policy.Caller) error) error {
	db, err := o.dd.database()
	if err != nil {
		return err
	}
	svc, closeFn, err := server.OpenPolicy(ctx, db, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer closeFn()
	return fn(svc, policy.Operator{Name: operatorName()})
}

// operatorName is the audit log's actor for changes made on the database:
// the OS user running the command.
func operatorName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "unknown"
}

// call sends a request to the policy API and decodes the reply into out.
func (o *policyOptions) call(ctx context.Context, method, base, authz, path string, body, out any) error {
	reply, err := callAPI(ctx, method, base, authz, adminEndpoint{path, "the request", "is it a Hallmark server of this version?"}, body,
		"quarantining and changing require-signature need maintainer rights in the project, or an admin")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(reply, out); err != nil {
		return fmt.Errorf("the reply of %s is not the expected JSON: %w", base, err)
	}
	return nil
}

// parseItems parses REPOSITORY@DIGEST arguments; a registry host in front
// (as docker writes references: 127.0.0.1:5000/group/app@sha256:...) is
// dropped.
func parseItems(args []string) ([]meta.QuarantineItem, error) {
	items := make([]meta.QuarantineItem, 0, len(args))
	for _, a := range args {
		repo, d, ok := strings.Cut(a, "@")
		if !ok {
			return nil, fmt.Errorf("%q: want REPOSITORY@sha256:... (quarantine names a digest; resolve a tag with crane digest)", a)
		}
		if first, rest, ok := strings.Cut(repo, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
			repo = rest
		}
		items = append(items, meta.QuarantineItem{Repository: repo, Digest: digest.Digest(d)})
	}
	return policy.CheckItems(items)
}

func itemsJSON(items []meta.QuarantineItem) []policy.ItemJSON {
	out := make([]policy.ItemJSON, len(items))
	for i, it := range items {
		out[i] = policy.ItemJSON{Repository: it.Repository, Digest: it.Digest.String()}
	}
	return out
}

func newQuarantineCmd() *cobra.Command {
	o := &policyOptions{dd: &dataDirOption{}}
	cmd := &cobra.Command{
		Use:   "quarantine",
		Short: "Quarantine images: refuse pulls of them, with a reason (add, list, remove)",
		Long: `A quarantined manifest cannot be pulled, by tag or digest, from the moment the command
returns, on every server of the database: the registry answers 403 DENIED with who
quarantined it, when and why. What is attached to it (signatures, attestations,
referrers) and indexes listing it are refused alike, so hallmark verify and cosign verify
fail for it and say why. Blobs stay pullable. Removing the quarantine restores pulls at
once; the record stays as history, and every change is in the audit log.

Quarantine needs maintainer rights in the image's project, or an admin. With --server the
change is made through the server's API (credentials: --admin-token-file, else
HALLMARK_ADMIN_TOKEN, else what hallmark login stored for the server); otherwise on the
server's database (--data-dir, --database-url), recorded as made by the OS user.`,
	}
	o.dd.bind(cmd.PersistentFlags())
	o.bindRemote(cmd.PersistentFlags())

	var reason string
	var jsonOut bool
	change := func(use, short, example string, required bool, lift bool) *cobra.Command {
		return &cobra.Command{
			Use:     use,
			Short:   short,
			Example: example,
			Args:    cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				items, err := parseItems(args)
				if err != nil {
					return err
				}
				if _, err := policy.CheckReason(reason, required); err != nil {
					return fmt.Errorf("--reason: %w", err)
				}
				var results []policy.ResultJSON
				repos := make([]string, len(items))
				for i, it := range items {
					repos[i] = it.Repository
				}
				remote, base, authz, err := o.remote(cmd.Context(), repos, "pull,delete")
				switch {
				case err != nil:
					return err
				case remote:
					path := policy.QuarantinePath
					if lift {
						path = policy.QuarantineLiftPath
					}
					var out struct {
						Results []policy.ResultJSON `json:"results"`
					}
					if err := o.call(cmd.Context(), http.MethodPost, base, authz, path, map[string]any{"items": itemsJSON(items), "reason": reason}, &out); err != nil {
						return err
					}
					results = out.Results
				default:
					err = o.local(cmd.Context(), func(svc *policy.Service, c policy.Caller) error {
						do, yes, no := svc.Quarantine, "quarantined", "already quarantined"
						if lift {
							do, yes, no = svc.Lift, "lifted", "not quarantined"
						}
						outs, err := do(cmd.Context(), c, items, reason)
						for _, oc := range outs {
							r := policy.ResultJSON{Repository: oc.Item.Repository, Digest: oc.Item.Digest.String(), Status: no}
							if oc.Changed {
								r.Status = yes
							}
							if oc.Quarantine != nil {
								q := policy.ToJSON(*oc.Quarantine)
								r.Quarantine = &q
							}
							results = append(results, r)
						}
						return err
					})
					if err != nil {
						return err
					}
				}
				if jsonOut {
					return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"results": results})
				}
				for _, r := range results {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s@%s: %s\n", r.Repository, r.Digest, r.Status)
				}
				return nil
			},
		}
	}
	add := change("add REPOSITORY@DIGEST... --reason TEXT", "Quarantine manifests (pulls are refused with the reason)",
		`  hallmark quarantine add --reason "CVE-2099-0001 in libfoo" group/app@sha256:...
  hallmark quarantine add --server https://hallmark.example.com --reason "compromised runner" group/app@sha256:... group/api@sha256:...`, true, false)
	add.Flags().StringVar(&reason, "reason", "", "why (required; one line, at most 500 characters): shown to everyone whose pull is refused, and audited")
	add.Flags().BoolVar(&jsonOut, "json", false, "print the results as JSON")
	remove := change("remove REPOSITORY@DIGEST...", "Lift quarantines (pulls work again at once; the record stays as history)",
		`  hallmark quarantine remove --reason "false positive" group/app@sha256:...`, false, true)
	remove.Aliases = []string{"rm", "lift"}
	remove.Flags().StringVar(&reason, "reason", "", "why it is lifted (optional; audited)")
	remove.Flags().BoolVar(&jsonOut, "json", false, "print the results as JSON")

	var q struct {
		repository, digest string
		history            bool
		limit              int
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List quarantines (active ones; --history: lifted ones too)",
		Long: `List quarantines, newest first: active ones, with --history lifted ones too. Through
the API (--server) only those of repositories the caller may pull are listed; with the
credentials hallmark login stored, give --repository (the access token they are exchanged
for names the repositories it may read; the admin token sees all).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var recs []policy.QuarantineJSON
			var repos []string
			if q.repository != "" {
				repos = []string{q.repository}
			}
			remote, base, authz, err := o.remote(cmd.Context(), repos, "pull")
			switch {
			case err != nil:
				return err
			case remote:
				v := url.Values{}
				for k, x := range map[string]string{"repository": q.repository, "digest": q.digest} {
					if x != "" {
						v.Set(k, x)
					}
				}
				if q.history {
					v.Set("history", "true")
				}
				v.Set("limit", fmt.Sprint(q.limit))
				var out struct {
					Quarantines []policy.QuarantineJSON `json:"quarantines"`
				}
				if err := o.call(cmd.Context(), http.MethodGet, base, authz, policy.QuarantinePath+"?"+v.Encode(), nil, &out); err != nil {
					return err
				}
				recs = out.Quarantines
			default:
				err = o.local(cmd.Context(), func(svc *policy.Service, c policy.Caller) error {
					found, err := svc.List(cmd.Context(), c, meta.QuarantineQuery{Repository: q.repository, Digest: digest.Digest(q.digest), History: q.history, Limit: q.limit})
					for _, r := range found {
						recs = append(recs, policy.ToJSON(r))
					}
					return err
				})
				if err != nil {
					return err
				}
			}
			if jsonOut {
				if recs == nil {
					recs = []policy.QuarantineJSON{}
				}
				return json.NewEncoder(cmd.OutOrStdout()).Encode(recs)
			}
			return printQuarantines(cmd.OutOrStdout(), recs)
		},
	}
	list.Flags().StringVar(&q.repository, "repository", "", "only this repository")
	list.Flags().StringVar(&q.digest, "digest", "", "only this digest")
	list.Flags().BoolVar(&q.history, "history", false, "include lifted quarantines")
	list.Flags().IntVar(&q.limit, "limit", 100, "at most this many (1-1000), newest first")
	list.Flags().BoolVar(&jsonOut, "json", false, "print JSON")

	cmd.AddCommand(add, list, remove)
	return cmd
}

func printQuarantines(w io.Writer, recs []policy.QuarantineJSON) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tSINCE\tBY\tLIFTED\tREASON")
	for _, r := range recs {
		lifted := "-"
		if r.Lifted != nil {
			lifted = r.Lifted.Format(time.RFC3339) + " by " + r.LiftedBy
		}
		fmt.Fprintf(tw, "%s@%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Digest, r.Created.Format(time.RFC3339), r.Actor, lifted, r.Reason)
	}
	return tw.Flush()
}

// newSetRequireSignatureCmd is `hallmark project set-require-signature`
// (dd: the project command's database flags).
func newSetRequireSignatureCmd(dd *dataDirOption) *cobra.Command {
	o := &policyOptions{dd: dd}
	cmd := &cobra.Command{
		Use:   "set-require-signature PATH off|warn|enforce",
		Short: "Set whether the project's images must carry a verified signature to be pulled",
		Long: `Set the project's require-signature setting. off (the default) serves every image; warn
serves images without a verified signature with an HTTP Warning header and records the pull
(counted in /metrics, audited at most once per image per 10 minutes); enforce refuses such
pulls with 403 DENIED naming what is missing. "Verified" is a signature the server verified
when it was pushed (its own CA and log, or --trusted-key), of the image or of an index in
the same repository that lists it. Signatures, attestations and other referrers are never
refused, nor is HEAD (signing needs it). The change takes effect at once on every server
and is audited. Needs maintainer rights in the project (or an admin) with --server;
without it the server's database is changed directly.`,
		Example: `  hallmark project set-require-signature group/app enforce
  hallmark project set-require-signature group/app warn --server https://hallmark.example.com`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := meta.ParseRequireSignature(args[1])
			if err != nil {
				return err
			}
			remote, base, authz, err := o.remote(cmd.Context(), []string{args[0]}, "pull,delete")
			var prev string
			switch {
			case err != nil:
				return err
			case remote:
				var out struct {
					Previous string `json:"previous"`
				}
				if err := o.call(cmd.Context(), http.MethodPost, base, authz, policy.RequireSignaturePath,
					map[string]string{"project": args[0], "requireSignature": string(rs)}, &out); err != nil {
					return err
				}
				prev = out.Previous
			default:
				err = o.local(cmd.Context(), func(svc *policy.Service, c policy.Caller) error {
					p, err := svc.SetRequireSignature(cmd.Context(), c, args[0], rs)
					prev = string(p)
					return err
				})
				if errors.Is(err, policy.ErrNotFound) {
					return fmt.Errorf("project %s does not exist (hallmark project list)", args[0])
				}
				if err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "project %s: require-signature %s (was %s)\n", args[0], rs, prev)
			return nil
		},
	}
	o.bindRemote(cmd.Flags())
	return cmd
}
