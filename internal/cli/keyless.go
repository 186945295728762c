package cli

import (
	"bufio"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/sign"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// Environment variables cosign v2 reads instead of a trusted root
// (cosign-wire.md §8).
const (
	envRootFile    = "SIGSTORE_ROOT_FILE"              // CA certificates (PEM)
	envRekorKey    = "SIGSTORE_REKOR_PUBLIC_KEY"       // transparency log keys (PEM)
	envCTLogKey    = "SIGSTORE_CT_LOG_PUBLIC_KEY_FILE" // CT log keys (PEM)
	envIDToken     = "SIGSTORE_ID_TOKEN"
	envTrustedRoot = "HALLMARK_TRUSTED_ROOT"
)

// trustOptions are the trust flags of sign, verify and attest.
type trustOptions struct {
	trustedRoot string
}

func (o *trustOptions) bind(fs *pflag.FlagSet) {
	fs.StringVar(&o.trustedRoot, "trusted-root", "", "sigstore trusted_root.json with the CA, transparency log and CT log keys (default: the one 'hallmark trust init' stored, $HALLMARK_TRUST_DIR or ~/.hallmark/trusted_root.json)")
}

// trust is the loaded trust material and where it came from.
type trust struct {
	material *root.Material
	source   string // for messages
}

// loadStored reads --trusted-root, else the stored trusted root. With
// required false, a missing stored trusted root is not an error (nil).
func (o *trustOptions) loadStored(required bool) (*trust, error) {
	path := o.trustedRoot
	explicit := path != ""
	if !explicit {
		var err error
		if path, err = root.DefaultTrustedRootPath(); err != nil {
			if required {
				return nil, err
			}
			return nil, nil
		}
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && !required {
			return nil, nil
		}
	}
	tr, err := root.Load(path)
	if err != nil {
		if explicit {
			return nil, fmt.Errorf("--trusted-root: %w", err)
		}
		return nil, err
	}
	m, err := tr.Material()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &trust{material: m, source: path}, nil
}

// loadVerify returns the trust material for verification, as cosign v2
// selects it: --trusted-root alone when given; else the SIGSTORE_ROOT_FILE,
// SIGSTORE_REKOR_PUBLIC_KEY and SIGSTORE_CT_LOG_PUBLIC_KEY_FILE overrides
// for their part, and the stored trusted root for the rest.
func (o *trustOptions) loadVerify(required bool) (*trust, error) {
	if o.trustedRoot != "" {
		return o.loadStored(true)
	}
	env := map[string]string{}
	for _, k := range []string{envRootFile, envRekorKey, envCTLogKey} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	t, err := o.loadStored(required && len(env) == 0)
	if err != nil {
		return nil, err
	}
	if len(env) == 0 {
		return t, nil
	}
	if t == nil {
		t = &trust{material: &root.Material{TlogKeys: map[string]root.LogKey{}, CTLogKeys: map[string]root.LogKey{}}}
	}
	var parts []string
	if p, ok := env[envRootFile]; ok {
		roots, inters, err := readCertPools(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envRootFile, err)
		}
		// PEM certificates carry no validity window: trusted at any time.
		t.material.CAs = []root.CA{{Roots: roots, Intermediates: inters}}
		parts = append(parts, envRootFile+"="+p)
	}
	if p, ok := env[envRekorKey]; ok {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envRekorKey, err)
		}
		t.material.TlogKeys = verify.LogKeys(raw)
		parts = append(parts, envRekorKey+"="+p)
	}
	if p, ok := env[envCTLogKey]; ok {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envCTLogKey, err)
		}
		t.material.CTLogKeys = verify.LogKeys(raw)
		parts = append(parts, envCTLogKey+"="+p)
	}
	if t.source != "" {
		parts = append(parts, t.source)
	}
	t.source = strings.Join(parts, ", ")
	return t, nil
}

// readCertPools reads a PEM bundle as cosign reads SIGSTORE_ROOT_FILE:
// self-signed certificates are roots, the others intermediates.
func readCertPools(path string) (roots, inters *x509.CertPool, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	certs, err := verify.ParseCertificatesPEM(raw)
	if err != nil {
		return nil, nil, err
	}
	if len(certs) == 0 {
		return nil, nil, errors.New("no PEM certificate in the file")
	}
	roots, inters = x509.NewCertPool(), x509.NewCertPool()
	for _, c := range certs {
		if c.CheckSignatureFrom(c) == nil {
			roots.AddCert(c)
		} else {
			inters.AddCert(c)
		}
	}
	return roots, inters, nil
}

// resolveIdentityToken returns the OIDC token as cosign finds it: the
// --identity-token value when it is an RS256 JWT, else the file it names;
// without the flag, SIGSTORE_ID_TOKEN.
func resolveIdentityToken(flag string) (string, error) {
	if flag != "" {
		if sign.IsRS256JWT(flag) {
			return strings.TrimSpace(flag), nil
		}
		b, err := os.ReadFile(flag)
		if err != nil {
			if strings.Count(flag, ".") == 2 {
				return "", fmt.Errorf("reading id token: --identity-token is not an RS256 JWT, so it is read as a file path, and %w (pass other JWTs in SIGSTORE_ID_TOKEN or a file)", err)
			}
			return "", fmt.Errorf("reading id token: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if t := strings.TrimSpace(os.Getenv(envIDToken)); t != "" {
		return t, nil
	}
	return "", errors.New("no OIDC identity token for keyless signing: pass --identity-token (a JWT or a file) or set SIGSTORE_ID_TOKEN (in GitLab CI: id_tokens: SIGSTORE_ID_TOKEN: aud: sigstore), or sign with --key")
}

// signingServices picks the CA and log URLs: the flags (or COSIGN_FULCIO_URL
// / COSIGN_REKOR_URL), else the services of the signing config
// (--signing-config, else the stored one) valid now.
func signingServices(fulcioURL, rekorURL, signingConfig string, needCA, needLog bool) (string, string, error) {
	if (!needCA || fulcioURL != "") && (!needLog || rekorURL != "") {
		return fulcioURL, rekorURL, nil
	}
	path := signingConfig
	if path == "" {
		var err error
		if path, err = root.DefaultSigningConfigPath(); err != nil {
			return "", "", err
		}
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if needCA && fulcioURL == "" {
				return "", "", fmt.Errorf("no certificate authority configured for keyless signing: pass --fulcio-url (env COSIGN_FULCIO_URL) and --rekor-url, --signing-config FILE, or run 'hallmark trust init --server URL --fingerprint SHA256' once to store the server's signing config (%s does not exist); or sign with --key", path)
			}
			return "", "", fmt.Errorf("no transparency log configured: pass --rekor-url (env COSIGN_REKOR_URL), --signing-config FILE, or run 'hallmark trust init --server URL --fingerprint SHA256' once (%s does not exist); or sign without a log with --tlog-upload=false (verify then needs --insecure-ignore-tlog)", path)
		}
	}
	sc, err := root.LoadSigningConfig(path)
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	if needCA && fulcioURL == "" {
		if fulcioURL = root.SelectService(sc.CAURLs, now); fulcioURL == "" {
			return "", "", fmt.Errorf("signing config %s names no certificate authority valid now: pass --fulcio-url", path)
		}
	}
	if needLog && rekorURL == "" {
		if rekorURL = root.SelectService(sc.RekorTlogURLs, now); rekorURL == "" {
			return "", "", fmt.Errorf("signing config %s names no Rekor v1 transparency log valid now: pass --rekor-url, or --tlog-upload=false", path)
		}
	}
	return fulcioURL, rekorURL, nil
}

// privacyStatement is printed before anything is written to a transparency
// log, as cosign does.
const privacyStatement = `
	Note that the identity you sign with (for a CI job: its project, ref, commit, pipeline and job)
	is recorded in the signing certificate and, with the signature, in the transparency log at %s.
	Log entries are permanent and cannot be removed later.
`

// errDeclined is returned when the user does not confirm the upload.
var errDeclined = errors.New("user declined the prompt")

// confirmUpload prints the privacy statement and, unless yes, asks for
// confirmation on stdin (EOF or anything but y/yes declines).
func confirmUpload(stderr io.Writer, stdin io.Reader, logURL string, yes bool) error {
	fmt.Fprintf(stderr, privacyStatement+"\n", logURL)
	if yes {
		return nil
	}
	fmt.Fprint(stderr, "Are you sure you would like to continue? [y/N] ")
	line, _ := bufio.NewReader(stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return fmt.Errorf("should upload to tlog: %w (pass -y or COSIGN_YES=true to sign non-interactively)", errDeclined)
}

// serviceClient is the HTTP client for the CA and the log.
func serviceClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}
