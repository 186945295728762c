package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=...".
var Version = "dev"

// Execute runs the hallmark command line and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		if ec, ok := err.(interface{ ExitCode() int }); ok {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

// NewRoot builds the command tree.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "hallmark",
		Short: "Self-hosted container registry, signing services and cosign-compatible signing client",
		Long: `Hallmark is one binary that gives a CI pipeline everything needed to sign container
images with build provenance: an OCI registry whose metadata database knows every
signature, an OIDC issuer for CI jobs, a Fulcio-compatible certificate authority and a
Rekor-compatible transparency log (hallmark server), and a cosign-compatible client
(hallmark sign, verify, attest) whose signatures real cosign verifies.

Start with "hallmark demo", which runs the whole flow on the embedded defaults.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newServerCmd(), newSignCmd(), newVerifyCmd(), newGenerateKeyPairCmd(), newVersionCmd())
	root.AddCommand(newTokenCmd())
	root.AddCommand(newUserCmd())
	root.AddCommand(newProjectCmd())
	root.AddCommand(newQuarantineCmd())
	root.AddCommand(newLoginCmd(), newLogoutCmd())
	root.AddCommand(newTrustCmd())
	root.AddCommand(newCICmd())
	root.AddCommand(newAttestCmd(), newVerifyAttestationCmd())
	root.AddCommand(newSignBlobCmd(), newVerifyBlobCmd())
	root.AddCommand(newDemoCmd())
	root.AddCommand(newMigrateCmd())
	root.AddCommand(newGCCmd(), newBackupCmd(), newRestoreCmd())
	root.AddCommand(newTUFCmd(), newCACmd())
	root.AddCommand(newIndexCmd())
	root.AddCommand(newSearchCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the hallmark version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "hallmark", Version)
		},
	}
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func lookupEnv(k string) (string, bool) { return os.LookupEnv(k) }
