package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/pflag"

	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// registryOptions are the registry client flags shared by sign and verify,
// named as in cosign.
type registryOptions struct {
	allowInsecure bool
	allowHTTP     bool
	username      string
	password      string
	tagPrefix     string
	timeout       time.Duration
}

func (o *registryOptions) bind(fs *pflag.FlagSet) {
	fs.BoolVar(&o.allowInsecure, "allow-insecure-registry", false, "skip TLS verification of the registry (and allow plain HTTP)")
	fs.BoolVar(&o.allowHTTP, "allow-http-registry", false, "allow plain HTTP to the registry (127.0.0.1 and localhost always may)")
	fs.StringVar(&o.username, "registry-username", "", "registry user name (default: docker's credential store, ~/.docker/config.json)")
	fs.StringVar(&o.password, "registry-password", "", "registry password or token, with --registry-username")
	fs.StringVar(&o.tagPrefix, "attachment-tag-prefix", "", "prefix of the signature tag: <prefix>sha256-<digest>.sig")
	fs.DurationVarP(&o.timeout, "timeout", "t", 3*time.Minute, "give up after this long (0: no limit)")
}

// withTimeout bounds ctx by --timeout.
func (o *registryOptions) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, o.timeout)
}

// signatureRepo is the repository COSIGN_REPOSITORY names, where the
// signatures are read, or nil when it is unset (the image's own).
func (o *registryOptions) signatureRepo() (*name.Repository, error) {
	r := os.Getenv("COSIGN_REPOSITORY")
	if r == "" {
		return nil, nil
	}
	repo, err := name.NewRepository(r, o.nameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("COSIGN_REPOSITORY %q is not a repository reference: %w", r, err)
	}
	return &repo, nil
}

func (o *registryOptions) nameOptions() []name.Option {
	if o.allowHTTP || o.allowInsecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// keychain returns the explicit credentials, else docker's credential store
// (config.json and credential helpers) as docker and cosign use.
func (o *registryOptions) keychain() authn.Keychain {
	if o.username != "" || o.password != "" {
		return staticKeychain{authn.FromConfig(authn.AuthConfig{Username: o.username, Password: o.password})}
	}
	return authn.DefaultKeychain
}

type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

func (o *registryOptions) transport() *http.Transport {
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	if o.allowInsecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // explicitly requested
	}
	return tr
}

// remoteOptions are go-containerregistry options for the signing side; a
// shared puller and pusher authenticate once per repository.
func (o *registryOptions) remoteOptions(ctx context.Context) ([]remote.Option, error) {
	base := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.keychain()),
		remote.WithTransport(o.transport()),
		remote.WithUserAgent("hallmark/" + Version),
	}
	puller, err := remote.NewPuller(base...)
	if err != nil {
		return nil, err
	}
	pusher, err := remote.NewPusher(base...)
	if err != nil {
		return nil, err
	}
	return append(base, remote.Reuse(puller), remote.Reuse(pusher)), nil
}

// verifyClient is the registry client of the verification side.
func (o *registryOptions) verifyClient() *oci.Client {
	return oci.NewClient(oci.ClientConfig{
		Transport: o.transport(),
		Keychain:  o.keychain(),
		UserAgent: "hallmark/" + Version,
	})
}
