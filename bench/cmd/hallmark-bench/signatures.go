package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/ca"
	"github.com/hallmark-dev/hallmark/internal/index"
	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/oidc"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	sspayload "github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// sigSpec is a generated population of keyless signatures as a GitLab
// instance's CI would leave them in a registry: Images images in
// Projects group projects of ReposPerProject repositories each, every
// image built from its own commit in its own pipeline and signed by
// Signatures/Images jobs of that pipeline, each job on one of Runners
// runners, each pipeline run by one of Users users, recorded over Period
// from Start in order. Every signature has its own ephemeral key and a
// certificate from the CA in the data dir's keys (the server's), with the
// CA's record of the job's verified claims; its log entry has a SET by
// the log key in the data dir. A few signatures carry annotations that
// contradict their claims, and a few are recorded invalid or unverified.
type sigSpec struct {
	Version         int
	Signatures      int
	Images          int
	Projects        int
	ReposPerProject int
	Runners         int
	Users           int
	Start           time.Time
	Period          time.Duration
}

const sigSpecVersion = 1

// gitlabURL is the GitLab instance the generated jobs ran on.
const gitlabURL = "https://gitlab.example.com"

func (s sigSpec) perImage() int { return s.Signatures / s.Images }

// h is a deterministic 64-bit hash of the parts.
func h(parts ...any) uint64 {
	sum := sha256.Sum256(fmt.Append(nil, parts...))
	return binary.BigEndian.Uint64(sum[:8])
}

// The generated values: functions of the image number k and the
// signature number j within it, so queries can be drawn without reading
// the database.
func (s sigSpec) project(k int) string { return fmt.Sprintf("team%02d", k%s.Projects) }
func (s sigSpec) repo(k int) string {
	return fmt.Sprintf("%s/svc%d", s.project(k), (k/s.Projects)%s.ReposPerProject)
}
func (s sigSpec) public(p int) bool { return p%5 == 0 }
func (s sigSpec) commit(k int) string {
	return fmt.Sprintf("%016x%016x%08x", h("c", k), h("c2", k), uint32(h("c3", k)))
}
func (s sigSpec) subject(k int) digest.Digest {
	return digest.FromString(fmt.Sprint("image ", k))
}
func (s sigSpec) pipeline(k int) int { return 1_000_000 + k }
func (s sigSpec) job(k, j int) int   { return 10_000_000 + k*s.perImage() + j }
func (s sigSpec) runner(k, j int) int {
	return 1000 + int(h("r", k, j)%uint64(s.Runners))
}
func (s sigSpec) user(k int) int { return int(h("u", k) % uint64(s.Users)) }
func (s sigSpec) created(k, j int) time.Time {
	i := k*s.perImage() + j
	return s.Start.Add(time.Duration(float64(s.Period) * float64(i) / float64(s.Signatures)))
}

// claims is the verified GitLab ID token of job j of image k, as GitLab
// sends it (lib/gitlab/ci/jwt_v2.rb): ids as strings, runner_id a number.
func (s sigSpec) claims(k, j int) map[string]any {
	p, repo, u := s.project(k), s.repo(k), s.user(k)
	t := s.created(k, j)
	return map[string]any{
		"iss": gitlabURL, "sub": "project_path:" + repo + ":ref_type:branch:ref:main", "aud": "sigstore",
		"iat": json.Number(fmt.Sprint(t.Unix())), "nbf": json.Number(fmt.Sprint(t.Unix())), "exp": json.Number(fmt.Sprint(t.Add(5 * time.Minute).Unix())),
		"jti": fmt.Sprintf("%016x", h("jti", k, j)), "namespace_id": fmt.Sprint(100 + k%s.Projects), "namespace_path": p,
		"project_id": fmt.Sprint(h("pid", repo) % 100000), "project_path": repo, "user_id": fmt.Sprint(u + 1),
		"user_login": fmt.Sprintf("user%04d", u), "user_email": fmt.Sprintf("user%04d@example.com", u), "user_access_level": "developer",
		"pipeline_id": fmt.Sprint(s.pipeline(k)), "pipeline_source": "push", "job_id": fmt.Sprint(s.job(k, j)), "ref": "main",
		"ref_type": "branch", "ref_path": "refs/heads/main", "ref_protected": "true", "runner_id": json.Number(fmt.Sprint(s.runner(k, j))),
		"runner_environment": "self-hosted", "sha": s.commit(k), "project_visibility": "private",
		"ci_config_ref_uri": "gitlab.example.com/" + repo + "//.gitlab-ci.yml@refs/heads/main", "ci_config_sha": s.commit(k),
	}
}

// annotations are the eleven annotations of GitLab's tutorial the job
// signs with; one signature in 200 lies about its pipeline.
func (s sigSpec) annotations(k, j int) map[string]string {
	repo, sha := s.repo(k), s.commit(k)
	pipeline := fmt.Sprint(s.pipeline(k))
	if h("lie", k, j)%200 == 0 {
		pipeline = fmt.Sprint(s.pipeline(k) + 7)
	}
	pu := gitlabURL + "/" + repo
	return map[string]string{
		"com.gitlab.ci.user.name": fmt.Sprintf("User %d", s.user(k)), "com.gitlab.ci.pipeline.id": pipeline,
		"com.gitlab.ci.pipeline.url": pu + "/-/pipelines/" + pipeline, "com.gitlab.ci.job.id": fmt.Sprint(s.job(k, j)),
		"com.gitlab.ci.job.url": pu + "/-/jobs/" + fmt.Sprint(s.job(k, j)), "com.gitlab.ci.commit.sha": sha,
		"com.gitlab.ci.commit.ref.name": "main", "com.gitlab.ci.project.path": repo, "org.opencontainers.image.source": pu,
		"org.opencontainers.image.revision": sha, "tag": sha[:8],
	}
}

// claimsVerifier hands the CA the claims of the job being signed (the
// generator plays GitLab: it made the claims, there is no JWT to check).
type claimsVerifier struct{ next *oidc.Token }

func (v *claimsVerifier) Verify(context.Context, string, string) (*oidc.Token, error) {
	if v.next == nil {
		return nil, errors.New("no job")
	}
	return v.next, nil
}

// recorder keeps the CA's records until the batch is written.
type recorder struct{ certs []meta.IssuedCertificate }

func (r *recorder) RecordCertificates(_ context.Context, certs ...meta.IssuedCertificate) error {
	r.certs = append(r.certs, certs...)
	return nil
}

// sigWorker makes the signatures of images: its own CA (over the shared
// keys) whose clock is the job's time.
type sigWorker struct {
	spec   sigSpec
	ca     *ca.CA
	tok    *claimsVerifier
	rec    *recorder
	now    time.Time
	logKey *ecdsa.PrivateKey
	logID  string
}

func newSigWorker(spec sigSpec, ks *keystore.Dir, logKey *ecdsa.PrivateKey) (*sigWorker, error) {
	w := &sigWorker{spec: spec, tok: &claimsVerifier{}, rec: &recorder{}, now: spec.Start, logKey: logKey}
	c, err := ca.New(context.Background(), ks, w.tok, nil, ca.Config{Records: w.rec, Now: func() time.Time { return w.now }})
	if err != nil {
		return nil, err
	}
	w.ca = c
	if k, ok := c.Chain()[0].PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		return nil, errors.New("the bench CA's intermediate is not the P-256 key the generator made (key names changed in internal/ca?)")
	}
	der, err := x509.MarshalPKIXPublicKey(logKey.Public())
	if err != nil {
		return nil, err
	}
	id := sha256.Sum256(der)
	w.logID = hex.EncodeToString(id[:])
	return w, nil
}

// image makes the signatures of image k: for each, an ephemeral key, a
// certificate for the job's claims (the CA records them), a simple-signing
// payload with the job's annotations signed by the key, a hashedrekord
// log entry with its SET, and the index record the indexer would make.
func (w *sigWorker) image(ctx context.Context, k int) ([]meta.Signature, error) {
	s := w.spec
	repo, subject := s.repo(k), s.subject(k)
	manifest := digest.FromString(fmt.Sprint("signature manifest ", k))
	var out []meta.Signature
	for j := range s.perImage() {
		w.now = s.created(k, j)
		claims := s.claims(k, j)
		w.tok.next = &oidc.Token{Issuer: gitlabURL, Subject: claims["sub"].(string), Audience: []string{"sigstore"}, IssuerType: oidc.TypeGitLab,
			Identity: claims["sub"].(string), Claims: claims, Expiry: w.now.Add(5 * time.Minute), IssuedAt: w.now}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		pub, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			return nil, err
		}
		ch := sha256.Sum256([]byte(w.tok.next.Subject))
		proof, err := ecdsa.SignASN1(rand.Reader, key, ch[:])
		if err != nil {
			return nil, err
		}
		iss, err := w.ca.Issue(ctx, "job-token", ca.KeyRequest{PublicKey: pub, Proof: proof})
		if err != nil {
			return nil, fmt.Errorf("certificate for job %d: %w", s.job(k, j), err)
		}
		leaf := iss.Leaf
		ann := s.annotations(k, j)
		body, err := sspayload.New(gitlabURL[len("https://"):]+"/"+repo, subject.String(), ann).Bytes()
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
		if err != nil {
			return nil, err
		}
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
		entry, err := w.logEntry(hex.EncodeToString(sum[:]), sig, certPEM, int64(k*s.perImage()+j))
		if err != nil {
			return nil, err
		}
		bundleJSON, err := json.Marshal(rekor.BundleOf(entry))
		if err != nil {
			return nil, err
		}
		layer := oci.Descriptor{MediaType: sspayload.SimpleSigningMediaType, Digest: digest.FromBytes(body), Size: int64(len(body)),
			Annotations: map[string]string{oci.AnnotationSignature: base64.StdEncoding.EncodeToString(sig),
				oci.AnnotationCertificate: string(certPEM), oci.AnnotationBundle: string(bundleJSON)}}
		if k%1000 == 0 && j == 0 {
			if err := w.check(leaf, iss.Chain, body, sig, entry); err != nil {
				return nil, fmt.Errorf("generated signature %d of image %d does not verify: %w", j, k, err)
			}
		}
		signer, issuer := fulcio.Identity(leaf)
		certSum := sha256.Sum256(leaf.Raw)
		idx := entry.LogIndex
		rec := meta.Signature{Repository: repo, Subject: subject, Manifest: manifest, Layer: layer.Digest, Key: index.LayerKey(subject, layer, false),
			Kind: "cosign", PayloadType: sspayload.SimpleSigningMediaType, Signer: signer, CertIssuer: issuer, LogIndex: &idx,
			Status: meta.StatusVerified, StatusDetail: fmt.Sprintf("certificate issued by this server's CA; transparency log entry %d verified (SET)", idx),
			Annotations: ann, CertExtensions: fulcio.Values(leaf), CertSHA256: hex.EncodeToString(certSum[:]), Created: w.now}
		switch h("status", k, j) % 100 {
		case 0:
			rec.Status, rec.StatusDetail = meta.StatusInvalid, "signature: the signature does not verify with the certificate's key"
		case 1:
			rec.Status, rec.StatusDetail = meta.StatusUnverified, "certificate issued by this server's CA, but the signature carries no transparency log bundle (signed with --tlog-upload=false)"
		}
		out = append(out, rec)
	}
	return out, nil
}

// logEntry is the hashedrekord entry of sig over a payload of digest hexSum
// at index, as the server's log would answer it (canonical body, SET).
func (w *sigWorker) logEntry(hexSum string, sig, certPEM []byte, index int64) (*rekor.LogEntry, error) {
	raw, err := rekor.NewHashedRekord(rekor.Hash{Algorithm: "sha256", Value: hexSum}, sig, certPEM)
	if err != nil {
		return nil, err
	}
	c, err := rekor.Canonicalize(raw)
	if err != nil {
		return nil, err
	}
	e := &rekor.LogEntry{Body: c.Body, IntegratedTime: w.now.Unix(), LogIndex: index, LogID: w.logID}
	p, err := rekor.SETPayload(e.Body, e.IntegratedTime, e.LogID, e.LogIndex)
	if err != nil {
		return nil, err
	}
	d := sha256.Sum256(p)
	if e.SET, err = ecdsa.SignASN1(rand.Reader, w.logKey, d[:]); err != nil {
		return nil, err
	}
	return e, nil
}

// sigStore is what the generator writes to: the CA's records first, then
// the signatures (whose facts read them).
type sigStore interface {
	RecordCertificates(ctx context.Context, certs ...meta.IssuedCertificate) error
	RecordSignatures(ctx context.Context, sigs []meta.Signature) (int, error)
}

// generateSignatures makes the signatures of images [0, spec.Images) with
// one worker per CPU and writes them in batches of about 1,000, in image
// order (so ids follow time). progress is called after each batch with
// the signatures written.
func generateSignatures(ctx context.Context, spec sigSpec, ks *keystore.Dir, store sigStore, progress func(done int)) error {
	lk, err := keystore.LoadOrCreate(ctx, ks, "rekor", keystore.ECDSAP256)
	if err != nil {
		return err
	}
	logKey, ok := lk.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("log key is %T, want ECDSA", lk)
	}
	// The CA's root and intermediate are P-256, the server's default
	// (--ca-key-type): Go signs and, in x509.CreateCertificate, verifies
	// each certificate with the intermediate, and P-384 would make that
	// 3.5 ms of the 4 ms a signature costs here. The CA's code, profile,
	// SCTs and records are the server's; search does not look at key types.
	for _, name := range []string{"ca-root", "ca-intermediate"} {
		if _, err := keystore.LoadOrCreate(ctx, ks, name, keystore.ECDSAP256); err != nil {
			return err
		}
	}
	const imagesPerBatch = 100
	type batch struct {
		n     int
		sigs  []meta.Signature
		certs []meta.IssuedCertificate
		err   error
		done  chan struct{}
	}
	workers := runtime.NumCPU()
	jobs := make(chan *batch, workers*2)
	ordered := make(chan *batch, workers*2)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range workers {
		w, err := newSigWorker(spec, ks, logKey)
		if err != nil {
			return err
		}
		wg.Go(func() {
			for b := range jobs {
				for k := b.n; k < min(b.n+imagesPerBatch, spec.Images) && b.err == nil; k++ {
					sigs, err := w.image(ctx, k)
					b.sigs, b.err = append(b.sigs, sigs...), err
				}
				b.certs, w.rec.certs = w.rec.certs, nil
				close(b.done)
			}
		})
	}
	go func() {
		defer close(jobs)
		defer close(ordered)
		for n := 0; n < spec.Images; n += imagesPerBatch {
			b := &batch{n: n, done: make(chan struct{})}
			select {
			case jobs <- b:
			case <-ctx.Done():
				return
			}
			select {
			case ordered <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	done := 0
	var werr error
	for b := range ordered {
		<-b.done
		if werr != nil {
			continue
		}
		if b.err != nil {
			werr = b.err
			cancel()
			continue
		}
		if err := store.RecordCertificates(ctx, b.certs...); err != nil {
			werr = err
			cancel()
			continue
		}
		if _, err := store.RecordSignatures(ctx, b.sigs); err != nil {
			werr = err
			cancel()
			continue
		}
		done += len(b.sigs)
		progress(done)
	}
	wg.Wait()
	if werr == nil {
		werr = ctx.Err()
	}
	return werr
}

// check verifies a generated signature as a verifier would: the
// certificate chains to the CA at the time it was issued, the signature is
// the certificate key's over the payload, the SET is the log key's.
func (w *sigWorker) check(leaf *x509.Certificate, chain []*x509.Certificate, body, sig []byte, e *rekor.LogEntry) error {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(chain[len(chain)-1])
	for _, c := range chain[:len(chain)-1] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: leaf.NotBefore,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
		return err
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	sum := sha256.Sum256(body)
	if !ok || !ecdsa.VerifyASN1(pub, sum[:], sig) {
		return errors.New("the signature does not verify with the certificate's key")
	}
	return rekor.VerifySET(e, &w.logKey.PublicKey)
}
