package cli

import (
	"context"
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

	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

func newTrustCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Export or install the trust material (trusted root, signing config) of a Hallmark server",
		Long: `A Hallmark server publishes its trust material at /api/v1/trusted_root.json (sigstore trusted
root: the CA chain, the transparency log key and the CT log key) and /api/v1/signing_config.json
(where to get certificates and log entries). Verifiers trust signatures only through it.

The trusted root is pinned by its fingerprint: the SHA-256 of the exact trusted_root.json bytes,
as "sha256sum trusted_root.json" prints it. The server logs it at start ("trust: publishing
trusted root ... sha256=...") and "hallmark trust export" prints it.`,
	}
	cmd.AddCommand(newTrustExportCmd(), newTrustInitCmd())
	return cmd
}

// trustSource reads trust files from a server (--server) or from a server's
// data dir (--data-dir, offline).
type trustSource struct {
	server  string
	dataDir string
}

func (s *trustSource) fetch(ctx context.Context, file string) ([]byte, error) {
	if s.dataDir != "" {
		path := filepath.Join(s.dataDir, server.TrustDir, file)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w (the server writes it on start: has it run with this --data-dir?)", err)
		}
		return b, nil
	}
	p := server.TrustedRootPath
	if file == root.SigningConfigFile {
		p = server.SigningConfigPath
	}
	return httpGet(ctx, s.server, p)
}

func (s *trustSource) describe() string {
	if s.dataDir != "" {
		return filepath.Join(s.dataDir, server.TrustDir)
	}
	return s.server
}

func serverURL(raw string) (string, error) {
	base, err := url.Parse(strings.TrimSuffix(strings.TrimSpace(raw), "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || base.RawQuery != "" {
		return "", fmt.Errorf("--server %q: want http(s)://host[:port]", raw)
	}
	return base.String(), nil
}

// httpGet fetches base+path (at most root.MaxFileSize bytes).
func httpGet(ctx context.Context, base, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "hallmark/"+Version)
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("contacting the Hallmark server at %s: %w", base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, root.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s%s: %w", base, path, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%s has no %s (HTTP 404): is it a Hallmark server with keyless signing?", base, path)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s%s: HTTP %d: %s", base, path, resp.StatusCode, strings.TrimSpace(string(b)))
	case len(b) > root.MaxFileSize:
		return nil, fmt.Errorf("%s%s is larger than %d bytes", base, path, root.MaxFileSize)
	}
	return b, nil
}

// fetchTrust gets and validates the trusted root and signing config.
func fetchTrust(ctx context.Context, src *trustSource) (trRaw, scRaw []byte, tr *root.TrustedRoot, err error) {
	if trRaw, err = src.fetch(ctx, root.TrustedRootFile); err != nil {
		return nil, nil, nil, err
	}
	if tr, err = root.Parse(trRaw); err != nil {
		return nil, nil, nil, fmt.Errorf("trusted root from %s: %w", src.describe(), err)
	}
	if scRaw, err = fetchSigningConfig(ctx, src, tr); err != nil {
		return nil, nil, nil, err
	}
	return trRaw, scRaw, tr, nil
}

// fetchSigningConfig gets the signing config and checks that it only names
// services of tr.
func fetchSigningConfig(ctx context.Context, src *trustSource, tr *root.TrustedRoot) ([]byte, error) {
	scRaw, err := src.fetch(ctx, root.SigningConfigFile)
	if err != nil {
		return nil, err
	}
	if _, err := root.ParseSigningConfigFor(scRaw, tr); err != nil {
		return nil, fmt.Errorf("signing config from %s: %w", src.describe(), err)
	}
	return scRaw, nil
}

func newTrustExportCmd() *cobra.Command {
	var (
		src    trustSource
		outDir string
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a server's trusted root, signing config and cosign v2 PEM files to a directory",
		Long: `Write trusted_root.json and signing_config.json as the server publishes them, plus the PEM files
cosign v2 reads from its environment instead of a trusted root (fulcio-chain.pem for
SIGSTORE_ROOT_FILE, rekor.pub for SIGSTORE_REKOR_PUBLIC_KEY, ctlog.pub for
SIGSTORE_CT_LOG_PUBLIC_KEY_FILE). Prints the trusted root's fingerprint and the environment lines
(the output can be eval'ed by a POSIX shell).

With --data-dir the files are read from the server's data directory (no network): run it on the
server host to get the fingerprint others pin with "hallmark trust init". With --server they are
downloaded: compare the printed fingerprint with the one the server logged before relying on them.`,
		Example: `  hallmark trust export --data-dir /var/lib/hallmark --out-dir ./trust
  hallmark trust export --server https://hallmark.example.com --out-dir ./trust
  eval "$(hallmark trust export --server http://127.0.0.1:5000 --out-dir ./trust)"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("data-dir") && cmd.Flags().Changed("server") {
				return errors.New("give --server (download) or --data-dir (read the server's files), not both")
			}
			if src.dataDir == "" {
				u, err := serverURL(src.server)
				if err != nil {
					return err
				}
				src.server = u
			}
			trRaw, scRaw, tr, err := fetchTrust(cmd.Context(), &src)
			if err != nil {
				return err
			}
			dir, err := filepath.Abs(outDir)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			legacy := tr.Legacy()
			files := []struct {
				name string
				data []byte
			}{
				{root.TrustedRootFile, trRaw}, {root.SigningConfigFile, scRaw},
				{root.FulcioChainFile, legacy.FulcioChain}, {root.RekorKeyFile, legacy.RekorKey}, {root.CTLogKeyFile, legacy.CTLogKey},
			}
			for _, f := range files {
				if err := root.WriteFileAtomic(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
					return fmt.Errorf("writing %s: %w", f.name, err)
				}
			}
			fp := root.Fingerprint(trRaw)
			base := src.server
			if len(tr.CertificateAuthorities) > 0 {
				base = tr.CertificateAuthorities[0].URI
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "# trust material of %s written to %s\n", src.describe(), dir)
			fmt.Fprintf(w, "# trusted root fingerprint (SHA-256 of trusted_root.json): %s\n", fp)
			fmt.Fprintf(w, "# pin it on other machines with: hallmark trust init --server %s --fingerprint %s\n", base, fp)
			fmt.Fprintf(w, "# cosign v3 / cosign v2 --trusted-root: --trusted-root %s --signing-config %s\n",
				shellQuote(filepath.Join(dir, root.TrustedRootFile)), shellQuote(filepath.Join(dir, root.SigningConfigFile)))
			fmt.Fprintln(w, "# cosign v2 legacy trust (instead of --trusted-root):")
			fmt.Fprintf(w, "export SIGSTORE_ROOT_FILE=%s\n", shellQuote(filepath.Join(dir, root.FulcioChainFile)))
			fmt.Fprintf(w, "export SIGSTORE_REKOR_PUBLIC_KEY=%s\n", shellQuote(filepath.Join(dir, root.RekorKeyFile)))
			fmt.Fprintf(w, "export SIGSTORE_CT_LOG_PUBLIC_KEY_FILE=%s\n", shellQuote(filepath.Join(dir, root.CTLogKeyFile)))
			return nil
		},
	}
	fs := cmd.Flags()
	def := "http://127.0.0.1:5000"
	if v, ok := lookupEnv("HALLMARK_SERVER"); ok && v != "" {
		def = v
	}
	fs.StringVar(&src.server, "server", def, "base URL of the Hallmark server to download from; env HALLMARK_SERVER")
	fs.StringVar(&src.dataDir, "data-dir", "", "read the files the server keeps in DIR/trust instead of downloading them (on the server host)")
	fs.StringVar(&outDir, "out-dir", ".", "directory to write the files to")
	return cmd
}

func newTrustInitCmd() *cobra.Command {
	var (
		src         trustSource
		fingerprint string
		dir         string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Download a server's trusted root, check it against a pinned fingerprint and install it",
		Long: `Download trusted_root.json and signing_config.json from a Hallmark server, check that the SHA-256
of the downloaded trusted_root.json is the pinned --fingerprint (obtained out of band: from the
server's start-up log, or "hallmark trust export --data-dir" / "sha256sum <data-dir>/trust/trusted_root.json"
on the server host), check that the signing config only names services of that trusted root, and
store both in $HALLMARK_TRUST_DIR (default ~/.hallmark), where "hallmark sign" and "hallmark verify"
find them.

Nothing is trusted on first use: without --fingerprint the command refuses and prints the
fingerprint it saw, for you to compare out of band.`,
		Example: `  hallmark trust init --server https://hallmark.example.com --fingerprint 3f1c...e0a9`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := serverURL(src.server)
			if err != nil {
				return err
			}
			src.server = u
			var want string
			if fingerprint != "" {
				if want, err = root.NormalizeFingerprint(fingerprint); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			trRaw, err := src.fetch(ctx, root.TrustedRootFile)
			if err != nil {
				return err
			}
			got := root.Fingerprint(trRaw)
			if want == "" {
				return fmt.Errorf("refusing to trust %s without a pinned fingerprint: the trusted root it serves has SHA-256\n  %s\n"+
					"compare it out of band with the server's (logged at start as \"trust: publishing trusted root ... sha256=...\", "+
					"or `hallmark trust export --data-dir DIR` on the server host), then run\n  hallmark trust init --server %s --fingerprint %s",
					u, got, u, got)
			}
			if err := root.CheckFingerprint(trRaw, want); err != nil {
				return fmt.Errorf("refusing the trusted root served by %s: %w; it is not the pinned trust material "+
					"(wrong server, the server's keys changed, or the connection was tampered with)", u, err)
			}
			tr, err := root.Parse(trRaw)
			if err != nil {
				return fmt.Errorf("trusted root from %s: %w", u, err)
			}
			// The pin authenticates the trusted root; the signing config is
			// then only accepted if it names services of that root.
			scRaw, err := fetchSigningConfig(ctx, &src, tr)
			if err != nil {
				return err
			}
			if dir == "" {
				if dir, err = root.DefaultDir(); err != nil {
					return err
				}
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			trPath, scPath := filepath.Join(dir, root.TrustedRootFile), filepath.Join(dir, root.SigningConfigFile)
			if err := root.WriteFileAtomic(trPath, trRaw, 0o644); err != nil {
				return err
			}
			if err := root.WriteFileAtomic(scPath, scRaw, 0o644); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Trusted root of %s (sha256 %s) installed:\n  %s\n  %s\n", u, got, trPath, scPath)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&src.server, "server", "", "base URL of the Hallmark server (required)")
	fs.StringVar(&fingerprint, "fingerprint", "", "pinned SHA-256 of the server's trusted_root.json (64 hex digits; required)")
	fs.StringVar(&dir, "dir", "", "directory to install into (default $HALLMARK_TRUST_DIR, else ~/.hallmark)")
	_ = cmd.MarkFlagRequired("server")
	return cmd
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == ':' || r == '+' || r == '=' ||
			'0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
