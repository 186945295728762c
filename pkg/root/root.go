package root

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Media types accepted by sigstore clients.
const (
	TrustedRootMediaType   = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
	SigningConfigMediaType = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
)

// TrustedRoot is sigstore's trusted_root.json (protojson field names).
type TrustedRoot struct {
	MediaType              string                 `json:"mediaType"`
	Tlogs                  []TransparencyLog      `json:"tlogs"`
	CertificateAuthorities []CertificateAuthority `json:"certificateAuthorities"`
	Ctlogs                 []TransparencyLog      `json:"ctlogs"`
	TimestampAuthorities   []CertificateAuthority `json:"timestampAuthorities,omitempty"`
}

// TransparencyLog describes a Rekor or CT log.
type TransparencyLog struct {
	BaseURL       string    `json:"baseUrl"`
	HashAlgorithm string    `json:"hashAlgorithm"`
	PublicKey     PublicKey `json:"publicKey"`
	LogID         LogID     `json:"logId"`
}

// PublicKey is a DER SubjectPublicKeyInfo with its details.
type PublicKey struct {
	RawBytes   []byte   `json:"rawBytes"`
	KeyDetails string   `json:"keyDetails"`
	ValidFor   Validity `json:"validFor"`
}

// LogID is the SHA-256 of the log key's DER SubjectPublicKeyInfo.
type LogID struct {
	KeyID []byte `json:"keyId"`
}

// Validity is a time range; End is optional.
type Validity struct {
	Start time.Time  `json:"start"`
	End   *time.Time `json:"end,omitempty"`
}

// CertificateAuthority is a CA (or TSA) with its chain, root last.
type CertificateAuthority struct {
	Subject   Subject   `json:"subject"`
	URI       string    `json:"uri"`
	CertChain CertChain `json:"certChain"`
	ValidFor  Validity  `json:"validFor"`
}

// Subject names a CA.
type Subject struct {
	Organization string `json:"organization,omitempty"`
	CommonName   string `json:"commonName,omitempty"`
}

// CertChain is a list of DER certificates.
type CertChain struct {
	Certificates []RawCert `json:"certificates"`
}

// RawCert is one DER certificate.
type RawCert struct {
	RawBytes []byte `json:"rawBytes"`
}

// KeyDetails returns the sigstore key-details name of pub.
func KeyDetails(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "PKIX_ECDSA_P256_SHA_256", nil
		case elliptic.P384():
			return "PKIX_ECDSA_P384_SHA_384", nil
		case elliptic.P521():
			return "PKIX_ECDSA_P521_SHA_512", nil
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return "PKIX_RSA_PKCS1V15_2048_SHA256", nil
		case 3072:
			return "PKIX_RSA_PKCS1V15_3072_SHA256", nil
		case 4096:
			return "PKIX_RSA_PKCS1V15_4096_SHA256", nil
		}
	case ed25519.PublicKey:
		return "PKIX_ED25519", nil
	}
	return "", fmt.Errorf("unsupported log key type %T", pub)
}

// NewLog describes a log with key pub at baseURL, valid from start.
func NewLog(baseURL string, pub crypto.PublicKey, start time.Time) (TransparencyLog, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return TransparencyLog{}, err
	}
	details, err := KeyDetails(pub)
	if err != nil {
		return TransparencyLog{}, err
	}
	id := sha256.Sum256(der)
	return TransparencyLog{BaseURL: baseURL, HashAlgorithm: "SHA2_256",
		PublicKey: PublicKey{RawBytes: der, KeyDetails: details, ValidFor: Validity{Start: start.UTC()}},
		LogID:     LogID{KeyID: id[:]}}, nil
}

// NewCA describes a CA at uri whose chain is given leaf-most first, root last.
func NewCA(uri string, chain []*x509.Certificate, start time.Time) CertificateAuthority {
	ca := CertificateAuthority{URI: uri, ValidFor: Validity{Start: start.UTC()}}
	if len(chain) > 0 {
		r := chain[len(chain)-1]
		ca.Subject = Subject{CommonName: r.Subject.CommonName}
		if len(r.Subject.Organization) > 0 {
			ca.Subject.Organization = r.Subject.Organization[0]
		}
	}
	for _, c := range chain {
		ca.CertChain.Certificates = append(ca.CertChain.Certificates, RawCert{RawBytes: c.Raw})
	}
	return ca
}

// Parse parses and validates a trusted_root.json.
func Parse(b []byte) (*TrustedRoot, error) {
	var tr TrustedRoot
	if err := json.Unmarshal(b, &tr); err != nil {
		return nil, fmt.Errorf("trusted root is not valid JSON: %w", err)
	}
	if tr.MediaType != TrustedRootMediaType {
		return nil, fmt.Errorf("trusted root media type %q is not %q", tr.MediaType, TrustedRootMediaType)
	}
	for i, l := range append(append([]TransparencyLog{}, tr.Tlogs...), tr.Ctlogs...) {
		if l.HashAlgorithm != "SHA2_256" {
			return nil, fmt.Errorf("log %d (%s): hash algorithm %q is not SHA2_256", i, l.BaseURL, l.HashAlgorithm)
		}
		pub, err := x509.ParsePKIXPublicKey(l.PublicKey.RawBytes)
		if err != nil {
			return nil, fmt.Errorf("log %d (%s): public key: %w", i, l.BaseURL, err)
		}
		der, _ := x509.MarshalPKIXPublicKey(pub)
		if id := sha256.Sum256(der); string(id[:]) != string(l.LogID.KeyID) {
			return nil, fmt.Errorf("log %d (%s): logId does not match the SHA-256 of its public key", i, l.BaseURL)
		}
	}
	for i, ca := range tr.CertificateAuthorities {
		if len(ca.CertChain.Certificates) == 0 {
			return nil, fmt.Errorf("certificate authority %d (%s) has no certificates", i, ca.URI)
		}
		for j, c := range ca.CertChain.Certificates {
			if _, err := x509.ParseCertificate(c.RawBytes); err != nil {
				return nil, fmt.Errorf("certificate authority %d (%s), certificate %d: %w", i, ca.URI, j, err)
			}
		}
	}
	return &tr, nil
}

// Marshal encodes the trusted root as JSON.
func (tr *TrustedRoot) Marshal() ([]byte, error) { return json.MarshalIndent(tr, "", "  ") }

// Material is a trusted root turned into what verification uses.
type Material struct {
	Roots         *x509.CertPool
	Intermediates *x509.CertPool
	// TlogKeys and CTLogKeys map hex log IDs to keys.
	TlogKeys  map[string]crypto.PublicKey
	CTLogKeys map[string]crypto.PublicKey
}

// Material returns the pools and keys of tr.
func (tr *TrustedRoot) Material() (*Material, error) {
	m := &Material{Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool(),
		TlogKeys: map[string]crypto.PublicKey{}, CTLogKeys: map[string]crypto.PublicKey{}}
	for _, ca := range tr.CertificateAuthorities {
		n := len(ca.CertChain.Certificates)
		for j, rc := range ca.CertChain.Certificates {
			c, err := x509.ParseCertificate(rc.RawBytes)
			if err != nil {
				return nil, err
			}
			if j == n-1 {
				m.Roots.AddCert(c)
			} else {
				m.Intermediates.AddCert(c)
			}
		}
	}
	add := func(dst map[string]crypto.PublicKey, logs []TransparencyLog) error {
		for _, l := range logs {
			pub, err := x509.ParsePKIXPublicKey(l.PublicKey.RawBytes)
			if err != nil {
				return err
			}
			dst[fmt.Sprintf("%x", l.LogID.KeyID)] = pub
		}
		return nil
	}
	if err := add(m.TlogKeys, tr.Tlogs); err != nil {
		return nil, err
	}
	if err := add(m.CTLogKeys, tr.Ctlogs); err != nil {
		return nil, err
	}
	if len(tr.CertificateAuthorities) == 0 && len(tr.Tlogs) == 0 {
		return nil, errors.New("trusted root has neither certificate authorities nor transparency logs")
	}
	return m, nil
}

// SigningConfig is sigstore's signing_config.v0.2.json.
type SigningConfig struct {
	MediaType       string         `json:"mediaType"`
	CAURLs          []Service      `json:"caUrls"`
	OIDCURLs        []Service      `json:"oidcUrls"`
	RekorTlogURLs   []Service      `json:"rekorTlogUrls"`
	TSAURLs         []Service      `json:"tsaUrls"`
	RekorTlogConfig *ServiceConfig `json:"rekorTlogConfig,omitempty"`
	TSAConfig       *ServiceConfig `json:"tsaConfig,omitempty"`
}

// Service is one endpoint in a signing config.
type Service struct {
	URL             string   `json:"url"`
	MajorAPIVersion int      `json:"majorApiVersion"`
	ValidFor        Validity `json:"validFor"`
	Operator        string   `json:"operator"`
}

// ServiceConfig selects among services.
type ServiceConfig struct {
	Selector string `json:"selector"`
}

// NewSigningConfig describes one server that is CA, OIDC issuer and
// Rekor v1 log at baseURL.
func NewSigningConfig(baseURL, operator string, start time.Time) *SigningConfig {
	svc := []Service{{URL: baseURL, MajorAPIVersion: 1, ValidFor: Validity{Start: start.UTC()}, Operator: operator}}
	return &SigningConfig{MediaType: SigningConfigMediaType, CAURLs: svc, OIDCURLs: svc, RekorTlogURLs: svc,
		TSAURLs: []Service{}, RekorTlogConfig: &ServiceConfig{Selector: "ANY"}, TSAConfig: &ServiceConfig{Selector: "ANY"}}
}
