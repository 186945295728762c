package verify_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	sgroot "github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/sign"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// editedRoot is the captured trusted root of the real Hallmark server with
// the validFor of its first tlog, ctlog or certificate authority
// (field: "tlogs", "ctlogs", "certificateAuthorities") replaced.
func editedRoot(t *testing.T, field string, start, end time.Time) []byte {
	t.Helper()
	var tr map[string]any
	if err := json.Unmarshal(readTestdata(t, "trusted_root.json"), &tr); err != nil {
		t.Fatal(err)
	}
	entry := tr[field].([]any)[0].(map[string]any)
	holder := entry
	if field != "certificateAuthorities" {
		holder = entry["publicKey"].(map[string]any)
	}
	v := holder["validFor"].(map[string]any)
	if !start.IsZero() {
		v["start"] = start.UTC().Format(time.RFC3339Nano)
	}
	if !end.IsZero() {
		v["end"] = end.UTC().Format(time.RFC3339Nano)
	}
	out, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sctTime is the timestamp of the (first) embedded SCT of the DER
// certificate der.
func sctTime(t *testing.T, der []byte) time.Time {
	t.Helper()
	c, err := ctx509.ParseCertificate(der)
	if c == nil || len(c.SCTList.SCTList) == 0 {
		t.Fatalf("no embedded SCT: %v", err)
	}
	var sct ct.SignedCertificateTimestamp
	if _, err := cttls.Unmarshal(c.SCTList.SCTList[0].Val, &sct); err != nil {
		t.Fatal(err)
	}
	return ct.TimestampToTime(sct.Timestamp)
}

// TestRealValidForWindows: the captured signatures of real cosign v2 (a
// .sig layer) and cosign v3 (a sigstore bundle) made with a real Hallmark
// server verify with the server's trusted root, and stop verifying once
// that trusted root is edited so that the log key, the CT log key or the
// CA was not trusted when the signature was logged (or its SCT issued).
// sigstore-go, given the same edited trusted roots, agrees on every case
// (ends inclusive).
func TestRealValidForWindows(t *testing.T) {
	l := realLayer(t)
	subject2 := string(readTestdata(t, "cosign2-signature.subject"))
	var rb rekor.Bundle
	if err := json.Unmarshal([]byte(l.Annotations[oci.AnnotationBundle]), &rb); err != nil {
		t.Fatal(err)
	}
	leaf2, _ := leafAndIssuer(t)

	bundleRaw := readTestdata(t, "cosign3-bundle.json")
	subject3 := string(readTestdata(t, "cosign3-bundle.subject"))
	var b3 struct {
		VerificationMaterial struct {
			Certificate struct {
				RawBytes []byte `json:"rawBytes"`
			} `json:"certificate"`
			TlogEntries []struct {
				IntegratedTime string `json:"integratedTime"`
				LogIndex       string `json:"logIndex"`
			} `json:"tlogEntries"`
		} `json:"verificationMaterial"`
	}
	if err := json.Unmarshal(bundleRaw, &b3); err != nil || len(b3.VerificationMaterial.TlogEntries) != 1 {
		t.Fatalf("bundle: %v", err)
	}
	it3, _ := strconv.ParseInt(b3.VerificationMaterial.TlogEntries[0].IntegratedTime, 10, 64)
	check3 := verify.BundleCheck{ImageDigest: subject3}

	var sgb sgbundle.Bundle
	if err := sgb.UnmarshalJSON(bundleRaw); err != nil {
		t.Fatal(err)
	}
	digest3, _ := hex.DecodeString(strings.TrimPrefix(subject3, "sha256:"))
	sgID, _ := sgverify.NewShortCertificateIdentity(realServer, "", realIdentity, "")
	sigstoreGo := func(trustedRoot []byte) error {
		tr, err := sgroot.NewTrustedRootFromJSON(trustedRoot)
		if err != nil {
			t.Fatal(err)
		}
		v, err := sgverify.NewVerifier(tr, sgverify.WithSignedCertificateTimestamps(1), sgverify.WithTransparencyLog(1), sgverify.WithIntegratedTimestamps(1))
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(&sgb, sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", digest3), sgverify.WithCertificateIdentity(sgID)))
		return err
	}
	if err := sigstoreGo(readTestdata(t, "trusted_root.json")); err != nil {
		t.Fatalf("sigstore-go rejects the cosign v3 bundle with the unedited trusted root: %v", err)
	}

	var logID string
	for id := range realMaterial(t).TlogKeys {
		logID = id
	}
	type sig struct {
		name       string
		integrated time.Time
		index      int64
		sct        time.Time
		verify     func(verify.Options) error
	}
	sigs := []sig{
		{"cosign v2 signature layer", time.Unix(rb.Payload.IntegratedTime, 0), rb.Payload.LogIndex, sctTime(t, leaf2.Raw), func(o verify.Options) error {
			_, err := verify.VerifyLayer(l, subject2, o)
			return err
		}},
		{"cosign v3 bundle", time.Unix(it3, 0), 0, sctTime(t, b3.VerificationMaterial.Certificate.RawBytes), func(o verify.Options) error {
			_, err := verify.VerifySigstoreBundle(bundleRaw, check3, o, "bundle")
			return err
		}},
	}
	sigs[1].index, _ = strconv.ParseInt(b3.VerificationMaterial.TlogEntries[0].LogIndex, 10, 64)

	type edit struct {
		name       string
		field      string
		start, end time.Time
		check      string // "" when the signature still verifies
		text       []string
	}
	for _, s := range sigs {
		at, sct := s.integrated, s.sct
		f := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
		edits := []edit{
			{name: "log key retired before the entry", field: "tlogs", end: at.Add(-time.Second), check: verify.CheckTlog,
				text: []string{"transparency log key " + logID + " is trusted from 2026-11-25T09:17:41Z until " + f(at.Add(-time.Second)) +
					"; the entry (index " + strconv.FormatInt(s.index, 10) + ") was integrated at " + f(at)}},
			{name: "log key retired when the entry was integrated", field: "tlogs", end: at},
			{name: "log key active only after the entry", field: "tlogs", start: at.Add(time.Second), check: verify.CheckTlog,
				text: []string{"is trusted from " + f(at.Add(time.Second)) + " on; the entry"}},
			{name: "CT log key retired before the SCT", field: "ctlogs", end: sct.Add(-time.Millisecond), check: verify.CheckSCT,
				text: []string{"is trusted from 2026-11-25T09:16:41Z until " + sct.Add(-time.Millisecond).UTC().Format(time.RFC3339Nano) + "; the SCT was issued at " + sct.UTC().Format(time.RFC3339Nano)}},
			{name: "CT log key retired when the SCT was issued", field: "ctlogs", end: sct},
			{name: "CT log key active only after the SCT", field: "ctlogs", start: sct.Add(time.Millisecond), check: verify.CheckSCT,
				text: []string{"the SCT was issued at " + sct.UTC().Format(time.RFC3339Nano)}},
			{name: "CA retired before the signature was logged", field: "certificateAuthorities", end: at.Add(-time.Second), check: verify.CheckCertificate,
				text: []string{"certificate authority " + realServer + " is trusted from 2026-11-25T09:16:41Z until " + f(at.Add(-time.Second)) +
					"; the signature was logged at " + f(at)}},
			{name: "CA retired when the signature was logged", field: "certificateAuthorities", end: at},
			{name: "CA active only after the signature was logged", field: "certificateAuthorities", start: at.Add(time.Second), check: verify.CheckCertificate,
				text: []string{"is trusted from " + f(at.Add(time.Second)) + " on; the signature was logged at " + f(at)}},
		}
		for _, e := range edits {
			t.Run(s.name+"/"+e.name, func(t *testing.T) {
				raw := editedRoot(t, e.field, e.start, e.end)
				tr, err := root.Parse(raw)
				if err != nil {
					t.Fatal(err)
				}
				m, err := tr.Material()
				if err != nil {
					t.Fatal(err)
				}
				o := verify.Options{TlogKeys: m.TlogKeys, Cert: &verify.CertOptions{CAs: m.CAs, CTLogKeys: m.CTLogKeys,
					Identities: []verify.Identity{{Subject: realIdentity, Issuer: realServer}}}}
				err = s.verify(o)
				if e.check == "" {
					if err != nil {
						t.Fatalf("rejected: %v", err)
					}
				} else {
					for _, want := range e.text {
						checkErr(t, err, e.check, want)
					}
					if !errors.Is(err, verify.ErrOutsideValidFor) {
						t.Errorf("not ErrOutsideValidFor: %v", err)
					}
				}
				if s.name == "cosign v3 bundle" {
					if sgErr := sigstoreGo(raw); (sgErr == nil) != (e.check == "") {
						t.Errorf("sigstore-go disagrees: hallmark says %v, sigstore-go says %v", err, sgErr)
					}
				}
			})
		}
	}
}

// TestRealLogEntryOutsideValidFor: the log's own answer for the cosign v2
// signature (SET, inclusion proof, as `hallmark sign` checks it before
// attaching) is refused once the log key's window ends before the entry.
func TestRealLogEntryOutsideValidFor(t *testing.T) {
	e, err := rekor.ParseEntryResponse(readTestdata(t, "rekor-entry-1.json"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(e.IntegratedTime, 0)
	tr, err := root.Parse(editedRoot(t, "tlogs", time.Time{}, at.Add(-time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := tr.Material()
	l := realLayer(t)
	sig, _ := base64.StdEncoding.DecodeString(l.Annotations[oci.AnnotationSignature])
	leaf, _ := leafAndIssuer(t)
	h := sha256.Sum256(l.Payload)
	want := "the entry (index 1) was integrated at " + at.UTC().Format(time.RFC3339)
	for name, err := range map[string]error{
		"SET":               verify.VerifySET(e, m.TlogKeys),
		"inclusion proof":   verify.VerifyInclusion(e, m.TlogKeys),
		"logged signature":  verify.VerifyLoggedSignature(e, m.TlogKeys, h[:], sig, leaf.Raw, true),
		"unedited material": verify.VerifyLoggedSignature(e, realMaterial(t).TlogKeys, h[:], sig, leaf.Raw, true),
	} {
		if name == "unedited material" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if !errors.Is(err, verify.ErrOutsideValidFor) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want ErrOutsideValidFor with %q", name, err, want)
		}
	}
	// The CA of the same trusted root, retired before the certificate is
	// used, is refused by the signer's pre-attach check too.
	caRaw := editedRoot(t, "certificateAuthorities", time.Time{}, at.Add(-time.Second))
	ctr, err := root.Parse(caRaw)
	if err != nil {
		t.Fatal(err)
	}
	cm, _ := ctr.Material()
	_, issuer := leafAndIssuer(t)
	cc := &sign.CertificateChain{Leaf: leaf, Chain: []*x509.Certificate{issuer}}
	if err := sign.CheckCertificate(cc, cm, true); !errors.Is(err, verify.ErrOutsideValidFor) || !strings.Contains(err.Error(), "the certificate is used at") {
		t.Errorf("signing with a retired CA: %v", err)
	}
}
