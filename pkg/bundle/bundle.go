package bundle

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// ErrInvalid is wrapped by every Parse error.
var ErrInvalid = errors.New("invalid sigstore bundle")

// MaxEntries bounds the transparency-log entries read from a bundle.
const MaxEntries = 8

// maxChain bounds the certificates read from a bundle's chain.
const maxChain = 10

// Int64 is a protojson int64: a JSON string (or, leniently, a number).
// It is written as a string; fields of this type are tagged omitzero, as
// protojson leaves zero values out.
type Int64 int64

// UnmarshalJSON reads a quoted or bare integer.
func (v *Int64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*v = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not an int64", s)
	}
	*v = Int64(n)
	return nil
}

// MarshalJSON writes the integer as protojson does: a decimal string.
func (v Int64) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatInt(int64(v), 10) + `"`), nil
}

// Bytes is protojson bytes: standard or URL-safe base64, padded or not,
// when read; standard padded base64 when written (encoding/json's []byte).
type Bytes []byte

// UnmarshalJSON accepts every base64 alphabet protojson accepts.
func (v *Bytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if d, err := enc.DecodeString(s); err == nil {
			*v = d
			return nil
		}
	}
	return errors.New("not base64")
}

// Bundle is a sigstore bundle (dev.sigstore.bundle.v1.Bundle, protojson,
// v0.1 to v0.3). Its fields are in the order of the protobuf definition and
// Bytes writes it as protojson would, so what Hallmark writes reads as the
// bundle sigstore-go and cosign v3 write.
type Bundle struct {
	MediaType            string               `json:"mediaType"`
	VerificationMaterial VerificationMaterial `json:"verificationMaterial"`
	DSSEEnvelope         *Envelope            `json:"dsseEnvelope,omitempty"`
	MessageSignature     *MessageSignature    `json:"messageSignature,omitempty"`
}

// VerificationMaterial is what verifies the bundle's signature: one of a
// certificate (v0.3), a certificate chain (v0.1, v0.2) or a public key
// hint, and the transparency-log entries.
type VerificationMaterial struct {
	PublicKey            *PublicKeyIdentifier `json:"publicKey,omitempty"`
	X509CertificateChain *CertificateChain    `json:"x509CertificateChain,omitempty"`
	Certificate          *Certificate         `json:"certificate,omitempty"`
	TlogEntries          []TlogEntry          `json:"tlogEntries,omitempty"`
}

// PublicKeyIdentifier names the key of a key-based signature: sigstore-go
// and cosign write the standard base64 SHA-256 of its PKIX DER.
type PublicKeyIdentifier struct {
	Hint string `json:"hint,omitempty"`
}

// Certificate is one DER certificate.
type Certificate struct {
	RawBytes Bytes `json:"rawBytes"`
}

// CertificateChain is a leaf and the rest of its chain.
type CertificateChain struct {
	Certificates []Certificate `json:"certificates"`
}

// Envelope is a DSSE envelope as a bundle holds it (raw payload bytes).
type Envelope struct {
	Payload     Bytes               `json:"payload"`
	PayloadType string              `json:"payloadType"`
	Signatures  []EnvelopeSignature `json:"signatures"`
}

// EnvelopeSignature is one DSSE signature.
type EnvelopeSignature struct {
	Sig   Bytes  `json:"sig"`
	KeyID string `json:"keyid,omitempty"`
}

// MessageSignature is a signature over an artifact's digest (cosign v3
// sign-blob).
type MessageSignature struct {
	MessageDigest *HashOutput `json:"messageDigest,omitempty"`
	Signature     Bytes       `json:"signature"`
}

// HashOutput is a digest and its algorithm (protobuf-specs' HashAlgorithm
// name, e.g. "SHA2_256").
type HashOutput struct {
	Algorithm string `json:"algorithm"`
	Digest    Bytes  `json:"digest"`
}

// SHA256 is protobuf-specs' name of SHA-256.
const SHA256 = "SHA2_256"

// TlogEntry is a transparency-log entry in a sigstore bundle (protobuf-specs'
// TransparencyLogEntry).
type TlogEntry struct {
	LogIndex          Int64             `json:"logIndex,omitzero"`
	LogID             LogID             `json:"logId"`
	KindVersion       KindVersion       `json:"kindVersion"`
	IntegratedTime    Int64             `json:"integratedTime,omitzero"`
	InclusionPromise  *InclusionPromise `json:"inclusionPromise,omitempty"`
	InclusionProof    *InclusionProof   `json:"inclusionProof,omitempty"`
	CanonicalizedBody Bytes             `json:"canonicalizedBody"`
}

// LogID is the log's key ID: the SHA-256 of its PKIX DER key.
type LogID struct {
	KeyID Bytes `json:"keyId"`
}

// KindVersion is the entry's type (hashedrekord, dsse) and its version.
type KindVersion struct {
	Kind    string `json:"kind"`
	Version string `json:"version"`
}

// InclusionPromise holds the log's signed entry timestamp.
type InclusionPromise struct {
	SignedEntryTimestamp Bytes `json:"signedEntryTimestamp"`
}

// InclusionProof proves the entry is in a tree whose head the log signed.
type InclusionProof struct {
	LogIndex   Int64      `json:"logIndex,omitzero"`
	RootHash   Bytes      `json:"rootHash"`
	TreeSize   Int64      `json:"treeSize,omitzero"`
	Hashes     []Bytes    `json:"hashes,omitempty"`
	Checkpoint Checkpoint `json:"checkpoint"`
}

// Checkpoint is the signed note of the tree head.
type Checkpoint struct {
	Envelope string `json:"envelope"`
}

// LogEntry converts the bundle entry.
func (e TlogEntry) LogEntry() *rekor.LogEntry {
	le := &rekor.LogEntry{Body: e.CanonicalizedBody, IntegratedTime: int64(e.IntegratedTime), LogIndex: int64(e.LogIndex),
		LogID: fmt.Sprintf("%x", []byte(e.LogID.KeyID))}
	if e.InclusionPromise != nil {
		le.SET = e.InclusionPromise.SignedEntryTimestamp
	}
	if p := e.InclusionProof; p != nil {
		ip := &rekor.InclusionProof{LogIndex: int64(p.LogIndex), TreeSize: int64(p.TreeSize), RootHash: p.RootHash, Checkpoint: p.Checkpoint.Envelope}
		for _, h := range p.Hashes {
			ip.Hashes = append(ip.Hashes, h)
		}
		le.Proof = ip
	}
	return le
}

// EntryOf is the bundle form of a log entry, as sigstore-go makes it from
// a Rekor v1 answer: the kind and version read from its canonical body,
// the SET as inclusion promise and the inclusion proof with its checkpoint.
func EntryOf(e *rekor.LogEntry) (TlogEntry, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(e.Body, &head); err != nil || head.Kind == "" || head.APIVersion == "" {
		return TlogEntry{}, errors.New("the log entry body names no kind and apiVersion")
	}
	logID, err := hex.DecodeString(e.LogID)
	if err != nil {
		return TlogEntry{}, fmt.Errorf("the log ID %q is not hex", e.LogID)
	}
	t := TlogEntry{LogIndex: Int64(e.LogIndex), LogID: LogID{KeyID: logID}, KindVersion: KindVersion{Kind: head.Kind, Version: head.APIVersion},
		IntegratedTime: Int64(e.IntegratedTime), CanonicalizedBody: e.Body}
	if len(e.SET) > 0 {
		t.InclusionPromise = &InclusionPromise{SignedEntryTimestamp: e.SET}
	}
	if p := e.Proof; p != nil {
		ip := &InclusionProof{LogIndex: Int64(p.LogIndex), RootHash: p.RootHash, TreeSize: Int64(p.TreeSize), Checkpoint: Checkpoint{Envelope: p.Checkpoint}}
		for _, h := range p.Hashes {
			ip.Hashes = append(ip.Hashes, h)
		}
		t.InclusionProof = ip
	}
	return t, nil
}

// Parse parses a sigstore bundle: a known media type, a DSSE envelope or
// message signature, at most MaxEntries log entries. Nothing is verified.
func Parse(b []byte) (*Bundle, error) {
	var sb Bundle
	if err := json.Unmarshal(b, &sb); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if !oci.IsBundleType(sb.MediaType) {
		return nil, fmt.Errorf("%w: media type %q is not a sigstore bundle's", ErrInvalid, sb.MediaType)
	}
	if sb.DSSEEnvelope == nil && sb.MessageSignature == nil {
		return nil, fmt.Errorf("%w: neither a DSSE envelope nor a message signature", ErrInvalid)
	}
	if len(sb.VerificationMaterial.TlogEntries) > MaxEntries {
		return nil, fmt.Errorf("%w: %d log entries; at most %d are read", ErrInvalid, len(sb.VerificationMaterial.TlogEntries), MaxEntries)
	}
	return &sb, nil
}

// Bytes returns the bundle as compact protojson-shaped JSON (what sign
// writes into the registry and sign-blob into --bundle files). It fails on
// a bundle Parse would reject or that holds both kinds of content.
func (sb *Bundle) Bytes() ([]byte, error) {
	b, err := payload.MarshalNoEscape(sb)
	if err != nil {
		return nil, err
	}
	if sb.DSSEEnvelope != nil && sb.MessageSignature != nil {
		return nil, fmt.Errorf("%w: a bundle holds a DSSE envelope or a message signature, not both", ErrInvalid)
	}
	if _, err := Parse(b); err != nil {
		return nil, err
	}
	return b, nil
}

// Certificates returns the bundle's signing certificate and the rest of its
// chain (at most 10 certificates are read), or nil for a key-based
// signature.
func (sb *Bundle) Certificates() (*x509.Certificate, []*x509.Certificate, error) {
	vm := sb.VerificationMaterial
	var ders [][]byte
	switch {
	case vm.Certificate != nil:
		ders = [][]byte{vm.Certificate.RawBytes}
	case vm.X509CertificateChain != nil:
		for i, c := range vm.X509CertificateChain.Certificates {
			if i == maxChain {
				break
			}
			ders = append(ders, c.RawBytes)
		}
	}
	if len(ders) == 0 {
		return nil, nil, nil
	}
	var certs []*x509.Certificate
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, nil, fmt.Errorf("bundle certificate: %v", err)
		}
		certs = append(certs, c)
	}
	return certs[0], certs[1:], nil
}
