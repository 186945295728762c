package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/oidc"
	"github.com/hallmark-dev/hallmark/internal/periodic"
	"github.com/hallmark-dev/hallmark/internal/registry"
)

// AdminPasswordFile is the name, in the data dir, of the generated password
// of the bootstrap "admin" account.
const AdminPasswordFile = "admin-password"

// Auth routes.
const (
	TokenPath     = "/auth/token"
	AuditPath     = "/api/v1/audit"
	JobTokensPath = "/api/v1/ci/job-tokens"
	// JobTokenRevokePath revokes a CI job token (admin, maintainer, or the
	// job itself at its end with its own token).
	JobTokenRevokePath = JobTokensPath + "/revoke"
)

// setupAuth builds the auth service when --auth=on or token: the registry
// token signing key (data dir keys/registry-token.pem, ES256), the
// bootstrap admin account, the external token service (token), and the
// service itself. With auth off it does nothing. It must run before the
// registry handler is built (the audit log hooks its events).
func (s *Server) setupAuth(ctx context.Context, store auth.Store) error {
	if s.cfg.Auth == "off" {
		s.log.WarnContext(ctx, "auth is OFF: anyone who can reach this address may push, overwrite and delete images", "addr", s.ln.Addr().String())
		return nil
	}
	key, err := keystore.LoadOrCreate(ctx, s.keys, "registry-token", keystore.ECDSAP256)
	if err != nil {
		return err
	}
	u, err := url.Parse(s.url)
	if err != nil || u.Host == "" {
		return fmt.Errorf("auth: external URL %q has no host", s.url)
	}
	service := u.Host
	signer, err := auth.NewTokenSigner(key, s.url+"/auth", service)
	if err != nil {
		return err
	}
	var verifier auth.OIDCVerifier
	if s.oidcVerifier != nil {
		verifier = oidcLogin{s.oidcVerifier}
	} else {
		verifier = &lateOIDC{s: s}
	}
	builtinIssuer := ""
	if s.cfg.OIDCBuiltin {
		builtinIssuer = s.url
	}
	proxies, err := auth.ParseTrustedProxies(s.cfg.TrustedProxies)
	if err != nil {
		return err
	}
	external, err := s.externalTokens()
	if err != nil {
		return err
	}
	adminTokenPath := filepath.Join(s.cfg.DataDir, AdminTokenFile)
	var budgets auth.BudgetStore // in memory, unless replicas share PostgreSQL
	if s.cfg.DatabaseURL != "" {
		budgets, _ = store.(auth.BudgetStore)
	}
	svc, err := auth.New(store, signer, verifier, s.log, auth.Config{
		External:       external,
		Budgets:        budgets,
		TrustedProxies: proxies,
		Issuer:         s.url + "/auth",
		Realm:          s.url + TokenPath,
		Service:        service,
		OIDCAudience:   s.url,
		BuiltinIssuer:  builtinIssuer,
		AdminToken:     func() (string, error) { return readAdminToken(adminTokenPath) },
	})
	if err != nil {
		return err
	}
	pwFile := filepath.Join(s.cfg.DataDir, AdminPasswordFile)
	created, err := (&auth.Admin{Store: store}).EnsureAdmin(ctx, func(ctx context.Context) (string, error) {
		// A password file put there before the first start is the
		// password; else one is generated. Replicas agree on one.
		return s.sharedSecret(ctx, AdminPasswordFile, func() (string, error) {
			if pw, err := readSecret(pwFile); !errors.Is(err, fs.ErrNotExist) {
				return pw, err
			}
			return auth.GeneratePassword(), nil
		}, false)
	})
	if err != nil {
		return fmt.Errorf("auth: bootstrap admin account: %w", err)
	}
	if created {
		s.log.WarnContext(ctx, "created the admin account; its generated password is in the password file (0600)", "user", "admin", "password_file", pwFile)
		fmt.Fprintf(os.Stderr, "hallmark: created user \"admin\"; its password is in %s (mode 0600). Log in with:\n  hallmark login -u admin --password-stdin %s < %s\n",
			pwFile, u.Host, pwFile)
	}
	s.auth = svc
	if external != nil {
		s.log.InfoContext(ctx, "auth is on with an external token service: /v2/ accepts only its tokens", "token_realm", external.Realm(),
			"service", external.Service(), "issuer", s.cfg.TokenIssuer, "key_ids", external.KeyIDs())
		return nil
	}
	s.log.InfoContext(ctx, "auth is on", "token_realm", s.url+TokenPath, "service", service)
	return nil
}

// externalTokens loads the external token service of --auth=token (nil
// otherwise).
func (s *Server) externalTokens() (*auth.ExternalTokens, error) {
	if s.cfg.Auth != "token" {
		return nil, nil
	}
	bundle, err := os.ReadFile(s.cfg.TokenCert)
	if err != nil {
		return nil, fmt.Errorf("token-cert: %w", err)
	}
	x, err := auth.NewExternalTokens(auth.ExternalConfig{Realm: s.cfg.TokenRealm, Service: s.cfg.TokenService,
		Issuer: s.cfg.TokenIssuer, Bundle: bundle})
	if err != nil {
		return nil, fmt.Errorf("token-cert %s: %w", s.cfg.TokenCert, err)
	}
	return x, nil
}

// budgetSweep is how often the failed-login budgets that are full again
// are dropped.
const budgetSweep = 5 * time.Minute

// sweepBudgets keeps the failed-login budgets bounded until ctx is done.
func (s *Server) sweepBudgets(ctx context.Context) {
	if s.auth == nil {
		return
	}
	periodic.Every(ctx, budgetSweep, func(ctx context.Context) {
		if _, err := s.auth.SweepBudgets(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "sweeping failed-login budgets", "err", err)
		}
	})
}

// Auth returns the auth service (nil when --auth=off), e.g. to mint CI job
// tokens in process.
func (s *Server) Auth() *auth.Service { return s.auth }

// registryEvents is the registry's event sink: the indexer, plus the audit
// log when auth is on.
func (s *Server) registryEvents(indexer registry.EventSink) registry.EventSink {
	if s.auth == nil {
		return indexer
	}
	return fanout{indexer, s.auth.EventSink()}
}

type fanout []registry.EventSink

func (f fanout) ManifestPushed(ctx context.Context, m *meta.Manifest, tags []string) {
	for _, s := range f {
		s.ManifestPushed(ctx, m, tags)
	}
}

func (f fanout) ManifestDeleted(ctx context.Context, repo, reference string) {
	for _, s := range f {
		s.ManifestDeleted(ctx, repo, reference)
	}
}

// PullPolicyApplied forwards to the sinks that have the ability.
func (f fanout) PullPolicyApplied(ctx context.Context, repo string, d digest.Digest, outcome string, refused bool, detail string) {
	for _, s := range f {
		if ps, ok := s.(registry.PullPolicySink); ok {
			ps.PullPolicyApplied(ctx, repo, d, outcome, refused, detail)
		}
	}
}

// protectRegistry puts the token check in front of the registry handler.
func (s *Server) protectRegistry(h http.Handler) http.Handler {
	if s.auth == nil {
		return h
	}
	return s.auth.Guard(h, registry.ParseEndpoint)
}

// registerAuth mounts the token endpoint (not with an external token
// service: its tokens would not open /v2/) and the admin API.
func (s *Server) registerAuth(mux *http.ServeMux, m *metrics) {
	if s.auth == nil {
		return
	}
	if s.cfg.Auth != "token" {
		mux.Handle(TokenPath, m.instrument("auth_token", s.auth.TokenHandler()))
	}
	mux.Handle("GET "+AuditPath, m.instrument("audit", s.auth.RequireAdmin(s.auth.AuditHandler())))
	mux.Handle("POST "+JobTokensPath, m.instrument("job_tokens", s.auth.RequireAdmin(s.auth.JobTokenHandler())))
	mux.Handle("POST "+JobTokenRevokePath, m.instrument("job_token_revoke", s.auth.JobTokenRevokeHandler()))
}

// readAdminToken reads the admin token written by the OIDC setup (absent
// when the built-in issuer is off).
func readAdminToken(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(raw))
	if len(tok) < 16 {
		return "", nil
	}
	return tok, nil
}

// oidcLogin adapts the OIDC verifier to auth.OIDCVerifier. Only CI
// pipeline tokens (GitLab's claim set: project_path) may log in.
type oidcLogin struct{ v *oidc.Verifier }

func (o oidcLogin) VerifyLogin(ctx context.Context, raw, audience string) (auth.OIDCIdentity, error) {
	tok, err := o.v.Verify(ctx, raw, audience)
	if err != nil {
		return auth.OIDCIdentity{}, err
	}
	if tok.IssuerType != oidc.TypeGitLab {
		return auth.OIDCIdentity{}, fmt.Errorf("issuer %s is of type %s; only %s issuers map tokens to projects", tok.Issuer, tok.IssuerType, oidc.TypeGitLab)
	}
	id := auth.OIDCIdentity{Issuer: tok.Issuer, Subject: tok.Subject, Expiry: tok.Expiry}
	id.ProjectPath, _ = tok.StringClaim("project_path")
	id.JobID, _ = tok.StringClaim("job_id")
	id.User, _ = tok.StringClaim("user_login")
	return id, nil
}

// lateOIDC resolves the OIDC verifier on first use: setupAuth runs before
// setupOIDC (the registry needs the audit sink first), so the verifier may
// not exist yet when the auth service is built.
type lateOIDC struct {
	s    *Server
	once sync.Once
	v    auth.OIDCVerifier
}

var errNoOIDC = errors.New("no OIDC issuer is configured (built-in issuer off and no --oidc-issuer)")

func (l *lateOIDC) VerifyLogin(ctx context.Context, raw, audience string) (auth.OIDCIdentity, error) {
	l.once.Do(func() {
		if l.s.oidcVerifier != nil {
			l.v = oidcLogin{l.s.oidcVerifier}
		}
	})
	if l.v == nil {
		return auth.OIDCIdentity{}, errNoOIDC
	}
	return l.v.VerifyLogin(ctx, raw, audience)
}

// scheme is the URL scheme the server speaks.
func scheme(cfg config.Server) string {
	if cfg.TLSCert != "" {
		return "https"
	}
	return "http"
}

// listenTLS wraps ln in TLS when --tls-cert/--tls-key are set. The key pair
// is loaded here so a bad file stops the start with a clear error.
func listenTLS(cfg config.Server, ln net.Listener) (net.Listener, error) {
	if cfg.TLSCert == "" {
		return ln, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("tls-cert %s / tls-key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
	}
	return tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}), nil
}
