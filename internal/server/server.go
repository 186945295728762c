package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/ca"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/gc"
	"github.com/hallmark-dev/hallmark/internal/index"
	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/oidc"
	"github.com/hallmark-dev/hallmark/internal/policy"
	"github.com/hallmark-dev/hallmark/internal/registry"
	"github.com/hallmark-dev/hallmark/internal/reqbody"
	"github.com/hallmark-dev/hallmark/internal/tlog"
	"github.com/hallmark-dev/hallmark/internal/tuf"
	"github.com/hallmark-dev/hallmark/internal/web"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// Server is a configured Hallmark server.
type Server struct {
	cfg     config.Server
	log     *slog.Logger
	ln      net.Listener
	debugLn net.Listener // --debug-addr: the profiler; nil when off
	url     string       // external base URL, no trailing slash
	blobs   blobStore
	meta    meta.Store
	keys    keystore.Store // the token, OIDC, CA, log and TUF keys: <data-dir>/keys, or sealed in PostgreSQL
	handler http.Handler

	oidcIssuer   *oidc.Issuer   // built-in OIDC issuer (nil when disabled)
	oidcVerifier *oidc.Verifier // verifies ID tokens of the trusted issuers
	ca           *ca.CA         // Fulcio-compatible certificate authority

	auth *auth.Service // registry access control (nil when --auth=off)

	metrics *metrics  // HTTP metrics, for components' route instrumentation
	tlog    *tlog.Log // Rekor-compatible transparency log
	trust   *trust    // published trusted root and signing config

	tuf *tuf.Repository // TUF repository of the trust material

	indexer   *index.Indexer  // signature index: queue workers, trust policies
	policy    *policy.Service // pull policy: quarantine, require-signature
	gc        *gc.Collector   // garbage collection and retention
	gcMetrics *gcMetrics
}

// New opens the listener on cfg.Addr (so a ":0" port is known from here
// on), builds the stores and the HTTP handler from cfg.
func New(ctx context.Context, cfg config.Server, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := privateDir(cfg.DataDir, log); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if ln, err = listenTLS(cfg, ln); err != nil {
		return nil, err
	}
	s, err := build(ctx, cfg, log, ln)
	if err != nil {
		ln.Close()
		return nil, err
	}
	if cfg.DebugAddr != "" {
		if s.debugLn, err = net.Listen("tcp", cfg.DebugAddr); err != nil {
			s.Close()
			return nil, fmt.Errorf("debug-addr: listen on %s: %w", cfg.DebugAddr, err)
		}
	}
	return s, nil
}

func build(ctx context.Context, cfg config.Server, log *slog.Logger, ln net.Listener) (*Server, error) {
	blobs, err := openBlobs(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	db := Database{DataDir: cfg.DataDir, URL: cfg.DatabaseURL, KEK: KeyEncryptionKey{File: cfg.KeyEncryptionKeyFile, Value: cfg.KeyEncryptionKey}}
	store, err := db.open(ctx, 0)
	if err != nil {
		return nil, err
	}
	keys, err := db.openKeys(ctx, store, log)
	if err != nil {
		store.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, ln: ln, blobs: blobs, meta: store, keys: keys, url: strings.TrimSuffix(cfg.ExternalURL, "/")}
	if s.url == "" {
		s.url = scheme(cfg) + "://" + ln.Addr().String()
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := newMetrics(reg)
	s.metrics = m
	if err := s.setupBlobCache(reg); err != nil {
		store.Close()
		return nil, err
	}

	var icfg index.Config
	for _, path := range cfg.TrustedKeys {
		raw, err := os.ReadFile(path)
		if err == nil {
			var k verify.Key
			if k, err = verify.ParseKey(raw); err == nil {
				icfg.Keys = append(icfg.Keys, k)
				continue
			}
		}
		store.Close()
		return nil, fmt.Errorf("trusted-key %s: %w", path, err)
	}

	if err := s.setupAuth(ctx, store); err != nil {
		store.Close()
		return nil, fmt.Errorf("auth: %w", err)
	}
	// The signing services and the trusted root they publish come first:
	// the indexer verifies signatures against that trusted root.
	mux := http.NewServeMux()
	if err := s.setupServices(ctx, mux); err != nil {
		store.Close()
		return nil, err
	}
	if err := s.setupIndex(&icfg, reg); err != nil {
		store.Close()
		return nil, err
	}
	indexer := s.indexer
	rcfg := registry.Config{MaxManifestSize: cfg.MaxManifestSize, SparseManifests: cfg.SparseManifests, Events: s.registryEvents(indexer)}
	if s.auth != nil {
		rcfg.MayPush = s.auth.MayPush
	}
	if indexer != nil {
		rcfg.SettleIndex = indexer.Settle
	}
	rh, err := registry.New(s.blobs, store, log, rcfg)
	if err != nil {
		store.Close()
		return nil, err
	}
	rh.UploadsInProgress = func(d int) { m.uploads.Add(float64(d)) }
	rh.PullOutcomes = func(o registry.PullOutcome) { m.pulls.WithLabelValues(string(o)).Inc() }

	v2 := m.instrument("unknown", s.protectRegistry(rh))
	mux.Handle("/v2/", v2)
	mux.Handle("/v2", v2)
	s.registerAuth(mux, m)
	mux.Handle("GET /healthz", m.instrument("healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})))
	mux.Handle("GET /readyz", m.instrument("readyz", http.HandlerFunc(s.ready)))
	api := http.NewServeMux()
	retention, err := s.setupGC(store, reg)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("gc: %w", err)
	}
	searcher := web.NewSearcher(store, web.SearchConfig{})
	webAPI := web.NewAPI(store, log, append(s.webOptions(searcher), web.WithProjectsFallback(retention))...)
	webAPI.Register(api)
	api.Handle(gc.RetentionPath, retention) // the methods the trust policy API does not take
	s.setupPolicy(api, store)
	mux.Handle("/api/", m.instrument("api", api))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if err := s.setupCI(mux); err != nil {
		store.Close()
		return nil, fmt.Errorf("ci: %w", err)
	}
	s.setupDownload(mux)
	if err := s.setupConsole(mux, webAPI); err != nil {
		store.Close()
		return nil, fmt.Errorf("console: %w", err)
	}
	s.handler = reqbody.Handler(mux, cfg.BodyReadTimeout)
	return s, nil
}

// setupServices builds the OIDC issuer, the CA, the transparency log, the
// trusted root describing them and the TUF repository publishing it, in
// that order, on mux.
func (s *Server) setupServices(ctx context.Context, mux *http.ServeMux) error {
	if err := s.setupOIDC(ctx, mux); err != nil {
		return fmt.Errorf("oidc: %w", err)
	}
	if err := s.setupCA(ctx, mux); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if err := s.setupTlog(ctx, mux); err != nil {
		return fmt.Errorf("tlog: %w", err)
	}
	if err := s.setupTrust(ctx, mux); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	if err := s.setupTUF(ctx, mux); err != nil {
		return fmt.Errorf("tuf: %w", err)
	}
	return nil
}

// Handler returns the server's HTTP handler (for tests).
func (s *Server) Handler() http.Handler { return s.handler }

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the server's external base URL: --external-url, else
// http://<listen address>.
func (s *Server) URL() string { return s.url }

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.meta.Ping(ctx); err != nil {
		s.log.Error("readiness: database", "err", err)
		http.Error(w, "database not ready", http.StatusServiceUnavailable)
		return
	}
	if err := s.blobs.Ping(ctx); err != nil {
		s.log.Error("readiness: blob store", "err", err)
		http.Error(w, "blob store not ready", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n"))
}

// Close releases the listener (if Run was not called) and the stores.
func (s *Server) Close() error {
	s.ln.Close()
	if s.debugLn != nil {
		s.debugLn.Close()
	}
	if c, ok := s.blobs.(cachedBlobs); ok {
		c.cache.Close()
	}
	return s.meta.Close()
}

// Run serves on the listener opened by New until ctx is done, then drains
// in-flight requests for up to ShutdownTimeout. ready, if not nil, receives
// the bound address once serving starts.
func (s *Server) Run(ctx context.Context, ready func(addr net.Addr)) error {
	ln := s.ln
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	fresh := trackFreshConns(srv)
	ictx, stopIndex := context.WithCancel(ctx)
	indexDone := make(chan struct{})
	go func() { s.indexer.Run(ictx); close(indexDone) }()
	defer func() { stopIndex(); <-indexDone }()
	go s.janitor(ctx)
	go s.collect(ctx)
	go s.maintainTUF(ctx)
	go s.sweepBudgets(ctx)
	if s.debugLn != nil {
		go s.serveDebug(ctx)
	}
	s.log.Info("hallmark server listening", "addr", ln.Addr().String(), "data_dir", s.cfg.DataDir)
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	go fresh.closeSpares(sctx)
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) janitor(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := s.blobs.PurgeUploads(ctx, s.cfg.UploadTTL); err != nil {
			s.log.Warn("purging abandoned uploads", "err", err)
		} else if n > 0 {
			s.log.Info("purged abandoned uploads", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// freshConns tracks connections that have not yet started a request. At
// shutdown, http.Server counts such a connection as busy for 5 s (a request
// may be on its way); clients such as go-containerregistry open spare
// connections they never use, which would hold every shutdown that long.
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]time.Time // when the connection was accepted
}

// spareAfter is how long a connection may stay without a request before
// shutdown treats it as a spare: a client that connects to send a request
// writes it at once.
const spareAfter = time.Second

func trackFreshConns(srv *http.Server) *freshConns {
	f := &freshConns{conns: map[net.Conn]time.Time{}}
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		f.mu.Lock()
		if st == http.StateNew {
			f.conns[c] = time.Now()
		} else {
			delete(f.conns, c)
		}
		f.mu.Unlock()
		if prev != nil {
			prev(c, st)
		}
	}
	return f
}

// closeSpares closes, until ctx is done, every connection that has been
// without a request for spareAfter. Nothing is in flight on them.
func (f *freshConns) closeSpares(ctx context.Context) {
	t := time.NewTicker(spareAfter / 4)
	defer t.Stop()
	for {
		now := time.Now()
		f.mu.Lock()
		for c, since := range f.conns {
			if now.Sub(since) >= spareAfter {
				c.Close()
				delete(f.conns, c)
			}
		}
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// privateDir makes the data dir accessible to its owner only: it holds the
// database (password hashes, tokens' hashes, the audit log) and keys.
func privateDir(dir string, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, perm&0o700); err != nil {
			return fmt.Errorf("data dir %s is accessible to other users (mode %04o) and cannot be made private: %w", dir, perm, err)
		}
		log.Warn("data dir was accessible to other users; made it private to its owner", "dir", dir, "old_mode", fmt.Sprintf("%04o", perm), "new_mode", fmt.Sprintf("%04o", perm&0o700))
	}
	return nil
}
