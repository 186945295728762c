package cli

import (
	"bufio"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/sign"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

type verifyOptions struct {
	reg                   registryOptions
	key                   string
	annotations           []string
	output                string
	checkClaims           bool
	recursive             bool
	maxWorkers            int
	imagesFrom            string
	insecureIgnoreTlog    bool
	privateInfrastructure bool

	// keyless
	identity          verify.Identity
	trust             trustOptions
	insecureIgnoreSCT bool
	offline           bool
	provenance        bool
	layout            layoutFlag
}

// layoutFlag is verify's --new-bundle-format: unset, both layouts are
// read; true, only sigstore bundle referrers; false, only cosign's legacy
// tag. (cosign v3 reads the bundles when there are any, else the tag.)
type layoutFlag struct{ set, bundles bool }

func (f *layoutFlag) String() string {
	if !f.set {
		return ""
	}
	return strconv.FormatBool(f.bundles)
}

func (f *layoutFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	f.set, f.bundles = true, v
	return nil
}

func (f *layoutFlag) Type() string { return "bool" }

func (f *layoutFlag) layout() verify.Layout {
	switch {
	case !f.set:
		return verify.LayoutAll
	case f.bundles:
		return verify.LayoutBundle
	}
	return verify.LayoutLegacy
}

// layoutLine says which layouts were read and what they held, for an
// image that carries sigstore bundles or when a layout was chosen (an
// image with only the legacy tag, read as cosign v2 reads it, gets
// cosign's output unchanged). what names the signatures ("signature",
// "attestation").
func (f *layoutFlag) layoutLine(res *verify.ImageResult, what string) string {
	if !f.set && res.Bundles.Found == 0 {
		return ""
	}
	part := func(c verify.LayoutCount, name, noun, flag string) string {
		switch {
		case !c.Read:
			return name + ": not read (" + flag + ")"
		case c.Found == 0:
			return name + ": none"
		}
		return fmt.Sprintf("%s: %d of %d %s(s) verified", name, c.Verified, c.Found, noun)
	}
	return "Layouts checked: " + part(res.Legacy, "legacy "+res.SignatureTag.TagStr(), what, "--new-bundle-format") + "; " +
		part(res.Bundles, "sigstore bundle referrers", "bundle", "--new-bundle-format=false") + "\n"
}

func newVerifyCmd() *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify IMAGE [IMAGE...]",
		Short: "Verify image signatures and their annotations, as cosign verify does",
		Long: `Verify the cosign signatures of each IMAGE: the signature over the exact payload
bytes, the digest claim, and every -a key=value annotation (the value must be that
exact string; an empty value does not match a missing key). At least one signature
of each image must pass every check.

Standard output is exactly what cosign prints, so '| jq .' works the same: for each
verified image a blank line, then the JSON array of its verified payloads (with
-o text: each payload on its own line). The check lines go to standard error. When
no signature passes, the error says which check failed for which signature, e.g.
the annotation that differed with both values.

Exit codes are cosign's: 10 no signatures, 11 image tag not found, 12 no signature
matched, 1 any other error. With several images, every image is verified, the
failures are reported on standard error, and the exit code is that of the first
failing image in input order.

Many images can be verified in one call: give several IMAGE arguments and/or
--images-from FILE ('-' for standard input; one reference a line, # comments).

Without --key, signatures are verified keylessly, as cosign does: the certificate in
the signature must chain to a CA of the trusted root (--trusted-root FILE; else cosign
v2's SIGSTORE_ROOT_FILE, SIGSTORE_REKOR_PUBLIC_KEY and SIGSTORE_CT_LOG_PUBLIC_KEY_FILE
for their part; else the trusted root 'hallmark trust init' stored), carry an SCT of
its CT log (unless --insecure-ignore-sct), and name an identity given by
--certificate-identity(-regexp) with an issuer given by
--certificate-oidc-issuer(-regexp) (regexps are unanchored Go regexps, as in cosign).
Verification is always offline: the transparency-log bundle stored with the signature
must carry a signed entry timestamp from a log of the trusted root, for exactly this
signature, and the certificate must have been valid when it was logged. No CA or log
is contacted.

Both layouts are read: the layers of the legacy tag sha256-<digest>.sig and the
sigstore bundles attached as OCI 1.1 referrers (cosign v3, --new-bundle-format), the
.sig signatures first. Each signature must pass every check on its own, -a included:
an annotation signed in one layout does not vouch for a signature in the other. (cosign
v2 and v3 ignore the .sig signatures once a bundle exists, and cosign v2 then ignores
-a.) --new-bundle-format reads only the bundles, --new-bundle-format=false only the
legacy tag. When the image carries bundles, or a layout was chosen, a "Layouts
checked:" line on standard error says what each layout held and how many of its
signatures verified. A bundle's output is what cosign prints for bundles:
critical.type is the predicate type and optional holds the statement's annotations
(cosign v3's -a), which -a checks.

--provenance compares each signed annotation with what the signing certificate attests
in Fulcio's extensions (commit SHA with sourceRepositoryDigest, ref with
sourceRepositoryRef, project and pipeline URL with sourceRepositoryURI, job URL and id
with runInvocationURI, ...), prints the comparison as a table on standard error and
fails a signature whose annotation contradicts its certificate. Standard output stays
cosign's.

Signatures made without a transparency log (--tlog-upload=false) verify only with
--insecure-ignore-tlog (or --private-infrastructure, the same without the warning).`,
		Example: `  hallmark verify --certificate-identity "$CI_PROJECT_URL//.gitlab-ci.yml@refs/heads/main" \\
      --certificate-oidc-issuer "$CI_SERVER_URL" -a tag=v1 registry.example/group/app:v1 | jq .
  hallmark verify --trusted-root trusted_root.json --certificate-identity-regexp '^https://gitlab.example/group/' \\
      --certificate-oidc-issuer https://gitlab.example --provenance registry.example/group/app@sha256:...
  hallmark verify --key cosign.pub --insecure-ignore-tlog -a tag=v1 registry.example/group/app:v1 | jq .
  hallmark verify --key cosign.pub --insecure-ignore-tlog --images-from images.txt --max-workers 32`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := config.ApplyEnv(cmd.Flags(), "COSIGN_", lookupEnv, nil); err != nil {
				return err
			}
			images, err := o.collectImages(args, cmd.InOrStdin())
			if err != nil {
				return err
			}
			ctx, cancel := o.reg.withTimeout(cmd.Context())
			defer cancel()
			return o.run(ctx, images, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.key, "key", "", "public key: a PEM file (cosign.pub) or certificate, or env://VAR")
	fs.StringSliceVarP(&o.annotations, "annotations", "a", nil, "annotation key=value every matching signature must carry (repeatable)")
	fs.StringVarP(&o.output, "output", "o", "json", "output format: json or text")
	fs.BoolVar(&o.checkClaims, "check-claims", true, "check the digest claim and annotations in the payload")
	fs.BoolVarP(&o.recursive, "recursive", "r", false, "also verify every platform manifest of a multi-arch index")
	fs.IntVar(&o.maxWorkers, "max-workers", 10, "images verified in parallel")
	fs.StringVar(&o.imagesFrom, "images-from", "", "read image references from this file, one a line ('-' for standard input)")
	fs.BoolVar(&o.insecureIgnoreTlog, "insecure-ignore-tlog", false, "do not require a transparency log entry (for signatures made with --tlog-upload=false)")
	fs.BoolVar(&o.provenance, "provenance", false, "check every signed annotation against the signing certificate's extensions (table on standard error)")
	o.bind(fs, "signature")
	return cmd
}

// bind binds the flags verify and verify-attestation share: the keyless
// identity and trust flags, --private-infrastructure, the flags accepted
// for cosign compatibility, and the registry flags. what names what is
// verified ("signature", "attestation").
func (o *verifyOptions) bind(fs *pflag.FlagSet, what string) {
	fs.BoolVar(&o.privateInfrastructure, "private-infrastructure", false, "same as --insecure-ignore-tlog, without the warning")
	fs.StringVar(&o.identity.Subject, "certificate-identity", "", "keyless: the identity (SAN) the certificate must name, e.g. $CI_PROJECT_URL//.gitlab-ci.yml@refs/heads/main")
	fs.StringVar(&o.identity.SubjectRegexp, "certificate-identity-regexp", "", "keyless: a regular expression (unanchored) the certificate's identity must match")
	fs.StringVar(&o.identity.Issuer, "certificate-oidc-issuer", "", "keyless: the OIDC issuer the certificate must name, e.g. $CI_SERVER_URL")
	fs.StringVar(&o.identity.IssuerRegexp, "certificate-oidc-issuer-regexp", "", "keyless: a regular expression (unanchored) the certificate's issuer must match")
	fs.BoolVar(&o.insecureIgnoreSCT, "insecure-ignore-sct", false, "keyless: do not require an SCT from a CT log of the trusted root (insecure)")
	fs.BoolVar(&o.offline, "offline", false, "only verify offline (always the case: accepted for cosign compatibility)")
	fs.String("rekor-url", "", "accepted for cosign compatibility and not used: the log proof is the bundle stored with each "+what+", checked offline with the trusted root's log key")
	fs.Var(&o.layout, "new-bundle-format", "read only sigstore bundle referrers (true) or only cosign's legacy tag (false) (default: both)")
	fs.Lookup("new-bundle-format").NoOptDefVal = "true"
	o.trust.bind(fs)
	o.reg.bind(fs)
}

func (o *verifyOptions) collectImages(args []string, stdin io.Reader) ([]string, error) {
	images := append([]string(nil), args...)
	if o.imagesFrom != "" {
		r := stdin
		if o.imagesFrom != "-" {
			f, err := os.Open(o.imagesFrom)
			if err != nil {
				return nil, fmt.Errorf("--images-from: %w", err)
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
			return nil, fmt.Errorf("--images-from %s: %w", o.imagesFrom, err)
		}
	}
	if len(images) == 0 {
		return nil, errors.New("no image to verify: give IMAGE arguments or --images-from FILE")
	}
	return images, nil
}

// verifyJob is one image to verify (a platform manifest found by
// --recursive carries its parent's digest-pinned reference).
type verifyJob struct {
	ref    name.Reference
	digest *v1.Hash
}

type verifyOutcome struct {
	job    verifyJob
	result *verify.ImageResult
	err    error
}

func (o *verifyOptions) run(ctx context.Context, images []string, stdout, stderr io.Writer) error {
	if o.output != "json" && o.output != "text" {
		return fmt.Errorf("--output %q: use json or text", o.output)
	}
	ann, err := parseAnnotations(o.annotations)
	if err != nil {
		return err
	}
	trust, policy, err := o.options(ann)
	if err != nil {
		return err
	}
	sigRepo, err := o.reg.signatureRepo()
	if err != nil {
		return err
	}
	refs := make([]name.Reference, 0, len(images))
	for _, img := range images {
		ref, err := name.ParseReference(img, o.reg.nameOptions()...)
		if err != nil {
			return fmt.Errorf("image reference %q: %w", img, err)
		}
		refs = append(refs, ref)
	}
	if o.insecureIgnoreTlog && !o.privateInfrastructure {
		fmt.Fprintln(stderr, "WARNING: Skipping tlog verification is an insecure practice that lacks transparency and auditability verification for the signature.")
	}
	client := o.reg.verifyClient()
	jobs := make([]verifyJob, 0, len(refs))
	for _, ref := range refs {
		jobs = append(jobs, verifyJob{ref: ref})
	}
	if o.recursive {
		if jobs, err = expandIndexes(ctx, client, refs); err != nil {
			return err
		}
	}

	// Verify in parallel, print in input order as results come in.
	outcomes, done, wait := verifyInParallel(ctx, jobs, o.maxWorkers, func(j verifyJob) (*verify.ImageResult, error) {
		return verify.Image(ctx, client, verify.Target{Image: j.ref, Digest: j.digest, SignatureRepo: sigRepo, TagPrefix: o.reg.tagPrefix,
			Layout: o.layout.layout()}, trust, policy)
	})
	var firstErr error
	failed := 0
	bw := bufio.NewWriter(stdout)
	for i := range jobs {
		<-done[i]
		oc := outcomes[i]
		if oc.err != nil {
			failed++
			if firstErr == nil {
				firstErr = oc.err
			}
			if len(jobs) > 1 {
				fmt.Fprintf(stderr, "Error: %s: %v\n", oc.job.ref.Name(), oc.err)
			}
			continue
		}
		if err := o.print(oc, len(ann) > 0, bw, stderr); err != nil {
			return err
		}
	}
	wait()
	if err := bw.Flush(); err != nil {
		return err
	}
	if firstErr == nil {
		return nil
	}
	if len(jobs) > 1 {
		firstErr = fmt.Errorf("%d of %d images failed verification; the first: %w", failed, len(jobs), firstErr)
	}
	return withExitCode(firstErr)
}

// verifyInParallel verifies jobs with up to workers goroutines. done[i] is
// closed once outcomes[i] is set (a job not started when ctx ends gets
// ctx's error); wait returns when every worker has stopped.
func verifyInParallel(ctx context.Context, jobs []verifyJob, workers int, one func(verifyJob) (*verify.ImageResult, error)) (outcomes []verifyOutcome, done []chan struct{}, wait func()) {
	outcomes = make([]verifyOutcome, len(jobs))
	done = make([]chan struct{}, len(jobs))
	for i := range done {
		done[i] = make(chan struct{})
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(max(1, workers), len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				res, err := one(jobs[i])
				outcomes[i] = verifyOutcome{job: jobs[i], result: res, err: err}
				close(done[i])
			}
		}()
	}
	go func() {
		defer close(next)
		for i := range jobs {
			select {
			case next <- i:
			case <-ctx.Done():
				for k := i; k < len(jobs); k++ {
					outcomes[k] = verifyOutcome{job: jobs[k], err: ctx.Err()}
					close(done[k])
				}
				return
			}
		}
	}()
	return outcomes, done, wg.Wait
}

// options builds what signatures are checked against and must satisfy:
// the key (and the log keys of the trusted root, when the log is checked),
// or the trusted root with the identity to require; the claims, the log
// and the SCT as the flags say.
func (o *verifyOptions) options(ann map[string]string) (*verify.Trust, verify.Policy, error) {
	policy := verify.Policy{Annotations: ann, WithoutClaimsUnsafe: !o.checkClaims,
		IgnoreTlogUnsafe: o.insecureIgnoreTlog || o.privateInfrastructure, IgnoreSCTUnsafe: o.insecureIgnoreSCT, Provenance: o.provenance}
	if o.key != "" {
		pub, err := loadVerifyKey(o.key)
		if err != nil {
			return nil, policy, err
		}
		k, err := verify.NewKey(pub)
		if err != nil {
			return nil, policy, fmt.Errorf("--key %s: %w", o.key, err)
		}
		trust := verify.NewTrust(nil, k)
		if !policy.IgnoreTlogUnsafe {
			// Log keys: cosign's SIGSTORE_REKOR_PUBLIC_KEY, else the
			// trusted root when there is one.
			tr, err := o.trust.loadVerify(false)
			if err != nil {
				return nil, policy, err
			}
			if tr != nil {
				trust.TlogKeys = tr.material.TlogKeys
			}
		}
		return trust, policy, nil
	}
	if err := o.identity.Validate(); err != nil {
		return nil, policy, err
	}
	tr, err := o.trust.loadVerify(true)
	if err != nil {
		return nil, policy, err
	}
	policy.Identities = []verify.Identity{o.identity}
	return verify.NewTrust([]*root.Material{tr.material}), policy, nil
}

// withExitCode attaches cosign's exit code for a verification error.
func withExitCode(err error) error {
	switch {
	case errors.Is(err, verify.ErrNoSignatures):
		return &exitError{code: exitNoSignatures, err: err}
	case errors.Is(err, oci.ErrImageNotFound):
		return &exitError{code: exitTagNotFound, err: err}
	case errors.Is(err, verify.ErrNoMatching):
		return &exitError{code: exitNoMatching, err: err}
	}
	return err
}

// loadVerifyKey reads --key: a PEM public key or certificate, from a file
// or env://VAR.
func loadVerifyKey(ref string) (crypto.PublicKey, error) {
	pemBytes, err := sign.ResolveKeyRef(ref)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	pub, err := verify.ParsePublicKey(pemBytes)
	if err != nil {
		if sign.KeyNeedsPassword(pemBytes) || strings.Contains(string(pemBytes), "PRIVATE KEY") {
			return nil, fmt.Errorf("--key %s is a private key: verify with the public key (cosign.pub)", ref)
		}
		return nil, fmt.Errorf("--key %s: %w (want a PEM \"PUBLIC KEY\" such as cosign.pub)", ref, err)
	}
	return pub, nil
}

// expandIndexes adds the platform manifests of every index among refs.
func expandIndexes(ctx context.Context, client *oci.Client, refs []name.Reference) ([]verifyJob, error) {
	var out []verifyJob
	for _, ref := range refs {
		m, d, err := client.Manifest(ctx, ref)
		if err != nil {
			return nil, withExitCode(err)
		}
		out = append(out, verifyJob{ref: ref, digest: &d})
		if !oci.IsIndex(m.MediaType) {
			continue
		}
		for _, child := range m.Manifests {
			h, err := v1.NewHash(child.Digest.String())
			if err != nil {
				return nil, err
			}
			out = append(out, verifyJob{ref: ref.Context().Digest(h.String()), digest: &h})
		}
	}
	return out, nil
}

// print writes cosign's verification output for one image: the check lines
// on stderr, the payloads on stdout (and, with --provenance, the
// provenance table on stderr).
func (o *verifyOptions) print(oc verifyOutcome, annotations bool, stdout, stderr io.Writer) error {
	res := oc.result
	var lines strings.Builder
	fmt.Fprintf(&lines, "\nVerification for %s --\n", oc.job.ref.Name())
	lines.WriteString("The following checks were performed on each of these signatures:\n")
	if o.checkClaims {
		if annotations {
			lines.WriteString("  - The specified annotations were verified.\n")
		}
		lines.WriteString("  - The cosign claims were validated\n")
	}
	for _, v := range res.Verified {
		if v.TlogVerified {
			lines.WriteString("  - Existence of the claims in the transparency log was verified offline\n")
			break
		}
	}
	if o.key != "" {
		lines.WriteString("  - The signatures were verified against the specified public key\n")
	} else {
		lines.WriteString("  - The code-signing certificate was verified using trusted certificate authority certificates\n")
	}
	lines.WriteString(o.layout.layoutLine(res, "signature"))
	io.WriteString(stderr, lines.String())
	if o.provenance {
		printProvenance(stderr, oc.job.ref.Name(), res.Verified)
	}
	if o.output == "text" {
		for _, v := range res.Verified {
			if c := v.Certificate; c != nil && v.Kind != verify.KindBundle {
				printCertLines(stderr, c)
			}
			if _, err := fmt.Fprintln(stdout, string(v.OutputPayload())); err != nil {
				return err
			}
		}
		return nil
	}
	claims := make([]payload.SimpleSigning, 0, len(res.Verified))
	for _, v := range res.Verified {
		claims = append(claims, v.Claims)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "\n%s\n", b)
	return err
}

// printCertLines prints what cosign prints for a certificate in text
// output: its subject and issuer (and GitHub workflow fields).
func printCertLines(w io.Writer, c *x509.Certificate) {
	if sans := fulcio.SubjectAlternativeNames(c); len(sans) > 0 {
		fmt.Fprintln(w, "Certificate subject:", sans[0])
	}
	if iss, ok := fulcio.Value(c, fulcio.IssuerV1); ok {
		fmt.Fprintln(w, "Certificate issuer URL:", iss)
	}
	for _, f := range []struct {
		n    int
		name string
	}{{fulcio.GitHubWorkflowTrigger, "GitHub Workflow Trigger"}, {fulcio.GitHubWorkflowSHA, "GitHub Workflow SHA"}, {fulcio.GitHubWorkflowName, "GitHub Workflow Name"},
		{fulcio.GitHubWorkflowRepository, "GitHub Workflow Repository"}, {fulcio.GitHubWorkflowRef, "GitHub Workflow Ref"}} {
		if v, ok := fulcio.Value(c, f.n); ok {
			fmt.Fprintf(w, "%s: %s\n", f.name, v)
		}
	}
}

// printProvenance prints, per verified signature, how its annotations
// compare with its certificate.
func printProvenance(w io.Writer, image string, verified []*verify.Verified) {
	for i, v := range verified {
		who := "signed with a key: no certificate attests anything"
		if v.Certificate != nil {
			if sans := fulcio.SubjectAlternativeNames(v.Certificate); len(sans) > 0 {
				who = "certificate " + sans[0]
			}
		}
		fmt.Fprintf(w, "\nProvenance of %s, signature %d of %d (%s):\n", image, i+1, len(verified), who)
		if len(v.Provenance) == 0 {
			fmt.Fprintln(w, "  (no annotations)")
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  ANNOTATION\tSIGNED VALUE\tCERTIFICATE EXTENSION\tATTESTED VALUE\tRESULT")
		for _, c := range v.Provenance {
			ext, att := c.Extension, c.Attested
			if ext == "" {
				ext = "-"
			}
			if att == "" {
				att = "-"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Annotation, c.Value, ext, att, c.Status)
		}
		tw.Flush()
	}
}
