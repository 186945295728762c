package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"time"

	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
)

// Extension OIDs of RFC 6962.
var (
	oidCTPoison  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}
	oidSCTList   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}
	asn1NullBody = []byte{0x05, 0x00}
)

// ctLog is the built-in CT log signer. It does not keep a log: clients only
// check the SCT's signature against the trusted CT key (sigstore-server.md
// B2), so an in-process signer is enough to be accepted.
type ctLog struct {
	key crypto.Signer
	id  [32]byte // SHA-256 of the DER SubjectPublicKeyInfo
}

func newCTLog(key crypto.Signer) (*ctLog, error) {
	if _, ok := key.Public().(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("ca: CT log key is %T; it must be ECDSA (delete the ctlog key file only if no client trusts it yet)", key.Public())
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("ca: CT log key: %w", err)
	}
	return &ctLog{key: key, id: sha256.Sum256(der)}, nil
}

// signPrecert returns an SCT over the precertificate whose TBS (without the
// poison extension) is tbs, issued by issuer, at time now.
func (l *ctLog) signPrecert(tbs []byte, issuer *x509.Certificate, now time.Time) (*ct.SignedCertificateTimestamp, error) {
	ms := uint64(now.UnixMilli())
	sct := ct.SignedCertificateTimestamp{
		SCTVersion: ct.V1,
		LogID:      ct.LogID{KeyID: l.id},
		Timestamp:  ms,
		Extensions: ct.CTExtensions{},
	}
	entry := ct.LogEntry{Leaf: ct.MerkleTreeLeaf{
		Version:  ct.V1,
		LeafType: ct.TimestampedEntryLeafType,
		TimestampedEntry: &ct.TimestampedEntry{
			EntryType: ct.PrecertLogEntryType,
			Timestamp: ms,
			PrecertEntry: &ct.PreCert{
				IssuerKeyHash:  sha256.Sum256(issuer.RawSubjectPublicKeyInfo),
				TBSCertificate: tbs,
			},
		},
	}}
	input, err := ct.SerializeSCTSignatureInput(sct, entry)
	if err != nil {
		return nil, fmt.Errorf("ca: SCT signature input: %w", err)
	}
	digest := sha256.Sum256(input)
	sig, err := l.key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("ca: sign SCT: %w", err)
	}
	sct.Signature = ct.DigitallySigned{
		Algorithm: cttls.SignatureAndHashAlgorithm{Hash: cttls.SHA256, Signature: cttls.ECDSA},
		Signature: sig,
	}
	return &sct, nil
}

// sctListExtension encodes scts as the RFC 6962 §3.3 certificate extension:
// an OCTET STRING wrapping the TLS-encoded SignedCertificateTimestampList.
func sctListExtension(scts ...*ct.SignedCertificateTimestamp) ([]byte, error) {
	var list ctx509.SignedCertificateTimestampList
	for _, s := range scts {
		b, err := cttls.Marshal(*s)
		if err != nil {
			return nil, fmt.Errorf("ca: serialise SCT: %w", err)
		}
		list.SCTList = append(list.SCTList, ctx509.SerializedSCT{Val: b})
	}
	b, err := cttls.Marshal(list)
	if err != nil {
		return nil, fmt.Errorf("ca: serialise SCT list: %w", err)
	}
	return asn1.Marshal(b)
}

// precertTBS removes the CT poison extension from a precertificate's TBS.
func precertTBS(rawTBS []byte) ([]byte, error) { return ctx509.RemoveCTPoison(rawTBS) }

// finalTBSWithoutSCTs removes the SCT list from a final certificate's TBS,
// as verifiers do to rebuild the signed precertificate entry.
func finalTBSWithoutSCTs(rawTBS []byte) ([]byte, error) { return ctx509.RemoveSCTList(rawTBS) }
