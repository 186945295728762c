package verify

import (
	"context"
	"crypto"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/root"
)

// Options is the tests' short form of a Trust and a Policy: one key, or
// CAs with identities, and log keys.
type Options struct {
	PublicKey   crypto.PublicKey
	Annotations map[string]string
	SkipClaims  bool
	Cert        *CertOptions
	TlogKeys    map[string]root.LogKey
	IgnoreTlog  bool
	Now         time.Time
	Provenance  bool
}

// CertOptions are the keyless part of Options.
type CertOptions struct {
	CAs         []root.CA
	Identities  []Identity
	CTLogKeys   map[string]root.LogKey
	IgnoreSCT   bool
	AnyIdentity bool
}

// Split returns o as the trust and policy Verify takes, for subject.
func (o Options) Split(subject string) (*Trust, Policy) {
	t := &Trust{TlogKeys: o.TlogKeys}
	p := Policy{Subject: subject, Annotations: o.Annotations, WithoutClaimsUnsafe: o.SkipClaims, IgnoreTlogUnsafe: o.IgnoreTlog,
		Now: o.Now, Provenance: o.Provenance}
	if o.PublicKey != nil {
		k, err := NewKey(o.PublicKey)
		if err != nil {
			k = Key{PublicKey: o.PublicKey}
		}
		t.Keys = []Key{k}
	}
	if c := o.Cert; c != nil {
		t.CAs, t.CTLogKeys = c.CAs, c.CTLogKeys
		p.Identities, p.IgnoreSCTUnsafe, p.WithoutIdentitiesUnsafe = c.Identities, c.IgnoreSCT, c.AnyIdentity
	}
	return t, p
}

// VerifyLayer verifies a .sig layer of the image with digest subject.
func VerifyLayer(l Layer, subject string, o Options) (*Verified, error) {
	t, p := o.Split(subject)
	return Verify(context.Background(), LayerSignature(l), t, p)
}

// VerifyAttestationLayer verifies a .att layer.
func VerifyAttestationLayer(l Layer, subject, predicateType string, o Options) (*Verified, error) {
	t, p := o.Split(subject)
	p.PredicateType = predicateType
	return Verify(context.Background(), LayerAttestation(l), t, p)
}

// BundleCheck says what a bundle must be about.
type BundleCheck struct {
	ImageDigest   string
	PredicateType string
	RefName       string
}

// VerifySigstoreBundle verifies a sigstore bundle named name.
func VerifySigstoreBundle(raw []byte, check BundleCheck, o Options, name string) (*Verified, error) {
	t, p := o.Split(check.ImageDigest)
	p.PredicateType = check.PredicateType
	v, err := Verify(context.Background(), BundleSignature(raw, name), t, p)
	if err == nil {
		v.Claims.Critical.Identity.DockerReference = check.RefName
	}
	return v, err
}

// SharesParse reports whether layers a and b, read as signatures, share
// one parse of their payload (Payloads).
func SharesParse(a, b Layer) bool {
	ca, err1 := LayerSignature(a).Content()
	cb, err2 := LayerSignature(b).Content()
	if err1 != nil || err2 != nil {
		return false
	}
	ca.parse()
	cb.parse()
	return ca.doc == cb.doc
}

// PrecertTBS is precertTBS.
var PrecertTBS = precertTBS
