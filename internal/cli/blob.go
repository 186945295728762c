package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/pkg/bundle"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/sign"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

type signBlobOptions struct {
	s         signOptions // key, keyless, log, -y, --new-bundle-format
	b64       bool
	bundle    string
	outputSig string
	outputCrt string
}

func newSignBlobCmd() *cobra.Command {
	o := &signBlobOptions{}
	cmd := &cobra.Command{
		Use:   "sign-blob FILE",
		Short: "Sign a file (an SBOM, a release archive), as cosign sign-blob does",
		Long: `Sign FILE ('-' for standard input) keylessly (an ID token from --identity-token or
SIGSTORE_ID_TOKEN, a certificate from the CA, an entry in the transparency log: the same
services and trust as 'hallmark sign') or with --key, and write what verifies it, as cosign
sign-blob does:

  --new-bundle-format (the default, as in cosign v3): a sigstore bundle (v0.3) in --bundle
  FILE (required): the signature over the file's SHA-256 digest, the certificate or key hint,
  and the hashedrekord log entry with its SET and inclusion proof.

  --new-bundle-format=false (cosign v2's default): the base64 signature on standard output (or
  in --output-signature FILE) and, with --bundle FILE, cosign's bundle file
  {"base64Signature", "cert", "rekorBundle"}.

--output-signature and --output-certificate write the signature and the certificate (PEM) in
either format; with --b64 (the default) both are base64 encoded, as cosign writes them.
'cosign verify-blob' and 'hallmark verify-blob' verify both formats.`,
		Example: `  hallmark sign-blob -y --bundle sbom.spdx.json.sigstore.json sbom.spdx.json
  hallmark sign-blob --key cosign.key --tlog-upload=false --bundle app.tar.gz.bundle app.tar.gz
  hallmark sign-blob -y --new-bundle-format=false --output-signature app.sig --output-certificate app.pem app.tar.gz`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := config.ApplyEnv(cmd.Flags(), "COSIGN_", lookupEnv, nil); err != nil {
				return err
			}
			ctx, cancel := o.s.reg.withTimeout(cmd.Context())
			defer cancel()
			return o.run(ctx, args[0], cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	o.s.bind(fs, "signature")
	fs.StringVar(&o.bundle, "bundle", "", "write everything that verifies the file to this file (a sigstore bundle, or cosign's bundle file with --new-bundle-format=false)")
	fs.StringVar(&o.outputSig, "output-signature", "", "write the signature to this file")
	fs.StringVar(&o.outputCrt, "output-certificate", "", "write the signing certificate to this file")
	fs.BoolVar(&o.b64, "b64", true, "base64 encode the signature and certificate written to files and standard output")
	return cmd
}

// readBlob reads a file, or standard input for "-".
func readBlob(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(path)
}

func (o *signBlobOptions) run(ctx context.Context, path string, stdin io.Reader, stdout, stderr io.Writer) error {
	if o.s.newBundleFormat && o.bundle == "" {
		return errors.New("must specify --bundle with --new-bundle-format (or --new-bundle-format=false to print the signature)")
	}
	if path == "-" && !o.s.yes && o.s.tlogUpload {
		return errors.New("signing standard input needs -y: the confirmation prompt reads standard input too")
	}
	load, err := o.s.newSigner(ctx, stdin, stderr)
	if err != nil {
		return err
	}
	if path != "-" {
		fmt.Fprintln(stderr, "Using payload from:", path)
	}
	data, err := readBlob(path, stdin)
	if err != nil {
		return err
	}
	signer, err := load()
	if err != nil {
		return err
	}
	sig, err := signer.Sign(ctx, data)
	if err != nil {
		return fmt.Errorf("signing %s: %w", path, err)
	}
	if sig.Entry != nil {
		fmt.Fprintln(stderr, "tlog entry created with index:", sig.LogIndex)
	}
	encode := func(b []byte) []byte {
		if o.b64 {
			return []byte(encodeB64(b))
		}
		return b
	}
	if o.outputCrt != "" && sig.Certificate != nil {
		if err := os.WriteFile(o.outputCrt, encode(sig.Certificate), 0o600); err != nil {
			return err
		}
		fmt.Fprintln(stderr, "Wrote certificate to file", o.outputCrt)
	}
	if o.outputSig != "" {
		if err := os.WriteFile(o.outputSig, encode(sig.Signature), 0o600); err != nil {
			return err
		}
		fmt.Fprintln(stderr, "Wrote signature to file", o.outputSig)
	}
	var file []byte
	switch {
	case o.s.newBundleFormat:
		file, err = sig.SigstoreBundle(sign.PublicKeyOf(signer))
	case o.bundle != "":
		c := &bundle.Cosign{Base64Signature: encodeB64(sig.Signature)}
		if sig.Certificate != nil {
			c.Cert = encodeB64(sig.Certificate)
		}
		if sig.Entry != nil {
			c.RekorBundle = rekor.BundleOf(sig.Entry)
		}
		file, err = c.Bytes()
	}
	if err != nil {
		return err
	}
	if file != nil {
		if err := os.WriteFile(o.bundle, file, 0o600); err != nil {
			return err
		}
		fmt.Fprintln(stderr, "Wrote bundle to file", o.bundle)
	}
	if !o.s.newBundleFormat && o.outputSig == "" {
		_, err = fmt.Fprintln(stdout, string(encode(sig.Signature)))
	}
	return err
}

type verifyBlobOptions struct {
	v           verifyOptions
	bundle      string
	signature   string
	certificate string
}

func newVerifyBlobCmd() *cobra.Command {
	o := &verifyBlobOptions{}
	cmd := &cobra.Command{
		Use:   "verify-blob FILE",
		Short: "Verify the signature of a file, as cosign verify-blob does",
		Long: `Verify FILE ('-' for standard input) against --bundle FILE: a sigstore bundle (cosign v3's
sign-blob, --new-bundle-format) or cosign's older bundle file (cosign v2's sign-blob --bundle),
told apart by their content; or against --signature (base64, in a file or given as is) with
--certificate or --key.

The checks are those of 'hallmark verify': the signature over the file (a bundle must name the
file's SHA-256 digest), the certificate chained to the trusted root's CA with an SCT, its
identity (--certificate-identity(-regexp) and --certificate-oidc-issuer(-regexp)) or the
--key, and the transparency-log entry stored in the bundle (checked offline with the trusted
root's log key; a signature made without a log verifies only with --insecure-ignore-tlog).
On success "Verified OK" is printed on standard error, as cosign does.`,
		Example: `  hallmark verify-blob --bundle sbom.spdx.json.sigstore.json --certificate-identity "$CI_PROJECT_URL//.gitlab-ci.yml@refs/heads/main" \
      --certificate-oidc-issuer "$CI_SERVER_URL" sbom.spdx.json
  hallmark verify-blob --key cosign.pub --bundle app.tar.gz.bundle app.tar.gz`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := config.ApplyEnv(cmd.Flags(), "COSIGN_", lookupEnv, nil); err != nil {
				return err
			}
			ctx, cancel := o.v.reg.withTimeout(cmd.Context())
			defer cancel()
			return o.run(ctx, args[0], cmd.InOrStdin(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	v := &o.v
	fs.StringVar(&v.key, "key", "", "public key: a PEM file (cosign.pub), or env://VAR (default: keyless)")
	fs.BoolVar(&v.insecureIgnoreTlog, "insecure-ignore-tlog", false, "do not require a transparency log entry")
	fs.StringVar(&o.bundle, "bundle", "", "the sigstore bundle or cosign bundle file of FILE")
	fs.StringVar(&o.signature, "signature", "", "the signature (base64 or raw), in a file or as is")
	fs.StringVar(&o.certificate, "certificate", "", "the signing certificate (PEM or base64 of PEM) in a file")
	v.bind(fs, "signature")
	v.checkClaims = true
	return cmd
}

// maxBundleFile bounds a bundle or signature file.
const maxBundleFile = 4 << 20

// readSmall reads a bundle, signature or certificate file of at most
// maxBundleFile bytes.
func readSmall(flag, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxBundleFile+1))
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	if len(b) > maxBundleFile {
		return nil, fmt.Errorf("--%s %s is larger than %d bytes: not a signature file", flag, path, maxBundleFile)
	}
	return b, nil
}

func (o *verifyBlobOptions) run(ctx context.Context, path string, stdin io.Reader, stderr io.Writer) error {
	if o.bundle == "" && o.signature == "" {
		return errors.New("provide --bundle FILE, or --signature with --key or --certificate")
	}
	trust, policy, err := o.v.options(nil)
	if err != nil {
		return err
	}
	if o.v.insecureIgnoreTlog && !o.v.privateInfrastructure {
		fmt.Fprintln(stderr, "WARNING: Skipping tlog verification is an insecure practice that lacks transparency and auditability verification for the signature.")
	}
	data, err := readBlob(path, stdin)
	if err != nil {
		return err
	}
	signed, err := o.signed(data)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	policy.Subject = "sha256:" + hex.EncodeToString(sum[:])
	if _, err := verify.Verify(ctx, signed, trust, policy); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "Verified OK")
	return nil
}

// signed adapts what was given: a sigstore bundle, or the signature,
// certificate and log entry of cosign's bundle file and the flags.
func (o *verifyBlobOptions) signed(data []byte) (verify.Signed, error) {
	var raw []byte
	if o.bundle != "" {
		var err error
		if raw, err = readSmall("bundle", o.bundle); err != nil {
			return nil, err
		}
		if bundle.IsSigstore(raw) {
			if o.signature != "" || o.certificate != "" {
				return nil, errors.New("a sigstore bundle holds the signature and certificate: give neither --signature nor --certificate with it")
			}
			return verify.BlobBundle(raw, "bundle "+o.bundle, data), nil
		}
	}
	ann := map[string]string{}
	var certPEM []byte
	if raw != nil {
		c, err := bundle.ParseCosign(raw)
		if err != nil {
			return nil, fmt.Errorf("--bundle %s: %w", o.bundle, err)
		}
		ann[oci.AnnotationSignature] = c.Base64Signature
		if certPEM, err = c.CertificatePEM(); err != nil {
			return nil, err
		}
		if c.RekorBundle != nil {
			b, err := json.Marshal(c.RekorBundle)
			if err != nil {
				return nil, err
			}
			ann[oci.AnnotationBundle] = string(b)
		}
	}
	if o.signature != "" {
		s, err := readSmall("signature", o.signature)
		if errors.Is(err, os.ErrNotExist) {
			s, err = []byte(o.signature), nil // the signature itself, as cosign accepts
		}
		if err != nil {
			return nil, err
		}
		ann[oci.AnnotationSignature] = sigB64(s)
	}
	if o.certificate != "" {
		c, err := readSmall("certificate", o.certificate)
		if err != nil {
			return nil, err
		}
		c = pemOrB64(c)
		if certPEM != nil && !bytes.Equal(bytes.TrimSpace(certPEM), bytes.TrimSpace(c)) {
			return nil, errors.New("the certificate passed in does not match the certificate in the bundle")
		}
		certPEM = c
	}
	if certPEM != nil {
		ann[oci.AnnotationCertificate] = string(certPEM)
	}
	return verify.BlobSignature(data, ann), nil
}

// sigB64 is a signature file's content as standard base64: kept when it
// is base64 already, encoded when raw (cosign accepts both).
func sigB64(b []byte) string {
	t := bytes.TrimSpace(b)
	if d, err := base64.StdEncoding.DecodeString(string(t)); err == nil && len(d) > 0 {
		return string(t)
	}
	return encodeB64(b)
}

// pemOrB64 returns a certificate file's PEM: as is, or decoded from
// base64 (cosign writes base64 of the PEM by default).
func pemOrB64(b []byte) []byte {
	t := bytes.TrimSpace(b)
	if d, err := base64.StdEncoding.DecodeString(string(t)); err == nil && bytes.Contains(d, []byte("-----BEGIN")) {
		return d
	}
	return b
}
