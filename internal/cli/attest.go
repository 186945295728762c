package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/provenance"
	"github.com/hallmark-dev/hallmark/pkg/sign"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

type attestOptions struct {
	s             signOptions // key, keyless, log, registry and -y flags
	predicate     string
	predicateType string
	ciProvenance  bool
	replace       bool
	noUpload      bool
}

func newAttestCmd() *cobra.Command {
	o := &attestOptions{}
	cmd := &cobra.Command{
		Use:   "attest IMAGE [IMAGE...]",
		Short: "Attach a signed in-toto attestation (e.g. SLSA provenance) to images, as cosign attest does",
		Long: `Make an in-toto statement about each IMAGE (a tag is resolved to its digest) with the
predicate from --predicate FILE of type --type, sign it as a DSSE envelope (keylessly, or with
--key), log it as a dsse entry and attach it as cosign attest does:

  --new-bundle-format (the default, as in cosign v3): a sigstore bundle in an OCI 1.1
  referrer of the image annotated with the predicate type.

  --new-bundle-format=false (cosign v2's layout): a layer of media type
  application/vnd.dsse.envelope.v1+json under the tag sha256-<digest>.att, carrying the
  predicate type, the certificate, the chain and the log bundle as annotations.
  --replace drops earlier attestations of the same type there (bundles are never replaced).

Real cosign verify-attestation verifies both.

--type takes cosign's names (custom, slsaprovenance, slsaprovenance02, slsaprovenance1, spdx,
spdxjson, cyclonedx, link, vuln, openvex) or a predicate type URI. As in cosign, a custom
predicate is the file wrapped as {"Data": ..., "Timestamp": ...}; other predicates must be JSON
objects and are kept as they are.

--ci-provenance builds a SLSA provenance v1 predicate from the CI job's environment instead of a
file (GitLab CI first: GitLab's buildType, the project as source, the commit as resolved
dependency, the runner as builder, the job URL as invocation id; GitHub Actions likewise). Only
non-secret predefined variables are recorded; tokens and project variables never are.

The statement is an in-toto Statement v1 whose subject is the repository and digest.
Keyless signing, trust and the transparency log work as for 'hallmark sign'.`,
		Example: `  hallmark attest -y --ci-provenance "$CI_REGISTRY_IMAGE@$IMAGE_DIGEST"
  hallmark attest -y --predicate provenance.json --type slsaprovenance1 registry.example/group/app:v1
  hallmark attest --key cosign.key --tlog-upload=false --predicate sbom.spdx.json --type spdxjson registry.example/group/app:v1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := config.ApplyEnv(cmd.Flags(), "COSIGN_", lookupEnv, nil); err != nil {
				return err
			}
			ctx, cancel := o.s.reg.withTimeout(cmd.Context())
			defer cancel()
			return o.run(ctx, args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.predicate, "predicate", "", "file holding the predicate")
	fs.StringVar(&o.predicateType, "type", "custom", "predicate type: a cosign name (custom, slsaprovenance1, spdxjson, ...) or a URI")
	fs.BoolVar(&o.ciProvenance, "ci-provenance", false, "build a SLSA provenance v1 predicate from the CI job's environment (implies --type slsaprovenance1)")
	fs.BoolVar(&o.replace, "replace", false, "replace earlier attestations of the same predicate type")
	fs.BoolVar(&o.noUpload, "no-upload", false, "print the signed envelope instead of attaching it")
	o.s.bind(fs, "attestation")
	return cmd
}

func (o *attestOptions) run(ctx context.Context, images []string, stdin io.Reader, stdout, stderr io.Writer) error {
	predType := o.predicateType
	var predFile []byte
	switch {
	case o.ciProvenance && o.predicate != "":
		return errors.New("give either --predicate FILE or --ci-provenance, not both")
	case o.ciProvenance:
		if predType != "custom" && predType != "slsaprovenance1" && predType != payload.PredicateSLSA1 {
			return fmt.Errorf("--ci-provenance makes a SLSA provenance v1 predicate; --type %s does not fit (leave --type out)", predType)
		}
		predType = "slsaprovenance1"
	case o.predicate == "":
		return errors.New("--predicate FILE is required (or --ci-provenance in a CI job)")
	default:
		b, err := os.ReadFile(o.predicate)
		if err != nil {
			return fmt.Errorf("--predicate: %w", err)
		}
		predFile = b
		fmt.Fprintln(stderr, "Using payload from:", o.predicate)
	}
	pt, err := payload.PredicateType(predType)
	if err != nil {
		return err
	}
	var pred []byte
	if o.ciProvenance {
		p, err := provenance.CollectSLSA(os.LookupEnv, time.Now())
		if err != nil {
			return fmt.Errorf("--ci-provenance: %w", err)
		}
		if pred, err = p.JSON(); err != nil {
			return err
		}
	} else if pred, err = payload.Predicate(pt, predFile, time.Now()); err != nil {
		return fmt.Errorf("--predicate %s: %w", o.predicate, err)
	}
	load, err := o.s.newSigner(ctx, stdin, stderr)
	if err != nil {
		return err
	}
	pending := startSigner(load)
	ropts, err := o.s.reg.remoteOptions(ctx)
	if err != nil {
		return err
	}
	for _, img := range images {
		if err := o.attestImage(ctx, img, pt, pred, pending, ropts, stdout, stderr); err != nil {
			return fmt.Errorf("attesting %s: %w", img, err)
		}
	}
	return nil
}

func (o *attestOptions) attestImage(ctx context.Context, image, predType string, pred []byte, pending *pendingSigner, ropts []remote.Option, stdout, stderr io.Writer) error {
	ref, err := name.ParseReference(image, o.s.reg.nameOptions()...)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", image, err)
	}
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		if oci.IsNotFound(err) {
			return fmt.Errorf("image %s not found in the registry: %w", ref, err)
		}
		return fmt.Errorf("resolving %s: %w", ref, err)
	}
	var target name.Repository
	if !o.noUpload {
		if target, err = sign.TargetRepository(ref.Context(), os.Getenv("COSIGN_REPOSITORY"), o.s.reg.nameOptions()...); err != nil {
			return err
		}
	}
	repo := ref.Context()
	_, err = sign.Attestation(ctx, pending.get, sign.AttestationRequest{Repo: target, Digest: desc.Digest, Name: ref.Context().Name(),
		PredicateType: predType, Predicate: pred, Replace: o.replace, NoUpload: o.noUpload, Bundle: o.s.newBundleFormat, ImageRepo: &repo,
		Attach: sign.AttachOptions{TagPrefix: o.s.reg.tagPrefix, DockerMediaTypes: os.Getenv("COSIGN_DOCKER_MEDIA_TYPES") == "1", Remote: ropts},
		Signed: func(sig *sign.Signature) error {
			if sig.Bundle != nil {
				fmt.Fprintln(stderr, "tlog entry created with index:", sig.LogIndex)
			}
			if o.noUpload {
				_, err := fmt.Fprintln(stdout, string(sig.Payload))
				return err
			}
			return nil
		}})
	return err
}

type verifyAttestationOptions struct {
	v             verifyOptions
	predicateType string
}

func newVerifyAttestationCmd() *cobra.Command {
	o := &verifyAttestationOptions{}
	cmd := &cobra.Command{
		Use:   "verify-attestation IMAGE [IMAGE...]",
		Short: "Verify the attestations of images, as cosign verify-attestation does",
		Long: `Verify the attestations attached to each IMAGE (the layers of cosign's legacy .att tag and
sigstore bundle referrers; --new-bundle-format reads only the bundles, --new-bundle-format=false
only the tag; the "Layouts checked:" line says what each held): the DSSE signature (with --key, or keylessly with the same trust and identity flags
as 'hallmark verify'), the transparency-log entry, and that the in-toto statement is about the
image. Only attestations of predicate type --type count (cosign's default: custom); when others
verify, the error names the types found.

Output is cosign's: the check lines (and, for certificates, "Certificate subject:" and
"Certificate issuer URL:") on standard error, one verified DSSE envelope per line on standard
output.`,
		Example: `  hallmark verify-attestation --type slsaprovenance1 --certificate-identity "$CI_PROJECT_URL//.gitlab-ci.yml@refs/heads/main" \
      --certificate-oidc-issuer "$CI_SERVER_URL" registry.example/group/app:v1 | jq -r .payload | base64 -d | jq .predicate`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := config.ApplyEnv(cmd.Flags(), "COSIGN_", lookupEnv, nil); err != nil {
				return err
			}
			ctx, cancel := o.v.reg.withTimeout(cmd.Context())
			defer cancel()
			return o.run(ctx, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	v := &o.v
	fs.StringVar(&o.predicateType, "type", "custom", "predicate type to verify: a cosign name (custom, slsaprovenance1, ...) or a URI")
	fs.StringVar(&v.key, "key", "", "public key: a PEM file (cosign.pub) or certificate, or env://VAR (default: keyless)")
	fs.BoolVar(&v.checkClaims, "check-claims", true, "check that the statement is about the image")
	fs.BoolVar(&v.insecureIgnoreTlog, "insecure-ignore-tlog", false, "do not require a transparency log entry")
	v.bind(fs, "attestation")
	return cmd
}

func (o *verifyAttestationOptions) run(ctx context.Context, images []string, stdout, stderr io.Writer) error {
	pt, err := payload.PredicateType(o.predicateType)
	if err != nil {
		return err
	}
	trust, policy, err := o.v.options(nil)
	if err != nil {
		return err
	}
	if o.v.insecureIgnoreTlog && !o.v.privateInfrastructure {
		fmt.Fprintln(stderr, "WARNING: Skipping tlog verification is an insecure practice that lacks transparency and auditability verification for the signature.")
	}
	client := o.v.reg.verifyClient()
	sigRepo, err := o.v.reg.signatureRepo()
	if err != nil {
		return err
	}
	for _, img := range images {
		ref, err := name.ParseReference(img, o.v.reg.nameOptions()...)
		if err != nil {
			return fmt.Errorf("image reference %q: %w", img, err)
		}
		res, err := verify.Attestations(ctx, client, verify.Target{Image: ref, SignatureRepo: sigRepo, TagPrefix: o.v.reg.tagPrefix,
			Layout: o.v.layout.layout()}, pt, trust, policy)
		if err != nil {
			return withExitCode(err)
		}
		fmt.Fprintf(stderr, "\nVerification for %s --\n", ref.Name())
		fmt.Fprintln(stderr, "The following checks were performed on each of these signatures:")
		if o.v.checkClaims {
			fmt.Fprintln(stderr, "  - The cosign claims were validated")
		}
		for _, v := range res.Verified {
			if v.TlogVerified {
				fmt.Fprintln(stderr, "  - Existence of the claims in the transparency log was verified offline")
				break
			}
		}
		if o.v.key != "" {
			fmt.Fprintln(stderr, "  - The signatures were verified against the specified public key")
		} else {
			fmt.Fprintln(stderr, "  - The code-signing certificate was verified using trusted certificate authority certificates")
		}
		fmt.Fprint(stderr, o.v.layout.layoutLine(res, "attestation"))
		for _, v := range res.Verified {
			if v.Certificate != nil {
				printCertLines(stderr, v.Certificate)
			}
			if _, err := fmt.Fprintln(stdout, string(v.EnvelopeJSON)); err != nil {
				return err
			}
		}
	}
	return nil
}
