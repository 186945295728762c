package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/provenance"
	"github.com/hallmark-dev/hallmark/pkg/sign"
)

type signOptions struct {
	reg               registryOptions
	key               string
	annotations       []string
	ciAnnotations     bool
	yes               bool
	recursive         bool
	tlogUpload        bool
	upload            bool
	outputSignature   string
	outputPayload     string
	outputCertificate string
	containerIdentity string
	newBundleFormat   bool   // the bundle layout (cosign v3's default) rather than the legacy .sig/.att tag
	bundlePath        string // also write the sigstore bundle here

	blobs *sign.MonolithicBlobs // uploads signature blobs (shared by all images)

	// keyless signing and the transparency log
	identityToken   string
	fulcioURL       string
	rekorURL        string
	signingConfig   string
	insecureSkipSCT bool
	trust           trustOptions
}

func newSignCmd() *cobra.Command {
	o := &signOptions{}
	cmd := &cobra.Command{
		Use:   "sign IMAGE [IMAGE...]",
		Short: "Sign container images with provenance annotations, as cosign does",
		Long: `Sign each IMAGE (a tag is resolved to its digest) and attach the signature to the
registry exactly as cosign does, in one of two layouts:

  --new-bundle-format (the default, as in cosign v3): an in-toto statement about the
  image whose subject carries the annotations, signed as a DSSE envelope, logged as a
  dsse entry and attached as a sigstore bundle (v0.3) in an OCI 1.1 referrer of the
  image (on a registry without the referrers API, in the referrers tag sha256-<digest>).
  cosign v3, cosign v2 and sigstore-go verify it.

  --new-bundle-format=false (cosign v2's layout): a simple-signing payload whose
  "optional" section carries the annotations, stored as a new layer of the image under
  the tag sha256-<digest>.sig. Signing again with the same key and annotations adds
  nothing (cosign's duplicate detection). Use it for verifiers that read only .sig tags.

cosign (v2 and v3) reads only the bundles once an image has any, so keep one layout per
image; 'hallmark verify' reads both and says which it checked.

-a key=value follows cosign's rules: one '=' per entry (a value containing '=' is
refused) and commas separate entries.

--ci-annotations adds the provenance of the CI job from its predefined variables.
GitLab CI (GITLAB_CI=true): com.gitlab.ci.user.name, .pipeline.id, .pipeline.url,
.job.id, .job.url, .commit.sha, .commit.ref.name, .project.path,
org.opencontainers.image.source, org.opencontainers.image.revision and tag
($IMAGE_TAG, else the tag of IMAGE, else $CI_COMMIT_SHORT_SHA). GitHub Actions
(GITHUB_ACTIONS=true) gives the com.github.actions.* counterparts. A missing
variable is an error naming it, never an empty annotation. Explicit -a wins.

Without --key the signature is keyless, as cosign's default: an ephemeral ECDSA
P-256 key, a 10-minute certificate for the identity in an OIDC ID token (from
--identity-token, a JWT or a file holding one, else SIGSTORE_ID_TOKEN; in GitLab CI an
id_tokens entry with aud: sigstore) from the certificate authority at --fulcio-url, and
an entry in the transparency log at --rekor-url. The URLs default to the signing config
stored by 'hallmark trust init' (or --signing-config FILE). Before anything is attached,
the certificate must chain to the trusted root's CA and carry an SCT of its CT log, and
the log entry's signed entry timestamp and inclusion proof must verify with the trusted
root's log key (--trusted-root FILE, else the stored one). The layer then carries the
certificate, the chain and the log bundle as annotations, exactly as cosign writes them.

Uploading to a transparency log (the default, also with --key) prints a privacy notice
and asks for confirmation unless -y (COSIGN_YES=true). --tlog-upload=false signs
without a log (verify then needs --insecure-ignore-tlog).

Every flag can also be set as in cosign with COSIGN_<FLAG> (COSIGN_KEY, COSIGN_YES,
COSIGN_TLOG_UPLOAD, COSIGN_FULCIO_URL, COSIGN_REKOR_URL, ...). COSIGN_PASSWORD is the
key password (else a prompt, else standard input), COSIGN_REPOSITORY stores signatures
in another repository, and COSIGN_DOCKER_MEDIA_TYPES=1 writes Docker instead of OCI
media types.`,
		Example: `  # keyless, in a CI job, with trust from 'hallmark trust init'
  hallmark sign -y --ci-annotations "$CI_REGISTRY_IMAGE@$IMAGE_DIGEST"
  hallmark sign -y --identity-token token.jwt --fulcio-url https://hallmark.example --rekor-url https://hallmark.example \\
      --trusted-root trusted_root.json -a tag=v1 registry.example/group/app:v1
  # with a key, no transparency log
  hallmark sign --key cosign.key --tlog-upload=false -a tag=v1 registry.example/group/app:v1
  hallmark sign --key env://COSIGN_PRIVATE_KEY --tlog-upload=false --recursive registry.example/app@sha256:...`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := config.ApplyEnv(cmd.Flags(), "COSIGN_", lookupEnv, nil); err != nil {
				return err
			}
			ctx, cancel := o.reg.withTimeout(cmd.Context())
			defer cancel()
			return o.run(ctx, args, cmd.InOrStdin(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	o.bind(fs, "signature")
	fs.StringVar(&o.outputCertificate, "output-certificate", "", "also write the signing certificate (PEM) to this file")
	fs.StringSliceVarP(&o.annotations, "annotations", "a", nil, "extra key=value annotation to sign (repeatable; commas separate entries)")
	fs.BoolVar(&o.ciAnnotations, "ci-annotations", false, "add the CI job's provenance annotations (GitLab CI, GitHub Actions)")
	fs.BoolVarP(&o.recursive, "recursive", "r", false, "also sign every manifest of a multi-arch index")
	fs.BoolVar(&o.upload, "upload", true, "push the signature to the registry")
	fs.StringVar(&o.outputSignature, "output-signature", "", "also write the base64 signature to this file")
	fs.StringVar(&o.outputPayload, "output-payload", "", "also write the signed payload to this file")
	fs.StringVar(&o.containerIdentity, "sign-container-identity", "", "docker-reference to write in the payload instead of the image's repository")
	fs.StringVar(&o.bundlePath, "bundle", "", "also write the sigstore bundle to this file (with --new-bundle-format)")
	return cmd
}

// bind binds the flags sign and attest share: the key or keyless signing
// (ID token, CA, log, signing config, trust), -y, --tlog-upload and the
// registry flags. what names what is signed ("signature", "attestation").
func (o *signOptions) bind(fs *pflag.FlagSet, what string) {
	fs.StringVar(&o.key, "key", "", "private key: a cosign.key file (password in COSIGN_PASSWORD), a PEM/PKCS#8 key file, or env://VAR (default: keyless)")
	fs.StringVar(&o.identityToken, "identity-token", "", "OIDC ID token for keyless signing: an RS256 JWT, else a file holding the token (default: $SIGSTORE_ID_TOKEN)")
	fs.StringVar(&o.fulcioURL, "fulcio-url", "", "certificate authority (Fulcio v1 API) for keyless signing (default: from the signing config)")
	fs.StringVar(&o.rekorURL, "rekor-url", "", "transparency log (Rekor v1 API) (default: from the signing config)")
	fs.StringVar(&o.signingConfig, "signing-config", "", "sigstore signing_config.json naming the CA and log (default: the one 'hallmark trust init' stored)")
	fs.BoolVar(&o.insecureSkipSCT, "insecure-skip-verify", false, "do not require the certificate's SCT from a trusted CT log (insecure)")
	fs.BoolVarP(&o.yes, "yes", "y", false, "skip confirmation prompts")
	fs.BoolVar(&o.tlogUpload, "tlog-upload", true, "record the "+what+" in the transparency log")
	fs.BoolVar(&o.newBundleFormat, "new-bundle-format", true, "write a sigstore bundle (cosign v3's default); false: cosign v2's legacy layout")
	o.trust.bind(fs)
	o.reg.bind(fs)
}

// errAnnotation is wrapped by -a parse errors.
var errAnnotation = errors.New("unable to parse annotation")

// parseAnnotations parses -a entries as cosign does: each must split on '='
// into exactly two parts, so a value containing '=' is refused. (The flag
// is a string slice, so commas have already split entries.)
func parseAnnotations(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		parts := strings.Split(kv, "=")
		if len(parts) != 2 {
			why := "it has no '='; write key=value"
			if len(parts) > 2 {
				why = "values cannot contain '=' (cosign refuses them too)"
			}
			return nil, fmt.Errorf("%w: %s: %s", errAnnotation, kv, why)
		}
		out[parts[0]] = parts[1]
	}
	return out, nil
}

func (o *signOptions) run(ctx context.Context, images []string, stdin io.Reader, stderr io.Writer) error {
	ann, err := parseAnnotations(o.annotations)
	if err != nil {
		return err
	}
	if o.bundlePath != "" && !o.newBundleFormat {
		return errors.New("--bundle writes a sigstore bundle: it needs --new-bundle-format")
	}
	load, err := o.newSigner(ctx, stdin, stderr)
	if err != nil {
		return err
	}
	// Decrypting a cosign key (scrypt) takes a large part of a signing
	// run: do it while the image is being resolved.
	signer := startSigner(load)
	ropts, err := o.reg.remoteOptions(ctx)
	if err != nil {
		return err
	}
	o.blobs = &sign.MonolithicBlobs{Keychain: o.reg.keychain(), Transport: o.reg.transport(), UserAgent: "hallmark/" + Version}
	for _, img := range images {
		if err := o.signImage(ctx, img, ann, signer, ropts, stderr); err != nil {
			return fmt.Errorf("signing %s: %w", img, err)
		}
	}
	return nil
}

// pendingSigner is a signer being made in the background.
type pendingSigner struct {
	done   chan struct{}
	signer sign.Signer
	err    error
}

func startSigner(load func() (sign.Signer, error)) *pendingSigner {
	p := &pendingSigner{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.signer, p.err = load()
	}()
	return p
}

func (p *pendingSigner) get() (sign.Signer, error) {
	<-p.done
	return p.signer, p.err
}

// newSigner picks how to sign and returns the (possibly slow) step that
// makes the signer; everything that can fail fast or prompts has happened
// when it returns: the token is read, the services and trust are known
// and the upload is confirmed. The slow step (decrypting a key, or the
// ephemeral key and its certificate) runs while images are resolved.
func (o *signOptions) newSigner(ctx context.Context, stdin io.Reader, stderr io.Writer) (func() (sign.Signer, error), error) {
	keyless := o.key == ""
	var token string
	if keyless {
		var err error
		if token, err = resolveIdentityToken(o.identityToken); err != nil {
			return nil, err
		}
	}
	fulcioURL, rekorURL, err := signingServices(o.fulcioURL, o.rekorURL, o.signingConfig, keyless, o.tlogUpload)
	if err != nil {
		return nil, err
	}
	var tr *trust
	if keyless || o.tlogUpload {
		if tr, err = o.trust.loadStored(true); err != nil {
			return nil, fmt.Errorf("checking the certificate and log entry needs the trusted root: %w", err)
		}
	}
	client := serviceClient()
	var log *sign.TransparencyLog
	if o.tlogUpload {
		if err := confirmUpload(stderr, stdin, rekorURL, o.yes); err != nil {
			return nil, err
		}
		log = &sign.TransparencyLog{URL: rekorURL, Keys: tr.material.TlogKeys, HTTPClient: client}
	}
	if !keyless {
		return keySigner(o.key, log)
	}
	fmt.Fprintln(stderr, "Generating ephemeral keys...")
	fmt.Fprintln(stderr, "Retrieving signed certificate...")
	cfg := sign.KeylessConfig{CA: &sign.Fulcio{URL: fulcioURL, HTTPClient: client}, Token: token, Trust: tr.material,
		SkipSCT: o.insecureSkipSCT, Log: log}
	return func() (sign.Signer, error) {
		s, err := sign.NewKeylessSigner(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return &sctReporter{KeylessSigner: s, skip: o.insecureSkipSCT, w: stderr}, nil
	}, nil
}

// sctReporter prints cosign's "Successfully verified SCT..." once the
// certificate check passed (it runs while the first signature is logged).
type sctReporter struct {
	*sign.KeylessSigner
	skip bool
	w    io.Writer
	once sync.Once
}

func (r *sctReporter) report() {
	if !r.skip {
		r.once.Do(func() { fmt.Fprintln(r.w, "Successfully verified SCT...") })
	}
}

// Sign implements sign.Signer.
func (r *sctReporter) Sign(ctx context.Context, p []byte) (*sign.Signature, error) {
	s, err := r.KeylessSigner.Sign(ctx, p)
	if err == nil {
		r.report()
	}
	return s, err
}

// SignDSSE implements sign.AttestationSigner.
func (r *sctReporter) SignDSSE(ctx context.Context, payloadType string, body []byte) (*sign.Signature, error) {
	s, err := r.KeylessSigner.SignDSSE(ctx, payloadType, body)
	if err == nil {
		r.report()
	}
	return s, err
}

// keySigner reads the key file and its password now and returns the step
// that decrypts and parses the key into a signer logging to log (nil: no
// log).
func keySigner(keyRef string, log *sign.TransparencyLog) (func() (sign.Signer, error), error) {
	pemBytes, err := sign.ResolveKeyRef(keyRef)
	if err != nil {
		return nil, err
	}
	var pw []byte
	if sign.KeyNeedsPassword(pemBytes) {
		if pw, err = readPassword(false); err != nil {
			return nil, err
		}
	}
	return func() (sign.Signer, error) {
		key, err := sign.LoadPrivateKey(pemBytes, pw)
		if err != nil {
			return nil, fmt.Errorf("loading key %s: %w", keyRef, err)
		}
		return sign.KeySigner{Key: key, Log: log}, nil
	}, nil
}

func (o *signOptions) signImage(ctx context.Context, image string, explicit map[string]string, pending *pendingSigner, ropts []remote.Option, stderr io.Writer) error {
	ref, err := name.ParseReference(image, o.reg.nameOptions()...)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", image, err)
	}
	if _, ok := ref.(name.Digest); !ok {
		fmt.Fprintf(stderr, "WARNING: Image reference %s uses a tag, not a digest, to identify the image to sign.\n"+
			"    This can lead you to sign a different image than the intended one. Please use a\n"+
			"    digest (example.com/ubuntu@sha256:abc123...) rather than tag\n"+
			"    (example.com/ubuntu:latest) for the input to hallmark. The ability to refer to\n"+
			"    images by tag may be removed in a future release.\n\n", ref)
	}
	ann, err := o.annotationsFor(ref, explicit)
	if err != nil {
		return err
	}
	digests, exists, err := o.digestsToSign(ctx, ref, ropts)
	if err != nil {
		return err
	}
	repo := ref.Context()
	override := os.Getenv("COSIGN_REPOSITORY")
	target, err := sign.TargetRepository(repo, override, o.reg.nameOptions()...)
	if err != nil {
		return err
	}
	shown := target.Name()
	if override != "" {
		shown = target.RepositoryStr() // what cosign prints in this case
	}
	dockerRef := repo.Name()
	if o.containerIdentity != "" {
		dockerRef = o.containerIdentity
	}
	aopts := sign.AttachOptions{TagPrefix: o.reg.tagPrefix, DockerMediaTypes: os.Getenv("COSIGN_DOCKER_MEDIA_TYPES") == "1", Remote: ropts,
		Blobs: o.blobs}
	for _, d := range digests {
		req := sign.ImageRequest{Repo: target, Digest: d, DockerReference: dockerRef, Annotations: ann, NoUpload: !o.upload, Attach: aopts,
			Bundle: o.newBundleFormat, ImageRepo: &repo,
			Signed: func(sig *sign.Signature) error {
				if sig.Bundle != nil {
					fmt.Fprintln(stderr, "tlog entry created with index:", sig.LogIndex)
				}
				if err := o.writeOutputs(sig); err != nil {
					return err
				}
				if o.upload {
					fmt.Fprintln(stderr, "Pushing signature to:", shown)
				}
				return nil
			}}
		if exists != nil {
			// The image must have been found before anything is logged.
			check := exists
			req.Ready, exists = func() error { return <-check }, nil
		}
		if _, err := sign.Image(ctx, pending.get, req); err != nil {
			return err
		}
	}
	return nil
}

// annotationsFor adds, with --ci-annotations, the CI job's provenance to
// the explicit -a annotations (which win).
func (o *signOptions) annotationsFor(ref name.Reference, explicit map[string]string) (map[string]string, error) {
	if !o.ciAnnotations {
		return explicit, nil
	}
	var popts []provenance.Option
	if t, ok := ref.(name.Tag); ok && os.Getenv("IMAGE_TAG") == "" {
		popts = append(popts, provenance.WithImageTag(t.TagStr()))
	}
	collected, err := provenance.Collect(os.LookupEnv, popts...)
	if err != nil {
		return nil, fmt.Errorf("--ci-annotations: %w", err)
	}
	return provenance.Merge(collected, explicit), nil
}

// digestsToSign resolves ref to the digests to sign (with --recursive, an
// index's manifests too). For a digest reference (what CI jobs sign)
// nothing is asked first: exists then reports, later, whether the image
// exists, so everything that needs only the digest starts at once.
func (o *signOptions) digestsToSign(ctx context.Context, ref name.Reference, ropts []remote.Option) ([]v1.Hash, chan error, error) {
	if dref, ok := ref.(name.Digest); ok && !o.recursive {
		h, err := v1.NewHash(dref.DigestStr())
		if err != nil {
			return nil, nil, fmt.Errorf("image reference %q: %w", ref, err)
		}
		exists := make(chan error, 1)
		go func() {
			err := o.blobs.CheckManifest(ctx, ref.Context(), h)
			if errors.Is(err, oci.ErrImageNotFound) {
				err = fmt.Errorf("image %s not found in the registry: %w", ref, err)
			} else if err != nil {
				err = fmt.Errorf("resolving %s: %w", ref, err)
			}
			exists <- err
		}()
		return []v1.Hash{h}, exists, nil
	}
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		if oci.IsNotFound(err) {
			return nil, nil, fmt.Errorf("image %s not found in the registry: %w", ref, err)
		}
		return nil, nil, fmt.Errorf("resolving %s: %w", ref, err)
	}
	digests := []v1.Hash{desc.Digest}
	if o.recursive && desc.MediaType.IsIndex() {
		children, err := indexChildren(ref.Context(), desc, ropts)
		if err != nil {
			return nil, nil, err
		}
		digests = append(digests, children...)
	}
	return digests, nil, nil
}

// indexChildren lists the manifests of the index desc, depth first (an
// index inside an index is walked too), as cosign sign --recursive does.
func indexChildren(repo name.Repository, desc *remote.Descriptor, ropts []remote.Option) ([]v1.Hash, error) {
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading index %s: %w", desc.Digest, err)
	}
	var out []v1.Hash
	for _, m := range im.Manifests {
		out = append(out, m.Digest)
		if m.MediaType.IsIndex() {
			child, err := remote.Get(repo.Digest(m.Digest.String()), ropts...)
			if err != nil {
				return nil, fmt.Errorf("reading index %s: %w", m.Digest, err)
			}
			more, err := indexChildren(repo, child, ropts)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		}
	}
	return out, nil
}

// writeOutputs writes --output-signature (base64; of the DSSE signature
// with the bundle layout), --output-payload (the signed payload; the DSSE
// envelope), --output-certificate and --bundle.
func (o *signOptions) writeOutputs(sig *sign.Signature) error {
	if o.outputSignature != "" {
		raw := sig.Signature
		if len(raw) == 0 {
			raw = sig.RawSignature
		}
		if err := os.WriteFile(o.outputSignature, []byte(encodeB64(raw)), 0o644); err != nil {
			return err
		}
	}
	if o.bundlePath != "" && sig.Sigstore != nil {
		if err := os.WriteFile(o.bundlePath, sig.Sigstore, 0o600); err != nil {
			return err
		}
	}
	if o.outputPayload != "" {
		if err := os.WriteFile(o.outputPayload, sig.Payload, 0o644); err != nil {
			return err
		}
	}
	if o.outputCertificate != "" && sig.Certificate != nil {
		if err := os.WriteFile(o.outputCertificate, sig.Certificate, 0o644); err != nil {
			return err
		}
	}
	return nil
}
