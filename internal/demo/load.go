package demo

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// LoadConfig configures RunLoad.
type LoadConfig struct {
	Jobs            JobSource // where the clients' CI jobs come from
	Trust           *Trust    // the server's pinned trust material
	Clients         int       // concurrent clients, one CI job each
	ImagesPerClient int       // images each client pushes, signs and verifies
	Projects        int       // the clients' jobs are spread over this many projects
	// Group names the projects: <Group>/app<N>. Empty: "load-<random>", so
	// that runs against the same server do not mix.
	Group string
	// KeyBased signs with one ECDSA P-256 key (logged, verified with its
	// public key) instead of keylessly.
	KeyBased bool
	// Transport is shared by every client (default NewTransport()).
	Transport http.RoundTripper
}

// LoadImage is one image a load run pushed and signed.
type LoadImage struct {
	Ref      name.Digest
	Tag      string
	Identity string // keyless: the certificate identity it was signed with
	Issuer   string
	Project  string
}

// LoadResult is what a load run measured.
type LoadResult struct {
	Clients, Images int
	Projects        []string
	Group           string
	Key             crypto.PublicKey // the key of a key-based run
	Wall            time.Duration    // first push to last verify
	// Per image, per phase, in completion order.
	Push, Sign, Verify, Cycle []time.Duration
	Errors                    []error
	Done                      []LoadImage // the images that passed all three phases
}

// RunLoad runs cfg.Clients concurrent CI jobs, each pushing, signing and
// verifying cfg.ImagesPerClient small unique images, one after the other
// as a pipeline would, and measures every phase. The CI jobs are obtained
// before the clock starts. Errors are collected, not fatal: the run
// continues with the other images.
func RunLoad(ctx context.Context, cfg LoadConfig) (*LoadResult, error) {
	if cfg.Clients < 1 || cfg.ImagesPerClient < 1 {
		return nil, errors.New("load: need at least one client and one image per client")
	}
	if cfg.Projects < 1 {
		cfg.Projects = 1
	}
	if cfg.Group == "" {
		b := make([]byte, 3)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		cfg.Group = "load-" + hex.EncodeToString(b)
	}
	if cfg.Transport == nil {
		cfg.Transport = NewTransport()
	}
	res := &LoadResult{Clients: cfg.Clients, Images: cfg.Clients * cfg.ImagesPerClient, Group: cfg.Group}
	for p := range cfg.Projects {
		res.Projects = append(res.Projects, fmt.Sprintf("%s/app%d", cfg.Group, p))
	}
	var key crypto.Signer
	if cfg.KeyBased {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		key, res.Key = k, k.Public()
	}

	// Each client's CI job, concurrently (not timed).
	sessions := make([]*Session, cfg.Clients)
	errs := make([]error, cfg.Clients)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			env, err := cfg.Jobs.Job(ctx, JobRequest{Project: res.Projects[i%cfg.Projects], Ref: "main",
				Pipeline: strconv.Itoa(1000 + i), Job: strconv.Itoa(5000 + i), User: fmt.Sprintf("user%d", i),
				UserName: fmt.Sprintf("Load Client %d", i)})
			if err != nil {
				errs[i] = fmt.Errorf("client %d: CI job: %w", i, err)
				return
			}
			sessions[i], errs[i] = NewSession(env, SessionConfig{Trust: cfg.Trust, Key: key, Transport: cfg.Transport})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	var mu sync.Mutex
	record := func(f func()) {
		mu.Lock()
		defer mu.Unlock()
		f()
	}
	start := time.Now()
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range cfg.ImagesPerClient {
				if ctx.Err() != nil {
					record(func() { res.Errors = append(res.Errors, fmt.Errorf("client %d image %d: %w", i, n, ctx.Err())) })
					return
				}
				img, err := loadCycle(ctx, s, fmt.Sprintf("c%d-i%d", i, n), record, res)
				if err != nil {
					record(func() { res.Errors = append(res.Errors, fmt.Errorf("client %d image %d: %w", i, n, err)) })
					continue
				}
				record(func() { res.Done = append(res.Done, *img) })
			}
		}()
	}
	wg.Wait()
	res.Wall = time.Since(start)
	return res, nil
}

// loadCycle pushes, signs and verifies one image.
func loadCycle(ctx context.Context, s *Session, note string, record func(func()), res *LoadResult) (*LoadImage, error) {
	img, err := BuildImage(s.env, note)
	if err != nil {
		return nil, err
	}
	tag := s.Tag(note)
	t0 := time.Now()
	ref, err := s.Push(ctx, img, tag)
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	t1 := time.Now()
	if _, err := s.Sign(ctx, ref, tag); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	t2 := time.Now()
	vr, err := s.Verify(ctx, ref, tag)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	t3 := time.Now()
	if len(vr.Verified) == 0 {
		return nil, fmt.Errorf("verify %s: no verified signature", ref)
	}
	record(func() {
		res.Push = append(res.Push, t1.Sub(t0))
		res.Sign = append(res.Sign, t2.Sub(t1))
		res.Verify = append(res.Verify, t3.Sub(t2))
		res.Cycle = append(res.Cycle, t3.Sub(t0))
	})
	return &LoadImage{Ref: ref, Tag: tag, Identity: s.Identity(), Issuer: s.Issuer(), Project: s.env["CI_PROJECT_PATH"]}, nil
}

// Credentials are registry (Basic) credentials, e.g. the admin user's.
type Credentials struct{ Username, Password string }

// VerifyAll verifies every image again in one batch (as `hallmark verify
// --images-from` does: one registry client, workers in parallel) with
// creds, against each image's identity and tag (or key, for a key-based
// run). It returns how long the batch took and the failures.
func VerifyAll(ctx context.Context, imgs []LoadImage, trust *Trust, key crypto.PublicKey, creds Credentials, workers int, tr http.RoundTripper) (time.Duration, []error) {
	if tr == nil {
		tr = NewTransport()
	}
	client := oci.NewClient(oci.ClientConfig{Transport: tr, UserAgent: UserAgent,
		Keychain: staticKeychain{authn.FromConfig(authn.AuthConfig{Username: creds.Username, Password: creds.Password})}})
	workers = max(1, min(workers, len(imgs)))
	next := make(chan int)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				im := imgs[i]
				vt, policy, err := VerifyOptions(trust, key, im.Identity, im.Issuer, im.Tag)
				var r *verify.ImageResult
				if err == nil {
					r, err = verify.Image(ctx, client, verify.Target{Image: im.Ref}, vt, policy)
				}
				if err == nil && len(r.Verified) == 0 {
					err = errors.New("no verified signature")
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", im.Ref, err))
					mu.Unlock()
				}
			}
		}()
	}
	for i := range imgs {
		next <- i
	}
	close(next)
	wg.Wait()
	return time.Since(start), errs
}

// IndexCount counts the signatures the server's provenance index holds
// for the projects (by the com.gitlab.ci.project.path annotation), and how
// many of them the index verified, asking with the Authorization value
// authz (e.g. "Bearer <admin token>").
func IndexCount(ctx context.Context, base, authz string, projects []string, client *http.Client) (total, verified int, err error) {
	if err := WaitIndexed(ctx, client, base); err != nil {
		return 0, 0, err
	}
	for _, p := range projects {
		r, err := Search(ctx, client, base, authz, url.Values{"annotation": {"com.gitlab.ci.project.path=" + p}, "limit": {"1000"}})
		if err != nil {
			return 0, 0, err
		}
		total += len(r.Results)
		for _, x := range r.Results {
			if x.Status == "verified" {
				verified++
			}
		}
	}
	return total, verified, nil
}

// Percentile returns the p-th percentile (0..100, nearest rank) of d.
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(rank, len(s)-1))]
}

// Sum adds up d.
func Sum(d []time.Duration) time.Duration {
	var t time.Duration
	for _, x := range d {
		t += x
	}
	return t
}
