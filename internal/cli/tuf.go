package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/tuf"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// tufOptions locate the server's TUF repository.
type tufOptions struct {
	keyOptions
	timestampExpiry time.Duration
}

func newTUFCmd() *cobra.Command {
	var dd tufOptions
	cmd := &cobra.Command{
		Use:   "tuf",
		Short: "Manage the TUF repository that publishes the trusted root to sigstore clients",
		Long: `The server publishes its trusted root (trusted_root.json) and signing config
(signing_config.v0.2.json) as the targets of a TUF repository at <server>/tuf, the way
sigstore clients take trust: cosign, sigstore-go, policy-controller and kyverno.
A client is initialized once with the repository's root.json, got out of band:

  hallmark tuf root --data-dir ./hallmark-data > root.json
  cosign initialize --mirror https://hallmark.example.com/tuf --root root.json

and then needs no trust or URL flags. Each role (root, targets, snapshot, timestamp)
has its own Ed25519 key in <data-dir>/keys. The server re-signs the timestamp, snapshot,
targets and root before they expire, and publishes a changed trusted root as a new
target. These commands work on --data-dir directly, also while the server runs; for
replicas on PostgreSQL, on --database-url with the replicas' key encryption key, and every
replica serves the result at once.`,
	}
	dd.bind(cmd.PersistentFlags())
	def := config.Defaults().TUFTimestampExpiry
	if v, ok := lookupEnv("HALLMARK_TUF_TIMESTAMP_EXPIRY"); ok {
		if d, err := time.ParseDuration(v); err == nil {
			def = d
		}
	}
	cmd.PersistentFlags().DurationVar(&dd.timestampExpiry, "tuf-timestamp-expiry", def,
		"the server's --tuf-timestamp-expiry: lifetime of a timestamp these commands sign; env HALLMARK_TUF_TIMESTAMP_EXPIRY")
	cmd.AddCommand(newTUFRootCmd(&dd), newTUFStatusCmd(&dd), newTUFRotateCmd(&dd), newTUFRenewCmd(&dd))
	return cmd
}

// tuf opens the repository; close must be called.
func (o *tufOptions) tuf(ctx context.Context) (*tuf.Repository, func() error, error) {
	db, err := o.database()
	if err != nil {
		return nil, nil, err
	}
	return server.OpenTUF(ctx, db, o.timestampExpiry, nil)
}

func newTUFRootCmd(dd *tufOptions) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "root",
		Short: "Print the repository's newest root.json (what `cosign initialize --root` takes)",
		Long: `Print the newest root metadata of the repository, the trust anchor a client is
initialized with. Its SHA-256 goes to standard error: give it to clients that fetch
root.json from the server (cosign initialize --root <url>/tuf/root.json --root-checksum).
A client initialized with an older root follows the chain of versions to the newest.`,
		Example: `  hallmark tuf root --data-dir ./hallmark-data --out root.json
  cosign initialize --mirror http://127.0.0.1:5000/tuf --root root.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			repo, closeRepo, err := dd.tuf(cmd.Context())
			if err != nil {
				return err
			}
			defer closeRepo()
			raw, err := repo.Root(cmd.Context())
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				if _, err := cmd.OutOrStdout().Write(raw); err != nil {
					return err
				}
			} else if err := root.WriteFileAtomic(out, raw, 0o644); err != nil {
				return err
			}
			sum := sha256.Sum256(raw)
			fmt.Fprintf(cmd.ErrOrStderr(), "root.json sha256 %s\n", hex.EncodeToString(sum[:]))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write root.json to this file (default: standard output)")
	return cmd
}

func newTUFStatusCmd(dd *tufOptions) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each role's version, expiry and key, and the targets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			repo, closeRepo, err := dd.tuf(cmd.Context())
			if err != nil {
				return err
			}
			defer closeRepo()
			st, err := repo.Status(cmd.Context())
			if err != nil {
				return err
			}
			if jsonOut {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(st)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ROLE\tVERSION\tEXPIRES\tKEYS")
			for _, r := range st.Roles {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Role, r.Version, r.Expires.Format(time.RFC3339), strings.Join(r.KeyIDs, ","))
			}
			fmt.Fprintln(tw, "\nTARGET\tSHA256")
			for _, name := range []string{tuf.TrustedRootTarget, tuf.SigningConfigTarget} {
				if sum, ok := st.Targets[name]; ok {
					fmt.Fprintf(tw, "%s\t%s\n", name, sum)
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

func newTUFRotateCmd(dd *tufOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate ROLE",
		Short: "Give a role (root, targets, snapshot or timestamp) a new key",
		Long: `Create a new key for ROLE and publish a new root version naming it instead of the old
one, signed by the old and the new root keys (rotating root) or by the root key. Clients
initialized with any earlier root follow the chain of versions at their next update; the
role's metadata is signed anew with the new key and the old key is deleted from
<data-dir>/keys. A running server serves the new metadata at once.`,
		Example: `  hallmark tuf rotate root --data-dir ./hallmark-data
  hallmark tuf rotate timestamp`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: tuf.Roles(),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, closeRepo, err := dd.tuf(cmd.Context())
			if err != nil {
				return err
			}
			defer closeRepo()
			v, id, err := repo.Rotate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s key rotated: root version %d names key %s\n", args[0], v, id)
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
}

func newTUFRenewCmd(dd *tufOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "renew",
		Short: "Re-sign the metadata that is past half its lifetime (the server does this on its own)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			repo, closeRepo, err := dd.tuf(cmd.Context())
			if err != nil {
				return err
			}
			defer closeRepo()
			roles, err := repo.Renew(cmd.Context())
			if err != nil {
				return err
			}
			if len(roles) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "nothing to renew")
				return nil
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "signed anew: %s\n", strings.Join(roles, ", "))
			return nil
		},
	}
}
