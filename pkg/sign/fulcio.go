package sign

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ErrCertificate is wrapped by errors getting a certificate from the CA.
var ErrCertificate = errors.New("getting a signing certificate failed")

// maxCertResponse bounds a CA response.
const maxCertResponse = 1 << 20

// Fulcio requests short-lived signing certificates from a Fulcio
// compatible CA over its v1 API (POST /api/v1/signingCert), as cosign v2
// does.
type Fulcio struct {
	URL        string
	HTTPClient *http.Client
}

// CertificateChain is what the CA returned: the leaf and the rest of the
// chain (intermediates..root) as PEM, exactly as received, and the
// detached SCT header, if any.
type CertificateChain struct {
	Leaf        *x509.Certificate
	LeafPEM     []byte
	ChainPEM    []byte
	Chain       []*x509.Certificate
	DetachedSCT []byte
}

// SigningCert asks the CA for a certificate of key's public key for the
// identity in token, proving possession of key by signing the token's
// subject (its verified email, else sub).
func (f *Fulcio) SigningCert(ctx context.Context, token string, key *ecdsa.PrivateKey) (*CertificateChain, error) {
	subject, err := TokenSubject(token)
	if err != nil {
		return nil, err
	}
	pubPEM, err := PublicKeyPEM(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte(subject))
	proof, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		return nil, err
	}
	var body struct {
		PublicKey struct {
			Content []byte `json:"content"`
		} `json:"publicKey"`
		SignedEmailAddress []byte `json:"signedEmailAddress"`
		CSR                []byte `json:"certificateSigningRequest"`
	}
	body.PublicKey.Content, body.SignedEmailAddress = pubPEM, proof
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	url := strings.TrimRight(f.URL, "/") + "/api/v1/signingCert"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/pem-certificate-chain")
	req.Header.Set("Authorization", "Bearer "+token)
	client := f.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCertificate, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxCertResponse))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the response of %s: %w", ErrCertificate, url, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("%w: POST %s returned %s: %q", ErrCertificate, url, resp.Status, strings.TrimSpace(string(raw)))
	}
	cc, err := ParseCertificateChain(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCertificate, url, err)
	}
	if sct := resp.Header.Get("SCT"); sct != "" {
		if cc.DetachedSCT, err = base64.StdEncoding.DecodeString(sct); err != nil {
			return nil, fmt.Errorf("%w: %s: the SCT header is not base64", ErrCertificate, url)
		}
	}
	if pk, ok := cc.Leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pk.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("%w: %s returned a certificate for another key", ErrCertificate, url)
	}
	return cc, nil
}

// ParseCertificateChain splits a PEM chain as cosign does: the first block
// is the leaf, the rest (kept verbatim) the chain.
func ParseCertificateChain(raw []byte) (*CertificateChain, error) {
	block, rest := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("the response holds no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the certificate does not parse: %v", err)
	}
	cc := &CertificateChain{Leaf: leaf, LeafPEM: pem.EncodeToMemory(block), ChainPEM: bytes.TrimLeft(rest, "\n")}
	for b := rest; ; {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("a chain certificate does not parse: %v", err)
		}
		cc.Chain = append(cc.Chain, c)
		if len(cc.Chain) > 10 {
			return nil, errors.New("the chain has more than 10 certificates")
		}
	}
	return cc, nil
}

// TokenSubject returns the identity a CA checks proof of possession
// against: the email claim when present (it must be verified), else sub.
// The token is not verified here; the CA does that.
func TokenSubject(raw string) (string, error) {
	c, err := tokenClaims(raw)
	if err != nil {
		return "", err
	}
	if c.Email != "" {
		if v := fmt.Sprint(c.EmailVerified); v != "true" {
			return "", fmt.Errorf("identity token email %q is not verified by the identity provider", c.Email)
		}
		return c.Email, nil
	}
	if c.Sub == "" {
		return "", errors.New("identity token has neither an email nor a sub claim")
	}
	return c.Sub, nil
}

type idClaims struct {
	Iss           string `json:"iss"`
	Sub           string `json:"sub"`
	Email         string `json:"email"`
	EmailVerified any    `json:"email_verified"`
	Exp           int64  `json:"exp"`
}

// tokenClaims decodes (without verifying) the payload of a JWT.
func tokenClaims(raw string) (*idClaims, error) {
	parts := strings.Split(strings.TrimSpace(raw), ".")
	if len(parts) != 3 {
		return nil, errors.New("identity token is not a JWT (want three dot-separated parts)")
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, fmt.Errorf("identity token payload is not base64url: %w", err)
	}
	var c idClaims
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("identity token payload is not JSON: %w", err)
	}
	return &c, nil
}

// TokenIssuer returns the iss claim of a JWT (not verified).
func TokenIssuer(raw string) string {
	c, err := tokenClaims(raw)
	if err != nil {
		return ""
	}
	return c.Iss
}

// IsRS256JWT reports whether s parses as a compact JWS whose header names
// alg RS256. cosign treats any other --identity-token value as a file path.
func IsRS256JWT(s string) bool {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	if err != nil {
		return false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	return json.Unmarshal(b, &h) == nil && h.Alg == "RS256"
}
