package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/pkg/sign"
)

func newGenerateKeyPairCmd() *cobra.Command {
	var prefix string
	cmd := &cobra.Command{
		Use:   "generate-key-pair",
		Short: "Write an encrypted ECDSA P-256 key pair in cosign's format (cosign.key, cosign.pub)",
		Long: `Write <prefix>.key (the private key, encrypted with the password from COSIGN_PASSWORD,
a prompt, or standard input, in cosign's "ENCRYPTED SIGSTORE PRIVATE KEY" format) and
<prefix>.pub (the PEM public key). cosign reads both files, and hallmark reads keys
made by cosign generate-key-pair.`,
		Example: `  COSIGN_PASSWORD=secret hallmark generate-key-pair
  hallmark generate-key-pair --output-key-prefix release`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keyFile, pubFile := prefix+".key", prefix+".pub"
			for _, f := range []string{keyFile, pubFile} {
				if _, err := os.Stat(f); err == nil {
					return fmt.Errorf("%s already exists; remove it or choose another --output-key-prefix", f)
				}
			}
			pw, err := readPassword(true)
			if err != nil {
				return err
			}
			priv, pub, err := sign.GenerateKeyPair(pw)
			if err != nil {
				return err
			}
			if err := os.WriteFile(keyFile, priv, 0o600); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Private key written to", keyFile)
			if err := os.WriteFile(pubFile, pub, 0o644); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Public key written to", pubFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&prefix, "output-key-prefix", "cosign", "file name prefix of the key pair")
	return cmd
}
