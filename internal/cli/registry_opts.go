package cli

import (
	"context"
	"crypto/tls"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/pflag"
)

// registryOptions are the registry client flags shared by sign and verify,
// named as in cosign.
type registryOptions struct {
	allowInsecure bool
	allowHTTP     bool
}

func (o *registryOptions) bind(fs *pflag.FlagSet) {
	fs.BoolVar(&o.allowInsecure, "allow-insecure-registry", false, "skip TLS verification of the registry (and allow plain HTTP)")
	fs.BoolVar(&o.allowHTTP, "allow-http-registry", false, "allow plain HTTP to the registry (127.0.0.1 and localhost always may)")
}

func (o *registryOptions) nameOptions() []name.Option {
	if o.allowHTTP || o.allowInsecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// remoteOptions authenticates with docker's credential store (config.json
// and credential helpers) as docker and cosign do.
func (o *registryOptions) remoteOptions(ctx context.Context) []remote.Option {
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	if o.allowInsecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // explicitly requested
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithTransport(tr),
		remote.WithUserAgent("hallmark/" + Version),
	}
}
