package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/auth"
)

func newProjectCmd() *cobra.Command {
	var dd dataDirOption
	cmd := &cobra.Command{
		Use:   "project",
		Short: "Manage projects (repository path prefixes), their visibility, members and CI job tokens",
		Long: `A project is a repository path prefix: project group/app covers the repositories
group/app and group/app/<anything> (the longest matching project governs a repository).
Public projects may be pulled anonymously; private ones only by members. Roles:
reporter (pull), developer (pull, push), maintainer (pull, push, delete). Repositories
outside every project are reachable by administrators only. These commands work on the
server's database in --data-dir directly.`,
	}
	dd.bind(cmd.PersistentFlags())

	var visibility, issuer string
	add := &cobra.Command{
		Use:   "add PATH",
		Short: "Create a project",
		Example: `  hallmark project add group/app --visibility private
  hallmark project add group/app --oidc-issuer https://gitlab.example.com`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				p, err := a.AddProject(cmd.Context(), args[0], visibility, issuer)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "created project %s (%s)\n", p.Path, p.Visibility)
				return nil
			})
		},
	}
	add.Flags().StringVar(&visibility, "visibility", auth.VisibilityPrivate, "public (anonymous pull) or private")
	add.Flags().StringVar(&issuer, "oidc-issuer", "", "accept OIDC ID-token logins for this project from this trusted issuer URL (default: only from the built-in issuer)")

	setIssuer := &cobra.Command{
		Use:   "set-issuer PATH [ISSUER-URL]",
		Short: "Pin a project to the OIDC issuer whose ID tokens may log in to it (no URL: unpin)",
		Long: `Pin a project to a trusted OIDC issuer (one given to the server with --oidc-issuer): CI jobs of
that issuer whose ID token names the project (project_path claim) may then log in and push.
An unpinned project accepts ID-token logins only from the server's built-in issuer, so the
owner of the same project path on another GitLab cannot push to it.`,
		Example: `  hallmark project set-issuer group/app https://gitlab.example.com
  hallmark project set-issuer group/app          # unpin: built-in issuer only`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			iss := ""
			if len(args) == 2 {
				iss = args[1]
			}
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				if err := a.SetProjectIssuer(cmd.Context(), args[0], iss); err != nil {
					return err
				}
				if iss == "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "project %s accepts ID-token logins from the built-in issuer only\n", args[0])
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "project %s accepts ID-token logins from %s\n", args[0], iss)
				}
				return nil
			})
		},
	}

	var jsonOut bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List projects",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				ps, err := a.Store.ListProjects(cmd.Context())
				if err != nil {
					return err
				}
				if jsonOut {
					type p struct {
						Path             string `json:"path"`
						Visibility       string `json:"visibility"`
						OIDCIssuer       string `json:"oidcIssuer,omitempty"`
						RequireSignature string `json:"requireSignature"`
					}
					out := []p{}
					for _, x := range ps {
						out = append(out, p{x.Path, x.Visibility, x.OIDCIssuer, string(x.RequireSignature)})
					}
					return json.NewEncoder(cmd.OutOrStdout()).Encode(out)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PATH\tVISIBILITY\tREQUIRE-SIGNATURE\tOIDC ISSUER")
				for _, x := range ps {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", x.Path, x.Visibility, x.RequireSignature, x.OIDCIssuer)
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().BoolVar(&jsonOut, "json", false, "print JSON")

	remove := &cobra.Command{
		Use:     "remove PATH",
		Aliases: []string{"rm"},
		Short:   "Delete a project with its memberships and job tokens (images stay, reachable by admins)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				if err := a.Store.DeleteProject(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "deleted project %s\n", args[0])
				return nil
			})
		},
	}

	var role string
	grant := &cobra.Command{
		Use:     "grant PATH USER",
		Short:   "Give USER a role in the project (or change it)",
		Example: `  hallmark project grant group/app alice --role developer`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return err
			}
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				if err := a.Store.SetMember(cmd.Context(), args[0], args[1], r); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s is %s of %s\n", args[1], r, args[0])
				return nil
			})
		},
	}
	grant.Flags().StringVar(&role, "role", string(auth.RoleDeveloper), "reporter (pull), developer (pull, push) or maintainer (pull, push, delete)")

	revoke := &cobra.Command{
		Use:   "revoke PATH USER",
		Short: "Remove USER from the project",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				if err := a.Store.RemoveMember(cmd.Context(), args[0], args[1]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "removed %s from %s\n", args[1], args[0])
				return nil
			})
		},
	}

	members := &cobra.Command{
		Use:   "members PATH",
		Short: "List the project's members",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				ms, err := a.Store.ListMembers(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USER\tROLE")
				for _, m := range ms {
					fmt.Fprintf(tw, "%s\t%s\n", m.User, m.Role)
				}
				return tw.Flush()
			})
		},
	}

	var job, pipeline, user, ttl string
	jobToken := &cobra.Command{
		Use:   "job-token PATH",
		Short: "Mint a CI job token for the project (printed once on stdout)",
		Long: `Mint a CI job token: the job logs in with docker login -u gitlab-ci-token -p TOKEN and
may pull and push in this project only (plus pull what --user may pull), until the token
expires. Running servers mint the same tokens at POST /api/v1/ci/job-tokens.`,
		Example: `  export CI_JOB_TOKEN=$(hallmark project job-token group/app --job 42 --ttl 1h)`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := parseLifetime(ttl)
			if err != nil {
				return err
			}
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				secret, t, err := a.CreateJobToken(cmd.Context(), auth.JobTokenRequest{Project: args[0], JobID: job, Pipeline: pipeline, User: user, TTL: d})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "CI job token %d for %s job %s, expires %s\n", t.ID, t.Project, t.JobID, t.Expires.UTC().Format(time.RFC3339))
				fmt.Fprintln(cmd.OutOrStdout(), secret)
				return nil
			})
		},
	}
	jobToken.Flags().StringVar(&job, "job", "", "CI job id (required)")
	jobToken.Flags().StringVar(&pipeline, "pipeline", "", "CI pipeline id")
	jobToken.Flags().StringVar(&user, "user", "", "user who triggered the job")
	jobToken.Flags().StringVar(&ttl, "ttl", "1h", "lifetime (at most 7d)")
	jobToken.AddCommand(newJobTokenRevokeCmd(&dd))

	cmd.AddCommand(add, list, remove, setIssuer, grant, revoke, members, jobToken, newSetPolicyCmd(&dd), newShowPolicyCmd(&dd), newSetRequireSignatureCmd(&dd))
	cmd.AddCommand(newRetentionCmds(&dd)...)
	return cmd
}

// newJobTokenRevokeCmd is `hallmark project job-token revoke PATH ID...`.
func newJobTokenRevokeCmd(dd *dataDirOption) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke PATH ID...",
		Short: "Revoke CI job tokens of the project by id",
		Long: `Revoke CI job tokens of the project by the id printed when they were minted
(hallmark project job-token, POST /api/v1/ci/job-tokens). A revoked token can no longer log
in, at once; the access tokens it already obtained are refused by running servers within
10 seconds (at once by a server through whose API the token is revoked:
POST /api/v1/ci/job-tokens/revoke, which a job also calls at its end with its own token,
{"token": "$CI_JOB_TOKEN"}). Revoking a revoked token again is not an error.`,
		Example: `  hallmark project job-token revoke group/app 42`,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ids []int64
			for _, a := range args[1:] {
				id, err := strconv.ParseInt(a, 10, 64)
				if err != nil || id < 1 {
					return fmt.Errorf("CI job token id %q: want the number printed when the token was minted", a)
				}
				ids = append(ids, id)
			}
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				for _, id := range ids {
					t, err := a.RevokeJobToken(cmd.Context(), args[0], id)
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "revoked CI job token %d of %s job %s\n", t.ID, t.Project, t.JobID)
				}
				return nil
			})
		},
	}
}
