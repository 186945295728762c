package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/index"
	"github.com/hallmark-dev/hallmark/internal/server"
)

// withIndex opens the database for the trust policy and index commands.
func (o *dataDirOption) withIndex(ctx context.Context, fn func(*index.Indexer) error) error {
	db, err := o.database()
	if err != nil {
		return err
	}
	ix, closeFn, err := server.OpenIndexAdmin(ctx, db)
	if err != nil {
		return err
	}
	defer closeFn()
	return fn(ix)
}

// cliActor names who changed a policy from the command line.
func cliActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

// policyFlags are set-policy's rules.
type policyFlags struct {
	file                      string
	identities, identityREs   []string
	issuer, issuerRE          string
	roots, trustedRoots, keys []string
	annotations               []string
}

// policy builds the policy from a --file document or from the flags.
func (f *policyFlags) policy(stdin io.Reader) (*index.Policy, error) {
	if f.file != "" {
		if len(f.identities)+len(f.identityREs)+len(f.roots)+len(f.trustedRoots)+len(f.keys)+len(f.annotations) > 0 || f.issuer != "" || f.issuerRE != "" {
			return nil, fmt.Errorf("give the policy either as --file or with the rule flags, not both")
		}
		var raw []byte
		var err error
		if f.file == "-" {
			raw, err = io.ReadAll(io.LimitReader(stdin, index.MaxPolicySize+1))
		} else {
			raw, err = os.ReadFile(f.file)
		}
		if err != nil {
			return nil, fmt.Errorf("policy file: %w", err)
		}
		return index.ParsePolicy(raw)
	}
	if (f.issuer != "" || f.issuerRE != "") && len(f.identities)+len(f.identityREs) == 0 {
		return nil, fmt.Errorf("--issuer and --issuer-regexp apply to the --identity and --identity-regexp given with them; give one")
	}
	p := &index.Policy{Roots: f.roots}
	for _, id := range f.identities {
		p.Identities = append(p.Identities, index.Identity{Identity: id, Issuer: f.issuer, IssuerRegexp: f.issuerRE})
	}
	for _, re := range f.identityREs {
		p.Identities = append(p.Identities, index.Identity{IdentityRegexp: re, Issuer: f.issuer, IssuerRegexp: f.issuerRE})
	}
	for _, path := range f.trustedRoots {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--trusted-root: %w", err)
		}
		p.TrustedRoots = append(p.TrustedRoots, json.RawMessage(raw))
	}
	for _, path := range f.keys {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
		p.Keys = append(p.Keys, string(raw))
	}
	for _, kv := range f.annotations {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--require-annotation %q: want key=value", kv)
		}
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[k] = v
	}
	return p, p.Validate()
}

func newSetPolicyCmd(dd *dataDirOption) *cobra.Command {
	var f policyFlags
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "set-policy PATH",
		Short: "Set the project's trust policy: which trust roots, keys and signers its signatures need",
		Long: `Set the trust policy of a project, replacing the one it has (with no rule flags: back to
the default). Every indexed signature of the project gets one status under it:

  verified    valid, and the policy allows its signer
  untrusted   valid under one of the policy's trust roots, but the signer (identity) is not
              allowed or a required annotation is missing; the status detail names the rule
  invalid     broken: bad signature, certificate chain, SCT, log entry, digest mismatch
  unverified  cannot be checked: an unknown key, CA or log (a root the policy does not name)

The default policy: this server's CA and logs (root "hallmark"), the server's --trusted-key
keys, and the project's own pipelines on any ref as signers
("<issuer>/<project>//.gitlab-ci.yml@refs/*" from the issuer the project is pinned to, else the
server's built-in issuer). An identity without --issuer is from that same issuer.

Changing the policy judges the project's existing signatures again, in the background of the
running servers (progress: hallmark_index_jobs_pending in /metrics, and the server log).
Running servers take the same JSON at PUT /api/v1/projects/PATH/policy.`,
		Example: `  hallmark project set-policy group/app --identity-regexp '^https://gitlab.example.com/group/app//\.gitlab-ci\.yml@refs/tags/.*$' \
      --issuer https://gitlab.example.com --require-annotation com.example.reviewed=true
  hallmark project set-policy group/app --root hallmark --trusted-root public-good.json \
      --identity https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main \
      --issuer https://token.actions.githubusercontent.com
  hallmark project set-policy group/app --key cosign.pub
  hallmark project set-policy group/app --file policy.json
  hallmark project set-policy group/app                     # back to the default`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := f.policy(cmd.InOrStdin())
			if err != nil {
				return err
			}
			return dd.withIndex(cmd.Context(), func(ix *index.Indexer) error {
				v, err := ix.SetPolicy(cmd.Context(), args[0], p, cliActor())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "project %s: trust policy version %d; %d signature manifests queued to be judged again by the running servers\n",
					v.Project, v.Version, v.Reevaluating)
				return printPolicy(cmd.OutOrStdout(), v, jsonOut)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.file, "file", "", "the policy as a JSON document (- for standard input) instead of the rule flags")
	fl.StringArrayVar(&f.identities, "identity", nil, "allowed signer: certificate identity (SAN), exactly (repeatable)")
	fl.StringArrayVar(&f.identityREs, "identity-regexp", nil, "allowed signer: certificate identity regexp (repeatable)")
	fl.StringVar(&f.issuer, "issuer", "", "OIDC issuer URL of the --identity/--identity-regexp signers (default: the project's issuer)")
	fl.StringVar(&f.issuerRE, "issuer-regexp", "", "OIDC issuer regexp of the --identity/--identity-regexp signers")
	fl.StringArrayVar(&f.roots, "root", nil, "trust root by name: hallmark (this server) or a server's --trusted-root NAME (repeatable; default hallmark)")
	fl.StringArrayVar(&f.trustedRoots, "trusted-root", nil, "sigstore trusted_root.json file to trust for this project, stored in the policy (repeatable)")
	fl.StringArrayVar(&f.keys, "key", nil, "PEM public key file whose signatures are trusted (repeatable)")
	fl.StringArrayVar(&f.annotations, "require-annotation", nil, "key=value every signature must carry, signed (repeatable)")
	fl.BoolVar(&jsonOut, "json", false, "print the policy as JSON")
	return cmd
}

func newShowPolicyCmd(dd *dataDirOption) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "policy PATH",
		Short: "Show the project's trust policy as it applies (defaults filled in)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dd.withIndex(cmd.Context(), func(ix *index.Indexer) error {
				v, err := ix.Policy(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return printPolicy(cmd.OutOrStdout(), v, jsonOut)
			})
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the policy as JSON (as GET /api/v1/projects/PATH/policy)")
	return cmd
}

// printPolicy prints a policy as a table, or as the API's JSON.
func printPolicy(w io.Writer, v index.PolicyView, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	version := fmt.Sprint(v.Version)
	if v.Version == 0 {
		version = "0 (the default)"
	} else if v.Updated != nil {
		version += fmt.Sprintf(" (set %s by %s)", v.Updated.Format("2006-01-02 15:04:05Z07:00"), v.UpdatedBy)
	}
	e := v.Effective
	fmt.Fprintf(tw, "project\t%s\n", v.Project)
	fmt.Fprintf(tw, "version\t%s\n", version)
	fmt.Fprintf(tw, "trust roots\t%s\n", strings.Join(e.Roots, ", "))
	if e.TrustedRoots > 0 {
		fmt.Fprintf(tw, "trusted roots in the policy\t%d\n", e.TrustedRoots)
	}
	for _, k := range e.Keys {
		fmt.Fprintf(tw, "key\t%s\n", k)
	}
	for _, id := range e.Identities {
		who, from := id.Identity, id.Issuer
		if who == "" {
			who = "~ " + id.IdentityRegexp
		}
		if from == "" && id.IssuerRegexp != "" {
			from = "~ " + id.IssuerRegexp
		}
		if from == "" {
			from = "the server's built-in issuer (its URL)"
		}
		fmt.Fprintf(tw, "signer\t%s\tfrom %s\n", who, from)
	}
	for k, val := range e.Annotations {
		fmt.Fprintf(tw, "required annotation\t%s=%s\n", k, val)
	}
	return tw.Flush()
}
