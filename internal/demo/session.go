package demo

import (
	"bufio"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/provenance"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/sign"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// CIRegistryUser is the user name a CI job logs in with its job token.
const CIRegistryUser = "gitlab-ci-token"

// UserAgent is sent with every request.
const UserAgent = "hallmark-demo"

// SessionConfig configures a Session.
type SessionConfig struct {
	// Trust is the pinned trust material (FetchTrust). Required.
	Trust *Trust
	// Key, when set, signs with this key (a transparency log entry is still
	// made) instead of keylessly; verification then uses its public key.
	Key crypto.Signer
	// Transport is the base HTTP transport for the registry, the CA, the
	// log and the API (default: a clone of http.DefaultTransport).
	Transport http.RoundTripper
}

// Session is one CI job talking to the server: it pushes with the job's
// token, signs with the job's ID token and verifies with the job's
// identity. It authenticates to the registry once per repository and is
// safe for concurrent use.
type Session struct {
	env      map[string]string
	cfg      SessionConfig
	keychain authn.Keychain
	blobs    *sign.MonolithicBlobs
	verifier *oci.Client
	http     *http.Client
	nameOpts []name.Option
}

// NewSession starts a session for the CI job whose environment is env.
func NewSession(env map[string]string, cfg SessionConfig) (*Session, error) {
	if err := CheckJob(env); err != nil {
		return nil, err
	}
	if cfg.Trust == nil || cfg.Trust.Material == nil {
		return nil, errors.New("demo: a session needs the pinned trust material (FetchTrust)")
	}
	if cfg.Key == nil && env["SIGSTORE_ID_TOKEN"] == "" {
		return nil, fmt.Errorf("%w: SIGSTORE_ID_TOKEN is empty (is the server's built-in OIDC issuer on?); keyless signing needs it", ErrInvalidJob)
	}
	if cfg.Transport == nil {
		cfg.Transport = NewTransport()
	}
	kc := authn.NewMultiKeychain() // anonymous: a server with auth off
	if tok := env["CI_JOB_TOKEN"]; tok != "" {
		kc = staticKeychain{authn.FromConfig(authn.AuthConfig{Username: CIRegistryUser, Password: tok})}
	}
	s := &Session{env: env, cfg: cfg, keychain: kc,
		http: &http.Client{Transport: cfg.Transport, Timeout: 2 * time.Minute}}
	if u, err := url.Parse(env["HALLMARK_URL"]); err == nil && u.Scheme == "http" {
		s.nameOpts = []name.Option{name.Insecure}
	}
	s.blobs = &sign.MonolithicBlobs{Keychain: kc, Transport: cfg.Transport, UserAgent: UserAgent}
	s.verifier = oci.NewClient(oci.ClientConfig{Transport: cfg.Transport, Keychain: kc, UserAgent: UserAgent})
	return s, nil
}

// NewTransport is an HTTP transport for many concurrent sessions.
func NewTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 512
	tr.MaxIdleConnsPerHost = 256
	return tr
}

type staticKeychain struct{ a authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

// Env returns the value of a CI variable of the session's job.
func (s *Session) Env(k string) string { return s.env[k] }

func (s *Session) lookup(k string) (string, bool) {
	v, ok := s.env[k]
	return v, ok
}

// Identity is the certificate identity the job's keyless signatures carry
// ("$CI_PROJECT_URL//.gitlab-ci.yml@refs/heads/$CI_COMMIT_REF_NAME").
func (s *Session) Identity() string { return Identity(s.env) }

// Issuer is the OIDC issuer of the job's ID token ($CI_SERVER_URL).
func (s *Session) Issuer() string { return s.env["CI_SERVER_URL"] }

// Identity is the certificate identity of a GitLab job's keyless signature.
func Identity(env map[string]string) string {
	cfgPath := env["CI_CONFIG_PATH"]
	if cfgPath == "" {
		cfgPath = ".gitlab-ci.yml"
	}
	ref := "refs/heads/" + env["CI_COMMIT_REF_NAME"]
	if env["CI_COMMIT_TAG"] != "" {
		ref = "refs/tags/" + env["CI_COMMIT_TAG"]
	}
	return env["CI_PROJECT_URL"] + "//" + cfgPath + "@" + ref
}

// Tag is the job's image tag ($CI_COMMIT_SHORT_SHA, as the reference
// pipeline's IMAGE_TAG), with suffix appended ("-" between) when given.
func (s *Session) Tag(suffix string) string {
	t := s.env["CI_COMMIT_SHORT_SHA"]
	if suffix != "" {
		t += "-" + suffix
	}
	return t
}

func (s *Session) remote(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(s.keychain),
		remote.WithTransport(s.cfg.Transport), remote.WithUserAgent(UserAgent)}
}

// Push pushes img as $CI_REGISTRY_IMAGE:tag with the job token and returns
// its digest reference.
func (s *Session) Push(ctx context.Context, img v1.Image, tag string) (name.Digest, error) {
	ref, err := name.NewTag(s.env["CI_REGISTRY_IMAGE"]+":"+tag, s.nameOpts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("image reference: %w", err)
	}
	d, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Write(ref, img, s.remote(ctx)...); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	return ref.Context().Digest(d.String()), nil
}

// Signed is a signature the session attached.
type Signed struct {
	Image       name.Digest
	Tag         string            // the "tag" annotation
	Annotations map[string]string // the signed annotations
	Certificate *x509.Certificate // keyless: the signing certificate
	LogIndex    int64             // the transparency log entry
	Manifest    v1.Hash           // the signature manifest now under the .sig tag
}

// Sign signs ref as `hallmark sign -y --ci-annotations` does in the job:
// the simple-signing payload carries the eleven GitLab provenance
// annotations (tag = tag), the signature is keyless (an ephemeral key, a
// certificate for the job's ID token from the CA, checked against the
// trusted root with its SCT) unless the session has a key, it is recorded
// in the transparency log (entry checked: SET and inclusion proof) and
// attached under the image's .sig tag.
func (s *Session) Sign(ctx context.Context, ref name.Digest, tag string) (*Signed, error) {
	ann, err := provenance.Collect(s.lookup, provenance.WithImageTag(tag))
	if err != nil {
		return nil, fmt.Errorf("provenance annotations: %w", err)
	}
	h, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		return nil, err
	}
	out := &Signed{Image: ref, Tag: tag, Annotations: ann}
	log := &sign.TransparencyLog{URL: s.cfg.Trust.LogURL, Keys: s.cfg.Trust.Material.TlogKeys, HTTPClient: s.http}
	signer := func() (sign.Signer, error) {
		if s.cfg.Key != nil {
			return sign.KeySigner{Key: s.cfg.Key, Log: log}, nil
		}
		ksg, err := sign.NewKeylessSigner(ctx, sign.KeylessConfig{CA: &sign.Fulcio{URL: s.cfg.Trust.CAURL, HTTPClient: s.http},
			Token: s.env["SIGSTORE_ID_TOKEN"], Trust: s.cfg.Trust.Material, Log: log})
		if err != nil {
			return nil, err
		}
		out.Certificate = ksg.Certificate()
		return ksg, nil
	}
	res, err := sign.Image(ctx, signer, sign.ImageRequest{Repo: ref.Context(), Digest: h, DockerReference: ref.Context().Name(), Annotations: ann,
		Attach: sign.AttachOptions{Remote: s.remote(ctx), Blobs: s.blobs}})
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", ref, err)
	}
	out.LogIndex, out.Manifest = res.Signature.LogIndex, res.Attached.Digest
	return out, nil
}

// Attest attaches to ref, as `hallmark attest -y --ci-provenance` does in
// the job, a keyless signed SLSA provenance v1 attestation built from the
// job's environment (logged as a dsse entry, under the image's .att tag).
// It returns the log index.
func (s *Session) Attest(ctx context.Context, ref name.Digest) (int64, error) {
	pred, err := provenance.CollectSLSA(s.lookup, time.Now())
	if err != nil {
		return 0, fmt.Errorf("SLSA provenance: %w", err)
	}
	raw, err := pred.JSON()
	if err != nil {
		return 0, err
	}
	h, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		return 0, err
	}
	body, err := payload.NewStatement(payload.PredicateSLSA1, raw,
		payload.Subject{Name: ref.Context().Name(), Digest: map[string]string{h.Algorithm: h.Hex}}).Bytes()
	if err != nil {
		return 0, err
	}
	if s.cfg.Key != nil {
		return 0, errors.New("demo: attestations are keyless only")
	}
	log := &sign.TransparencyLog{URL: s.cfg.Trust.LogURL, Keys: s.cfg.Trust.Material.TlogKeys, HTTPClient: s.http}
	ksg, err := sign.NewKeylessSigner(ctx, sign.KeylessConfig{CA: &sign.Fulcio{URL: s.cfg.Trust.CAURL, HTTPClient: s.http},
		Token: s.env["SIGSTORE_ID_TOKEN"], Trust: s.cfg.Trust.Material, Log: log})
	if err != nil {
		return 0, fmt.Errorf("attesting %s: %w", ref, err)
	}
	sig, err := ksg.SignDSSE(ctx, payload.InTotoPayloadType, body)
	if err != nil {
		return 0, fmt.Errorf("attesting %s: %w", ref, err)
	}
	if _, err := sign.AttachAttestation(ref.Context(), h, sig, payload.PredicateSLSA1, false, sign.AttachOptions{Remote: s.remote(ctx)}); err != nil {
		return 0, fmt.Errorf("attaching the attestation of %s: %w", ref, err)
	}
	return sig.LogIndex, nil
}

// VerifyOptions are the trust and checks of `hallmark verify
// --certificate-identity IDENTITY --certificate-oidc-issuer ISSUER -a
// tag=TAG` with trust (or, for key, `--key`).
func VerifyOptions(trust *Trust, key crypto.PublicKey, identity, issuer, tag string) (*verify.Trust, verify.Policy, error) {
	policy := verify.Policy{Annotations: map[string]string{"tag": tag}}
	if key != nil {
		k, err := verify.NewKey(key)
		if err != nil {
			return nil, policy, err
		}
		t := verify.NewTrust(nil, k)
		t.TlogKeys = trust.Material.TlogKeys
		return t, policy, nil
	}
	policy.Identities = []verify.Identity{{Subject: identity, Issuer: issuer}}
	return verify.NewTrust([]*root.Material{trust.Material}), policy, nil
}

// Verify verifies the signatures of ref as the job's verify step does:
// the job's identity and issuer (or the session's key), the tag
// annotation, the log entry's SET, offline.
func (s *Session) Verify(ctx context.Context, ref name.Digest, tag string) (*verify.ImageResult, error) {
	var pub crypto.PublicKey
	if s.cfg.Key != nil {
		pub = s.cfg.Key.Public()
	}
	trust, policy, err := VerifyOptions(s.cfg.Trust, pub, s.Identity(), s.Issuer(), tag)
	if err != nil {
		return nil, err
	}
	return verify.Image(ctx, s.verifier, verify.Target{Image: ref}, trust, policy)
}

// VerificationJSON is what `hallmark verify` (and cosign verify) prints on
// standard output for a verified image: the JSON array of the verified
// payloads' claims.
func VerificationJSON(res *verify.ImageResult) ([]byte, error) {
	claims := make([]payload.SimpleSigning, 0, len(res.Verified))
	for _, v := range res.Verified {
		claims = append(claims, v.Claims)
	}
	return json.Marshal(claims)
}

// SearchResult is the provenance API's answer (GET /api/v1/search).
type SearchResult struct {
	Raw     []byte // the JSON as received
	Results []struct {
		Repository  string            `json:"repository"`
		Subject     string            `json:"subject"`
		Status      string            `json:"status"`
		Signer      string            `json:"signer"`
		Annotations map[string]string `json:"annotations"`
	} `json:"results"`
}

// SearchPath is the provenance search endpoint.
const SearchPath = "/api/v1/search"

// Search queries the provenance index for signatures annotated key=value,
// authenticated with the job token (a job sees its own project).
func (s *Session) Search(ctx context.Context, key, value string) (*SearchResult, error) {
	if err := WaitIndexed(ctx, s.http, s.env["HALLMARK_URL"]); err != nil {
		return nil, err
	}
	authz := ""
	if tok := s.env["CI_JOB_TOKEN"]; tok != "" {
		r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
		r.SetBasicAuth(CIRegistryUser, tok)
		authz = r.Header.Get("Authorization")
	}
	return Search(ctx, s.http, s.env["HALLMARK_URL"], authz, url.Values{"annotation": {key + "=" + value}})
}

// Search runs a provenance search on the server at base with the given
// Authorization header value ("" for anonymous).
func Search(ctx context.Context, client *http.Client, base, authz string, q url.Values) (*SearchResult, error) {
	u := strings.TrimSuffix(base, "/") + SearchPath + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	req.Header.Set("User-Agent", UserAgent)
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("provenance search: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("provenance search: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("provenance search %s: HTTP %d: %s", u, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	out := &SearchResult{Raw: raw}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("provenance search %s: the answer is not the API's JSON: %w", u, err)
	}
	return out, nil
}

// WaitIndexed waits until the signature index of the server at base has
// no pending work (its /metrics gauge hallmark_index_jobs_pending is 0),
// or ctx ends: every signature pushed before the call is then indexed.
// The index works in the background after a push, so a search right after
// signing waits for it first.
func WaitIndexed(ctx context.Context, client *http.Client, base string) error {
	if client == nil {
		client = http.DefaultClient
	}
	// Each look counts the queue: look soon, then less often.
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 250*time.Millisecond) {
		n, err := pendingIndexJobs(ctx, client, base)
		if err == nil && n == 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for the signature index of %s (%d jobs pending, %v): %w", base, n, err, ctx.Err())
		case <-t.C:
		}
	}
}

func pendingIndexJobs(ctx context.Context, client *http.Client, base string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/metrics", nil)
	if err != nil {
		return -1, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "hallmark_index_jobs_pending "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return -1, err
	}
	return -1, fmt.Errorf("%s/metrics has no hallmark_index_jobs_pending gauge (a Hallmark server of this version?)", base)
}
