package verify

import (
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
// --insecure-ignore-sct.
func VerifyEmbeddedSCT(leaf, issuer *x509.Certificate, ctKeys map[string]root.LogKey) error {
	return verifyEmbeddedSCT(leaf, issuer, ctKeys, nil)
}

// verifyEmbeddedSCT is VerifyEmbeddedSCT, taking the CT library's parse of
// the issuer from c (the few intermediates of a trust issue every leaf).
func verifyEmbeddedSCT(leaf, issuer *x509.Certificate, ctKeys map[string]root.LogKey, c *anchorCache) error {
	if issuer == nil {
		return fmt.Errorf("%w: the issuer of the certificate is unknown", ErrSCT)
	}
	cl, err := sctLeaf(leaf)
	if err != nil {
		return fmt.Errorf("%w: parsing the certificate: %v", ErrSCT, err)
	}
	if len(cl.SCTList.SCTList) == 0 {
		return fmt.Errorf("%w: certificate does not include required embedded SCT and no detached SCT was set (verify with --insecure-ignore-sct if the CA publishes no SCTs)", ErrSCT)
	}
	ci, err := c.ctIssuer(issuer.Raw)
	if ci == nil {
		return fmt.Errorf("%w: parsing the issuer certificate: %v", ErrSCT, err)
	}
	var reasons []string
	outside := false
	for i, s := range cl.SCTList.SCTList {
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
		if err := ctutil.VerifySCT(key.Key, []*ctx509.Certificate{cl, ci}, &sct, true); err != nil {
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

// sctLeaf is the CT library's view of leaf for checking its embedded SCTs:
// the TBS part, from which the precertificate's is rebuilt, and the SCT
// list extension, decoded by the CT library. (A whole parse by the CT
// library's x509 cost as much again as the SCT's signature check.)
func sctLeaf(leaf *x509.Certificate) (*ctx509.Certificate, error) {
	cl := &ctx509.Certificate{Raw: leaf.Raw, RawTBSCertificate: leaf.RawTBSCertificate}
	for _, e := range leaf.Extensions {
		if !e.Id.Equal(asn1.ObjectIdentifier(ctx509.OIDExtensionCTSCT)) {
			continue
		}
		var list []byte
		if rest, err := asn1.Unmarshal(e.Value, &list); err != nil || len(rest) > 0 {
			return nil, fmt.Errorf("malformed SCT list extension")
		}
		if rest, err := cttls.Unmarshal(list, &cl.SCTList); err != nil || len(rest) > 0 {
			return nil, fmt.Errorf("malformed SCT list: %v", err)
		}
	}
	return cl, nil
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
