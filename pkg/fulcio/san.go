package fulcio

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
)

// oidSubjectAltName is the X.509 subjectAltName extension (2.5.29.17).
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// OtherNameSAN encodes a critical subjectAltName extension holding one
// otherName of type 1.3.6.1.4.1.57264.1.7 with a UTF8String value, as
// Fulcio writes username identities.
func OtherNameSAN(name string) (pkix.Extension, error) {
	val, err := asn1.MarshalWithParams(name, "utf8")
	if err != nil {
		return pkix.Extension{}, err
	}
	oid, err := asn1.Marshal(OIDOtherName)
	if err != nil {
		return pkix.Extension{}, err
	}
	explicit, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: val})
	if err != nil {
		return pkix.Extension{}, err
	}
	gn, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, explicit...)})
	if err != nil {
		return pkix.Extension{}, err
	}
	seq, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: gn})
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: oidSubjectAltName, Critical: true, Value: seq}, nil
}

// IsSubjectAltName reports whether oid is the subjectAltName extension,
// which Go's verifier leaves "unhandled" when it holds only an otherName.
func IsSubjectAltName(oid asn1.ObjectIdentifier) bool { return oid.Equal(oidSubjectAltName) }

// OtherNames returns the UTF-8 values of the Fulcio username otherName
// SANs of c. Malformed SANs are skipped.
func OtherNames(c *x509.Certificate) []string {
	var out []string
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidSubjectAltName) {
			continue
		}
		var seq asn1.RawValue
		if rest, err := asn1.Unmarshal(e.Value, &seq); err != nil || len(rest) > 0 || !seq.IsCompound {
			return nil
		}
		for b := seq.Bytes; len(b) > 0; {
			var gn asn1.RawValue
			var err error
			if b, err = asn1.Unmarshal(b, &gn); err != nil {
				return out
			}
			if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 {
				continue
			}
			var other struct {
				ID    asn1.ObjectIdentifier
				Value asn1.RawValue `asn1:"explicit,tag:0"`
			}
			if _, err := asn1.UnmarshalWithParams(gn.FullBytes, &other, "tag:0"); err != nil || !other.ID.Equal(OIDOtherName) {
				continue
			}
			var s string
			if _, err := asn1.UnmarshalWithParams(other.Value.Bytes, &s, "utf8"); err == nil {
				out = append(out, s)
			}
		}
	}
	return out
}

// SubjectAlternativeNames lists a certificate's SANs in cosign's order:
// DNS names, emails, IP addresses, URIs, then Fulcio's username otherName.
func SubjectAlternativeNames(c *x509.Certificate) []string {
	var out []string
	out = append(out, c.DNSNames...)
	out = append(out, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return append(out, OtherNames(c)...)
}

// Identity returns the certificate identity a Fulcio certificate was
// issued for (its first SAN, in cosign's order) and its OIDC issuer.
func Identity(c *x509.Certificate) (subject, issuer string) {
	if sans := SubjectAlternativeNames(c); len(sans) > 0 {
		subject = sans[0]
	}
	return subject, Issuer(c)
}
