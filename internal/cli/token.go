package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hallmark-dev/hallmark/internal/oidc"
)

// adminClientOptions locate a Hallmark server and its admin token.
type adminClientOptions struct {
	server    string
	tokenFile string
	dataDir   string
}

func (o *adminClientOptions) bind(fs *pflag.FlagSet) {
	def := "http://127.0.0.1:5000"
	if v, ok := lookupEnv("HALLMARK_SERVER"); ok && v != "" {
		def = v
	}
	dd := ""
	if v, ok := lookupEnv("HALLMARK_DATA_DIR"); ok {
		dd = v
	}
	fs.StringVar(&o.server, "server", def, "base URL of the Hallmark server; env HALLMARK_SERVER")
	fs.StringVar(&o.tokenFile, "admin-token-file", "", "file holding the server's admin token (else env HALLMARK_ADMIN_TOKEN, else <data-dir>/admin-token)")
	fs.StringVar(&o.dataDir, "data-dir", dd, "the server's data directory, to read <data-dir>/admin-token from (when the server runs on this machine); env HALLMARK_DATA_DIR")
}

// adminToken finds the admin token: --admin-token-file, env
// HALLMARK_ADMIN_TOKEN, --data-dir, else ./hallmark-data (the server's
// default data dir) when it holds one.
func (o *adminClientOptions) adminToken() (string, error) {
	read := func(path string) (string, error) {
		raw, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("reading the admin token: %w", err)
		}
		t := strings.TrimSpace(string(raw))
		if t == "" {
			return "", fmt.Errorf("admin token file %s is empty", path)
		}
		return t, nil
	}
	if o.tokenFile != "" {
		return read(o.tokenFile)
	}
	if v, ok := lookupEnv("HALLMARK_ADMIN_TOKEN"); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v), nil
	}
	if o.dataDir != "" {
		return read(filepath.Join(o.dataDir, "admin-token"))
	}
	def := filepath.Join("hallmark-data", "admin-token")
	if _, err := os.Stat(def); err == nil {
		return read(def)
	}
	return "", errors.New("no admin token: pass --admin-token-file FILE, set HALLMARK_ADMIN_TOKEN, or --data-dir DIR of the server (it writes DIR/admin-token on first start)")
}

// post sends an admin-authorised JSON request and decodes the JSON reply.
func (o *adminClientOptions) post(cmd *cobra.Command, path string, body, out any) error {
	tok, err := o.adminToken()
	if err != nil {
		return err
	}
	base, err := url.Parse(strings.TrimSuffix(o.server, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("--server %q: want http(s)://host[:port]", o.server)
	}
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, base.String()+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hallmark/"+Version)
	client := &http.Client{Timeout: 2 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("contacting the Hallmark server at %s: %w", base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the reply of %s: %w", base, err)
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(raw, &e)
	msg := e.Error
	if msg == "" {
		msg = strings.TrimSpace(string(raw))
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("admin token rejected: %s", msg)
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s has no %s endpoint (HTTP 404): is it a Hallmark server with the built-in OIDC issuer enabled (--oidc-builtin)?", base, path)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("server refused (HTTP %d): %s", resp.StatusCode, msg)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("server reply is not the expected JSON: %w", err)
	}
	return nil
}

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Mint CI job ID tokens from the built-in OIDC issuer and manage its keys",
	}
	cmd.AddCommand(newTokenIssueCmd(), newTokenRotateKeyCmd())
	return cmd
}

func newTokenIssueCmd() *cobra.Command {
	var (
		opts adminClientOptions
		req  oidc.MintRequest
		auds []string
		ttl  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Mint a GitLab-style CI job ID token and print it on stdout",
		Long: `Mint an RS256 ID token from the server's built-in OIDC issuer with the claims GitLab
puts in a CI job's id_token (sub, project_path, ref, ref_type, sha, pipeline_id, job_id,
ci_config_ref_uri, ...). Use it as SIGSTORE_ID_TOKEN (or --identity-token) for keyless
signing against the server's certificate authority.

The request is authorised by the server's admin token, generated on first start into
<data-dir>/admin-token.`,
		Example: `  hallmark token issue --server http://127.0.0.1:5000 --data-dir ./hallmark-data --aud sigstore --project group/app --ref main
  SIGSTORE_ID_TOKEN=$(hallmark token issue --aud sigstore --project group/app --ref v1.0 --ref-type tag --sha $(git rev-parse HEAD))`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			aud, err := json.Marshal(auds)
			if err != nil {
				return err
			}
			req.Aud = aud
			if ttl != 0 {
				req.TTL = ttl.String()
			}
			var resp oidc.MintResponse
			if err := opts.post(cmd, oidc.MintPath, req, &resp); err != nil {
				return err
			}
			if resp.Token == "" {
				return errors.New("server reply holds no token")
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.Token)
			return nil
		},
	}
	fs := cmd.Flags()
	opts.bind(fs)
	fs.StringSliceVar(&auds, "aud", []string{"sigstore"}, "audience (repeatable); sigstore for keyless signing")
	fs.StringVar(&req.ProjectPath, "project", "", "project path, group[/subgroup]/project (required)")
	fs.StringVar(&req.Ref, "ref", "", "branch or tag name (required)")
	fs.StringVar(&req.RefType, "ref-type", "branch", "branch or tag")
	fs.BoolVar(&req.RefProtected, "ref-protected", false, "the ref is protected")
	fs.StringVar(&req.SHA, "sha", "", "commit SHA (default: 40 zeros)")
	fs.StringVar(&req.PipelineID, "pipeline", "", "pipeline id (default: derived from the time)")
	fs.StringVar(&req.PipelineSource, "pipeline-source", "", "pipeline source: push (default), web, schedule, merge_request_event...")
	fs.StringVar(&req.JobID, "job", "", "job id (default: the pipeline id)")
	fs.StringVar(&req.UserLogin, "user", "", "user login (default hallmark)")
	fs.StringVar(&req.UserEmail, "user-email", "", "user email")
	fs.StringVar(&req.ProjectID, "project-id", "", "project id (default: a stable number derived from the path)")
	fs.StringVar(&req.Visibility, "visibility", "", "project visibility: private (default), internal or public")
	fs.Int64Var(&req.RunnerID, "runner-id", 0, "runner id (default 1)")
	fs.StringVar(&req.RunnerEnvironment, "runner-environment", "", "self-hosted (default) or gitlab-hosted")
	fs.StringVar(&req.Environment, "environment", "", "deployment environment name (optional)")
	fs.StringVar(&req.DeploymentTier, "deployment-tier", "", "deployment tier with --environment: production, staging, testing, development, other")
	fs.DurationVar(&ttl, "ttl", 0, "token lifetime (default: the server's --oidc-token-ttl, 10m)")
	_ = cmd.MarkFlagRequired("project")
	_ = cmd.MarkFlagRequired("ref")
	return cmd
}

func newTokenRotateKeyCmd() *cobra.Command {
	var opts adminClientOptions
	cmd := &cobra.Command{
		Use:   "rotate-key",
		Short: "Rotate the built-in OIDC issuer's signing key",
		Long: `Create a new signing key for the built-in OIDC issuer. New tokens are signed with it;
the previous keys stay in the JWKS (/oauth/discovery/keys) until the tokens they signed have
expired (--oidc-max-token-ttl plus 5 minutes), so tokens already handed out keep verifying.
Prints the new key id (kid). Automatic rotation by age: hallmark server --oidc-key-rotation.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp oidc.RotateResponse
			if err := opts.post(cmd, oidc.RotatePath, nil, &resp); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.KeyID)
			return nil
		},
	}
	opts.bind(cmd.Flags())
	return cmd
}
