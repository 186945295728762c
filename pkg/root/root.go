package root

import (
	"bytes"
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

// HashSHA256 is the only log hash algorithm sigstore clients accept.
const HashSHA256 = "SHA2_256"

// ErrInvalid is wrapped by every error about malformed or inconsistent
// trust material (trusted root or signing config).
var ErrInvalid = errors.New("invalid sigstore trust material")

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
	// CheckpointKeyID and Operator are optional (newer protobuf-specs);
	// Hallmark does not emit them but accepts files that carry them.
	CheckpointKeyID *LogID `json:"checkpointKeyId,omitempty"`
	Operator        string `json:"operator,omitempty"`
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

// Contains reports whether t is within the range (both ends inclusive, as
// sigstore-go's ValidAtTime).
func (v Validity) Contains(t time.Time) bool { return v.Window().Covers(t) }

// CertificateAuthority is a CA (or TSA) with its chain, root last.
type CertificateAuthority struct {
	Subject   Subject   `json:"subject"`
	URI       string    `json:"uri"`
	CertChain CertChain `json:"certChain"`
	ValidFor  Validity  `json:"validFor"`
	Operator  string    `json:"operator,omitempty"`
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
	return "", fmt.Errorf("unsupported log key type %T (want ECDSA P-256/384/521, RSA 2048/3072/4096 or Ed25519)", pub)
}

// NewLog describes a log with key pub at baseURL, valid from start
// (truncated to the second, UTC).
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
	return TransparencyLog{BaseURL: baseURL, HashAlgorithm: HashSHA256,
		PublicKey: PublicKey{RawBytes: der, KeyDetails: details, ValidFor: Validity{Start: start.UTC().Truncate(time.Second)}},
		LogID:     LogID{KeyID: id[:]}}, nil
}

// NewCA describes a CA at uri whose chain is given leaf-most first, root
// last, valid from start (truncated to the second, UTC). The subject is
// the root's.
func NewCA(uri string, chain []*x509.Certificate, start time.Time) CertificateAuthority {
	ca := CertificateAuthority{URI: uri, ValidFor: Validity{Start: start.UTC().Truncate(time.Second)},
		CertChain: CertChain{Certificates: []RawCert{}}}
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

// Parse parses and validates a trusted_root.json with the rules sigstore-go
// applies: the exact v0.1 media type, SHA2_256 logs whose key parses, whose
// keyDetails match the key and whose logId is the SHA-256 of the key, a
// validity start on every log key, and CA chains of parseable certificates.
// Errors wrap ErrInvalid.
func Parse(b []byte) (*TrustedRoot, error) {
	var tr TrustedRoot
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tr); err != nil {
		return nil, fmt.Errorf("%w: trusted root is not valid trusted_root.json: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trusted root has data after the JSON object", ErrInvalid)
	}
	if tr.MediaType != TrustedRootMediaType {
		return nil, fmt.Errorf("%w: trusted root media type %q is not %q", ErrInvalid, tr.MediaType, TrustedRootMediaType)
	}
	for i, l := range tr.Tlogs {
		if err := checkLog(l); err != nil {
			return nil, fmt.Errorf("%w: tlog %d (%s): %v", ErrInvalid, i, l.BaseURL, err)
		}
	}
	for i, l := range tr.Ctlogs {
		if err := checkLog(l); err != nil {
			return nil, fmt.Errorf("%w: ctlog %d (%s): %v", ErrInvalid, i, l.BaseURL, err)
		}
	}
	for i, ca := range tr.CertificateAuthorities {
		if err := checkCA(ca); err != nil {
			return nil, fmt.Errorf("%w: certificate authority %d (%s): %v", ErrInvalid, i, ca.URI, err)
		}
	}
	for i, ca := range tr.TimestampAuthorities {
		if err := checkCA(ca); err != nil {
			return nil, fmt.Errorf("%w: timestamp authority %d (%s): %v", ErrInvalid, i, ca.URI, err)
		}
	}
	if len(tr.CertificateAuthorities) == 0 && len(tr.Tlogs) == 0 {
		return nil, fmt.Errorf("%w: trusted root has neither certificate authorities nor transparency logs", ErrInvalid)
	}
	return &tr, nil
}

func checkLog(l TransparencyLog) error {
	if l.HashAlgorithm != HashSHA256 {
		return fmt.Errorf("hash algorithm %q is not %s", l.HashAlgorithm, HashSHA256)
	}
	if len(l.PublicKey.RawBytes) == 0 {
		return errors.New("no public key")
	}
	pub, err := x509.ParsePKIXPublicKey(l.PublicKey.RawBytes)
	if err != nil {
		return fmt.Errorf("public key: %v", err)
	}
	details, err := KeyDetails(pub)
	if err != nil {
		return err
	}
	if l.PublicKey.KeyDetails != details {
		return fmt.Errorf("keyDetails %q does not describe its %s key", l.PublicKey.KeyDetails, details)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	if id := sha256.Sum256(der); !bytes.Equal(id[:], l.LogID.KeyID) {
		return errors.New("logId.keyId is not the SHA-256 of its public key")
	}
	if l.PublicKey.ValidFor.Start.IsZero() {
		return errors.New("public key has no validFor.start")
	}
	if e := l.PublicKey.ValidFor.End; e != nil && !e.After(l.PublicKey.ValidFor.Start) {
		return errors.New("public key validFor.end is not after its start")
	}
	return nil
}

func checkCA(ca CertificateAuthority) error {
	if len(ca.CertChain.Certificates) == 0 {
		return errors.New("no certificates")
	}
	for j, c := range ca.CertChain.Certificates {
		if _, err := x509.ParseCertificate(c.RawBytes); err != nil {
			return fmt.Errorf("certificate %d: %v", j, err)
		}
	}
	if e := ca.ValidFor.End; e != nil && !e.After(ca.ValidFor.Start) {
		return errors.New("validFor.end is not after its start")
	}
	return nil
}

// Marshal encodes the trusted root as indented JSON ending in a newline.
// The encoding is deterministic: the same trusted root always gives the
// same bytes (and so the same Fingerprint).
func (tr *TrustedRoot) Marshal() ([]byte, error) { return marshal(tr) }

func marshal(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Window is when a trusted root trusts a key or a certificate authority,
// as sigstore-go applies validFor during verification: both ends are
// inclusive, and a zero Start or End leaves that side open. Keys and CAs
// from cosign's legacy PEM inputs (SIGSTORE_ROOT_FILE,
// SIGSTORE_REKOR_PUBLIC_KEY, SIGSTORE_CT_LOG_PUBLIC_KEY_FILE) have the zero
// Window: they are trusted at any time.
type Window struct {
	Start time.Time
	End   time.Time
}

// Window returns v as a verification window.
func (v Validity) Window() Window {
	w := Window{Start: v.Start}
	if v.End != nil {
		w.End = *v.End
	}
	return w
}

// Covers reports whether t lies inside the window (ends included, as
// sigstore-go's ValidAtTime).
func (w Window) Covers(t time.Time) bool {
	if !w.Start.IsZero() && t.Before(w.Start) {
		return false
	}
	return w.End.IsZero() || !t.After(w.End)
}

// String says when the window trusts, for error messages: "from A until
// B", "from A on", "until B" or "at any time" (RFC 3339, UTC, with the
// fraction of a second when there is one).
func (w Window) String() string {
	f := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	switch {
	case w.Start.IsZero() && w.End.IsZero():
		return "at any time"
	case w.End.IsZero():
		return "from " + f(w.Start) + " on"
	case w.Start.IsZero():
		return "until " + f(w.End)
	}
	return "from " + f(w.Start) + " until " + f(w.End)
}

// LogKey is a transparency log or CT log key and when it is trusted: a
// transparency log key for entries integrated in ValidFor, a CT log key for
// SCTs timestamped in ValidFor.
type LogKey struct {
	Key      crypto.PublicKey
	ValidFor Window
}

// CA is one certificate authority of a trusted root: a leaf certificate is
// trusted through it when it chains to Roots (through Intermediates) and
// the signature's observer time (the integrated time of its verified log
// entry, else the verification time) lies in ValidFor.
type CA struct {
	// URI names the CA in messages (the trusted root's uri; empty for
	// SIGSTORE_ROOT_FILE).
	URI   string
	Roots *x509.CertPool
	// Intermediates are the CA's trusted intermediates. When nil, the
	// intermediates stored with the signature are used instead (as cosign
	// does without trusted intermediates).
	Intermediates *x509.CertPool
	ValidFor      Window
}

// Material is a trusted root turned into what verification uses.
type Material struct {
	CAs []CA
	// TlogKeys and CTLogKeys map hex log IDs to keys.
	TlogKeys  map[string]LogKey
	CTLogKeys map[string]LogKey
}

// Material returns the CAs and log keys of tr, each with its validFor.
func (tr *TrustedRoot) Material() (*Material, error) {
	m := &Material{TlogKeys: map[string]LogKey{}, CTLogKeys: map[string]LogKey{}}
	for _, ca := range tr.CertificateAuthorities {
		c := CA{URI: ca.URI, Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool(), ValidFor: ca.ValidFor.Window()}
		n := len(ca.CertChain.Certificates)
		for j, rc := range ca.CertChain.Certificates {
			cert, err := x509.ParseCertificate(rc.RawBytes)
			if err != nil {
				return nil, err
			}
			if j == n-1 {
				c.Roots.AddCert(cert)
			} else {
				c.Intermediates.AddCert(cert)
			}
		}
		m.CAs = append(m.CAs, c)
	}
	add := func(dst map[string]LogKey, logs []TransparencyLog) error {
		for _, l := range logs {
			pub, err := x509.ParsePKIXPublicKey(l.PublicKey.RawBytes)
			if err != nil {
				return err
			}
			dst[fmt.Sprintf("%x", l.LogID.KeyID)] = LogKey{Key: pub, ValidFor: l.PublicKey.ValidFor.Window()}
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
