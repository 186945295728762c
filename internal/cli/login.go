package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// registryHost normalises a REGISTRY argument the way docker does for
// config.json keys: host[:port], no scheme, no path.
func registryHost(arg string) (string, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(arg, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	if h == "" {
		return "", fmt.Errorf("registry %q: give host[:port], e.g. registry.example.com or 127.0.0.1:5000", arg)
	}
	return h, nil
}

func newLoginCmd() *cobra.Command {
	var (
		username, password string
		pwStdin            bool
		insecure, plain    bool
	)
	cmd := &cobra.Command{
		Use:   "login [flags] REGISTRY",
		Short: "Log in to a registry and store the credentials as docker does",
		Long: `Check the credentials against the registry (token exchange, as docker login does) and
store them in docker's config.json ($DOCKER_CONFIG, else ~/.docker), using its credential
helper when one is configured. hallmark sign and verify, docker, crane, oras and cosign
then find them. The password may also be a personal access token, a CI job token (user
gitlab-ci-token) or a CI OIDC ID token.`,
		Example: `  hallmark login -u alice 127.0.0.1:5000
  echo "$CI_JOB_TOKEN" | hallmark login -u gitlab-ci-token --password-stdin "$CI_REGISTRY"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host, err := registryHost(args[0])
			if err != nil {
				return err
			}
			if username == "" {
				return errors.New("--username is required")
			}
			switch {
			case pwStdin && password != "":
				return errors.New("--password and --password-stdin are mutually exclusive")
			case pwStdin:
				if password, err = readSecretLine(cmd.InOrStdin()); err != nil {
					return err
				}
			case password != "":
				fmt.Fprintln(cmd.ErrOrStderr(), "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
			default:
				fd := int(os.Stdin.Fd())
				if !term.IsTerminal(fd) {
					return errors.New("no password: use --password-stdin (or run on a terminal to be prompted)")
				}
				fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
				pw, err := term.ReadPassword(fd)
				fmt.Fprintln(cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				password = string(pw)
			}
			ro := registryOptions{allowInsecure: insecure, allowHTTP: plain}
			reg, err := name.NewRegistry(host, ro.nameOptions()...)
			if err != nil {
				return fmt.Errorf("registry %q: %w", host, err)
			}
			if _, err := transport.NewWithContext(cmd.Context(), reg, &authn.Basic{Username: username, Password: password}, ro.transport(), nil); err != nil {
				return fmt.Errorf("login to %s failed: %w", host, err)
			}
			cf, err := dockerconfig.Load(dockerconfig.Dir())
			if err != nil {
				return fmt.Errorf("reading docker config: %w", err)
			}
			if err := cf.GetCredentialsStore(host).Store(types.AuthConfig{Username: username, Password: password, ServerAddress: host}); err != nil {
				return fmt.Errorf("storing credentials for %s: %w", host, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "credentials for %s stored in %s\n", host, cf.Filename)
			fmt.Fprintln(cmd.OutOrStdout(), "Login Succeeded")
			return nil
		},
	}
	cmd.Flags().StringVarP(&username, "username", "u", "", "user name (gitlab-ci-token for CI job tokens)")
	cmd.Flags().StringVarP(&password, "password", "p", "", "password or token (insecure: prefer --password-stdin)")
	cmd.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password or token from standard input")
	cmd.Flags().BoolVar(&insecure, "allow-insecure-registry", false, "skip TLS verification of the registry (and allow plain HTTP)")
	cmd.Flags().BoolVar(&plain, "allow-http-registry", false, "allow plain HTTP to the registry (127.0.0.1 and localhost always may)")
	return cmd
}

func newLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout REGISTRY",
		Short: "Remove stored credentials for a registry from docker's config",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host, err := registryHost(args[0])
			if err != nil {
				return err
			}
			cf, err := dockerconfig.Load(dockerconfig.Dir())
			if err != nil {
				return fmt.Errorf("reading docker config: %w", err)
			}
			if err := cf.GetCredentialsStore(host).Erase(host); err != nil {
				return fmt.Errorf("removing credentials for %s: %w", host, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "removed credentials for %s from %s\n", host, cf.Filename)
			return nil
		},
	}
}
