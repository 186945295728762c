package verify

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/ctutil"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/hallmark-dev/hallmark/pkg/root"
)

// ErrSCT is wrapped by every signed-certificate-timestamp failure.
var ErrSCT = errors.New("signed certificate timestamp check failed")

// maxSCTs bounds how many embedded SCTs are tried.
const maxSCTs = 16

// VerifyEmbeddedSCT checks that leaf carries at least one embedded SCT
// (RFC 6962 §3.3) signed by one of the CT logs in ctKeys (hex log ID ->
// key), timestamped while that log's key is trusted, over the
// precertificate of leaf issued by issuer. This is what proves the CA
// published the certificate, as cosign requires unless
// --insecure-ignore-sct. Each SCT's signature is checked by the CT
// library over the precertificate entry it was issued for (RFC 6962 3.2),
// rebuilt once per certificate.
func VerifyEmbeddedSCT(leaf, issuer *x509.Certificate, ctKeys map[string]root.LogKey) error {
	if issuer == nil {
		return fmt.Errorf("%w: the issuer of the certificate is unknown", ErrSCT)
	}
	list, err := embeddedSCTs(leaf)
	if err != nil {
		return fmt.Errorf("%w: parsing the certificate: %v", ErrSCT, err)
	}
	if len(list.SCTList) == 0 {
		return fmt.Errorf("%w: certificate does not include required embedded SCT and no detached SCT was set (verify with --insecure-ignore-sct if the CA publishes no SCTs)", ErrSCT)
	}
	var entry *ct.LogEntry
	var reasons []string
	outside := false
	for i, s := range list.SCTList {
		if i >= maxSCTs {
			break
		}
		var sct ct.SignedCertificateTimestamp
		rest, err := cttls.Unmarshal(s.Val, &sct)
		if err != nil || len(rest) > 0 {
			reasons = append(reasons, fmt.Sprintf("SCT %d is malformed", i+1))
			continue
		}
		id := hex.EncodeToString(sct.LogID.KeyID[:])
		key, ok := ctKeys[id]
		if !ok {
			reasons = append(reasons, fmt.Sprintf("SCT %d is from CT log %s, which is not in the trusted root", i+1, id))
			continue
		}
		if err := sctInWindow(&sct, id, key); err != nil {
			reasons = append(reasons, fmt.Sprintf("SCT %d: %v", i+1, err))
			outside = true
			continue
		}
		if entry == nil {
			tbs, err := precertTBS(leaf.RawTBSCertificate)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrSCT, err)
			}
			entry = &ct.LogEntry{Leaf: ct.MerkleTreeLeaf{Version: ct.V1, LeafType: ct.TimestampedEntryLeafType,
				TimestampedEntry: &ct.TimestampedEntry{EntryType: ct.PrecertLogEntryType,
					PrecertEntry: &ct.PreCert{IssuerKeyHash: sha256.Sum256(issuer.RawSubjectPublicKeyInfo), TBSCertificate: tbs}}}}
		}
		entry.Leaf.TimestampedEntry.Timestamp = sct.Timestamp
		sv, err := ct.NewSignatureVerifier(key.Key)
		if err == nil {
			err = sv.VerifySCTSignature(sct, *entry)
		}
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("SCT %d from CT log %s does not verify: %v", i+1, id, err))
			continue
		}
		return nil
	}
	if outside {
		return fmt.Errorf("%w: %v (%w)", ErrSCT, reasons, ErrOutsideValidFor)
	}
	return fmt.Errorf("%w: %v", ErrSCT, reasons)
}

// oidSCTList is the certificate extension of embedded SCTs (RFC 6962 3.3).
var oidSCTList = asn1.ObjectIdentifier(ctx509.OIDExtensionCTSCT)

// embeddedSCTs decodes leaf's SCT list extension with the CT library (an
// empty list without one).
func embeddedSCTs(leaf *x509.Certificate) (ctx509.SignedCertificateTimestampList, error) {
	var out ctx509.SignedCertificateTimestampList
	for _, e := range leaf.Extensions {
		if !e.Id.Equal(oidSCTList) {
			continue
		}
		var list []byte
		if rest, err := asn1.Unmarshal(e.Value, &list); err != nil || len(rest) > 0 {
			return out, fmt.Errorf("malformed SCT list extension")
		}
		if rest, err := cttls.Unmarshal(list, &out); err != nil || len(rest) > 0 {
			return out, fmt.Errorf("malformed SCT list: %v", err)
		}
	}
	return out, nil
}

// precertTBS is the TBSCertificate of the precertificate an embedded SCT
// was issued for: tbs (DER) without its one SCT list extension, every other
// byte as it is (RFC 6962 3.2), as the CT library's x509.RemoveSCTList
// builds it (a test compares the two) without decoding and re-encoding
// the whole structure through reflection, which cost as much as checking
// the SCT's signature. An extensions field left empty stays, as there.
func precertTBS(tbs []byte) ([]byte, error) {
	malformed := errors.New("precertificate: malformed TBSCertificate")
	in := cryptobyte.String(tbs)
	var body cryptobyte.String
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, malformed
	}
	extsTag := cbasn1.Tag(3).Constructed().ContextSpecific()
	found := 0
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for !body.Empty() {
			var elem cryptobyte.String
			var tag cbasn1.Tag
			if !body.ReadAnyASN1Element(&elem, &tag) {
				b.SetError(malformed)
				return
			}
			if tag != extsTag {
				b.AddBytes(elem)
				continue
			}
			var wrapped, exts cryptobyte.String
			if !elem.ReadASN1(&wrapped, extsTag) || !wrapped.ReadASN1(&exts, cbasn1.SEQUENCE) || !wrapped.Empty() {
				b.SetError(malformed)
				return
			}
			var kept [][]byte
			for !exts.Empty() {
				var ext, fields cryptobyte.String
				var oid asn1.ObjectIdentifier
				if !exts.ReadASN1Element(&ext, cbasn1.SEQUENCE) {
					b.SetError(malformed)
					return
				}
				if whole := ext; !whole.ReadASN1(&fields, cbasn1.SEQUENCE) || !fields.ReadASN1ObjectIdentifier(&oid) {
					b.SetError(malformed)
					return
				}
				if oid.Equal(oidSCTList) {
					found++
					continue
				}
				kept = append(kept, ext)
			}
			b.AddASN1(extsTag, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, e := range kept {
						b.AddBytes(e)
					}
				})
			})
		}
	})
	out, err := b.Bytes()
	switch {
	case err != nil:
		return nil, err
	case found == 0:
		return nil, errors.New("precertificate: no SCT list extension")
	case found > 1:
		return nil, errors.New("precertificate: more than one SCT list extension")
	}
	return out, nil
}

// sctInWindow checks that the CT log key with log ID id was trusted when
// it issued sct (sigstore-go skips SCTs outside their log key's validFor).
func sctInWindow(sct *ct.SignedCertificateTimestamp, id string, key root.LogKey) error {
	if t := ct.TimestampToTime(sct.Timestamp); !key.ValidFor.Covers(t) {
		return fmt.Errorf("CT log key %s is trusted %s; the SCT was issued at %s", id, key.ValidFor, t.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// VerifyDetachedSCT checks a detached SCT (the JSON a Fulcio v1 server
// returns in its SCT header) for leaf issued by issuer.
func VerifyDetachedSCT(raw []byte, leaf, issuer *x509.Certificate, ctKeys map[string]root.LogKey) error {
	var wire struct {
		Version    int    `json:"sct_version"`
		ID         []byte `json:"id"`
		Timestamp  uint64 `json:"timestamp"`
		Extensions string `json:"extensions"`
		Signature  []byte `json:"signature"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil || len(wire.ID) != 32 {
		return fmt.Errorf("%w: detached SCT is not SCT JSON", ErrSCT)
	}
	var sig ct.DigitallySigned
	if rest, err := cttls.Unmarshal(wire.Signature, &sig); err != nil || len(rest) > 0 {
		return fmt.Errorf("%w: detached SCT signature is malformed", ErrSCT)
	}
	sct := ct.SignedCertificateTimestamp{SCTVersion: ct.Version(wire.Version), Timestamp: wire.Timestamp, Signature: sig}
	copy(sct.LogID.KeyID[:], wire.ID)
	id := hex.EncodeToString(wire.ID)
	key, ok := ctKeys[id]
	if !ok {
		return fmt.Errorf("%w: detached SCT is from CT log %s, which is not in the trusted root", ErrSCT, id)
	}
	if err := sctInWindow(&sct, id, key); err != nil {
		return fmt.Errorf("%w: detached SCT: %v (%w)", ErrSCT, err, ErrOutsideValidFor)
	}
	cl, err := ctx509.ParseCertificate(leaf.Raw)
	if cl == nil {
		return fmt.Errorf("%w: parsing the certificate: %v", ErrSCT, err)
	}
	chain := []*ctx509.Certificate{cl}
	if issuer != nil {
		if ci, _ := ctx509.ParseCertificate(issuer.Raw); ci != nil {
			chain = append(chain, ci)
		}
	}
	if err := ctutil.VerifySCT(key.Key, chain, &sct, false); err != nil {
		return fmt.Errorf("%w: detached SCT does not verify: %v", ErrSCT, err)
	}
	return nil
}
