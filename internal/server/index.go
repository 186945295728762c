package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallmark-dev/hallmark/internal/index"
	"github.com/hallmark-dev/hallmark/internal/web"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// webOptions are the provenance API's: the search service (shared with the
// console), bundle exports from the blob store with inclusion proofs from
// the transparency log, the trust policies and the index state from the
// indexer, and, when registry access control is on, answers limited to
// what the caller may pull (the authorizer is internal/auth's).
func (s *Server) webOptions(searcher *web.Searcher) []web.Option {
	opts := []web.Option{web.WithSearcher(searcher), web.WithExport(s.blobs, s.tlog), web.WithPolicies(s.indexer)}
	if s.auth != nil {
		opts = append(opts, web.WithAuthorizer(s.auth.APIAuthorizer()))
	}
	return opts
}

// setupIndex builds the signature indexer: the trust roots policies may
// name (this server's published trusted root as index.RootHallmark, and
// each --trusted-root), the --trusted-key keys already in icfg, and its
// metrics. It runs after setupTrust.
func (s *Server) setupIndex(icfg *index.Config, reg prometheus.Registerer) error {
	icfg.Roots = map[string]*root.Material{index.RootHallmark: s.trust.material}
	for _, spec := range s.cfg.TrustedRoots {
		name, m, err := loadTrustedRoot(spec)
		if err != nil {
			return err
		}
		if _, dup := icfg.Roots[name]; dup {
			return fmt.Errorf("trusted-root %s: the name %q is taken (%q is this server's own); name it with NAME=FILE", spec, name, index.RootHallmark)
		}
		icfg.Roots[name] = m
		s.log.Info("index: imported trusted root; projects' policies may name it", "name", name, "cas", len(m.CAs), "tlogs", len(m.TlogKeys))
	}
	icfg.Issuer, icfg.Workers = s.url, s.cfg.IndexWorkers
	s.indexer = index.New(s.meta, s.blobs, s.log, *icfg)
	ix := s.indexer
	count := func(f func(index.Stats) int64) func() float64 {
		return func() float64 { return float64(f(ix.Stats())) }
	}
	fromDB := func(f func(ctx context.Context) (int64, error)) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := f(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hallmark_index_jobs_pending",
			Help: "Signature manifests waiting to be indexed or judged again (all replicas; -1 when the database does not answer)."},
			fromDB(func(ctx context.Context) (int64, error) {
				n, err := s.meta.PendingIndexJobs(ctx, "", "")
				return int64(n), err
			})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hallmark_index_generation",
			Help: "Index generation: it grows with every trust policy change and rebuild."}, fromDB(s.meta.IndexGeneration)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hallmark_index_jobs_done_total",
			Help: "Index jobs (signature manifests) completed by this process."}, count(func(st index.Stats) int64 { return st.Jobs })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hallmark_index_signatures_total",
			Help: "Signatures whose status this process decided (verified with the full checks)."}, count(func(st index.Stats) int64 { return st.Signatures })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hallmark_index_blob_reads_total",
			Help: "Signature blobs the index read from the blob store (once per distinct blob of a manifest)."}, count(func(st index.Stats) int64 { return st.BlobReads })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hallmark_index_blob_read_bytes_total",
			Help: "Bytes of signature blobs the index read."}, count(func(st index.Stats) int64 { return st.BlobBytes })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hallmark_index_job_failures_total",
			Help: "Index jobs that failed (database errors) and run again after their lease."}, count(func(st index.Stats) int64 { return st.Failures })),
	)
	return nil
}

// loadTrustedRoot reads a --trusted-root value: NAME=FILE, or FILE named
// by its base name without .json.
func loadTrustedRoot(spec string) (string, *root.Material, error) {
	name, path, ok := strings.Cut(spec, "=")
	if !ok {
		path = spec
		name = strings.ToLower(strings.TrimSuffix(filepath.Base(path), ".json"))
	}
	if !index.ValidRootName(name) {
		return "", nil, fmt.Errorf("trusted-root %s: %q is not a root name (1-64 lowercase letters, digits, '.', '_', '-'); give NAME=FILE", spec, name)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("trusted-root %s: %w", spec, err)
	}
	tr, err := root.Parse(raw)
	if err != nil {
		return "", nil, fmt.Errorf("trusted-root %s: %w", spec, err)
	}
	m, err := tr.Material()
	if err != nil {
		return "", nil, fmt.Errorf("trusted-root %s: %w", spec, err)
	}
	return name, m, nil
}

// OpenIndexAdmin opens the metadata database db names for the trust
// policy and index commands (hallmark project set-policy, policy, index
// rebuild): an indexer that manages policies and queues work, and runs no
// workers (running servers index what it queues). The built-in issuer
// (the server's URL, the default identities' issuer) is read from the
// trusted root in the data dir when there is one. close must be called.
func OpenIndexAdmin(ctx context.Context, db Database) (ix *index.Indexer, close func() error, err error) {
	if err := db.checkDataDir(); err != nil {
		return nil, nil, err
	}
	store, err := db.open(ctx, 2)
	if err != nil {
		return nil, nil, err
	}
	cfg := index.Config{Workers: -1}
	if raw, err := os.ReadFile(filepath.Join(db.DataDir, TrustDir, root.TrustedRootFile)); err == nil {
		if tr, err := root.Parse(raw); err == nil && len(tr.CertificateAuthorities) > 0 {
			cfg.Issuer = tr.CertificateAuthorities[len(tr.CertificateAuthorities)-1].URI
		}
	}
	return index.New(store, nil, nil, cfg), store.Close, nil
}
