package cli

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/server"
)

func newServerCmd() *cobra.Command {
	cfg := config.Defaults()
	var cfgFile string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Hallmark server: registry, metadata database, OIDC issuer, CA and transparency log",
		Long: `Run the Hallmark server on the embedded defaults: on 127.0.0.1:5000, keeping blobs on the
filesystem and metadata, the transparency log and keys under ./hallmark-data.

Every flag can also be set with an environment variable HALLMARK_<FLAG> (for example
HALLMARK_ADDR, HALLMARK_DATA_DIR) or in a YAML file given with --config whose keys are
the flag names. Precedence: flag, environment, file, default.

Access control is on: the first start creates the user "admin" and writes its password to
<data-dir>/admin-password (0600); log in with "hallmark login" or "docker login".

Endpoints:
  /v2/                             OCI Distribution v1.1 registry (token auth: /auth/token; with --auth=token an
                                   external token service such as GitLab's /jwt/auth issues the tokens)
  /.well-known/openid-configuration  built-in OIDC issuer for CI jobs (JWKS: /oauth/discovery/keys)
  /api/v1/signingCert, /api/v2/...   Fulcio-compatible certificate authority
  /api/v1/log/...                   Rekor v1-compatible transparency log
  /api/v1/trusted_root.json         trust material for cosign/sigstore clients (and signing_config.json)
  /api/v1/images/{repo}/signatures, /api/v1/search   provenance API; /api/v1/audit (admins)
  /healthz, /readyz, /metrics       health and Prometheus metrics`,
		Example: `  hallmark server
  hallmark server --addr 127.0.0.1:5050 --data-dir /var/lib/hallmark
  HALLMARK_ADDR=127.0.0.1:5050 hallmark server --config hallmark.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgFile == "" {
				cfgFile, _ = lookupEnv("HALLMARK_CONFIG")
			}
			if err := config.Apply(cmd.Flags(), cfgFile, lookupEnv); err != nil {
				return err
			}
			// The key itself only from the environment: a flag or config
			// file value would show in ps or be copied around.
			cfg.KeyEncryptionKey, _ = lookupEnv("HALLMARK_KEY_ENCRYPTION_KEY")
			log := newLogger(cmd.ErrOrStderr(), cfg.LogLevel, cfg.LogFormat)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv, err := server.New(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer srv.Close()
			return srv.Run(ctx, nil)
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "YAML configuration file (keys are flag names); env HALLMARK_CONFIG")
	cfg.BindFlags(cmd.Flags())
	return cmd
}
