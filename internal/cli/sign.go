package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
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
	containerIdentity string
}

func newSignCmd() *cobra.Command {
	o := &signOptions{}
	cmd := &cobra.Command{
		Use:   "sign IMAGE [IMAGE...]",
		Short: "Sign container images with provenance annotations, as cosign does",
		Long: `Sign each IMAGE (a tag is resolved to its digest) and attach the signature to the
registry exactly as cosign does: a simple-signing payload whose "optional" section
carries the annotations, signed with ECDSA P-256, stored as a new layer of the
image under the tag sha256-<digest>.sig. Real cosign verifies what this writes.

--ci-annotations adds the provenance of the CI job from its predefined variables
(GitLab CI: user, pipeline id/url, job id/url, commit sha, ref, project path,
org.opencontainers.image.source/revision and tag; GitHub Actions likewise). A
missing variable is an error, never an empty annotation. Explicit -a wins.

Every flag can be set by environment as in cosign: COSIGN_KEY, COSIGN_YES,
COSIGN_PASSWORD (key password), COSIGN_REPOSITORY (store signatures in another
repository).`,
		Example: `  hallmark sign --key cosign.key -a tag=v1 registry.example/group/app:v1
  COSIGN_PASSWORD=... hallmark sign --key cosign.key --ci-annotations -y "$IMAGE_DIGEST"
  hallmark sign --key env://COSIGN_PRIVATE_KEY --recursive registry.example/app@sha256:...`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := config.ApplyEnv(cmd.Flags(), "COSIGN_", lookupEnv, nil); err != nil {
				return err
			}
			return o.run(cmd.Context(), args, cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.key, "key", "", "private key: a cosign.key file, a PEM/PKCS#8 key file, or env://VAR")
	fs.StringSliceVarP(&o.annotations, "annotations", "a", nil, "extra key=value annotation to sign (repeatable)")
	fs.BoolVar(&o.ciAnnotations, "ci-annotations", false, "add the CI job's provenance annotations (GitLab CI, GitHub Actions)")
	fs.BoolVarP(&o.yes, "yes", "y", false, "skip confirmation prompts")
	fs.BoolVarP(&o.recursive, "recursive", "r", false, "also sign every manifest of a multi-arch index")
	fs.BoolVar(&o.tlogUpload, "tlog-upload", false, "upload to a transparency log (keyless signing, not yet available for --key)")
	fs.BoolVar(&o.upload, "upload", true, "push the signature to the registry")
	fs.StringVar(&o.outputSignature, "output-signature", "", "also write the base64 signature to this file")
	fs.StringVar(&o.outputPayload, "output-payload", "", "also write the signed payload to this file")
	fs.StringVar(&o.containerIdentity, "sign-container-identity", "", "docker-reference to write in the payload instead of the image's repository")
	o.reg.bind(fs)
	return cmd
}

// parseAnnotations parses key=value pairs as cosign does: exactly one '='.
func parseAnnotations(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		parts := strings.Split(kv, "=")
		if len(parts) != 2 || parts[0] == "" {
			return nil, fmt.Errorf("annotation %q must be key=value with exactly one '='", kv)
		}
		out[parts[0]] = parts[1]
	}
	return out, nil
}

func (o *signOptions) run(ctx context.Context, images []string, stderr io.Writer) error {
	if o.key == "" {
		return fmt.Errorf("--key is required: keyless signing is not available yet (create a key with 'hallmark generate-key-pair')")
	}
	ann, err := parseAnnotations(o.annotations)
	if err != nil {
		return err
	}
	if o.ciAnnotations {
		collected, err := provenance.Collect(os.LookupEnv)
		if err != nil {
			return fmt.Errorf("--ci-annotations: %w", err)
		}
		ann = provenance.Merge(collected, ann)
	}
	signer, err := loadSigner(o.key)
	if err != nil {
		return err
	}
	ropts := o.reg.remoteOptions(ctx)
	for _, img := range images {
		if err := o.signImage(ctx, img, ann, signer, ropts, stderr); err != nil {
			return err
		}
	}
	return nil
}

func loadSigner(keyRef string) (sign.Signer, error) {
	pemBytes, err := sign.ResolveKeyRef(keyRef)
	if err != nil {
		return nil, err
	}
	pw, err := readPassword(false)
	if err != nil {
		return nil, err
	}
	key, err := sign.LoadPrivateKey(pemBytes, pw)
	if err != nil {
		return nil, fmt.Errorf("loading key %s: %w", keyRef, err)
	}
	return sign.KeySigner{Key: key}, nil
}

func (o *signOptions) signImage(ctx context.Context, image string, ann map[string]string, signer sign.Signer, ropts []remote.Option, stderr io.Writer) error {
	ref, err := name.ParseReference(image, o.reg.nameOptions()...)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", image, err)
	}
	if _, ok := ref.(name.Digest); !ok {
		fmt.Fprintf(stderr, "WARNING: Image reference %s uses a tag, not a digest, to identify the image to sign.\n"+
			"    This can lead you to sign a different image than the intended one. Please use a\n"+
			"    digest (example.com/ubuntu@sha256:abc123...) rather than tag\n    (example.com/ubuntu:latest) for the input to cosign.\n", ref)
	}
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		if oci.IsNotFound(err) {
			return &exitError{code: exitTagNotFound, err: fmt.Errorf("image %s not found", ref)}
		}
		return fmt.Errorf("resolving %s: %w", ref, err)
	}
	digests := []v1.Hash{desc.Digest}
	if o.recursive && desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		for _, m := range im.Manifests {
			digests = append(digests, m.Digest)
		}
	}
	repo := ref.Context()
	target, err := sign.TargetRepository(repo, os.Getenv("COSIGN_REPOSITORY"), o.reg.nameOptions()...)
	if err != nil {
		return err
	}
	dockerRef := repo.Name()
	if o.containerIdentity != "" {
		dockerRef = o.containerIdentity
	}
	for _, d := range digests {
		body, err := payload.New(dockerRef, d.String(), ann).Bytes()
		if err != nil {
			return err
		}
		sig, err := signer.Sign(ctx, body)
		if err != nil {
			return fmt.Errorf("signing %s: %w", d, err)
		}
		if err := o.writeOutputs(sig); err != nil {
			return err
		}
		if !o.upload {
			continue
		}
		fmt.Fprintln(stderr, "Pushing signature to:", target.Name())
		if _, err := sign.Attach(target, d, sig, ropts...); err != nil {
			return err
		}
	}
	return nil
}

func (o *signOptions) writeOutputs(sig *sign.Signature) error {
	if o.outputSignature != "" {
		if err := os.WriteFile(o.outputSignature, []byte(encodeB64(sig.Signature)), 0o644); err != nil {
			return err
		}
	}
	if o.outputPayload != "" {
		if err := os.WriteFile(o.outputPayload, sig.Payload, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
