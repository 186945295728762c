package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/sign"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

type verifyOptions struct {
	reg                registryOptions
	key                string
	annotations        []string
	output             string
	checkClaims        bool
	recursive          bool
	maxWorkers         int
	imagesFrom         string
	insecureIgnoreTlog bool
}

func newVerifyCmd() *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify IMAGE [IMAGE...]",
		Short: "Verify image signatures and their annotations, as cosign verify does",
		Long: `Verify the cosign signatures of each IMAGE: the signature over the payload, the
digest claim, and every -a key=value annotation. At least one signature must pass.

Standard output is what cosign prints (so '| jq .' works the same): for each image
a blank line, then the JSON array of verified payloads. The check lines go to
standard error. A failure says which check failed for which signature.

Exit codes as cosign's: 10 no signatures, 11 image not found, 12 no signature
matched, 1 other errors. Many images can be verified in one call: give several
arguments or --images-from FILE ('-' for standard input, one reference a line).`,
		Example: `  hallmark verify --key cosign.pub -a tag=v1 registry.example/group/app:v1 | jq .
  hallmark verify --key cosign.pub --recursive registry.example/app@sha256:...
  hallmark verify --key cosign.pub --images-from images.txt --max-workers 32`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := config.ApplyEnv(cmd.Flags(), "COSIGN_", lookupEnv, nil); err != nil {
				return err
			}
			images, err := o.collectImages(args)
			if err != nil {
				return err
			}
			return o.run(cmd.Context(), images, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.key, "key", "", "public key: a PEM file (cosign.pub), or env://VAR")
	fs.StringSliceVarP(&o.annotations, "annotations", "a", nil, "annotation key=value every matching signature must carry (repeatable)")
	fs.StringVarP(&o.output, "output", "o", "json", "output format: json or text")
	fs.BoolVar(&o.checkClaims, "check-claims", true, "check the digest claim and annotations in the payload")
	fs.BoolVarP(&o.recursive, "recursive", "r", false, "also verify every platform manifest of a multi-arch index")
	fs.IntVar(&o.maxWorkers, "max-workers", 10, "images verified in parallel")
	fs.StringVar(&o.imagesFrom, "images-from", "", "read image references from this file, one a line ('-' for standard input)")
	fs.BoolVar(&o.insecureIgnoreTlog, "insecure-ignore-tlog", false, "accepted for cosign compatibility; key-based verification does not use a log yet")
	o.reg.bind(fs)
	return cmd
}

func (o *verifyOptions) collectImages(args []string) ([]string, error) {
	images := append([]string(nil), args...)
	if o.imagesFrom != "" {
		var r io.Reader = os.Stdin
		if o.imagesFrom != "-" {
			f, err := os.Open(o.imagesFrom)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			r = f
		}
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
				images = append(images, line)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	if len(images) == 0 {
		return nil, errors.New("no image to verify: give IMAGE arguments or --images-from")
	}
	return images, nil
}

type verifyOutcome struct {
	ref    name.Reference
	result *verify.ImageResult
	err    error
}

func (o *verifyOptions) run(ctx context.Context, images []string, stdout, stderr io.Writer) error {
	if o.key == "" {
		return errors.New("--key is required: keyless verification is not available yet")
	}
	if o.output != "json" && o.output != "text" {
		return fmt.Errorf("--output %q: use json or text", o.output)
	}
	ann, err := parseAnnotations(o.annotations)
	if err != nil {
		return err
	}
	pemBytes, err := sign.ResolveKeyRef(o.key)
	if err != nil {
		return err
	}
	pub, err := verify.ParsePublicKey(pemBytes)
	if err != nil {
		return fmt.Errorf("--key %s: %w", o.key, err)
	}
	opts := verify.Options{PublicKey: pub, Annotations: ann, SkipClaims: !o.checkClaims}
	ropts := o.reg.remoteOptions(ctx)
	var sigRepo *name.Repository
	if r := os.Getenv("COSIGN_REPOSITORY"); r != "" {
		repo, err := name.NewRepository(r, o.reg.nameOptions()...)
		if err != nil {
			return fmt.Errorf("COSIGN_REPOSITORY %q: %w", r, err)
		}
		sigRepo = &repo
	}

	refs := make([]name.Reference, 0, len(images))
	for _, img := range images {
		ref, err := name.ParseReference(img, o.reg.nameOptions()...)
		if err != nil {
			return fmt.Errorf("image reference %q: %w", img, err)
		}
		refs = append(refs, ref)
	}
	if o.recursive {
		refs, err = expandIndexes(refs, ropts)
		if err != nil {
			return err
		}
	}
	outcomes := make([]verifyOutcome, len(refs))
	workers := max(1, o.maxWorkers)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < min(workers, len(refs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				res, err := verify.Image(ctx, verify.Target{Image: refs[i], SignatureRepo: sigRepo}, opts, ropts...)
				outcomes[i] = verifyOutcome{ref: refs[i], result: res, err: err}
			}
		}()
	}
	for i := range refs {
		next <- i
	}
	close(next)
	wg.Wait()

	var firstErr error
	failed := 0
	for _, oc := range outcomes {
		if oc.err != nil {
			failed++
			if firstErr == nil {
				firstErr = oc.err
			}
			if len(outcomes) > 1 {
				fmt.Fprintf(stderr, "Error: %s: %v\n", oc.ref, oc.err)
			}
			continue
		}
		if err := o.print(oc, len(ann) > 0, stdout, stderr); err != nil {
			return err
		}
	}
	if firstErr == nil {
		return nil
	}
	if len(outcomes) > 1 {
		firstErr = fmt.Errorf("%d of %d images failed verification; first failure: %w", failed, len(outcomes), firstErr)
	}
	switch {
	case errors.Is(firstErr, verify.ErrNoSignatures):
		return &exitError{code: exitNoSignatures, err: firstErr}
	case errors.Is(firstErr, verify.ErrNoMatching):
		return &exitError{code: exitNoMatching, err: firstErr}
	case errors.Is(firstErr, errImageNotFound) || oci.IsNotFound(firstErr):
		return &exitError{code: exitTagNotFound, err: firstErr}
	}
	return firstErr
}

var errImageNotFound = errors.New("image not found")

// expandIndexes adds the platform manifests of every index among refs.
func expandIndexes(refs []name.Reference, ropts []remote.Option) ([]name.Reference, error) {
	var out []name.Reference
	for _, ref := range refs {
		out = append(out, ref)
		desc, err := remote.Get(ref, ropts...)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errImageNotFound, ref, err)
		}
		if !desc.MediaType.IsIndex() {
			continue
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		for _, m := range im.Manifests {
			out = append(out, ref.Context().Digest(m.Digest.String()))
		}
	}
	return out, nil
}

// print writes cosign's verification output for one image.
func (o *verifyOptions) print(oc verifyOutcome, annotations bool, stdout, stderr io.Writer) error {
	if o.insecureIgnoreTlog {
		fmt.Fprintln(stderr, "WARNING: Skipping tlog verification is an insecure practice that lacks transparency and auditability verification for the signature.")
	}
	fmt.Fprintln(stderr)
	fmt.Fprintf(stderr, "Verification for %s --\n", oc.ref.Name())
	fmt.Fprintln(stderr, "The following checks were performed on each of these signatures:")
	if o.checkClaims {
		if annotations {
			fmt.Fprintln(stderr, "  - The specified annotations were verified.")
		}
		fmt.Fprintln(stderr, "  - The cosign claims were validated")
	}
	fmt.Fprintln(stderr, "  - The signatures were verified against the specified public key")
	if o.output == "text" {
		for _, v := range oc.result.Verified {
			fmt.Fprintln(stdout, string(v.Layer.Payload))
		}
		return nil
	}
	claims := make([]verify.Claims, 0, len(oc.result.Verified))
	for _, v := range oc.result.Verified {
		claims = append(claims, v.Claims)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, string(b))
	return nil
}
