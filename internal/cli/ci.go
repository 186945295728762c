package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/demo"
	"github.com/hallmark-dev/hallmark/internal/server"
)

func newCICmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ci",
		Short: "Run CI pipelines locally against a Hallmark server",
	}
	cmd.AddCommand(newCIJobCmd(), newCIDoneCmd())
	return cmd
}

// ciJobOptions are the flags of `hallmark ci job`.
type ciJobOptions struct {
	admin         adminClientOptions
	username      string
	passwordStdin bool
	output        string

	project, ref, refType, sha, pipeline, job string
	user, userName, userEmail                 string
	ttl                                       time.Duration
}

func newCIJobCmd() *cobra.Command {
	var o ciJobOptions
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Print the environment of a CI job (export lines) with tokens minted by the server",
		Long: `Print the "export" lines a local run of the reference GitLab pipeline
(examples/gitlab/.gitlab-ci.yml, GitLab's cosign tutorial) needs, as if it ran as a job of
--project on --ref: GitLab's predefined variables (CI_SERVER_URL, CI_PROJECT_URL,
CI_REGISTRY, CI_REGISTRY_IMAGE, CI_COMMIT_SHA, CI_PIPELINE_ID/URL, CI_JOB_ID/URL,
GITLAB_USER_NAME, ...), a CI job token for the project (CI_JOB_TOKEN, CI_REGISTRY_PASSWORD;
push and pull in that project only) and an ID token of the server's built-in OIDC issuer with
audience sigstore (SIGSTORE_ID_TOKEN) whose claims name the same project, ref, commit,
pipeline, job and user. The URLs are the server's, so the certificate the server's CA issues
for that ID token has the identity "$CI_PROJECT_URL//.gitlab-ci.yml@refs/heads/$CI_COMMIT_REF_NAME"
and the issuer "$CI_SERVER_URL", exactly what the pipeline's verify step expects.

The request is admin-authorised: the server's admin token (--admin-token-file, env
HALLMARK_ADMIN_TOKEN, or --data-dir of the server) or an admin user's credentials
(--username with the password on stdin). The output is safe to eval in a POSIX shell.
A server with --auth=off has no job tokens: CI_JOB_TOKEN is then empty.`,
		Example: `  eval "$(hallmark ci job --server http://127.0.0.1:5000 --data-dir ./hallmark-data --project group/app --ref main)"
  docker login -u gitlab-ci-token -p "$CI_JOB_TOKEN" "$CI_REGISTRY"
  hallmark ci job --project group/app --ref v1.0 --ref-type tag --sha "$(git rev-parse HEAD)" --pipeline 574 --job 302 --user alice
  hallmark ci job --project group/app --ref main --username admin --password-stdin < admin-password`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	fs := cmd.Flags()
	o.admin.bind(fs)
	fs.StringVarP(&o.username, "username", "u", "", "authorise as this admin user instead of with the admin token (password on stdin with --password-stdin, else env HALLMARK_PASSWORD)")
	fs.BoolVar(&o.passwordStdin, "password-stdin", false, "read the admin user's password from standard input")
	fs.StringVarP(&o.output, "output", "o", "env", "env (export lines) or json")
	fs.StringVar(&o.project, "project", "", "project path, group[/subgroup]/project (required)")
	fs.StringVar(&o.ref, "ref", "", "branch or tag name (required)")
	fs.StringVar(&o.refType, "ref-type", "branch", "branch or tag")
	fs.StringVar(&o.sha, "sha", "", "commit SHA (default: random)")
	fs.StringVar(&o.pipeline, "pipeline", "", "pipeline id (default: derived from the time)")
	fs.StringVar(&o.job, "job", "", "job id (default: pipeline id + 1)")
	fs.StringVar(&o.user, "user", "", "login of the user who started the pipeline (default hallmark)")
	fs.StringVar(&o.userName, "user-name", "", "display name of that user, GITLAB_USER_NAME (default: the login)")
	fs.StringVar(&o.userEmail, "user-email", "", "email of that user (default: <login>@users.noreply.<server host>)")
	fs.DurationVar(&o.ttl, "ttl", 0, "lifetime of the job token and ID token (default 1h; the ID token at most the server's --oidc-max-token-ttl)")
	_ = cmd.MarkFlagRequired("project")
	_ = cmd.MarkFlagRequired("ref")
	return cmd
}

func (o *ciJobOptions) run(cmd *cobra.Command) error {
	if o.output != "env" && o.output != "json" {
		return fmt.Errorf("--output %q: use env or json", o.output)
	}
	base, err := serverURL(o.admin.server)
	if err != nil {
		return err
	}
	authz, err := o.authorization(cmd)
	if err != nil {
		return err
	}
	body := map[string]string{"project": o.project, "ref": o.ref, "ref_type": o.refType, "sha": o.sha,
		"pipeline_id": o.pipeline, "job_id": o.job, "user": o.user, "user_name": o.userName, "user_email": o.userEmail}
	if o.ttl != 0 {
		body["ttl"] = o.ttl.String()
	}
	vars, err := requestCIJob(cmd.Context(), base, authz, body)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if o.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(vars)
	}
	_, err = io.WriteString(w, formatCIJobEnv(vars))
	return err
}

// authorization is the Authorization header value: Basic for --username,
// else Bearer <admin token>.
func (o *ciJobOptions) authorization(cmd *cobra.Command) (string, error) {
	if o.username == "" {
		if o.passwordStdin {
			return "", errors.New("--password-stdin needs --username")
		}
		tok, err := o.admin.adminToken()
		if err != nil {
			return "", fmt.Errorf("%w (or authorise as an admin user with --username NAME --password-stdin)", err)
		}
		return "Bearer " + tok, nil
	}
	var pw string
	if o.passwordStdin {
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the password from stdin: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	} else if v, ok := lookupEnv("HALLMARK_PASSWORD"); ok {
		pw = v
	}
	if pw == "" {
		return "", fmt.Errorf("no password for admin user %q: pipe it to --password-stdin or set HALLMARK_PASSWORD", o.username)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	req.SetBasicAuth(o.username, pw)
	return req.Header.Get("Authorization"), nil
}

// requestCIJob posts the job description to the server's CI job endpoint.
func requestCIJob(ctx context.Context, base, authz string, body map[string]string) (map[string]string, error) {
	reply, err := postAdmin(ctx, base, authz,
		adminEndpoint{server.CIJobPath, "the CI job", "is it a Hallmark server of this version?"}, body)
	if err != nil {
		return nil, err
	}
	var out server.CIJobResponse
	if err := json.Unmarshal(reply, &out); err != nil || out.Variables == nil {
		return nil, fmt.Errorf("the reply of %s is not a CI job environment: %v", base, err)
	}
	for k := range out.Variables {
		if !demo.ValidEnvName(k) {
			return nil, fmt.Errorf("the reply of %s names an invalid variable %q", base, k)
		}
	}
	return out.Variables, nil
}

// formatCIJobEnv renders vars as shell-quoted export lines in the order of
// server.CIJobVariables (unknown names after them, sorted), with comments
// saying what the environment is and what is missing.
func formatCIJobEnv(vars map[string]string) string {
	var b strings.Builder
	kind := "branch"
	if vars["CI_COMMIT_TAG"] != "" {
		kind = "tag"
	}
	refPrefix := map[string]string{"branch": "refs/heads/", "tag": "refs/tags/"}[kind]
	fmt.Fprintf(&b, "# CI job environment: project %s, %s %s, commit %s, pipeline %s, job %s, user %s, server %s\n",
		oneLine(vars["CI_PROJECT_PATH"]), kind, oneLine(vars["CI_COMMIT_REF_NAME"]), oneLine(vars["CI_COMMIT_SHA"]),
		oneLine(vars["CI_PIPELINE_ID"]), oneLine(vars["CI_JOB_ID"]), oneLine(vars["GITLAB_USER_LOGIN"]), oneLine(vars["CI_SERVER_URL"]))
	fmt.Fprintf(&b, "# keyless identity: --certificate-identity %s --certificate-oidc-issuer %s\n",
		oneLine(vars["CI_PROJECT_URL"]+"//"+vars["CI_CONFIG_PATH"]+"@"+refPrefix+vars["CI_COMMIT_REF_NAME"]), oneLine(vars["CI_SERVER_URL"]))
	if vars["CI_JOB_TOKEN"] == "" {
		b.WriteString("# auth is off on this server: there is no CI job token (CI_JOB_TOKEN is empty) and no docker login is needed\n")
	}
	if vars["SIGSTORE_ID_TOKEN"] == "" {
		b.WriteString("# the server's built-in OIDC issuer is off: SIGSTORE_ID_TOKEN is empty; give an ID token of a trusted issuer\n")
	}
	names := slices.Clone(server.CIJobVariables)
	var extra []string
	for k := range vars {
		if !slices.Contains(names, k) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range append(names, extra...) {
		v, ok := vars[k]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v))
	}
	return b.String()
}

// oneLine keeps a value on one comment line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
