package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/hallmark-dev/hallmark/internal/oidc"
)

// AdminTokenFile is the name, in the data dir, of the admin token that
// authorises minting OIDC tokens and rotating the issuer key.
const AdminTokenFile = "admin-token"

// setupOIDC builds the built-in OIDC issuer (unless disabled) and the
// verifier for trusted issuers, and registers the issuer's routes:
// discovery, JWKS, and the admin-authorised mint and rotate endpoints.
func (s *Server) setupOIDC(ctx context.Context, mux *http.ServeMux) error {
	cfg := s.cfg
	if cfg.OIDCBuiltin {
		iss, err := oidc.NewIssuer(ctx, s.log, s.keys, oidc.IssuerConfig{
			URL:            s.url,
			DefaultTTL:     cfg.OIDCTokenTTL,
			MaxTTL:         cfg.OIDCMaxTokenTTL,
			RotationPeriod: cfg.OIDCKeyRotation,
		})
		if err != nil {
			return err
		}
		admin, err := s.adminToken(ctx)
		if err != nil {
			return err
		}
		var adminCheck oidc.AdminCheck
		if s.auth != nil {
			adminCheck = func(r *http.Request) error {
				_, err := s.auth.AdminAuthorized(r)
				return err
			}
		}
		h, err := oidc.NewHandler(iss, s.log, admin, adminCheck)
		if err != nil {
			return err
		}
		wrap := s.metrics.instrument
		mux.Handle("GET "+oidc.DiscoveryPath, wrap("oidc_discovery", http.HandlerFunc(h.Discovery)))
		mux.Handle("GET "+oidc.JWKSPath, wrap("oidc_jwks", http.HandlerFunc(h.JWKS)))
		mux.Handle("POST "+oidc.MintPath, wrap("oidc_token", http.HandlerFunc(h.Mint)))
		mux.Handle("POST "+oidc.RotatePath, wrap("oidc_rotate_key", http.HandlerFunc(h.Rotate)))
		s.oidcIssuer = iss
	}
	var trusted []oidc.TrustedIssuer
	for _, o := range cfg.OIDCIssuers {
		ti := oidc.TrustedIssuer{URL: o.URL, Type: o.Type, SubjectClaim: o.SubjectClaim}
		if o.CACert != "" {
			pem, err := os.ReadFile(o.CACert)
			if err != nil {
				return fmt.Errorf("oidc-issuer %s: ca-cert: %w", o.URL, err)
			}
			ti.CACerts = pem
		}
		trusted = append(trusted, ti)
	}
	v, err := oidc.NewVerifier(s.log, s.oidcIssuer, oidc.VerifierConfig{Issuers: trusted, KeySetTTL: cfg.OIDCJWKSCacheTTL})
	if err != nil {
		return err
	}
	s.oidcVerifier = v
	for _, i := range v.Issuers() {
		s.log.InfoContext(ctx, "oidc: trusting issuer", "issuer", i.URL, "type", i.Type, "builtin", i.BuiltIn)
	}
	return nil
}

// adminToken returns the admin token, generating a random one on first
// start (see sharedSecret: <data-dir>/admin-token, or shared by replicas
// in the database with a copy there).
func (s *Server) adminToken(ctx context.Context) (string, error) {
	tok, err := s.sharedSecret(ctx, AdminTokenFile, func() (string, error) {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		return "hmadm_" + base64.RawURLEncoding.EncodeToString(b), nil
	}, true)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if len(tok) < 16 {
		return "", fmt.Errorf("admin token %s is shorter than 16 characters; delete it to have a new one generated", filepath.Join(s.cfg.DataDir, AdminTokenFile))
	}
	return tok, nil
}
