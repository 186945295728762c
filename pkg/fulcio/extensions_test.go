package fulcio_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/fulcio"
)

// certWith issues a self-signed certificate carrying exts.
func certWith(t testing.TB, exts ...pkix.Extension) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), ExtraExtensions: exts}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func realCert(t testing.TB) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "hallmark-gitlab.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func utf8DER(s string) []byte { b, _ := asn1.MarshalWithParams(s, "utf8"); return b }

// TestRenderParse: what the CA renders is what verifiers parse back, in
// Fulcio's order and encodings.
func TestRenderParse(t *testing.T) {
	e := fulcio.Extensions{Issuer: "https://gitlab.example", BuildSignerURI: "https://gitlab.example/g/a//.gitlab-ci.yml@refs/heads/main",
		BuildSignerDigest: "d1", RunnerEnvironment: "self-hosted", SourceRepositoryURI: "https://gitlab.example/g/a", SourceRepositoryDigest: "abc",
		SourceRepositoryRef: "refs/heads/main", SourceRepositoryIdentifier: "7", SourceRepositoryOwnerURI: "https://gitlab.example/g",
		SourceRepositoryOwnerIdentifier: "3", BuildConfigURI: "https://gitlab.example/g/a//.gitlab-ci.yml@refs/heads/main", BuildConfigDigest: "d2",
		BuildTrigger: "push", RunInvocationURI: "https://gitlab.example/g/a/-/jobs/9", SourceRepositoryVisibilityAtSigning: "private",
		DeploymentEnvironment: "prod", TokenSubject: "project_path:g/a"}
	exts, err := e.Render()
	if err != nil {
		t.Fatal(err)
	}
	if len(exts) != 18 || !exts[0].Id.Equal(fulcio.OIDIssuerV1) || string(exts[0].Value) != e.Issuer ||
		!exts[1].Id.Equal(fulcio.OIDIssuerV2) || string(exts[1].Value) != string(utf8DER(e.Issuer)) {
		t.Fatalf("rendered %d extensions, first %v %q", len(exts), exts[0].Id, exts[0].Value)
	}
	for i, x := range exts {
		if x.Critical {
			t.Errorf("extension %d (%s) is critical", i, x.Id)
		}
		if n, ok := fulcio.Number(x.Id); !ok || (i > 0 && n < fulcio.IssuerV2) {
			t.Errorf("extension %d has OID %s", i, x.Id)
		}
	}
	back, err := fulcio.ParseExtensions(exts)
	if err != nil || back != e {
		t.Fatalf("parsed back %+v, %v; want %+v", back, err, e)
	}
	c := certWith(t, exts...)
	if got := fulcio.Issuer(c); got != e.Issuer {
		t.Errorf("Issuer = %q", got)
	}
	if v, ok := fulcio.Value(c, fulcio.SourceRepositoryDigest); !ok || v != "abc" {
		t.Errorf("Value(13) = %q, %v", v, ok)
	}
	if _, ok := fulcio.Value(c, fulcio.GitHubWorkflowSHA); ok {
		t.Error("a deprecated GitHub field was written")
	}
	if _, err := (fulcio.Extensions{}).Render(); !errors.Is(err, fulcio.ErrNoIssuer) {
		t.Errorf("no issuer: %v", err)
	}
}

// TestParseRealCertificate reads the extensions of a certificate a real
// Hallmark CA issued (what cosign v2.6.5 attached).
func TestParseRealCertificate(t *testing.T) {
	c := realCert(t)
	e, err := fulcio.ParseExtensions(c.Extensions)
	if err != nil {
		t.Fatal(err)
	}
	if e.Issuer != "http://127.0.0.1:5077" || e.SourceRepositoryDigest != "714a629c0b401fdce83e847fc9589983fc6f46bc" ||
		e.SourceRepositoryRef != "refs/heads/main" || e.RunInvocationURI != "http://127.0.0.1:5077/grp/app/-/jobs/302" || e.RunnerEnvironment != "self-hosted" {
		t.Errorf("parsed %+v", e)
	}
	subject, issuer := fulcio.Identity(c)
	if subject != "http://127.0.0.1:5077/grp/app//.gitlab-ci.yml@refs/heads/main" || issuer != "http://127.0.0.1:5077" {
		t.Errorf("identity %q issuer %q", subject, issuer)
	}
	v := fulcio.Values(c)
	if v["1.3.6.1.4.1.57264.1.13"] != e.SourceRepositoryDigest || v["1.3.6.1.4.1.57264.1.1"] != e.Issuer || v["1.3.6.1.4.1.57264.1.8"] != e.Issuer {
		t.Errorf("values %v", v)
	}
}

// TestMalformedValues: a DER-string extension that is not exactly one
// string is refused by ParseExtensions, absent for Value and Values; raw
// ones are taken as they are.
func TestMalformedValues(t *testing.T) {
	for name, value := range map[string][]byte{
		"trailing bytes": append(utf8DER("abc"), 0),
		"not DER":        []byte("abc"),
		"an integer":     {0x02, 0x01, 0x05},
		"truncated":      utf8DER("abcdef")[:4],
	} {
		t.Run(name, func(t *testing.T) {
			x := pkix.Extension{Id: fulcio.OID(fulcio.SourceRepositoryDigest), Value: value}
			if _, err := fulcio.ParseExtensions([]pkix.Extension{x}); err == nil || !strings.Contains(err.Error(), "1.3.6.1.4.1.57264.1.13 (sourceRepositoryDigest)") {
				t.Errorf("ParseExtensions: %v", err)
			}
			c := certWith(t, x)
			if v, ok := fulcio.Value(c, fulcio.SourceRepositoryDigest); ok {
				t.Errorf("Value = %q", v)
			}
			if len(fulcio.Values(c)) != 0 {
				t.Errorf("Values = %v", fulcio.Values(c))
			}
		})
	}
	c := certWith(t, pkix.Extension{Id: fulcio.OIDIssuerV1, Value: []byte("https://raw.example")})
	if fulcio.Issuer(c) != "https://raw.example" {
		t.Errorf("raw issuer %q", fulcio.Issuer(c))
	}
}

// TestValuesBounds: the index records at most 64 UTF-8 values of at most
// 4 KiB, never the otherName type .1.7.
func TestValuesBounds(t *testing.T) {
	exts := []pkix.Extension{
		{Id: fulcio.OID(30), Value: utf8DER(strings.Repeat("x", 4097))},
		{Id: fulcio.OID(2), Value: []byte{0xff, 0xfe}},
		{Id: fulcio.OID(fulcio.OtherName), Value: utf8DER("not an extension")},
		{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 2, 1}, Value: utf8DER("another arc")},
	}
	for n := 100; n < 200; n++ {
		exts = append(exts, pkix.Extension{Id: fulcio.OID(n), Value: utf8DER("v")})
	}
	v := fulcio.Values(certWith(t, exts...))
	if len(v) != 64 {
		t.Fatalf("recorded %d values, want 64", len(v))
	}
	for oid := range v {
		if n, ok := fulcio.Number(mustOID(t, oid)); !ok || n < 100 {
			t.Errorf("recorded %s", oid)
		}
	}
	if v := fulcio.Values(nil); v == nil || len(v) != 0 {
		t.Errorf("Values(nil) = %v", v)
	}
}

func mustOID(t *testing.T, s string) asn1.ObjectIdentifier {
	var oid asn1.ObjectIdentifier
	for _, p := range strings.Split(s, ".") {
		var n int
		for _, c := range p {
			n = n*10 + int(c-'0')
		}
		oid = append(oid, n)
	}
	return oid
}

func TestResolve(t *testing.T) {
	for in, want := range map[string]string{"sourceRepositoryDigest": "1.3.6.1.4.1.57264.1.13", "13": "1.3.6.1.4.1.57264.1.13",
		"1.3.6.1.4.1.57264.1.21": "1.3.6.1.4.1.57264.1.21", "RUNNERENVIRONMENT": "1.3.6.1.4.1.57264.1.11", "issuer": "1.3.6.1.4.1.57264.1.8",
		"issuerV1": "1.3.6.1.4.1.57264.1.1"} {
		if got, ok := fulcio.Resolve(in); !ok || got != want {
			t.Errorf("%s: %s %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "nope", "1.2.3", "-1", "1000", "1.3.6.1.4.1.57264.1.x"} {
		if _, ok := fulcio.Resolve(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	if n, ok := fulcio.Name(fulcio.RunInvocationURI); !ok || n != "runInvocationURI" {
		t.Errorf("Name(21) = %q", n)
	}
}

// TestOtherNameSAN: a username identity is written as Fulcio's critical
// otherName SAN and read back as the certificate's identity.
func TestOtherNameSAN(t *testing.T) {
	san, err := fulcio.OtherNameSAN("builder-7")
	if err != nil {
		t.Fatal(err)
	}
	if !san.Critical || !fulcio.IsSubjectAltName(san.Id) {
		t.Fatalf("SAN extension %+v", san)
	}
	c := certWith(t, san, pkix.Extension{Id: fulcio.OIDIssuerV2, Value: utf8DER("https://issuer.example")})
	if got := fulcio.SubjectAlternativeNames(c); !reflect.DeepEqual(got, []string{"builder-7"}) {
		t.Errorf("SANs %v", got)
	}
	if s, i := fulcio.Identity(c); s != "builder-7" || i != "https://issuer.example" {
		t.Errorf("identity %q %q", s, i)
	}
	// A SAN with an otherName of another type, or garbage, names nothing.
	other, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: []byte{0x80, 0x01, 'x'}})
	c = certWith(t, pkix.Extension{Id: san.Id, Value: other})
	if got := fulcio.OtherNames(c); len(got) != 0 {
		t.Errorf("otherNames of a SAN without one: %v", got)
	}
}
