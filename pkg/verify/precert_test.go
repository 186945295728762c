package verify_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	ctx509 "github.com/google/certificate-transparency-go/x509"

	"github.com/hallmark-dev/hallmark/pkg/verify"
)

var oidSCT = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}

// tbsWith returns the DER TBSCertificate of a self-signed certificate with
// exts as its extra extensions.
func tbsWith(t testing.TB, exts ...pkix.Extension) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1e9, 0), ExtraExtensions: exts}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		TBS  asn1.RawValue
		Rest asn1.RawContent `asn1:"optional"`
	}
	if _, err := asn1.Unmarshal(der, &c); err != nil {
		t.Fatal(err)
	}
	return c.TBS.FullBytes
}

// TestPrecertTBS: the precertificate's TBS is what the CT library's
// RemoveSCTList makes, for a real Fulcio certificate and built ones, and
// both refuse a TBS without the extension or with two.
func TestPrecertTBS(t *testing.T) {
	leaf, _ := leafAndIssuer(t)
	sct := pkix.Extension{Id: oidSCT, Value: []byte{4, 2, 0, 0}}
	other := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: []byte{5, 0}}
	for name, tbs := range map[string][]byte{
		"fulcio":           leaf.RawTBSCertificate,
		"sct first":        tbsWith(t, sct, other),
		"sct last":         tbsWith(t, other, sct),
		"sct among others": tbsWith(t, other, sct, pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 5}, Critical: true, Value: []byte{5, 0}}),
		"only sct":         tbsWith(t, sct), // an empty extensions field stays
	} {
		want, err := ctx509.RemoveSCTList(tbs)
		if err != nil {
			t.Fatalf("%s: CT library: %v", name, err)
		}
		got, err := verify.PrecertTBS(tbs)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %x, %v; the CT library makes %x", name, got, err, want)
		}
	}
	for name, tbs := range map[string][]byte{
		"no sct":   tbsWith(t, other),
		"two scts": tbsWith(t, sct, other, sct),
		"empty":    nil,
		"trailing": append(bytes.Clone(leaf.RawTBSCertificate), 0),
		"cut":      leaf.RawTBSCertificate[:len(leaf.RawTBSCertificate)-1],
	} {
		if _, err := ctx509.RemoveSCTList(tbs); err == nil {
			t.Fatalf("%s: the CT library accepts it", name)
		}
		if got, err := verify.PrecertTBS(tbs); err == nil {
			t.Errorf("%s: accepted: %x", name, got)
		}
	}
}

// FuzzPrecertTBS: where both accept an input, precertTBS makes what the CT
// library's RemoveSCTList makes. precertTBS reads DER strictly (as Go's
// certificate parser, which every leaf it is given went through), so it
// refuses some BER the CT library's parser lets pass, e.g. bytes after the
// extensions inside their explicit tag.
func FuzzPrecertTBS(f *testing.F) {
	sct := pkix.Extension{Id: oidSCT, Value: []byte{4, 2, 0, 0}}
	f.Add(tbsWith(f, sct))
	f.Add(tbsWith(f, pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3}, Value: []byte{5, 0}}, sct))
	f.Fuzz(func(t *testing.T, tbs []byte) {
		want, err := ctx509.RemoveSCTList(tbs)
		got, gerr := verify.PrecertTBS(tbs)
		if err == nil && gerr == nil && !bytes.Equal(got, want) {
			t.Fatalf("CT library: %x; precertTBS: %x, %v", want, got, gerr)
		}
	})
}
