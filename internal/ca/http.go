package ca

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/hallmark-dev/hallmark/internal/oidc"
)

// maxBody bounds a request body, as Fulcio's 4 MiB message limit.
const maxBody = 4 << 20

// pemChainType is the legacy API's response content type.
const pemChainType = "application/pem-certificate-chain"

// Route is one HTTP endpoint of the CA.
type Route struct {
	Pattern string // Go ServeMux pattern with method
	Label   string // metrics label
	Handler http.Handler
}

// Routes returns Fulcio's HTTP API: v2 (sigstore-go, cosign 3) and the
// legacy v1 (cosign 2.x).
func (c *CA) Routes() []Route {
	return []Route{
		{"POST /api/v1/signingCert", "fulcio_v1_signing_cert", http.HandlerFunc(c.serveV1SigningCert)},
		{"POST /api/v2/signingCert", "fulcio_v2_signing_cert", http.HandlerFunc(c.serveV2SigningCert)},
		{"GET /api/v2/trustBundle", "fulcio_trust_bundle", http.HandlerFunc(c.serveTrustBundle)},
		{"GET /api/v1/rootCert", "fulcio_root_cert", http.HandlerFunc(c.serveRootCert)},
		{"GET /api/v2/configuration", "fulcio_configuration", http.HandlerFunc(c.serveConfiguration)},
	}
}

// Register adds Routes to mux.
func (c *CA) Register(mux *http.ServeMux) {
	for _, r := range c.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) string {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, fmt.Errorf("%w: body larger than %d bytes", ErrInvalidRequest, maxBody)
		}
		return nil, fmt.Errorf("%w: reading body: %v", ErrInvalidRequest, err)
	}
	return body, nil
}

func (c *CA) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrInternal) || !isClassified(err) {
		c.log.ErrorContext(r.Context(), "certificate request failed", "path", r.URL.Path, "err", err)
	} else {
		c.log.InfoContext(r.Context(), "certificate request rejected", "path", r.URL.Path, "err", err)
	}
	writeError(w, err)
}

func isClassified(err error) bool {
	for _, m := range fulcioMessages {
		if errors.Is(err, m.err) {
			return true
		}
	}
	return false
}

// pemCert is a certificate as Fulcio returns it: PEM, whitespace-trimmed.
func pemCert(der []byte) string {
	return strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}

func (iss *Issued) pemChain() []string {
	out := []string{pemCert(iss.Leaf.Raw)}
	for _, c := range iss.Chain {
		out = append(out, pemCert(c.Raw))
	}
	return out
}

// serveV1SigningCert is the legacy API cosign 2.x calls: 201 with the PEM
// chain (leaf first). The SCT is embedded, so there is no SCT header (cosign
// then verifies the embedded one).
func (c *CA) serveV1SigningCert(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	kr, err := ParseV1Request(body)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	iss, err := c.Issue(r.Context(), bearerToken(r), kr)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", pemChainType)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, strings.Join(iss.pemChain(), "\n"))
}

type certificateChain struct {
	Certificates []string `json:"certificates"`
}

type signingCertificate struct {
	SignedCertificateEmbeddedSct *struct {
		Chain certificateChain `json:"chain"`
	} `json:"signedCertificateEmbeddedSct,omitempty"`
}

// serveV2SigningCert is the v2 API sigstore-go and cosign 3 call: 200 with
// a JSON SigningCertificate in the embedded-SCT flavour. The token comes
// from credentials.oidcIdentityToken, else the Authorization header.
func (c *CA) serveV2SigningCert(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	token, kr, err := ParseV2Request(body)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if token == "" {
		token = bearerToken(r)
	}
	iss, err := c.Issue(r.Context(), token, kr)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	var resp signingCertificate
	resp.SignedCertificateEmbeddedSct = &struct {
		Chain certificateChain `json:"chain"`
	}{Chain: certificateChain{Certificates: iss.pemChain()}}
	writeJSON(w, resp)
}

func chainPEM(chain []*x509.Certificate) []string {
	var out []string
	for _, cert := range chain {
		out = append(out, pemCert(cert.Raw)+"\n")
	}
	return out
}

// serveTrustBundle returns every CA generation's chain (intermediate,
// root), the current one first, as Fulcio lists its chains.
func (c *CA) serveTrustBundle(w http.ResponseWriter, _ *http.Request) {
	var chains []certificateChain
	for i := len(c.gens) - 1; i >= 0; i-- {
		chains = append(chains, certificateChain{Certificates: chainPEM(c.gens[i].Chain)})
	}
	writeJSON(w, map[string]any{"chains": chains})
}

// serveRootCert is the legacy trust endpoint: every CA certificate as PEM,
// the current generation's first.
func (c *CA) serveRootCert(w http.ResponseWriter, _ *http.Request) {
	var all []string
	for i := len(c.gens) - 1; i >= 0; i-- {
		all = append(all, chainPEM(c.gens[i].Chain)...)
	}
	w.Header().Set("Content-Type", pemChainType)
	io.WriteString(w, strings.TrimSpace(strings.Join(all, "")))
}

type oidcIssuerJSON struct {
	IssuerURL             string `json:"issuerUrl"`
	Audience              string `json:"audience"`
	ChallengeClaim        string `json:"challengeClaim"`
	SpiffeTrustDomain     string `json:"spiffeTrustDomain"`
	IssuerType            string `json:"issuerType"`
	SubjectDomain         string `json:"subjectDomain"`
	SkipEmailVerification bool   `json:"skipEmailVerification"`
}

// issuerLister is the optional ability of a verifier to list its issuers
// (*oidc.Verifier has it).
type issuerLister interface {
	Issuers() []oidc.IssuerInfo
}

// serveConfiguration lists the verifier's trusted OIDC issuers as Fulcio
// does, with the claim the proof of possession signs (sub, or email for an
// email issuer).
func (c *CA) serveConfiguration(w http.ResponseWriter, _ *http.Request) {
	list := []oidcIssuerJSON{}
	if l, ok := c.verifier.(issuerLister); ok {
		for _, i := range l.Issuers() {
			claim := "sub"
			if i.Type == oidc.TypeEmail {
				claim = "email"
			}
			list = append(list, oidcIssuerJSON{IssuerURL: i.URL, Audience: c.cfg.Audience, ChallengeClaim: claim, IssuerType: i.Type})
		}
	}
	writeJSON(w, map[string]any{"issuers": list})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
