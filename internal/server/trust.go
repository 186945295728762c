package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/root"
)

// Paths of the trust distribution endpoints.
const (
	TrustedRootPath   = "/api/v1/trusted_root.json"
	SigningConfigPath = "/api/v1/signing_config.json"
)

// TrustDir is the directory, in the data dir, where the server keeps the
// trust material it serves (for offline copying and `hallmark trust export
// --data-dir`).
const TrustDir = "trust"

// trust is the trust material the server publishes, encoded once, and
// what its indexer verifies with.
type trust struct {
	trustedRoot   []byte
	signingConfig []byte
	fingerprint   string         // root.Fingerprint(trustedRoot)
	material      *root.Material // the published trusted root, for verification
}

// setupTrust builds trusted_root.json and signing_config.json from the CA,
// the transparency log and the built-in OIDC issuer, writes them (and
// cosign v2's legacy PEM files) to <data-dir>/trust, logs the trusted root's
// fingerprint for `hallmark trust init --fingerprint`, and serves both
// files. It runs after setupTlog.
func (s *Server) setupTrust(ctx context.Context, mux *http.ServeMux) error {
	if s.ca == nil || s.tlog == nil {
		return errors.New("trust distribution needs the CA and the transparency log: setupCA and setupTlog must run first")
	}
	tr, t, err := s.buildTrust()
	if err != nil {
		return err
	}
	if err := writeTrustFiles(filepath.Join(s.cfg.DataDir, TrustDir), tr, t); err != nil {
		return fmt.Errorf("writing the trust files: %w", err)
	}
	mux.Handle("GET "+TrustedRootPath, s.metrics.instrument("trusted_root", serveStatic(t.trustedRoot, t.fingerprint)))
	mux.Handle("GET "+SigningConfigPath, s.metrics.instrument("signing_config", serveStatic(t.signingConfig, root.Fingerprint(t.signingConfig))))
	s.trust = t
	s.log.InfoContext(ctx, "trust: publishing trusted root", "url", s.url+TrustedRootPath,
		"sha256", t.fingerprint, "pin", "hallmark trust init --server "+s.url+" --fingerprint "+t.fingerprint)
	return nil
}

// buildTrust describes the server's CA, CT log and transparency log as a
// trusted root, and the server as CA, OIDC issuer and Rekor v1 log in a
// signing config, and encodes both. Everything in them is persistent (keys,
// certificates, the log's creation time), so the bytes only change with the
// external URL or a CA rotation.
func (s *Server) buildTrust() (*root.TrustedRoot, *trust, error) {
	chain := s.ca.Chain()
	caRoot := chain[len(chain)-1]
	caStart := caRoot.NotBefore
	// Every CA generation, the older ones valid until the next took over
	// (`hallmark ca rotate`), so that what they issued keeps verifying.
	gens := s.ca.Generations()
	var cas []root.CertificateAuthority
	for _, g := range gens {
		ca := root.NewCA(s.url, g.Chain, g.Chain[len(g.Chain)-1].NotBefore)
		if !g.Until.IsZero() {
			end := g.Until.UTC().Truncate(time.Second)
			ca.ValidFor.End = &end
		}
		cas = append(cas, ca)
	}
	tl, err := root.NewLog(s.url, s.tlog.PublicKey(), s.tlog.CreatedAt())
	if err != nil {
		return nil, nil, fmt.Errorf("transparency log key: %w", err)
	}
	if id := s.tlog.LogID(); string(id[:]) != string(tl.LogID.KeyID) {
		return nil, nil, errors.New("the transparency log's ID is not the SHA-256 of its public key")
	}
	// The CT log key is created with the first CA generation (and kept
	// across rotations), so it is valid from that root's NotBefore on.
	firstRoot := gens[0].Chain[len(gens[0].Chain)-1]
	ct, err := root.NewLog(s.url, s.ca.CTLogPublicKey(), firstRoot.NotBefore)
	if err != nil {
		return nil, nil, fmt.Errorf("CT log key: %w", err)
	}
	if id := s.ca.CTLogID(); string(id[:]) != string(ct.LogID.KeyID) {
		return nil, nil, errors.New("the CT log's ID is not the SHA-256 of its public key")
	}
	tr := &root.TrustedRoot{
		MediaType:              root.TrustedRootMediaType,
		Tlogs:                  []root.TransparencyLog{tl},
		CertificateAuthorities: cas,
		Ctlogs:                 []root.TransparencyLog{ct},
	}
	operator := s.url
	if u, err := url.Parse(s.url); err == nil && u.Host != "" {
		operator = u.Host
	}
	sc := &root.SigningConfig{
		MediaType:       root.SigningConfigMediaType,
		CAURLs:          []root.Service{root.NewService(s.url, operator, caStart)},
		OIDCURLs:        []root.Service{},
		RekorTlogURLs:   []root.Service{root.NewService(s.url, operator, s.tlog.CreatedAt())},
		RekorTlogConfig: &root.ServiceConfig{Selector: root.SelectorAny},
		TSAURLs:         []root.Service{},
	}
	if s.oidcIssuer != nil {
		sc.OIDCURLs = append(sc.OIDCURLs, root.NewService(s.oidcIssuer.URL(), operator, caStart))
	}
	// What we serve must be what clients accept: round-trip it.
	t := &trust{}
	if t.trustedRoot, err = tr.Marshal(); err == nil {
		_, err = root.Parse(t.trustedRoot)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("built an invalid trusted root: %w", err)
	}
	if t.signingConfig, err = sc.Marshal(); err == nil {
		var parsed *root.SigningConfig
		if parsed, err = root.ParseSigningConfig(t.signingConfig); err == nil {
			err = parsed.CheckAgainst(tr)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("built an invalid signing config: %w", err)
	}
	t.fingerprint = root.Fingerprint(t.trustedRoot)
	if t.material, err = tr.Material(); err != nil {
		return nil, nil, fmt.Errorf("built a trusted root that cannot verify: %w", err)
	}
	return tr, t, nil
}

// writeTrustFiles keeps the served files, and cosign v2's legacy PEM files,
// in dir (public material: 0644).
func writeTrustFiles(dir string, tr *root.TrustedRoot, t *trust) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	legacy := tr.Legacy()
	for name, data := range map[string][]byte{
		root.TrustedRootFile:   t.trustedRoot,
		root.SigningConfigFile: t.signingConfig,
		root.FulcioChainFile:   legacy.FulcioChain,
		root.RekorKeyFile:      legacy.RekorKey,
		root.CTLogKeyFile:      legacy.CTLogKey,
	} {
		if err := root.WriteFileAtomic(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// serveStatic serves fixed JSON bytes with a strong ETag.
func serveStatic(body []byte, sum string) http.Handler {
	etag := `"` + sum + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("ETag", etag)
		h.Set("Cache-Control", "no-cache")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body)
	})
}

// TrustedRootFingerprint is the SHA-256 (hex) of the served
// trusted_root.json, the value `hallmark trust init --fingerprint` pins.
func (s *Server) TrustedRootFingerprint() string {
	if s.trust == nil {
		return ""
	}
	return s.trust.fingerprint
}
