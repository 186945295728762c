package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/oidc"
)

// oidcNotFound is what a server without the built-in OIDC issuer's admin
// endpoints raises.
const oidcNotFound = "is it a Hallmark server with the built-in OIDC issuer enabled (--oidc-builtin)?"

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
			if err := opts.post(cmd.Context(), adminEndpoint{oidc.MintPath, "the token request", oidcNotFound}, req, &resp); err != nil {
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
			if err := opts.post(cmd.Context(), adminEndpoint{oidc.RotatePath, "the key rotation", oidcNotFound}, nil, &resp); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.KeyID)
			return nil
		},
	}
	opts.bind(cmd.Flags())
	return cmd
}
