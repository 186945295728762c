package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/server"
)

// newCIDoneCmd is `hallmark ci done`: the last step of a CI job, which
// revokes the job's CI job token.
func newCIDoneCmd() *cobra.Command {
	var srv string
	cmd := &cobra.Command{
		Use:   "done",
		Short: "End a CI job: revoke its CI job token ($CI_JOB_TOKEN) on the server",
		Long: `Revoke the CI job token of the current job ($CI_JOB_TOKEN), as the last step of the job
(GitLab: after_script). The token can no longer log in, and the access tokens it obtained
are refused at once; holding the token is all the authority needed
(POST /api/v1/ci/job-tokens/revoke with {"token": ...}). The server is --server, else
$HALLMARK_URL, else $CI_SERVER_URL (what hallmark ci job prints).`,
		Example: `  hallmark ci done
  hallmark ci done --server https://hallmark.example.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, _ := lookupEnv("CI_JOB_TOKEN")
			if tok = strings.TrimSpace(tok); tok == "" {
				return errors.New("CI_JOB_TOKEN is not set: run this inside the CI job (hallmark ci job prints its environment)")
			}
			if srv == "" {
				for _, k := range []string{"HALLMARK_URL", "CI_SERVER_URL"} {
					if v, ok := lookupEnv(k); ok && v != "" {
						srv = v
						break
					}
				}
			}
			if srv == "" {
				return errors.New("no server: pass --server URL or set HALLMARK_URL")
			}
			base, err := serverURL(srv)
			if err != nil {
				return err
			}
			reply, err := postAdmin(cmd.Context(), base, "", adminEndpoint{server.JobTokenRevokePath, "the revocation of the CI job token",
				"is it a Hallmark server of this version?"}, map[string]string{"token": tok})
			if err != nil {
				return err
			}
			var out struct {
				ID      int64  `json:"id"`
				Project string `json:"project"`
				JobID   string `json:"job_id"`
			}
			if err := json.Unmarshal(reply, &out); err != nil {
				return fmt.Errorf("the reply of %s is not the expected JSON: %w", base, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "revoked CI job token %d of %s job %s\n", out.ID, out.Project, out.JobID)
			return nil
		},
	}
	cmd.Flags().StringVar(&srv, "server", "", "base URL of the Hallmark server (default $HALLMARK_URL, else $CI_SERVER_URL)")
	return cmd
}
