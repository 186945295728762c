package bundle

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// ErrInvalid is wrapped by every Parse error.
var ErrInvalid = errors.New("invalid sigstore bundle")

// MaxEntries bounds the transparency-log entries read from a bundle.
const MaxEntries = 8

// maxChain bounds the certificates read from a bundle's chain.
const maxChain = 10

// Int64 is a protojson int64: a JSON string (or, leniently, a number).
type Int64 int64

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

// Bytes is protojson bytes: standard or URL-safe base64, padded or not.
type Bytes []byte

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

// Bundle is a sigstore bundle (protojson, v0.1 to v0.3) as far as image
// verification reads it.
type Bundle struct {
	MediaType            string `json:"mediaType"`
	VerificationMaterial struct {
		Certificate *struct {
			RawBytes Bytes `json:"rawBytes"`
		} `json:"certificate"`
		X509CertificateChain *struct {
			Certificates []struct {
				RawBytes Bytes `json:"rawBytes"`
			} `json:"certificates"`
		} `json:"x509CertificateChain"`
		PublicKey *struct {
			Hint string `json:"hint"`
		} `json:"publicKey"`
		TlogEntries []TlogEntry `json:"tlogEntries"`
	} `json:"verificationMaterial"`
	DSSEEnvelope *struct {
		Payload     Bytes  `json:"payload"`
		PayloadType string `json:"payloadType"`
		Signatures  []struct {
			Sig   Bytes  `json:"sig"`
			KeyID string `json:"keyid"`
		} `json:"signatures"`
	} `json:"dsseEnvelope"`
	MessageSignature json.RawMessage `json:"messageSignature"`
}

// TlogEntry is a transparency-log entry in a sigstore bundle (protobuf-specs'
// TransparencyLogEntry).
type TlogEntry struct {
	LogIndex Int64 `json:"logIndex"`
	LogID    struct {
		KeyID Bytes `json:"keyId"`
	} `json:"logId"`
	KindVersion struct {
		Kind    string `json:"kind"`
		Version string `json:"version"`
	} `json:"kindVersion"`
	IntegratedTime   Int64 `json:"integratedTime"`
	InclusionPromise *struct {
		SignedEntryTimestamp Bytes `json:"signedEntryTimestamp"`
	} `json:"inclusionPromise"`
	InclusionProof *struct {
		LogIndex   Int64   `json:"logIndex"`
		RootHash   Bytes   `json:"rootHash"`
		TreeSize   Int64   `json:"treeSize"`
		Hashes     []Bytes `json:"hashes"`
		Checkpoint struct {
			Envelope string `json:"envelope"`
		} `json:"checkpoint"`
	} `json:"inclusionProof"`
	CanonicalizedBody Bytes `json:"canonicalizedBody"`
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
	if sb.DSSEEnvelope == nil && len(sb.MessageSignature) == 0 {
		return nil, fmt.Errorf("%w: neither a DSSE envelope nor a message signature", ErrInvalid)
	}
	if len(sb.VerificationMaterial.TlogEntries) > MaxEntries {
		return nil, fmt.Errorf("%w: %d log entries; at most %d are read", ErrInvalid, len(sb.VerificationMaterial.TlogEntries), MaxEntries)
	}
	return &sb, nil
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
