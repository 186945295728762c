package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/server"
)

func newCACmd() *cobra.Command {
	var dd keyOptions
	var keyType string
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Manage the server's certificate authority",
	}
	dd.bind(cmd.PersistentFlags())
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Create a new CA root and intermediate; the server issues from them from its next start",
		Long: `Create the next generation of the certificate authority (new root and intermediate keys
and certificates) in <data-dir>/keys, or for replicas on PostgreSQL in the database
(--database-url with the replicas' key encryption key). The running server keeps issuing
from the current one; restart it (every replica) to issue from the new one. From that start
on its trusted root lists both, the old one valid until the start, so signatures made
before keep verifying, and the TUF repository publishes the new trusted root: clients that
took trust with "cosign initialize" pick it up at their next update. Clients that pinned
trusted_root.json must fetch it again (hallmark trust init).`,
		Example: `  hallmark ca rotate --data-dir ./hallmark-data && systemctl restart hallmark
  hallmark ca rotate --key-type ecdsa-p384 --data-dir ./hallmark-data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := dd.database()
			if err != nil {
				return err
			}
			n, root, err := server.RotateCA(cmd.Context(), db, keyType, time.Now())
			if err != nil {
				return err
			}
			sum := sha256.Sum256(root.Raw)
			fmt.Fprintf(cmd.ErrOrStderr(), "created CA generation %d: root %q (sha256 %s), valid until %s; restart the server to issue from it\n",
				n, root.Subject.CommonName, hex.EncodeToString(sum[:]), root.NotAfter.UTC().Format(time.RFC3339))
			fmt.Fprintln(cmd.OutOrStdout(), n)
			return nil
		},
	}
	rotate.Flags().StringVar(&keyType, "key-type", "ecdsa-p256", "key type of the new root and intermediate: ecdsa-p256 or ecdsa-p384")
	cmd.AddCommand(rotate)
	return cmd
}
